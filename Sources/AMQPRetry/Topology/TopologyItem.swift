/// One broker object to declare: a queue, an exchange or a binding.
public enum TopologyItem: Sendable, Hashable {
    /// A queue, declared with `queue.declare`.
    case queue(QueueDeclaration)
    /// An exchange, declared with `exchange.declare`.
    case exchange(name: String, type: String, durable: Bool)
    /// A binding of a queue to an exchange, made with `queue.bind`.
    case binding(queue: String, exchange: String, routingKey: String)
}

/// The arguments of a `queue.declare`.
public struct QueueDeclaration: Sendable, Hashable {
    /// The queue name.
    public var name: String
    /// Whether the queue survives a broker restart.
    public var durable: Bool
    /// Whether the declare only checks that the queue exists (`passive`), creating nothing.
    public var passive: Bool
    /// The optional arguments, such as `x-message-ttl`.
    public var arguments: FieldTable

    /// Creates a queue declaration; by default durable, not passive, without arguments.
    public init(name: String, durable: Bool = true, passive: Bool = false, arguments: FieldTable = [:]) {
        self.name = name
        self.durable = durable
        self.passive = passive
        self.arguments = arguments
    }
}

/// The counts a `queue.declare-ok` reports.
public struct QueueCounts: Sendable, Hashable {
    /// The number of messages ready for delivery, not counting unacknowledged ones.
    public var messageCount: Int
    /// The number of consumers on the queue.
    public var consumerCount: Int
}
