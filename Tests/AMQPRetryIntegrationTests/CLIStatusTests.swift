@testable import AMQPRetry
import Foundation
import XCTest

/// `amqp-retry status`: counts read with passive declares, missing queues, JSON, and watching.
final class CLIStatusTests: CLITestCase {
    func testJSONShowsCountsAndMissingQueues() async throws {
        let hosted = try await makeService("hosted")
        let waiting = try await makeService("waiting")
        let missing = "cli.\(runID).missing"
        let seconds = try await makeRetryInterval()
        let delay = String(Int((seconds * 1000).rounded()))
        try await startWorker([hosted: { _ in .empty }])
        try await publishInvocations(2, to: waiting)

        let arguments = ["status", hosted, waiting, missing, "--delay", delay, "--json"]
        let result = try await runCLI(arguments)
        try await purge(TopologyNames.serviceQueue(waiting))

        assertExit(result, 0, arguments)
        XCTAssertEqual(result.outputLines.count, 1, "--json printed more than one line: \(result.outputText)")
        let status = try JSONValue(parsing: result.outputText).objectValue ?? [:]
        let services = status["services"].flatMap(Self.array) ?? []
        XCTAssertEqual(services.count, 3, "services: \(services)")
        assertQueue(services.first, name: TopologyNames.serviceQueue(hosted), ready: 0, consumers: 1)
        assertQueue(services.dropFirst().first, name: TopologyNames.serviceQueue(waiting), ready: 2, consumers: 0)
        assertMissing(services.last, name: TopologyNames.serviceQueue(missing))
        XCTAssertEqual(services.last?["service"], .string(missing))

        let delays = status["delays"].flatMap(Self.array) ?? []
        XCTAssertEqual(delays.first?["milliseconds"], .number(Double(delay) ?? 0))
        assertQueue(delays.first, name: TopologyNames.delayQueue(milliseconds: Int64(delay) ?? 0), ready: 0, consumers: 0)
        XCTAssertEqual(status["parking"]?.objectValue?["exists"], .bool(true), "the parking queue is not shown")
        XCTAssertNotNil(status["time"].flatMap { if case .string(let text) = $0 { WireTimestamp.parse(text) } else { nil } },
                        "the JSON has no valid time")
        let created = try await queueExists(TopologyNames.serviceQueue(missing))
        XCTAssertFalse(created, "status created a missing queue")
    }

    func testTableAlignsColumnsAndMarksMissing() async throws {
        let present = try await makeService("present")
        let missing = "cli.\(runID).absent"

        let arguments = ["status", present, missing]
        let result = try await runCLI(arguments)

        assertExit(result, 0, arguments)
        let lines = result.outputLines
        XCTAssertEqual(lines.count, 5, "expected a time line, a heading and three rows: \(result.outputText)")
        XCTAssertTrue(lines.first?.contains("RabbitMQ at amqp://") == true, "no time and broker line: \(result.outputText)")
        XCTAssertFalse(result.outputText.contains("guest:guest@"), "the table shows the password")
        let heading = lines.dropFirst().first ?? ""
        XCTAssertTrue(heading.hasPrefix("KIND"), heading)
        let presentRow = lines.first { $0.contains(TopologyNames.serviceQueue(present)) } ?? ""
        let missingRow = lines.first { $0.contains(TopologyNames.serviceQueue(missing)) } ?? ""
        XCTAssertTrue(presentRow.hasSuffix("n/a"), "UNACKED is not n/a: \(presentRow)")
        XCTAssertTrue(missingRow.contains("missing"), "the missing queue is not marked: \(missingRow)")
        XCTAssertEqual(presentRow.count, heading.count, "the row is not aligned with the heading")
    }

