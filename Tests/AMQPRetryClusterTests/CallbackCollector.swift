@testable import AMQPRetry
import Foundation

/// A consumer of a test's own callback queue that acknowledges every callback and keeps the
/// decoded bodies by CID, duplicates included.
///
/// Its connection fails over like any other: after a lost connection it reconnects to the next
/// node of its URL list and consumes again, and the broker redelivers what it had not
/// acknowledged.
final class CallbackCollector: Sendable {
    private struct State {
        var callbacks: [String: [CallbackBody]] = [:]
        var undecodable: [String] = []
        var consumerID: UInt64?
    }

    /// The callback service, whose queue this collector consumes.
    let service: String
    private let connection: AMQPConnection
    private let state = Locked(State())

    private init(service: String, connection: AMQPConnection) {
        self.service = service
        self.connection = connection
    }

    /// Connects, declares the queue of `service` as the workers do and starts consuming it.
    static func start(service: String, configuration: ConnectionConfiguration) async throws -> CallbackCollector {
        let connection = AMQPConnection(configuration: configuration, name: "amqpretry cluster test callbacks",
                                        logger: .disabled)
        try await connection.start()
        let collector = CallbackCollector(service: service, connection: connection)
        let consumer = AMQPConnection.Consumer(
            queue: TopologyNames.serviceQueue(service), noAck: false,
            topology: Topology.service(service, type: configuration.queueType)
        ) { delivery, reference in
            collector.receive(delivery)
            connection.ack(reference)
        }
        do {
            let id = try await connection.addConsumer(consumer)
            collector.state.withLock { $0.consumerID = id }
        } catch {
            await connection.close()
            throw error
        }
        return collector
    }

    /// The callbacks received so far by CID, in arrival order.
    var callbacks: [String: [CallbackBody]] {
        state.withLock { $0.callbacks }
    }

    /// The number of distinct CIDs with at least one callback.
    var distinctCount: Int {
        state.withLock { $0.callbacks.count }
    }

    /// Descriptions of the messages that were not a callback body.
    var undecodable: [String] {
        state.withLock { $0.undecodable }
    }

    /// Cancels the consumer and closes the connection.
    func close() async {
        if let id = state.withLock({ $0.consumerID }) {
            try? await connection.removeConsumer(id)
        }
        await connection.close()
    }

    private func receive(_ delivery: Delivery) {
        do {
            let body = try CallbackBody.decode(delivery.body)
            state.withLock { $0.callbacks[body.callCID, default: []].append(body) }
        } catch {
            let text = "correlation_id \(delivery.properties.correlationID ?? "none"): \(error)"
            state.withLock { $0.undecodable.append(text) }
        }
    }
}
