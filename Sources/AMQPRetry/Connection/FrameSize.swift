/// Sizes of AMQP 0-9-1 encodings, so that a message that cannot be sent is rejected before
/// librabbitmq writes the first of its frames.
///
/// librabbitmq fails a content header larger than `frame_max` only after it has sent the
/// `basic.publish` method frame, which leaves the channel expecting content that never comes.
enum FrameSize {
    /// The bytes every frame adds around its payload: type, channel, size and frame end.
    static let frameOverhead = 8
    /// The maximum length in bytes of an AMQP short string (`shortstr`).
    static let maximumShortString = 255

    /// Throws when `message` cannot be published on a connection with this `frame_max`.
    static func validate(_ message: OutgoingMessage, frameMax: Int) throws(AMQPError) {
        try checkShortString(message.exchange, name: "exchange")
        try checkShortString(message.routingKey, name: "routing key")
        let properties = message.properties
        try checkShortString(properties.contentType, name: "content_type")
        try checkShortString(properties.contentEncoding, name: "content_encoding")
        try checkShortString(properties.correlationID, name: "correlation_id")
        try checkShortString(properties.replyTo, name: "reply_to")
        try checkShortString(properties.expiration, name: "expiration")
        try checkShortString(properties.messageID, name: "message_id")
        try checkShortString(properties.type, name: "type")
        try checkShortString(properties.appID, name: "app_id")
        try checkHeaderNames(properties.headerList)

        let headerSize = contentHeaderSize(properties)
        let limit = frameMax - frameOverhead
        if frameMax > 0 && headerSize > limit {
            throw invalid("the properties and headers encode to \(headerSize) bytes, more than the \(limit) bytes "
                + "one content header frame carries with frame_max \(frameMax); put large data in the body")
        }
    }

    /// Returns the size of the content header frame's payload: class, weight, body size, flags
    /// and fields.
    static func contentHeaderSize(_ properties: MessageProperties) -> Int {
        var size = 2 + 2 + 8 + 2
        size += shortStringSize(properties.contentType) + shortStringSize(properties.contentEncoding)
        size += shortStringSize(properties.correlationID) + shortStringSize(properties.replyTo)
        size += shortStringSize(properties.expiration) + shortStringSize(properties.messageID)
        size += shortStringSize(properties.type) + shortStringSize(properties.appID)
        if !properties.headerList.isEmpty {
            size += properties.headerList.entries.reduce(4) { $0 + entrySize(name: $1.name, value: $1.value) }
        }
        if properties.deliveryMode != nil {
            size += 1
        }
        if properties.timestamp != nil {
            size += 8
        }
        return size
    }

    /// Returns the encoded size of a field table, including its 4-byte length.
    static func tableSize(_ table: FieldTable) -> Int {
        table.reduce(4) { $0 + entrySize(name: $1.key, value: $1.value) }
    }

    /// Returns the encoded size of one table entry: its name as a short string, then its value.
    private static func entrySize(name: String, value: FieldValue) -> Int {
        1 + name.utf8.count + valueSize(value)
    }

    /// Returns the encoded size of a field value, including its type byte.
    static func valueSize(_ value: FieldValue) -> Int {
        switch value {
        case .bool, .int8, .uint8: return 2
        case .int16, .uint16: return 3
        case .int32, .uint32, .float: return 5
        case .int64, .uint64, .double, .timestamp: return 9
        case .decimal: return 6
        case .string(let bytes), .bytes(let bytes): return 5 + bytes.count
        case .table(let table): return 1 + tableSize(table)
        case .array(let values): return values.reduce(5) { $0 + valueSize($1) }
        case .void: return 1
        }
    }

    /// Returns the encoded size of an optional short-string property: 0 when it is absent.
    private static func shortStringSize(_ value: String?) -> Int {
        value.map { 1 + $0.utf8.count } ?? 0
    }

    /// Throws when a header name, in any table nested in the headers or in their arrays, is
    /// longer than a short string. librabbitmq 0.11 writes only the low byte of such a name's
    /// length and then all its bytes, so RabbitMQ cannot parse the frame and closes the
    /// connection with 541 INTERNAL_ERROR.
    private static func checkHeaderNames(_ headers: HeaderList) throws(AMQPError) {
        for entry in headers.entries {
            try checkHeaderName(entry.name, entry.value)
        }
    }

    private static func checkHeaderNames(_ table: FieldTable) throws(AMQPError) {
        for (key, value) in table {
            try checkHeaderName(key, value)
        }
    }

    private static func checkHeaderName(_ key: String, _ value: FieldValue) throws(AMQPError) {
        if key.utf8.count > maximumShortString {
            throw invalid("a header name is \(key.utf8.count) bytes long; AMQP allows at most \(maximumShortString)")
        }
        try checkNestedHeaderNames(value)
    }

    private static func checkNestedHeaderNames(_ value: FieldValue) throws(AMQPError) {
        switch value {
        case .table(let nested):
            try checkHeaderNames(nested)
        case .array(let elements):
            for element in elements {
                try checkNestedHeaderNames(element)
            }
        default:
            break
        }
    }

    private static func checkShortString(_ value: String?, name: String) throws(AMQPError) {
        guard let value, value.utf8.count > maximumShortString else { return }
        throw invalid("the \(name) is \(value.utf8.count) bytes long; AMQP allows at most \(maximumShortString)")
    }

    private static func invalid(_ reason: String) -> AMQPError {
        AMQPError(.invalidMessage, operation: "basic.publish", replyText: reason)
    }
}