    func testManyMissingQueuesStayFast() async throws {
        let missing = (1...10).map { "cli.\(runID).gone\($0)" }

        let start = ContinuousClock.now
        let result = try await runCLI(["status"] + missing + ["--json"])
        let elapsed = ContinuousClock.now - start

        assertExit(result, 0, ["status"] + missing)
        XCTAssertEqual(result.outputText.components(separatedBy: #""exists":false"#).count - 1, 10)
        XCTAssertLessThan(elapsed, .seconds(3), "reading 10 missing queues took \(elapsed)")
    }

    func testWatchStopsAfterCount() async throws {
        let service = try await makeService("watched")

        let arguments = ["status", service, "--json", "--watch", "0.2", "--count", "3"]
        let result = try await runCLI(arguments, timeout: .seconds(15))

        assertExit(result, 0, arguments)
        XCTAssertEqual(result.outputLines.count, 3, "expected 3 refreshes: \(result.outputText)")
        let times = result.outputLines.compactMap { line -> String? in
            guard case .string(let time)? = (try? JSONValue(parsing: line))?.objectValue?["time"] else { return nil }
            return time
        }
        XCTAssertEqual(Set(times).count, 3, "the refreshes do not have distinct times: \(times)")
    }

    func testWatchStopsOnInterrupt() async throws {
        let service = try await makeService("interrupted")

        let arguments = ["status", service, "--watch", "0.2"]
        let result = try await runCLI(arguments, interruptAfter: .seconds(1), timeout: .seconds(15))

        assertExit(result, 0, arguments)
        let refreshes = result.outputLines.filter { $0.contains("RabbitMQ at ") }.count
        XCTAssertGreaterThanOrEqual(refreshes, 2, "the status was not refreshed: \(result.outputText)")
    }

    func testInvalidOptionsAreUsageErrors() async throws {
        let cases: [(arguments: [String], mentions: [String])] = [
            (["--watch", "0"], ["'0'", "--watch"]),
            (["--watch", "abc"], ["'abc'", "--watch"]),
            (["--watch", "1", "--count", "0"], ["'0'", "--count"]),
            (["--count", "2"], ["--count", "--watch"]),
            (["--delay", "-5"], ["'-5'", "--delay"]),
            (["--delay", "1.5"], ["'1.5'", "--delay"]),
            (["amq.reserved"], ["'amq.reserved'", "<service>"]),
        ]

        for invalid in cases {
            let arguments = ["status"] + invalid.arguments
            let result = try await runCLI(arguments)

            assertExit(result, 64, stderrContains: invalid.mentions, arguments)
            XCTAssertTrue(result.output.isEmpty, "standard output is not empty: \(result.describe(arguments))")
        }
    }

    // MARK: Helpers

    private func publishInvocations(_ count: Int, to service: String) async throws {
        let queue = TopologyNames.serviceQueue(service)
        let options = try RetryOptions(repeats: 1, seconds: 1)
        for _ in 0..<count {
            let invocation = Invocation(mode: .async, target: service, options: options)
            let message = OutgoingMessage(exchange: "", routingKey: queue, properties: invocation.messageProperties(),
                                          body: [])
            try await broker.publish([message])
        }
    }

    private func assertQueue(_ entry: [String: JSONValue]?, name: String, ready: Int, consumers: Int,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(entry?["queue"], .string(name), file: file, line: line)
        XCTAssertEqual(entry?["exists"], .bool(true), "\(name) exists", file: file, line: line)
        XCTAssertEqual(entry?["ready"], .number(Double(ready)), "\(name) ready", file: file, line: line)
        XCTAssertEqual(entry?["consumers"], .number(Double(consumers)), "\(name) consumers", file: file, line: line)
        XCTAssertEqual(entry?["unacked"], .null, "\(name) unacked", file: file, line: line)
    }

    private func assertMissing(_ entry: [String: JSONValue]?, name: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(entry?["queue"], .string(name), file: file, line: line)
        XCTAssertEqual(entry?["exists"], .bool(false), "\(name) exists", file: file, line: line)
        XCTAssertEqual(entry?["ready"], .null, "\(name) ready", file: file, line: line)
        XCTAssertEqual(entry?["consumers"], .null, "\(name) consumers", file: file, line: line)
    }

    private static func array(_ value: JSONValue) -> [[String: JSONValue]]? {
        guard case .array(let elements) = value else { return nil }
        return elements.compactMap(\.objectValue)
    }
}
