@testable import AMQPRetry
import XCTest

/// Invalid options throw `invalidOption` before anything reaches the broker.
///
/// The target's and the callback's queues exist but have no consumer, so anything a call
/// published would stay in them and show in their message counts.
final class ValidationTests: IntegrationTestCase {
    /// One call with one invalid option, and the name and value the error must report.
    private struct InvalidCall {
        let label: String
        var target: String
        var repeats = 2
        var seconds: Double? = 0.5
        var minutes: Double?
        var timeout: Duration = .seconds(2)
        var callback: String?
        var context: JSONValue?
        let name: String
        let value: String
    }

    func testSyncSyncInvalidOptions() async throws {
        let target = try await makeService("target")
        let client = try await connectClient()
        var cases = commonCases(target: target, callback: nil)
        cases.append(InvalidCall(label: "timeout 0", target: target, timeout: .zero, name: "timeout", value: "0 seconds"))

        await assertRejected(cases) { call in
            _ = try await client.invokeRetry.invoke(call.target, repeats: call.repeats, seconds: call.seconds,
                                                    minutes: call.minutes, timeout: call.timeout)
        }

        await assertNothingPublished(to: [target])
    }

    func testSyncAsyncInvalidOptions() async throws {
        let target = try await makeService("target")
        let callback = try await makeService("callback")
        let client = try await connectClient()
        var cases = commonCases(target: target, callback: callback) + backgroundCases(target: target, callback: callback)
        cases.append(InvalidCall(label: "timeout 0", target: target, timeout: .zero, callback: callback,
                                 name: "timeout", value: "0 seconds"))
        cases.append(InvalidCall(label: "no callback", target: target, callback: nil, name: "callback", value: "nil"))

        await assertRejected(cases) { call in
            _ = try await client.invokeRetry.invoke(call.target, repeats: call.repeats, seconds: call.seconds,
                                                    minutes: call.minutes, asyncFallback: true, callback: call.callback,
                                                    context: call.context, timeout: call.timeout)
        }

        await assertNothingPublished(to: [target, callback])
    }

    func testAsyncAsyncInvalidOptions() async throws {
        let target = try await makeService("target")
        let callback = try await makeService("callback")
        let client = try await connectClient()
        let cases = commonCases(target: target, callback: callback) + backgroundCases(target: target, callback: callback)

        await assertRejected(cases) { call in
            _ = try await client.invokeRetry.invokeAsync(call.target, repeats: call.repeats, seconds: call.seconds,
                                                         minutes: call.minutes, callback: call.callback,
                                                         context: call.context)
        }

        await assertNothingPublished(to: [target, callback])
    }

    // MARK: Cases

    /// Returns the invalid repeats, intervals and targets that every mode rejects.
    private func commonCases(target: String, callback: String?) -> [InvalidCall] {
        [
            InvalidCall(label: "repeats 0", target: target, repeats: 0, callback: callback, name: "repeats", value: "0"),
            InvalidCall(label: "repeats -1", target: target, repeats: -1, callback: callback, name: "repeats", value: "-1"),
            InvalidCall(label: "seconds 0", target: target, seconds: 0, callback: callback, name: "seconds", value: "0.0"),
            InvalidCall(label: "seconds -1", target: target, seconds: -1, callback: callback, name: "seconds", value: "-1.0"),
            InvalidCall(label: "seconds NaN", target: target, seconds: .nan, callback: callback, name: "seconds", value: "nan"),
            InvalidCall(label: "seconds infinite", target: target, seconds: .infinity, callback: callback,
                        name: "seconds", value: "inf"),
            InvalidCall(label: "seconds and minutes", target: target, seconds: 0.5, minutes: 1, callback: callback,
                        name: "minutes", value: "1.0"),
            InvalidCall(label: "neither seconds nor minutes", target: target, seconds: nil, callback: callback,
                        name: "seconds", value: "nil"),
            InvalidCall(label: "empty target", target: "", callback: callback, name: "target", value: ""),
        ]
    }

    /// Returns the invalid callbacks and contexts of the two modes that call back.
    private func backgroundCases(target: String, callback: String) -> [InvalidCall] {
        [
            InvalidCall(label: "empty callback", target: target, callback: "", name: "callback", value: ""),
            InvalidCall(label: "context array", target: target, callback: callback, context: [1, 2],
                        name: "context", value: "[1,2]"),
            InvalidCall(label: "context string", target: target, callback: callback, context: "text",
                        name: "context", value: "\"text\""),
            InvalidCall(label: "context number", target: target, callback: callback, context: 3,
                        name: "context", value: "3"),
            InvalidCall(label: "context null", target: target, callback: callback, context: .null,
                        name: "context", value: "null"),
        ]
    }

    // MARK: Checks

    private func assertRejected(
        _ cases: [InvalidCall],
        file: StaticString = #filePath,
        line: UInt = #line,
        call: (InvalidCall) async throws -> Void
    ) async {
        for invalidCall in cases {
            do {
                try await call(invalidCall)
                XCTFail("\(invalidCall.label): the call did not throw", file: file, line: line)
            } catch InvokeRetryError.invalidOption(let name, let value, let reason) {
                XCTAssertEqual(name, invalidCall.name, "\(invalidCall.label): the option name", file: file, line: line)
                XCTAssertEqual(value, invalidCall.value, "\(invalidCall.label): the option value", file: file, line: line)
                XCTAssertFalse(reason.isEmpty, "\(invalidCall.label): the error has no reason", file: file, line: line)
            } catch {
                XCTFail("\(invalidCall.label): the call threw \(error), expected InvokeRetryError.invalidOption(name: "
                    + "\"\(invalidCall.name)\", value: \"\(invalidCall.value)\")", file: file, line: line)
            }
        }
    }

    /// Checks, after a moment for anything in flight to arrive, that the services' queues are empty.
    private func assertNothingPublished(to services: [String], file: StaticString = #filePath, line: UInt = #line) async {
        try? await Task.sleep(for: .milliseconds(300))
        for service in services {
            let queue = TopologyNames.serviceQueue(service)
            do {
                let count = try await broker.readyMessageCount(queue)
                XCTAssertEqual(count, 0, "invalid calls published \(count) messages to '\(queue)'", file: file, line: line)
            } catch {
                XCTFail("counting the messages of '\(queue)' failed: \(error)", file: file, line: line)
            }
        }
    }
}
