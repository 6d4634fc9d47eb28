/// The broker objects AMQPRetry uses, with the arguments every process declares them with.
///
/// Every process declares the same names with the same arguments, numbers always as signed
/// 64-bit integers (`l`), so that redeclaring from any process or language never fails with
/// `PRECONDITION_FAILED`.
public enum Topology {
    /// The durable queue of a service, which holds its invocations and callbacks.
    public static func service(_ service: String) -> [TopologyItem] {
        [.queue(QueueDeclaration(name: TopologyNames.serviceQueue(service)))]
    }

    /// The delay exchange and queue for one retry interval.
    ///
    /// A retry is published to the fanout exchange with the service queue's name as routing key.
    /// The queue's `x-message-ttl` holds it for the interval, then dead-letters it to the default
    /// exchange, which routes it by that same routing key back to the service queue. One queue
    /// per interval keeps expiry in publish order, because RabbitMQ expires messages only at the
    /// head of a queue.
    public static func delay(milliseconds: Int64) -> [TopologyItem] {
        let name = TopologyNames.delayQueue(milliseconds: milliseconds)
        return [
            .exchange(name: TopologyNames.delayExchange(milliseconds: milliseconds), type: "fanout", durable: true),
            .queue(QueueDeclaration(name: name, arguments: delayQueueArguments(milliseconds: milliseconds))),
            .binding(queue: name, exchange: TopologyNames.delayExchange(milliseconds: milliseconds), routingKey: ""),
        ]
    }

    /// The arguments of a delay queue: the interval as `x-message-ttl` and the default exchange
    /// as `x-dead-letter-exchange`.
    public static func delayQueueArguments(milliseconds: Int64) -> FieldTable {
        [
            "x-message-ttl": .int64(milliseconds),
            "x-dead-letter-exchange": .text(""),
        ]
    }

    /// The durable queue that holds invocations a worker could not process, with the reason.
    public static let parking: [TopologyItem] = [.queue(QueueDeclaration(name: TopologyNames.parkingQueue))]
}
