@testable import AMQPRetry
import CRabbitMQ
import Foundation

extension AMQPConnection {
    /// Returns the number of ready messages in a queue with a passive `queue.declare`, or `nil`
    /// when the queue does not exist (`404 NOT_FOUND`).
    ///
    /// A message delivered to a consumer and not yet acknowledged is not counted, so count after
    /// the consumers have closed. A `404` closes the channel, and the connection then reconnects.
    func readyMessageCount(_ queue: String) async throws -> Int? {
        do {
            let counts = try await declare([.queue(QueueDeclaration(name: queue, passive: true))])
            return counts.first??.messageCount
        } catch where error.replyCode == 404 {
            return nil
        }
    }

    /// Returns the number of consumers of a queue, declaring it with `arguments`.
    func consumerCount(_ queue: String, arguments: FieldTable) async throws -> Int {
        let counts = try await declare([.queue(QueueDeclaration(name: queue, arguments: arguments))])
        return counts.first??.consumerCount ?? 0
    }

    /// Deletes a queue with `queue.delete`.
    func deleteQueue(_ queue: String) async throws {
        _ = try await perform("queue.delete") { (handle) throws(AMQPError) in
            try handle.deleteQueue(queue)
        }
    }

    /// Deletes an exchange with `exchange.delete`, which AMQPRetry itself never sends.
    func deleteExchange(_ exchange: String) async throws {
        try await perform("exchange.delete") { (handle) throws(AMQPError) in
            // Publishes and acks still buffered go out first, in their order.
            try handle.writeFrames()
            let error = exchange.withCString { name -> AMQPError? in
                amqp_exchange_delete(handle.state, ConnectionHandle.channel, amqp_cstring_bytes(name), 0)
                return AMQPError.rpcReply(amqp_get_rpc_reply(handle.state), operation: "exchange.delete '\(exchange)'")
            }
            if let error {
                if error.code == .channelClosed {
                    handle.sendChannelCloseOK()
                }
                throw error
            }
        }
    }
}

/// Evaluates `condition` every `pollInterval` until it is true or `timeout` passes, and returns
/// whether it became true.
func eventually(
    timeout: Duration,
    pollInterval: Duration = .milliseconds(200),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() {
            return true
        }
        try? await Task.sleep(for: pollInterval)
    }
    return try await condition()
}

extension Duration {
    /// The duration in seconds as a floating-point number.
    var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
