@testable import AMQPRetry
import XCTest

/// Sync + sync: every call blocks the caller, and the caller itself sleeps between calls.
final class SyncSyncTests: IntegrationTestCase {
    /// Sync + sync sends no message through a delay queue, so sharing an interval with other tests is safe.
    private let seconds = 0.5

    func testFlakyTargetSucceeds() async throws {
        let target = try await makeService("flaky")
        let recorder = CallRecorder()
        let expected = Payload(text: "done on call 3")
        try await startWorker([target: TestHandlers.failing(2, thenReturning: expected, recorder: recorder)])
        let client = try await connectClient()
        let request = Payload(json: #"{"order":42}"#)

        let response = try await client.invokeRetry.invoke(target, request, repeats: 3, seconds: seconds,
                                                           timeout: .seconds(5))

        XCTAssertEqual(response, expected, "the response is not the one of the call that succeeded")
        await assertCalledExactly(3, recorder, service: target)
        let calls = recorder.all
        XCTAssertEqual(calls.map(\.request.attempt), [1, 2, 3], "attempt numbers of the calls")
        XCTAssertEqual(calls.map(\.request.mode), [.sync, .sync, .sync], "modes of the calls")
        XCTAssertEqual(Set(calls.map(\.request.cid)).count, 1, "the calls of one invocation have different CIDs")
        XCTAssertEqual(calls.map(\.request.payload), [request, request, request], "the request payload changed")
        XCTAssertEqual(calls.map(\.request.source), ["", "", ""], "a client call has an empty source")
        assertIntervals(calls, seconds: seconds)
    }

    func testAlwaysFailingExhaustsRetries() async throws {
        let target = try await makeService("broken")
        let recorder = CallRecorder()
        try await startWorker([target: TestHandlers.alwaysFailing(recorder: recorder)])
        let client = try await connectClient()

        var thrown: (any Error)?
        do {
            let response = try await client.invokeRetry.invoke(target, repeats: 2, seconds: seconds, timeout: .seconds(5))
            XCTFail("the call returned \(response) although every attempt failed")
        } catch {
            thrown = error
        }

        await assertCalledExactly(3, recorder, service: target)
        let calls = recorder.all
        assertIntervals(calls, seconds: seconds)
        guard case .retriesExhausted(let cid, let failedTarget, let attempts, let lastFailure) = thrown as? InvokeRetryError else {
            XCTFail("the call threw \(String(describing: thrown)), expected InvokeRetryError.retriesExhausted")
            return
        }
        XCTAssertEqual(cid, calls.first?.request.cid, "the error's CID is not the CID the target received")
        XCTAssertEqual(failedTarget, target, "the error's target")
        XCTAssertEqual(attempts, 3, "the error's attempts count")
        XCTAssertEqual(lastFailure, TestHandlers.failureMessage(call: 3), "the error's lastFailure is not the last call's error")
    }

    func testEmptyResponseIsSuccess() async throws {
        let target = try await makeService("empty")
        let recorder = CallRecorder()
        try await startWorker([target: TestHandlers.failing(0, thenReturning: .empty, recorder: recorder)])
        let client = try await connectClient()

        let response = try await client.invokeRetry.invoke(target, repeats: 2, seconds: seconds, timeout: .seconds(5))

        XCTAssertEqual(response.bytes, [], "the response of a handler that returned nothing has bytes")
        await assertCalledExactly(1, recorder, service: target)
    }

    func testTimedOutCallIsRetried() async throws {
        let target = try await makeService("slow")
        let recorder = CallRecorder()
        try await startWorker([target: { request in
            let number = recorder.record(request)
            if number == 1 {
                try await Task.sleep(for: .milliseconds(1500))
            }
            return Payload(text: "reply of call \(number)")
        }])
        let client = try await connectClient()

        let response = try await client.invokeRetry.invoke(target, repeats: 1, seconds: seconds, timeout: .seconds(1))

        XCTAssertEqual(response.text, "reply of call 2", "a late reply of the timed-out call was taken as the response")
        await assertCalledExactly(2, recorder, service: target, settle: .seconds(1))
    }

    func testShortTimeoutAfterLongOneExpires() async throws {
        let target = try await makeService("slower")
        try await startWorker([target: { _ in
            try await Task.sleep(for: .seconds(3))
            return Payload(text: "late")
        }])
        let client = try await connectClient()
        let long = Task { try await client.invokeRetry.invoke(target, repeats: 1, seconds: 0.1, timeout: .seconds(20)) }
        try await Task.sleep(for: .milliseconds(200))

        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await client.invokeRetry.invoke(target, repeats: 1, seconds: 0.1, timeout: .milliseconds(500))
            XCTFail("a call whose handler takes 3 s returned within a 500 ms timeout")
        } catch InvokeRetryError.retriesExhausted(_, _, _, let lastFailure) {
            XCTAssertTrue(lastFailure.contains("no reply within"), lastFailure)
        }
        let elapsed = clock.now - start

        XCTAssertLessThan(elapsed, .milliseconds(2500), "the short timeout waited for the longer call's deadline")
        let response = try await long.value
        XCTAssertEqual(response.text, "late")
    }
}
