@testable import AMQPRetry
import Foundation
import XCTest

/// Bodies of 1 to 5 MiB published back to back, alone and in turns with other publishes, then
/// small ones, so that the outbound buffer grows, is kept, and is given back. Every body must
/// reach the queue byte for byte.
final class LargeBodyWireTests: FaultTestCase {
    private static func body(index: Int, size: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index &* 7) }
    }

    func testLargeThenSmallBodiesArriveIntact() async throws {
        let queue = "faults.\(runID).large"
        let topology: [TopologyItem] = [.queue(QueueDeclaration(name: queue))]
        _ = try await connection.declare(topology)
        deleteAtEnd(queue: queue)
        let collector = try await QueueCollector.start(queue: queue, topology: topology,
                                                       configuration: try configuration(),
                                                       logger: logs.logger(label: "reader"))
        defer { Task { await collector.close() } }

        let publisher = AMQPConnection(configuration: try configuration(), name: "amqpretry faults \(runID) large",
                                       logger: logs.logger(label: "publisher"))
        try await publisher.start()

        let mebibyte = 1 << 20
        // Each inner list is published at once, so that its bodies may share one turn's buffer.
        let batches: [[Int]] = [
            [5 * mebibyte],
            [3 * mebibyte],
            [3 * mebibyte / 2, 3 * mebibyte / 2, 3 * mebibyte / 2],
            Array(repeating: 100, count: 40),
            [mebibyte + 1, 2 * mebibyte - 1],
            Array(repeating: 300 * 1024, count: 8),
            Array(repeating: 10, count: 40),
            [5 * mebibyte + 3],
            [1],
        ]
        var expected: [String: [UInt8]] = [:]
        var index = 0
        for sizes in batches {
            var batch: [(String, [UInt8])] = []
            for size in sizes {
                let id = "m\(index)"
                batch.append((id, Self.body(index: index, size: size)))
                index += 1
            }
            for (id, body) in batch {
                expected[id] = body
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (id, body) in batch {
                    group.addTask {
                        let message = OutgoingMessage(exchange: "", routingKey: queue,
                                                      properties: MessageProperties(messageID: id), body: body)
                        try await publisher.publish([message])
                    }
                }
                try await group.waitForAll()
            }
        }
        await publisher.close()

        let deadline = ContinuousClock.now + .seconds(60)
        while collector.messages.count < expected.count, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let received = collector.messages
        XCTAssertEqual(received.count, expected.count)
        var mismatched: [String] = []
        for message in received {
            let id = message.delivery.properties.messageID ?? "none"
            if expected[id] != message.delivery.body {
                mismatched.append("\(id) (\(message.delivery.body.count) bytes, expected \(expected[id]?.count ?? -1))")
            }
        }
        XCTAssertEqual(mismatched, [], "bodies that differ from what was published")
        XCTAssertEqual(Set(received.compactMap { $0.delivery.properties.messageID }), Set(expected.keys))
        XCTAssertEqual(logs.records(withMessage: "connection to RabbitMQ lost").count, 0)
    }
}
