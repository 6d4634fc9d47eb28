import CRabbitMQ

extension MessageProperties {
    /// Copies the properties of a message that librabbitmq decoded.
    init(_ properties: amqp_basic_properties_t) {
        let flags = properties._flags

        func text(_ flag: Int32, _ bytes: amqp_bytes_t) -> String? {
            flags & amqp_flags_t(flag) != 0 ? String(amqpBytes: bytes) : nil
        }

        self.init(
            contentType: text(AMQP_BASIC_CONTENT_TYPE_FLAG, properties.content_type),
            contentEncoding: text(AMQP_BASIC_CONTENT_ENCODING_FLAG, properties.content_encoding),
            deliveryMode: flags & amqp_flags_t(AMQP_BASIC_DELIVERY_MODE_FLAG) != 0
                ? properties.delivery_mode : nil,
            correlationID: text(AMQP_BASIC_CORRELATION_ID_FLAG, properties.correlation_id),
            replyTo: text(AMQP_BASIC_REPLY_TO_FLAG, properties.reply_to),
            expiration: text(AMQP_BASIC_EXPIRATION_FLAG, properties.expiration),
            messageID: text(AMQP_BASIC_MESSAGE_ID_FLAG, properties.message_id),
            timestamp: flags & amqp_flags_t(AMQP_BASIC_TIMESTAMP_FLAG) != 0 ? properties.timestamp : nil,
            type: text(AMQP_BASIC_TYPE_FLAG, properties.type),
            appID: text(AMQP_BASIC_APP_ID_FLAG, properties.app_id)
        )
        if flags & amqp_flags_t(AMQP_BASIC_HEADERS_FLAG) != 0 {
            headerList = FieldTableDecoder.headerList(properties.headers)
        }
    }

    /// Builds the librabbitmq properties, with every buffer in `arena`.
    func cProperties(in arena: CArena) -> amqp_basic_properties_t {
        var properties = amqp_basic_properties_t()
        var flags: Int32 = 0

        func set(_ value: String?, _ flag: Int32, _ field: inout amqp_bytes_t) {
            guard let value else { return }
            field = arena.bytes(value)
            flags |= flag
        }

        set(contentType, AMQP_BASIC_CONTENT_TYPE_FLAG, &properties.content_type)
        set(contentEncoding, AMQP_BASIC_CONTENT_ENCODING_FLAG, &properties.content_encoding)
        set(correlationID, AMQP_BASIC_CORRELATION_ID_FLAG, &properties.correlation_id)
        set(replyTo, AMQP_BASIC_REPLY_TO_FLAG, &properties.reply_to)
        set(expiration, AMQP_BASIC_EXPIRATION_FLAG, &properties.expiration)
        set(messageID, AMQP_BASIC_MESSAGE_ID_FLAG, &properties.message_id)
        set(type, AMQP_BASIC_TYPE_FLAG, &properties.type)
        set(appID, AMQP_BASIC_APP_ID_FLAG, &properties.app_id)
        if !headerList.isEmpty {
            properties.headers = arena.table(headerList)
            flags |= AMQP_BASIC_HEADERS_FLAG
        }
        if let deliveryMode {
            properties.delivery_mode = deliveryMode
            flags |= AMQP_BASIC_DELIVERY_MODE_FLAG
        }
        if let timestamp {
            properties.timestamp = timestamp
            flags |= AMQP_BASIC_TIMESTAMP_FLAG
        }
        properties._flags = amqp_flags_t(flags)
        return properties
    }
}
