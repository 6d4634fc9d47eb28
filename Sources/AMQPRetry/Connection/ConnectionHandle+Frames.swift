import CRabbitMQ
import Foundation

/// An event the broker sent on a connection, decoded from one or more frames.
enum InboundEvent {
    /// A message for a consumer (`basic.deliver` with its content).
    case delivery(Delivery)
    /// A publisher confirm (`basic.ack`).
    case confirmAck(sequence: UInt64, multiple: Bool)
    /// A negative publisher confirm (`basic.nack`).
    case confirmNack(sequence: UInt64, multiple: Bool)
    /// A mandatory message that reached no queue (`basic.return`).
    case returned(messageID: String?, routingKey: String, replyCode: UInt16, replyText: String)
    /// The broker cancelled a consumer (`basic.cancel`), for example because its queue was deleted.
    case consumerCancelled(consumerTag: String)
    /// The broker closed the channel or the connection; the handle can no longer be used.
    case closed(AMQPError)
    /// The broker stopped reading from this connection (`connection.blocked`), for example on a
    /// memory or disk alarm.
    case blocked(reason: String)
    /// The broker resumed reading (`connection.unblocked`).
    case unblocked
}

extension ConnectionHandle {
    /// Reads the next inbound event if one is already available, without waiting.
    ///
    /// Returns `nil` when nothing is buffered or readable right now. librabbitmq sends a
    /// heartbeat from inside this call when one is due, and reports a missed broker heartbeat
    /// as a lost connection.
    func nextEvent() throws(AMQPError) -> InboundEvent? {
        if !deferredEvents.isEmpty {
            return deferredEvents.removeFirst()
        }
        // librabbitmq may send a heartbeat while it waits for a frame, which must not land in
        // the middle of a frame that a caller's thread sent in part.
        if hasPartialWrite {
            try writeFrames()
        }
        // One microsecond, not zero: librabbitmq only checks the broker's heartbeat deadline
        // when the wait has a real deadline.
        var timeout = timeval(tv_sec: 0, tv_usec: 1)
        var frame = amqp_frame_t()
        let status = amqp_simple_wait_frame_noblock(state, &frame, &timeout)
        if status == AMQP_STATUS_TIMEOUT.rawValue {
            return nil
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            abandon()
            throw AMQPError.status(status, operation: "read frame")
        }
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else {
            // Content frames are read together with their method; a stray one is skipped.
            return nil
        }
        return try event(for: frame.payload.method, channel: frame.channel)
    }

    private func event(for method: amqp_method_t, channel: amqp_channel_t) throws(AMQPError) -> InboundEvent? {
        switch method.id {
        case AMQP_BASIC_DELIVER_METHOD:
            return try delivery(method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee)
        case AMQP_BASIC_ACK_METHOD:
            let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            return .confirmAck(sequence: ack.delivery_tag, multiple: ack.multiple != 0)
        case AMQP_BASIC_NACK_METHOD:
            let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            return .confirmNack(sequence: nack.delivery_tag, multiple: nack.multiple != 0)
        case AMQP_BASIC_RETURN_METHOD:
            return try returned(method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee)
        case AMQP_BASIC_CANCEL_METHOD:
            let cancel = method.decoded.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            return .consumerCancelled(consumerTag: String(amqpBytes: cancel.consumer_tag))
        case AMQP_CHANNEL_CLOSE_METHOD:
            sendChannelCloseOK(channel: channel)
            abandon()
            return .closed(AMQPError.serverException(method, operation: "channel \(channel)"))
        case AMQP_CONNECTION_CLOSE_METHOD:
            sendConnectionCloseOK()
            return .closed(AMQPError.serverException(method, operation: "connection"))
        case AMQP_CONNECTION_BLOCKED_METHOD:
            let blocked = method.decoded.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee
            return .blocked(reason: String(amqpBytes: blocked.reason))
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            return .unblocked
        default:
            return nil
        }
    }

