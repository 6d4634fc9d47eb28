@testable import AMQPRetry
import XCTest

/// Sync + async: the first call blocks, and the retries run in the background and end in a callback.
final class SyncAsyncTests: IntegrationTestCase {
    func testFlakyTargetCallsBack() async throws {
        let target = try await makeService("flaky")
        let callback = try await makeService("callback")
        let seconds = try await makeRetryInterval()
        let recorder = CallRecorder()
        try await startWorker([target: TestHandlers.failing(2, thenReturning: Payload(text: "done"), recorder: recorder)])
        let callbacks = try await readQueue(of: callback)
        let client = try await connectClient()
        let context: JSONValue = ["order": 42, "note": "sync+async"]

        let result = try await client.invokeRetry.invoke(target, Payload(json: #"{"order":42}"#), repeats: 3,
                                                         seconds: seconds, asyncFallback: true, callback: callback,
                                                         context: context, timeout: .seconds(5))

        guard case .retrying(let cid) = result else {
            XCTFail("the first call failed, but the result is \(result), expected .retrying")
            return
        }
        await assertCalledExactly(3, recorder, service: target)
        let calls = recorder.all
        XCTAssertEqual(calls.map(\.request.attempt), [1, 2, 3], "attempt numbers of the calls")
        XCTAssertEqual(calls.map(\.request.mode), [.sync, .async, .async], "only the first call blocks")
        XCTAssertEqual(calls.map(\.request.cid), [cid, cid, cid], "a call's CID is not the CID of the invocation")
        assertIntervals(calls, seconds: seconds)

        await assertReceivesExactly(1, from: callbacks)
        guard let message = callbacks.messages(correlationID: cid.rawValue).first else {
            XCTFail("no callback has correlation_id \(cid)")
            return
        }
        assertCallback(message, matches: ExpectedCallback(
            cid: cid, ok: true, target: target, attempts: 3, repeats: 3, seconds: seconds, context: context,
            response: "done", responseContentType: "text/plain; charset=utf-8"
        ))
    }

    func testAlwaysFailingCallsBackError() async throws {
        let target = try await makeService("broken")
        let callback = try await makeService("callback")
        let seconds = try await makeRetryInterval()
        let recorder = CallRecorder()
        try await startWorker([target: TestHandlers.alwaysFailing(recorder: recorder)])
        let callbacks = try await readQueue(of: callback)
        let client = try await connectClient()

        let result = try await client.invokeRetry.invoke(target, repeats: 2, seconds: seconds, asyncFallback: true,
                                                         callback: callback, timeout: .seconds(5))

        guard case .retrying(let cid) = result else {
            XCTFail("the first call failed, but the result is \(result), expected .retrying")
            return
        }
        await assertCalledExactly(3, recorder, service: target)
        assertIntervals(recorder.all, seconds: seconds)

        await assertReceivesExactly(1, from: callbacks)
        guard let message = callbacks.messages(correlationID: cid.rawValue).first else {
            XCTFail("no callback has correlation_id \(cid)")
            return
        }
        assertCallback(message, matches: ExpectedCallback(
            cid: cid, ok: false, target: target, attempts: 3, repeats: 2, seconds: seconds, context: nil,
            error: TestHandlers.failureMessage(call: 3)
        ))
    }

    func testSuccessReturnsResponse() async throws {
        let target = try await makeService("echo")
        let callback = try await makeService("callback")
        let recorder = CallRecorder()
        try await startWorker([target: TestHandlers.failing(0, thenReturning: Payload(text: "hello"), recorder: recorder)])
        let callbacks = try await readQueue(of: callback)
        let client = try await connectClient()

        let result = try await client.invokeRetry.invoke(target, repeats: 2, seconds: 0.5, asyncFallback: true,
                                                         callback: callback, timeout: .seconds(5))

        XCTAssertEqual(result, .response(Payload(text: "hello")), "the first call succeeded, so its response comes back")
        await assertCalledExactly(1, recorder, service: target)
        await assertReceivesExactly(0, from: callbacks)
    }

    func testEmptyResponseReturnsAtOnce() async throws {
        let target = try await makeService("empty")
        let callback = try await makeService("callback")
        let recorder = CallRecorder()
        try await startWorker([target: TestHandlers.failing(0, thenReturning: .empty, recorder: recorder)])
        let callbacks = try await readQueue(of: callback)
        let client = try await connectClient()

        let result = try await client.invokeRetry.invoke(target, repeats: 2, seconds: 0.5, asyncFallback: true,
                                                         callback: callback, timeout: .seconds(5))

        guard case .response(let response) = result else {
            XCTFail("an empty response is a success, but the result is \(result)")
            return
        }
        XCTAssertEqual(response.bytes, [], "the response of a handler that returned nothing has bytes")
        await assertCalledExactly(1, recorder, service: target)
        await assertReceivesExactly(0, from: callbacks)
    }

    func testEmptyRetryResponseCallsBack() async throws {
        let target = try await makeService("empty")
        let callback = try await makeService("callback")
        let seconds = try await makeRetryInterval()
        let recorder = CallRecorder()
        try await startWorker([target: TestHandlers.failing(1, thenReturning: .empty, recorder: recorder)])
        let callbacks = try await readQueue(of: callback)
        let client = try await connectClient()

        let result = try await client.invokeRetry.invoke(target, repeats: 3, seconds: seconds, asyncFallback: true,
                                                         callback: callback, timeout: .seconds(5))

        guard case .retrying(let cid) = result else {
            XCTFail("the first call failed, but the result is \(result), expected .retrying")
            return
        }
        await assertCalledExactly(2, recorder, service: target)
        await assertReceivesExactly(1, from: callbacks)
        guard let message = callbacks.messages(correlationID: cid.rawValue).first else {
            XCTFail("no callback has correlation_id \(cid)")
            return
        }
        assertCallback(message, matches: ExpectedCallback(
            cid: cid, ok: true, target: target, attempts: 2, repeats: 3, seconds: seconds, context: nil,
            response: "", responseContentType: "application/json"
        ))
    }
}
