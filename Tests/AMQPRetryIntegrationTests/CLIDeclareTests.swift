@testable import AMQPRetry
import Foundation
import XCTest

/// `amqp-retry declare`: creates the topology as the library declares it and reports existing
/// queues whose arguments differ.
final class CLIDeclareTests: CLITestCase {
    func testDeclaresWorkingTopology() async throws {
        let service = "cli.\(runID).declared"
        let milliseconds = uniqueDelay()
        let queue = TopologyNames.serviceQueue(service)
        let delayQueue = TopologyNames.delayQueue(milliseconds: milliseconds)
        createdQueues += [queue, delayQueue]
        createdExchanges.append(TopologyNames.delayExchange(milliseconds: milliseconds))

        let arguments = ["declare", service, "--delay", String(milliseconds)]
        let result = try await runCLI(arguments)

        assertExit(result, 0, arguments)
        XCTAssertEqual(result.outputLines.count, 5, "expected one line per object: \(result.outputText)")
        XCTAssertTrue(result.outputLines.allSatisfy { $0.hasPrefix("ok ") }, result.outputText)
        XCTAssertTrue(result.outputText.contains("queue '\(delayQueue)'"), result.outputText)

        // The library's own declarations must match, and a retry must travel through the delay queue.
        let topology = Topology.service(service, type: try configuration.queueType)
            + Topology.delay(milliseconds: milliseconds, type: try configuration.queueType)
        _ = try await broker.declare(topology)
        try await assertRetryTravels(through: milliseconds, to: queue)
    }

    func testReportsDelayQueuesThatWouldLoseRetries() async throws {
        let withoutTTL = uniqueDelay()
        let withoutDeadLettering = uniqueDelay()
        let plainQueues: [(Int64, FieldTable, String, String)] = [
            (withoutTTL, [:], "x-message-ttl", "no x-message-ttl"),
            (withoutDeadLettering, ["x-message-ttl": .int64(withoutDeadLettering)], "x-dead-letter-exchange",
             "lost silently"),
        ]
        for (milliseconds, arguments, _, _) in plainQueues {
            let queue = TopologyNames.delayQueue(milliseconds: milliseconds)
            createdQueues.append(queue)
            createdExchanges.append(TopologyNames.delayExchange(milliseconds: milliseconds))
            _ = try await broker.declare([.queue(QueueDeclaration(name: queue, arguments: arguments))])
        }
        let service = try await makeService("checked")

        let arguments = ["declare", service, "--delay", String(withoutTTL), "--delay", String(withoutDeadLettering)]
        let result = try await runCLI(arguments)

        assertExit(result, 1, stderrContains: ["2 of 8 objects"], arguments)
        for (milliseconds, _, argument, consequence) in plainQueues {
            let queue = TopologyNames.delayQueue(milliseconds: milliseconds)
            let line = result.outputLines.first { $0.hasPrefix("DIFFERS") && $0.contains("'\(queue)'") } ?? ""
            XCTAssertTrue(line.contains("PRECONDITION_FAILED"), "no broker message for \(queue): \(result.outputText)")
            XCTAssertTrue(line.contains("'\(argument)'"), "the report does not name \(argument): \(line)")
            XCTAssertTrue(result.outputText.contains(consequence), "the report lacks '\(consequence)': \(result.outputText)")
            XCTAssertTrue(result.errorText.contains(queue), "standard error does not name \(queue)")
        }
        XCTAssertTrue(result.outputText.contains("ok       queue '\(TopologyNames.parkingQueue)'"),
                      "the command stopped before the parking queue: \(result.outputText)")
        XCTAssertTrue(result.outputText.contains("ok       queue '\(TopologyNames.serviceQueue(service))'"),
                      result.outputText)
    }

    func testInvalidArgumentsAreUsageErrors() async throws {
        let cases: [(arguments: [String], mentions: [String])] = [
            (["amq.reserved"], ["'amq.reserved'", "<service>"]),
            (["--delay", "0"], ["'0'", "--delay"]),
            (["--delay", "2147483648"], ["'2147483648'", "--delay"]),
            (["--delay", "soon"], ["'soon'", "--delay"]),
        ]

        for invalid in cases {
            let arguments = ["declare"] + invalid.arguments
            let result = try await runCLI(arguments)

            assertExit(result, 64, stderrContains: invalid.mentions, arguments)
            XCTAssertTrue(result.output.isEmpty, "standard output is not empty: \(result.describe(arguments))")
        }
    }

    // MARK: Helpers

    /// Returns an interval in milliseconds, from 900001 to 999999, that no other test uses.
    private func uniqueDelay() -> Int64 {
        Int64.random(in: 900_001...999_999)
    }

    /// Publishes a message to a delay exchange as a worker publishes a retry, and checks that it
    /// reaches the service queue once the delay queue's TTL expires it.
    private func assertRetryTravels(through milliseconds: Int64, to queue: String) async throws {
        // The delay queue's TTL is 15 minutes or more, so a per-message expiration of 50 ms
        // replaces it, which still shows that expired messages are dead-lettered to the service queue.
        let properties = MessageProperties(deliveryMode: 2, correlationID: CID.random().rawValue, expiration: "50")
        let message = OutgoingMessage(exchange: TopologyNames.delayExchange(milliseconds: milliseconds),
                                      routingKey: queue, properties: properties, body: Array("retry".utf8))
        try await broker.publish([message])

        let arrived = try await eventually(timeout: .seconds(5)) { try await broker.readyMessageCount(queue) == 1 }
        XCTAssertTrue(arrived, "the retry did not come back to '\(queue)' through the delay queue")
        try await purge(queue)
    }
}
