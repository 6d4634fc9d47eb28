import Foundation

/// The AMQP basic properties AMQPRetry reads and writes on a message.
public struct MessageProperties: Sendable, Hashable {
    /// The MIME type of the body, such as `application/json`.
    public var contentType: String?
    /// The content encoding of the body, such as `gzip`.
    public var contentEncoding: String?
    /// Application headers.
    ///
    /// Each read builds a new table from the stored headers, so code that reads several
    /// headers should keep the table in a local.
    public var headers: FieldTable {
        get { headerList.table }
        set { headerList = HeaderList(newValue) }
    }
    /// The application headers as decoded or built, which AMQPRetry reads without hashing names.
    var headerList: HeaderList
    /// 2 for persistent messages, 1 for transient ones, `nil` when unset.
    public var deliveryMode: UInt8?
    /// The correlation ID that ties a reply or callback to its request.
    public var correlationID: String?
    /// The queue a reply goes to.
    public var replyTo: String?
    /// A per-message TTL in milliseconds, as a decimal string.
    public var expiration: String?
    /// An application-chosen ID that is unique for each published message.
    public var messageID: String?
    /// The time the message was created, in seconds since the Unix epoch.
    public var timestamp: UInt64?
    /// The application type name of the message.
    public var type: String?
    /// The ID of the application that published the message.
    public var appID: String?

    /// Creates properties; every field defaults to unset and `headers` to an empty table.
    public init(
        contentType: String? = nil,
        contentEncoding: String? = nil,
        headers: FieldTable = [:],
        deliveryMode: UInt8? = nil,
        correlationID: String? = nil,
        replyTo: String? = nil,
        expiration: String? = nil,
        messageID: String? = nil,
        timestamp: UInt64? = nil,
        type: String? = nil,
        appID: String? = nil
    ) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headerList = HeaderList(headers)
        self.deliveryMode = deliveryMode
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageID = messageID
        self.timestamp = timestamp
        self.type = type
        self.appID = appID
    }
}

/// A message to publish with `basic.publish`.
public struct OutgoingMessage: Sendable {
    /// The exchange to publish to; the empty string is the default exchange.
    public var exchange: String
    /// The routing key; on the default exchange it is the name of the target queue.
    public var routingKey: String
    /// Whether the broker returns the message with `basic.return` when no queue receives it.
    public var mandatory: Bool
    /// The basic properties.
    public var properties: MessageProperties
    /// The body.
    public var body: [UInt8]

    /// Creates a message to publish.
    public init(
        exchange: String,
        routingKey: String,
        mandatory: Bool = true,
        properties: MessageProperties,
        body: [UInt8]
    ) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.mandatory = mandatory
        self.properties = properties
        self.body = body
    }
}

/// A message delivered to a consumer with `basic.deliver`.
public struct Delivery: Sendable {
    /// The delivery tag, scoped to the channel and connection that received it.
    public var deliveryTag: UInt64
    /// Whether the broker delivered this message before, to this or another consumer.
    public var redelivered: Bool
    /// The exchange the message was published to.
    public var exchange: String
    /// The routing key the message was published with.
    public var routingKey: String
    /// The consumer tag of the consumer that received it.
    public var consumerTag: String
    /// The basic properties.
    public var properties: MessageProperties
    /// The body.
    public var body: [UInt8]

    /// Creates a delivery; the connection's I/O thread makes these from `basic.deliver` frames.
    public init(
        deliveryTag: UInt64,
        redelivered: Bool,
        exchange: String,
        routingKey: String,
        consumerTag: String,
        properties: MessageProperties,
        body: [UInt8]
    ) {
        self.deliveryTag = deliveryTag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routingKey = routingKey
        self.consumerTag = consumerTag
        self.properties = properties
        self.body = body
    }
}
