@testable import AMQPRetry
import XCTest

/// Async + async: every call runs in the background, and the outcome arrives as a callback.
final class AsyncAsyncTests: IntegrationTestCase {
    func testFlakyTargetCallsBack() async throws {
        let target = try await makeService("flaky")
        let callback = try await makeService("callback")
        let seconds = try await makeRetryInterval()
        let recorder = CallRecorder()
        try await startWorker([target: TestHandlers.failing(2, thenReturning: Payload(text: "done"), recorder: recorder)])
        let callbacks = try await readQueue(of: callback)
        let client = try await connectClient()
        let request = Payload(json: #"{"order":42}"#)
        let context: JSONValue = ["order": 42, "tags": ["a", "b"], "nested": ["ok": true]]

        let cid = try await client.invokeRetry.invokeAsync(target, request, repeats: 3, seconds: seconds,
                                                           callback: callback, context: context)

        await assertCalledExactly(3, recorder, service: target)
        let calls = recorder.all
        XCTAssertEqual(calls.map(\.request.attempt), [1, 2, 3], "attempt numbers of the calls")
        XCTAssertEqual(calls.map(\.request.mode), [.async, .async, .async], "modes of the calls")
        XCTAssertEqual(calls.map(\.request.cid), [cid, cid, cid], "a call's CID is not the CID invokeAsync returned")
        XCTAssertEqual(calls.map(\.request.payload), [request, request, request], "the request payload changed")
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
        // The last failure is 2,000 bytes long, so the callback must carry a shortened error.
        let longFailure = "failure on call 3: " + String(repeating: "é", count: 1000)
        try await startWorker([target: TestHandlers.alwaysFailing(recorder: recorder) { number in
            number == 3 ? longFailure : TestHandlers.failureMessage(call: number)
        }])
        let callbacks = try await readQueue(of: callback)
        let client = try await connectClient()

        let cid = try await client.invokeRetry.invokeAsync(target, repeats: 2, seconds: seconds, callback: callback,
                                                           context: ["step": "charge"])

        await assertCalledExactly(3, recorder, service: target)
        assertIntervals(recorder.all, seconds: seconds)

        await assertReceivesExactly(1, from: callbacks)
        guard let message = callbacks.messages(correlationID: cid.rawValue).first else {
            XCTFail("no callback has correlation_id \(cid)")
            return
        }
        assertCallback(message, matches: ExpectedCallback(
            cid: cid, ok: false, target: target, attempts: 3, repeats: 2, seconds: seconds, context: ["step": "charge"]
        ))
        let error = (try? CallbackBody.decode(message.delivery.body))?.error ?? ""
        XCTAssertTrue(error.hasPrefix("failure on call 3: éé"), "callback 'error' is not the last call's error: \(error.prefix(40))")
        XCTAssertTrue(error.hasSuffix("…"), "a shortened callback 'error' does not end with an ellipsis")
        XCTAssertGreaterThan(error.utf8.count, 1000, "callback 'error' was cut far below 1024 bytes")
    }

    func testEmptyResponseCallsBack() async throws {
        let target = try await makeService("empty")
        let callback = try await makeService("callback")
        let recorder = CallRecorder()
        try await startWorker([target: TestHandlers.failing(0, thenReturning: .empty, recorder: recorder)])
        let callbacks = try await readQueue(of: callback)
        let client = try await connectClient()

        let cid = try await client.invokeRetry.invokeAsync(target, repeats: 2, seconds: 0.5, callback: callback)

        await assertCalledExactly(1, recorder, service: target)
        await assertReceivesExactly(1, from: callbacks)
        guard let message = callbacks.messages(correlationID: cid.rawValue).first else {
            XCTFail("no callback has correlation_id \(cid)")
            return
        }
        assertCallback(message, matches: ExpectedCallback(
            cid: cid, ok: true, target: target, attempts: 1, repeats: 2, seconds: 0.5, context: nil,
            response: "", responseContentType: "application/json"
        ))
    }

    func testBinaryResponseIsBase64() async throws {
        let target = try await makeService("binary")
        let callback = try await makeService("callback")
        let recorder = CallRecorder()
        let response = Payload(bytes: [0xFF, 0x00, 0x80], contentType: "application/octet-stream")
        try await startWorker([target: TestHandlers.failing(0, thenReturning: response, recorder: recorder)])
        let callbacks = try await readQueue(of: callback)
        let client = try await connectClient()

        let cid = try await client.invokeRetry.invokeAsync(target, repeats: 1, seconds: 0.5, callback: callback)

        await assertReceivesExactly(1, from: callbacks)
        guard let message = callbacks.messages(correlationID: cid.rawValue).first else {
            XCTFail("no callback has correlation_id \(cid)")
            return
        }
        assertCallback(message, matches: ExpectedCallback(
            cid: cid, ok: true, target: target, attempts: 1, repeats: 1, seconds: 0.5, context: nil,
            response: "/wCA", responseEncoding: "base64", responseContentType: "application/octet-stream"
        ))
    }

    /// Service A invokes B through its request's patterns, and C receives B's callback.
    func testHandlerInvokesThroughRequest() async throws {
        let serviceA = try await makeService("a")
        let serviceB = try await makeService("b")
        let serviceC = try await makeService("c")
        let recorderA = CallRecorder()
        let recorderB = CallRecorder()
        let recorderC = CallRecorder()
        try await startWorker([
            serviceA: { request in
                recorderA.record(request)
                let cid = try await request.patterns.invokeRetry.invokeAsync(
                    serviceB, Payload(text: "from A"), repeats: 1, seconds: 0.5, callback: serviceC, context: ["by": "A"]
                )
                return Payload(text: cid.rawValue)
            },
            serviceB: TestHandlers.failing(0, thenReturning: Payload(text: "B done"), recorder: recorderB),
            serviceC: { request in
                recorderC.record(request)
                return .empty
            },
        ])
        let client = try await connectClient()

        let response = try await client.invokeRetry.invoke(serviceA, repeats: 1, seconds: 0.5, timeout: .seconds(5))

        let cidOfB = try CID(validating: response.text ?? "")
        await assertCalledExactly(1, recorderC, service: serviceC)
        guard let requestA = recorderA.all.first?.request, let requestB = recorderB.all.first?.request,
              let requestC = recorderC.all.first?.request else {
            XCTFail("A, B and C were not each called: \(recorderA.count), \(recorderB.count), \(recorderC.count) calls")
            return
        }
        XCTAssertEqual(requestB.cid, cidOfB, "B was called with another CID than invokeAsync returned in A")
        XCTAssertEqual(requestB.source, serviceA, "B's request does not name A as its source")
        XCTAssertEqual(requestC.mode, .callback, "C received the callback in another mode")
        XCTAssertEqual(requestC.cid, cidOfB, "C's request does not carry the CID of B's call")
        XCTAssertEqual(requestC.service, serviceC, "C's request names another service")

        let body: CallbackBody
        do {
            body = try requestC.callbackBody()
        } catch {
            XCTFail("C's payload is not a callback body: \(error)")
            return
        }
        assertCallbackBody(body, matches: ExpectedCallback(
            cid: cidOfB, ok: true, target: serviceB, source: serviceA, origCID: requestA.cid, attempts: 1,
            repeats: 1, seconds: 0.5, context: ["by": "A"], response: "B done",
            responseContentType: "text/plain; charset=utf-8"
        ))
    }
}