    private func delivery(_ deliver: amqp_basic_deliver_t) throws(AMQPError) -> InboundEvent {
        // Copy the method's fields before reading the content, which may reuse the frame pool.
        let tag = deliver.delivery_tag
        let redelivered = deliver.redelivered != 0
        let exchange = String(amqpBytes: deliver.exchange)
        let routingKey = String(amqpBytes: deliver.routing_key)
        let consumerTag = String(amqpBytes: deliver.consumer_tag)
        let (properties, body) = try readContent(operation: "basic.deliver")
        return .delivery(Delivery(deliveryTag: tag, redelivered: redelivered, exchange: exchange,
                                  routingKey: routingKey, consumerTag: consumerTag,
                                  properties: properties, body: body))
    }

    private func returned(_ basicReturn: amqp_basic_return_t) throws(AMQPError) -> InboundEvent {
        let replyCode = basicReturn.reply_code
        let replyText = String(amqpBytes: basicReturn.reply_text)
        let routingKey = String(amqpBytes: basicReturn.routing_key)
        let (properties, _) = try readContent(operation: "basic.return")
        return .returned(messageID: properties.messageID, routingKey: routingKey,
                         replyCode: replyCode, replyText: replyText)
    }

    /// Reads the content header and body frames that follow a `basic.deliver` or `basic.return`.
    ///
    /// The properties and body are copied straight from the frames. `amqp_read_message` would
    /// first copy them, headers table included, into a message pool of its own.
    private func readContent(operation: String) throws(AMQPError) -> (MessageProperties, [UInt8]) {
        var frame = try waitForContentFrame(operation: operation)
        guard frame.frame_type == UInt8(AMQP_FRAME_HEADER) else {
            throw unexpectedContentFrame(frame, operation: operation)
        }
        let properties = MessageProperties(
            frame.payload.properties.decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee)
        guard let bodySize = Int(exactly: frame.payload.properties.body_size) else {
            abandon()
            throw AMQPError(.libraryError, operation: operation,
                            replyText: "the content header announces a body of \(frame.payload.properties.body_size) bytes, "
                                + "more than this process can address")
        }

        var body = [UInt8]()
        body.reserveCapacity(bodySize)
        while body.count < bodySize {
            frame = try waitForContentFrame(operation: operation)
            guard frame.frame_type == UInt8(AMQP_FRAME_BODY) else {
                throw unexpectedContentFrame(frame, operation: operation)
            }
            let fragment = frame.payload.body_fragment
            guard fragment.len <= bodySize - body.count else {
                abandon()
                throw AMQPError.status(AMQP_STATUS_BAD_AMQP_DATA.rawValue, operation: operation)
            }
            if fragment.len > 0, let bytes = fragment.bytes {
                body.append(contentsOf: UnsafeRawBufferPointer(start: bytes, count: fragment.len))
            }
        }
        return (properties, body)
    }

    /// Waits for the next frame of ``channel``. A method on another channel, such as
    /// `connection.blocked`, is turned into an event that ``nextEvent()`` returns later.
    private func waitForContentFrame(operation: String) throws(AMQPError) -> amqp_frame_t {
        var frame = amqp_frame_t()
        while true {
            let status = amqp_simple_wait_frame(state, &frame)
            guard status == AMQP_STATUS_OK.rawValue else {
                abandon()
                throw AMQPError.status(status, operation: operation)
            }
            if frame.channel == Self.channel {
                return frame
            }
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else {
                abandon()
                throw AMQPError.status(AMQP_STATUS_UNEXPECTED_STATE.rawValue, operation: operation)
            }
            // NOTE: no test reaches this branch, because RabbitMQ writes all frames of a command
            // in one socket write, so other channels' frames never fall between them.
            if let event = try event(for: frame.payload.method, channel: frame.channel) {
                deferredEvents.append(event)
            }
        }
    }

    /// Returns the error for a frame of ``channel`` that is not the expected content frame, as
    /// `amqp_read_message` reports it: the broker's exception for a `channel.close` or
    /// `connection.close`, and an unexpected state otherwise. The connection is unusable after it.
    private func unexpectedContentFrame(_ frame: amqp_frame_t, operation: String) -> AMQPError {
        abandon()
        if frame.frame_type == UInt8(AMQP_FRAME_METHOD),
           frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD || frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD {
            return AMQPError.serverException(frame.payload.method, operation: operation)
        }
        return AMQPError.status(AMQP_STATUS_UNEXPECTED_STATE.rawValue, operation: operation)
    }

    /// Frees the memory of frames that were already decoded and copied.
    func releaseBuffers() {
        amqp_maybe_release_buffers(state)
    }
}
