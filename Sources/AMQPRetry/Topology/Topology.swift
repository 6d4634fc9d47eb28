/// The type of a RabbitMQ queue.
public enum QueueType: String, Sendable, Hashable, CaseIterable {
    /// A classic queue: one node stores the messages, so a node loss makes them unavailable,
    /// and dead-lettering from it is at most once.
    case classic
    /// A quorum queue: replicated over a majority of the cluster's nodes, with at-least-once
    /// dead-lettering.
    case quorum
}

/// The broker objects AMQPRetry uses, with the arguments every process declares them with.
///
/// AMQPRetry declares every name with the same arguments, numbers always as signed 64-bit
/// integers (`l`). RabbitMQ compares integer arguments by value, so a process in another
/// language that follows the wire format can redeclare them without `PRECONDITION_FAILED`.
public enum Topology {
    /// The maximum number of deliveries of one message that a quorum service queue allows before
    /// it dead-letters the message to the parking queue.
    ///
    /// A retry is a new message, so retries never count against it; only redeliveries after a
    /// worker died or lost its connection do. A worker republishes a redelivered invocation with
    /// its count in `amqpretry-redeliveries` and parks it past its own, lower limit, so this
    /// broker-side limit is only a backstop, and it parks rather than drops.
    public static let quorumDeliveryLimit: Int64 = 20

    /// Returns the durable queue of a service, which stores its invocations and callbacks.
    public static func service(_ service: String, type: QueueType = .classic) -> [TopologyItem] {
        [.queue(QueueDeclaration(name: TopologyNames.serviceQueue(service), arguments: serviceQueueArguments(type: type)))]
    }

    /// Returns the arguments of a service queue. A classic queue has none. A quorum queue has
    /// the delivery limit and at-least-once dead-lettering to the parking queue.
    public static func serviceQueueArguments(type: QueueType) -> FieldTable {
        guard type == .quorum else { return [:] }
        return quorumArguments.merging([
            "x-delivery-limit": .int64(quorumDeliveryLimit),
            "x-dead-letter-exchange": .text(""),
            "x-dead-letter-routing-key": .text(TopologyNames.parkingQueue),
        ]) { _, new in new }
    }

    /// The delay exchange and queue for one retry interval.
    ///
    /// A retry is published to the fanout exchange with the service queue's name as routing key.
    /// The queue's `x-message-ttl` keeps it for the interval, then dead-letters it to the default
    /// exchange, which routes it by that same routing key back to the service queue. One queue
    /// per interval keeps expiry in publish order, because RabbitMQ expires messages only at the
    /// head of a queue.
    public static func delay(milliseconds: Int64, type: QueueType = .classic) -> [TopologyItem] {
        let name = TopologyNames.delayQueue(milliseconds: milliseconds)
        let exchange = TopologyNames.delayExchange(milliseconds: milliseconds)
        return [
            .exchange(name: exchange, type: "fanout", durable: true),
            .queue(QueueDeclaration(name: name, arguments: delayQueueArguments(milliseconds: milliseconds, type: type))),
            .binding(queue: name, exchange: exchange, routingKey: ""),
        ]
    }

    /// Returns the arguments of a delay queue: the interval as `x-message-ttl` and the default
    /// exchange as `x-dead-letter-exchange`. A quorum queue also dead-letters at least once.
    public static func delayQueueArguments(milliseconds: Int64, type: QueueType = .classic) -> FieldTable {
        let arguments: FieldTable = [
            "x-message-ttl": .int64(milliseconds),
            "x-dead-letter-exchange": .text(""),
        ]
        guard type == .quorum else { return arguments }
        return arguments.merging(quorumArguments) { _, new in new }
    }

    /// Returns the per-message `expiration` a retry carries into its delay queue, in
    /// milliseconds, or `nil` when the queue's own `x-message-ttl` suffices.
    ///
    /// A quorum queue of RabbitMQ 3.10 up to 4.0 applies its `x-message-ttl` only a few
    /// milliseconds after it is created, so a message published into a brand-new delay queue in
    /// that window never expires and blocks every retry behind it. The same interval as a
    /// per-message TTL closes that window without changing the order, because every message of
    /// a delay queue has the same interval. RabbitMQ removes `expiration` when it dead-letters.
    public static func retryExpiration(milliseconds: Int64, type: QueueType) -> Int64? {
        type == .quorum ? milliseconds : nil
    }

    /// Returns the durable queue that stores invocations a worker could not process, with the
    /// reason.
    public static func parking(type: QueueType = .classic) -> [TopologyItem] {
        let arguments: FieldTable = type == .quorum ? ["x-queue-type": .text("quorum")] : [:]
        return [.queue(QueueDeclaration(name: TopologyNames.parkingQueue, arguments: arguments))]
    }

    /// The arguments every quorum queue of AMQPRetry shares: the type, and at-least-once
    /// dead-lettering, which RabbitMQ honours only with `x-overflow` set to `reject-publish`.
    private static let quorumArguments: FieldTable = [
        "x-queue-type": .text("quorum"),
        "x-dead-letter-strategy": .text("at-least-once"),
        "x-overflow": .text("reject-publish"),
    ]
}
