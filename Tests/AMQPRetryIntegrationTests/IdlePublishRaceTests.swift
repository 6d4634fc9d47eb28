@testable import AMQPRetry
import Foundation
import XCTest

/// Publishes from callers' threads racing the I/O thread on one connection, for `make tsan`.
final class IdlePublishRaceTests: IntegrationTestCase {
    /// A relay consumes one queue and, for each delivery, publishes a copy to a second queue and
    /// acknowledges the delivery once the copy is confirmed, as a worker does. Producers publish
    /// on the relay's connection at the same time, so idle and busy publishes, confirms, acks
    /// and deliveries interleave. Every message ends in the second queue exactly once.
    func testRelayWithConcurrentProducers() async throws {
        let source = TopologyNames.serviceQueue(try await makeService("relaysrc"))
        let target = TopologyNames.serviceQueue(try await makeService("relaydst"))
        let relay = try await IntegrationEnvironment.connect(try configuration, name: "amqpretry itest \(runID) relay")
        let producer = try await IntegrationEnvironment.connect(try configuration, name: "amqpretry itest \(runID) producer")
        let failures = Locked<[String]>([])
        let relayed = Locked(0)

        let consumer = AMQPConnection.Consumer(queue: source, noAck: false, topology: []) { delivery, reference in
            Task {
                let copy = OutgoingMessage(exchange: "", routingKey: target, properties: delivery.properties,
                                           body: delivery.body)
                do {
                    try await relay.publish([copy], thenAcknowledge: reference)
                    relayed.withLock { $0 += 1 }
                } catch {
                    failures.withLock { $0.append("relay: \(error)") }
                }
            }
        }
        _ = try await relay.addConsumer(consumer)

        let total = 600
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<4 {
                group.addTask {
                    for index in 0..<(total / 4) {
                        let body = Array("\(task)-\(index)".utf8) + Array(repeating: 0x2A, count: (index * 37) % 9000)
                        let message = OutgoingMessage(exchange: "", routingKey: source,
                                                      properties: MessageProperties(correlationID: "\(task)-\(index)"),
                                                      body: body)
                        // Half of the producers share the relay's connection.
                        let connection = task % 2 == 0 ? relay : producer
                        try await connection.publish([message])
                    }
                }
            }
            try await group.waitForAll()
        }

        let done = await eventually(timeout: .seconds(60)) { relayed.withLock { $0 } + failures.withLock { $0.count } >= total }
        XCTAssertTrue(done, "\(relayed.withLock { $0 }) of \(total) messages relayed")
        XCTAssertEqual(failures.withLock { $0 }, [])
        let callerPublishes = relay.callerPublishCount
        await relay.close()
        await producer.close()

        let inTarget = try await broker.readyMessageCount(target)
        let inSource = try await broker.readyMessageCount(source)
        print("\(callerPublishes) publishes went out from callers' threads; target \(inTarget), source \(inSource)")
        XCTAssertEqual(inTarget, total, "the target queue has \(inTarget) of \(total) copies")
        XCTAssertEqual(inSource, 0, "\(inSource) messages went back to the source queue")
        let lost = logs.records(withMessage: "connection to RabbitMQ lost")
        XCTAssertTrue(lost.isEmpty, "connections were lost: \(lost.map(\.metadata))")
        _ = try await broker.perform("queue.purge") { (handle) throws(AMQPError) in try handle.purgeQueue(target) }
    }
}
