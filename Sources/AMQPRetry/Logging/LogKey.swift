/// Metadata keys that AMQPRetry puts on its log records.
///
/// All keys start with `amqpretry.` so that they stay apart from the metadata of other libraries.
public enum LogKey {
    /// The CID of the invocation.
    public static let cid = "amqpretry.cid"
    /// The CID the calling service was invoked with.
    public static let origCID = "amqpretry.orig_cid"
    /// The name of the invoked service.
    public static let target = "amqpretry.target"
    /// The name of the service that handles a message.
    public static let service = "amqpretry.service"
    /// The 1-based number of the current attempt.
    public static let attempt = "amqpretry.attempt"
    /// How many times a failed invocation is repeated.
    public static let repeats = "amqpretry.repeats"
    /// The time between attempts, in milliseconds.
    public static let interval = "amqpretry.interval_ms"
    /// The name of a queue.
    public static let queue = "amqpretry.queue"
    /// An error message.
    public static let error = "amqpretry.error"
    /// The reason a message was parked or an action was taken.
    public static let reason = "amqpretry.reason"
    /// The delivery tag of a message.
    public static let deliveryTag = "amqpretry.delivery_tag"
    /// The broker as `host:port`, never with credentials.
    public static let broker = "amqpretry.broker"
    /// The name of the callback service.
    public static let callback = "amqpretry.callback"
}
