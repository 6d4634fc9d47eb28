@testable import AMQPRetry
import Foundation
import XCTest

/// `amqp-retry invoke` in each mode against services hosted in the test process, and its
/// checks of the command line, which must publish nothing.
final class CLIInvokeTests: CLITestCase {
    func testSyncPrintsOnlyTheResponse() async throws {
        let service = try await makeService("echo")
        let recorder = CallRecorder()
        try await startWorker([service: { request in
            recorder.record(request)
            return request.payload
        }])

        let arguments = ["invoke", service, #"{"amount": 10}"#, "--seconds", "0.2"]
        let result = try await runCLI(arguments)

        assertExit(result, 0, arguments)
        XCTAssertEqual(result.outputText, #"{"amount": 10}"#, "standard output is not exactly the response")
        XCTAssertEqual(recorder.count, 1, "the service was not called once")
        XCTAssertEqual(recorder.all.first?.request.mode, .sync, "the call was not a blocking one")
    }

    func testSyncReadsRequestFromStandardInput() async throws {
        let service = try await makeService("stdin")
        try await startWorker([service: { request in request.payload }])

        let arguments = ["invoke", service, "--file", "-", "--seconds", "1", "--content-type", "text/plain"]
        let result = try await runCLI(arguments, input: Data("line one\nline two\n".utf8))

        assertExit(result, 0, arguments)
        XCTAssertEqual(result.outputText, "line one\nline two\n")
    }

    func testSyncRetriesThenSucceeds() async throws {
        let service = try await makeService("flaky")
        let recorder = CallRecorder()
        try await startWorker([service: TestHandlers.failing(1, thenReturning: Payload(text: "done"), recorder: recorder)])

        let arguments = ["invoke", service, "--repeats", "2", "--seconds", "0.2"]
        let result = try await runCLI(arguments)

        assertExit(result, 0, stderrContains: [TestHandlers.failureMessage(call: 1)], arguments)
        XCTAssertEqual(result.outputText, "done")
        XCTAssertEqual(recorder.all.map(\.request.attempt), [1, 2], "the calls were not attempts 1 and 2")
    }

    func testSyncExhaustedExitsOneWithError() async throws {
        let service = try await makeService("broken")
        let recorder = CallRecorder()
        try await startWorker([service: TestHandlers.alwaysFailing(recorder: recorder)])

        let arguments = ["invoke", service, "--repeats", "1", "--seconds", "0.1"]
        let result = try await runCLI(arguments)

        let cid = recorder.all.first?.request.cid.rawValue ?? "no call"
        assertExit(result, 1, stderrContains: [
            "failed after 2 attempts", "CID \(cid)", TestHandlers.failureMessage(call: 2),
        ], arguments)
        XCTAssertTrue(result.output.isEmpty, "standard output is not empty: \(result.outputText)")
        XCTAssertEqual(recorder.count, 2, "the service was not called 1 + repeats times")
    }

    func testSyncToServiceWithoutQueueFails() async throws {
        let service = "cli.\(runID).nosuch"
        let queue = TopologyNames.serviceQueue(service)

        let arguments = ["invoke", service, "--repeats", "1", "--seconds", "0.1", "--timeout", "5"]
        let result = try await runCLI(arguments)

        assertExit(result, 1, stderrContains: ["'\(service)' has no queue", queue, "failed after 2 attempts"], arguments)
        let exists = try await queueExists(queue)
        XCTAssertFalse(exists, "a blocking invoke created the queue of an unknown service")
    }

    func testAsyncPrintsCIDAndCallbackFollows() async throws {
        let target = try await makeService("target")
        let callback = try await makeService("callback")
        let seconds = try await makeRetryInterval()
        let recorder = CallRecorder()
        try await startWorker([target: TestHandlers.failing(1, thenReturning: Payload(text: "ok"), recorder: recorder)])
        let callbacks = try await readQueue(of: callback)

        let arguments = ["invoke", target, "charge", "--mode", "async", "--repeats", "2", "--seconds", "\(seconds)",
                         "--callback", callback, "--context", #"{"order": 7}"#]
        let result = try await runCLI(arguments)

        assertExit(result, 0, arguments)
        let cid = try CID(validating: result.outputText.trimmingCharacters(in: .newlines))
        await assertReceivesExactly(1, from: callbacks)
        guard let message = callbacks.messages.first else { return }
        assertCallback(message, matches: ExpectedCallback(
            cid: cid, ok: true, target: target, attempts: 2, repeats: 2, seconds: seconds,
            context: ["order": 7], response: "ok", responseContentType: "text/plain; charset=utf-8"))
        XCTAssertEqual(recorder.all.first?.request.payload.text, "charge", "the service did not get the request")
    }

    func testFallbackPrintsCIDWhenFirstCallFails() async throws {
        let target = try await makeService("target")
        let callback = try await makeService("callback")
        let seconds = try await makeRetryInterval()
        let recorder = CallRecorder()
        try await startWorker([target: TestHandlers.failing(1, thenReturning: Payload(text: "late"), recorder: recorder)])
        let callbacks = try await readQueue(of: callback)

        let arguments = ["invoke", target, "--mode", "fallback", "--seconds", "\(seconds)", "--callback", callback]
        let result = try await runCLI(arguments)

        assertExit(result, 0, stderrContains: ["background", callback], arguments)
        let cid = try CID(validating: result.outputText.trimmingCharacters(in: .newlines))
        await assertReceivesExactly(1, from: callbacks)
        XCTAssertEqual(callbacks.messages.first?.correlationID, cid.rawValue, "the callback has another CID")
        XCTAssertEqual(recorder.all.map(\.request.mode), [.sync, .async], "the retry did not run in the background")
    }

    func testFallbackPrintsResponseWhenFirstCallSucceeds() async throws {
        let target = try await makeService("target")
        let callback = try await makeService("callback")
        try await startWorker([target: { _ in Payload(text: "at once") }])

        let arguments = ["invoke", target, "--mode", "fallback", "--seconds", "1", "--callback", callback]
        let result = try await runCLI(arguments)

        assertExit(result, 0, arguments)
        XCTAssertEqual(result.outputText, "at once")
    }

    func testInvalidOptionsPublishNothing() async throws {
        let service = try await makeService("untouched")
        let queue = TopologyNames.serviceQueue(service)
        let largeContext = #"{"data": ""# + String(repeating: "x", count: 70_000) + #""}"#
        let cases: [(arguments: [String], mentions: [String])] = [
            (["--repeats", "abc", "--seconds", "1"], ["'abc'", "--repeats"]),
            (["--repeats", "0", "--seconds", "1"], ["'0'", "--repeats"]),
            (["--seconds", "-1"], ["'-1'", "--seconds"]),
            (["--seconds", "abc"], ["'abc'", "--seconds"]),
            (["--minutes", "0"], ["'0'", "--minutes"]),
            (["--seconds", "1", "--minutes", "1"], ["--seconds", "--minutes"]),
            ([], ["--seconds", "--minutes"]),
            (["--seconds", "1", "--mode", "later"], ["'later'", "--mode"]),
            (["--seconds", "1", "--mode", "async", "--context", "{"], ["'{'", "--context"]),
            (["--seconds", "1", "--mode", "async", "--context", "[1, 2]"], ["'[1, 2]'", "JSON object"]),
            (["--seconds", "1", "--mode", "async", "--context", largeContext], ["'--context <json>'", "65536 bytes"]),
            (["--seconds", "1", "--mode", "fallback"], ["--callback"]),
            (["--seconds", "1", "--callback", "cb"], ["--callback", "fallback or async"]),
            (["--seconds", "1", "--mode", "async", "--callback", "amq.cb"], ["'amq.cb'", "--callback"]),
            (["--seconds", "1", "--timeout", "0"], ["'0'", "--timeout"]),
            (["--seconds", "1", "--mode", "async", "--timeout", "5"], ["--timeout"]),
            (["payload", "--file", "/dev/null", "--seconds", "1"], ["<payload>", "--file"]),
            (["--file", "/nonexistent/request.json", "--seconds", "1"], ["/nonexistent/request.json"]),
        ]

        for invalid in cases {
            let arguments = ["invoke", service] + invalid.arguments
            let result = try await runCLI(arguments)

            assertExit(result, 64, stderrContains: invalid.mentions, arguments)
            XCTAssertTrue(result.output.isEmpty, "standard output is not empty: \(result.describe(arguments))")
        }

        let invalidTarget = ["invoke", "amq.reserved", "--seconds", "1", "--mode", "async"]
        let result = try await runCLI(invalidTarget)
        assertExit(result, 64, stderrContains: ["'amq.reserved'", "<target>"], invalidTarget)

        let count = try await broker.readyMessageCount(queue)
        XCTAssertEqual(count, 0, "an invalid command line published \(count) messages to '\(queue)'")
        let reservedExists = try await queueExists(TopologyNames.serviceQueue("amq.reserved"))
        XCTAssertFalse(reservedExists, "an invalid target got a queue")
    }
}
