import Foundation

/// The counts a passive `queue.declare` returns for one queue, or the absence of the queue.
///
/// - Important: AMQP 0-9-1's `queue.declare-ok` carries only the ready messages and the
///   consumers. The number of delivered but unacknowledged messages is not available over AMQP;
///   RabbitMQ's management plugin or `rabbitmqctl list_queues messages_unacknowledged` shows it.
public struct QueueStatus: Sendable, Hashable {
    /// The queue name.
    public let name: String

    /// The counts of the queue, or `nil` when the broker has no queue of that name.
    public let counts: QueueCounts?

    /// Creates the status of a queue.
    public init(name: String, counts: QueueCounts?) {
        self.name = name
        self.counts = counts
    }

    /// Whether the queue exists.
    public var exists: Bool {
        counts != nil
    }
}

/// The state of AMQPRetry's queues at one moment: service queues, delay queues and the parking
/// queue.
public struct StatusSnapshot: Sendable, Hashable {
    /// The queue of one service.
    public struct Service: Sendable, Hashable {
        /// The service name.
        public let name: String
        /// The status of `amqpretry.service.<name>`; its ready messages are invocations and
        /// callbacks that wait for a worker.
        public let queue: QueueStatus
    }

    /// The delay queue of one retry interval.
    public struct Delay: Sendable, Hashable {
        /// The retry interval in milliseconds.
        public let milliseconds: Int64
        /// The status of `amqpretry.delay.<ms>ms`; its ready messages are pending retries.
        public let queue: QueueStatus
    }

    /// When the snapshot was taken.
    public let date: Date

    /// The service queues, in the order they were requested.
    public let services: [Service]

    /// The delay queues, in the order they were requested.
    public let delays: [Delay]

    /// The parking queue `amqpretry.parked`; its ready messages are parked messages.
    public let parking: QueueStatus
}
