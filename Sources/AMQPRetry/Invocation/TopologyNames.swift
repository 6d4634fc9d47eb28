/// The names of the queues and exchanges AMQPRetry declares.
public enum TopologyNames {
    /// The prefix of every service queue.
    public static let servicePrefix = "amqpretry.service."

    /// The queue where workers park messages they cannot handle.
    public static let parkingQueue = "amqpretry.parked"

    /// RabbitMQ's direct reply-to pseudo-queue, which blocking calls use as `reply_to`.
    public static let directReplyTo = "amq.rabbitmq.reply-to"

    /// Returns the queue of a service, such as `amqpretry.service.demo.echo`.
    public static func serviceQueue(_ service: String) -> String {
        servicePrefix + service
    }

    /// Returns the delay queue for an interval, such as `amqpretry.delay.1500ms`.
    ///
    /// Each interval has its own queue because RabbitMQ expires messages only at the head of a
    /// queue: a queue-wide `x-message-ttl` keeps the expiry order equal to the publish order.
    public static func delayQueue(milliseconds: Int64) -> String {
        "amqpretry.delay.\(milliseconds)ms"
    }

    /// Returns the exchange that routes to the delay queue of an interval; it has the same name as the queue.
    public static func delayExchange(milliseconds: Int64) -> String {
        delayQueue(milliseconds: milliseconds)
    }
}
