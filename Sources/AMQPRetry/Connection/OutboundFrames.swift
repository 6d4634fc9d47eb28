import CRabbitMQ
import Foundation

/// AMQP frames encoded into one buffer and written to a plain TCP socket together.
///
/// librabbitmq writes every frame with a `send` of its own, three per publish. Encoding the
/// frames of a whole turn of the I/O thread here and writing them at once cuts those system
/// calls, and the broker reads fewer, larger segments. Each frame is laid out as AMQP 0-9-1
/// and librabbitmq 0.11 write it: type, channel, payload size, payload and the end octet
/// `0xCE`. librabbitmq's own encoders write the method arguments and the content properties.
final class OutboundFrames {
    private static let frameHeaderSize = 7
    private static let frameEndSize = 1
    private static let frameEnd: UInt8 = 0xCE
    /// A buffer that grew past this size is given back once ``writesBeforeShrinking`` writes in a
    /// row used less than a quarter of it.
    private static let retainedCapacity = 1 << 20
    /// A buffer that grew past this size, for one large message, is given back after its write.
    private static let keptCapacity = 4 << 20
    /// Under a steady load of large messages most turns need the grown buffer again, and growing
    /// it anew copies everything encoded so far. So it is kept until this many smaller writes.
    ///
    /// NOTE: a connection that goes idle right after a burst keeps up to ``keptCapacity`` bytes
    /// until its next writes.
    private static let writesBeforeShrinking = 32

    private var storage: UnsafeMutableRawPointer
    /// The size of the buffer in bytes.
    private(set) var capacity: Int
    /// The number of encoded bytes in the buffer, those already sent included.
    private(set) var count = 0
    /// The bytes at the front of the buffer that ``writeWithoutWaiting(to:)`` sent before the
    /// socket stopped taking more. The next write continues after them.
    private var sent = 0
    private let frameMax: Int
    /// Writes in a row that used less than a quarter of a buffer grown past ``retainedCapacity``.
    private var smallWrites = 0

    /// Creates an empty buffer for a connection whose negotiated `frame_max` is `frameMax`.
    init(frameMax: Int) {
        self.frameMax = max(frameMax, 4096)
        capacity = 2 * self.frameMax
        storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
    }

    deinit {
        storage.deallocate()
    }

    /// Whether frames wait to be written.
    var isEmpty: Bool { count == 0 }

    /// Whether part of the buffer was sent, perhaps ending inside a frame, so that nothing else
    /// may be written to the socket before ``write(to:timeout:)`` sends the rest.
    var hasPartialWrite: Bool { sent > 0 }

    /// Appends a method frame whose arguments librabbitmq encodes from `decoded`.
    func appendMethod(_ method: amqp_method_number_t, channel: amqp_channel_t,
                      decoded: UnsafeMutableRawPointer) throws(AMQPError) {
        reserve(frameMax + Self.frameHeaderSize + Self.frameEndSize)
        let payload = storage + count + Self.frameHeaderSize
        store(UInt32(method), at: payload)
        let encoded = amqp_encode_method(method, decoded, amqp_bytes_t(len: frameMax - 4, bytes: payload + 4))
        guard encoded >= 0 else {
            throw AMQPError.status(encoded, operation: Self.name(of: method))
        }
        finishFrame(type: UInt8(AMQP_FRAME_METHOD), channel: channel, payloadSize: 4 + Int(encoded))
    }

    /// Appends the frames of one `basic.publish`: the method, the content header and the body,
    /// split into frames of at most `frame_max` bytes.
    func appendPublish(channel: amqp_channel_t, exchange: amqp_bytes_t, routingKey: amqp_bytes_t, mandatory: Bool,
                       properties: inout amqp_basic_properties_t, body: UnsafeRawBufferPointer) throws(AMQPError) {
        let start = count
        do {
            var method = amqp_basic_publish_t(ticket: 0, exchange: exchange, routing_key: routingKey,
                                              mandatory: mandatory ? 1 : 0, immediate: 0)
            try appendMethod(AMQP_BASIC_PUBLISH_METHOD, channel: channel, decoded: &method)
            try appendContentHeader(channel: channel, properties: &properties, bodySize: body.count)
            appendBody(channel: channel, body: body)
        } catch {
            // A message that cannot be encoded leaves no partial frames behind.
            count = start
            throw error
        }
    }

    /// Writes every buffered frame to `descriptor`, waiting while the socket's send buffer is
    /// full, and empties the buffer. Throws when the socket fails or no byte can be written
    /// for `timeout`. The connection must then be abandoned, because a frame may be cut.
    func write(to descriptor: Int32, timeout: Duration) throws(AMQPError) {
        var deadline = MonotonicClock.deadline(after: timeout)
        while sent < count {
            if try sendAvailable(to: descriptor) {
                deadline = MonotonicClock.deadline(after: timeout)
                continue
            }
            try waitUntilWritable(descriptor, deadline: deadline, timeout: timeout)
        }
        finishWrite()
    }

    /// Writes as many buffered bytes as the socket takes without waiting, and returns whether
    /// the buffer is empty afterwards. Throws when the socket fails.
    func writeWithoutWaiting(to descriptor: Int32) throws(AMQPError) -> Bool {
        while sent < count {
            guard try sendAvailable(to: descriptor) else { return false }
        }
        finishWrite()
        return true
    }

    /// Sends what the socket takes at once. Returns `false` when it takes nothing now.
    private func sendAvailable(to descriptor: Int32) throws(AMQPError) -> Bool {
        while true {
            let result = send(descriptor, storage + sent, count - sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            if result > 0 {
                sent += result
                return true
            }
            let error = result < 0 ? errno : EPIPE
            if error == EINTR {
                continue
            }
            guard error == EAGAIN || error == EWOULDBLOCK else {
                throw Self.socketError(error)
            }
            return false
        }
    }

    private func finishWrite() {
        shrinkAfterLargeWrites(used: count)
        count = 0
        sent = 0
    }

    private func appendContentHeader(channel: amqp_channel_t, properties: inout amqp_basic_properties_t,
                                     bodySize: Int) throws(AMQPError) {
        reserve(frameMax + Self.frameHeaderSize + Self.frameEndSize)
        let payload = storage + count + Self.frameHeaderSize
        store(UInt16(60), at: payload)
        store(UInt16(0), at: payload + 2)
        store(UInt64(bodySize), at: payload + 4)
        let encoded = withUnsafeMutablePointer(to: &properties) { pointer in
            amqp_encode_properties(60, pointer, amqp_bytes_t(len: frameMax - 12, bytes: payload + 12))
        }
        guard encoded >= 0 else {
            throw AMQPError.status(encoded, operation: "encode the content header")
        }
        finishFrame(type: UInt8(AMQP_FRAME_HEADER), channel: channel, payloadSize: 12 + Int(encoded))
    }

    private func appendBody(channel: amqp_channel_t, body: UnsafeRawBufferPointer) {
        guard let base = body.baseAddress else { return }
        let maximumPayload = frameMax - Self.frameHeaderSize - Self.frameEndSize
        var offset = 0
        while offset < body.count {
            let size = min(maximumPayload, body.count - offset)
            reserve(size + Self.frameHeaderSize + Self.frameEndSize)
            (storage + count + Self.frameHeaderSize).copyMemory(from: base + offset, byteCount: size)
            finishFrame(type: UInt8(AMQP_FRAME_BODY), channel: channel, payloadSize: size)
            offset += size
        }
    }

    /// Writes the frame header and end around a payload already placed after `count`.
    private func finishFrame(type: UInt8, channel: amqp_channel_t, payloadSize: Int) {
        let frame = storage + count
        frame.storeBytes(of: type, as: UInt8.self)
        store(UInt16(channel), at: frame + 1)
        store(UInt32(payloadSize), at: frame + 3)
        (frame + Self.frameHeaderSize + payloadSize).storeBytes(of: Self.frameEnd, as: UInt8.self)
        count += Self.frameHeaderSize + payloadSize + Self.frameEndSize
    }

    private func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        let newCapacity = max(2 * capacity, count + extra)
        let newStorage = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 8)
        newStorage.copyMemory(from: storage, byteCount: count)
        storage.deallocate()
        storage = newStorage
        capacity = newCapacity
    }

    private func shrinkAfterLargeWrites(used: Int) {
        let normal = 2 * frameMax
        guard capacity > max(Self.retainedCapacity, normal) else { return }
        if capacity <= Self.keptCapacity {
            smallWrites = used < capacity / 4 ? smallWrites + 1 : 0
            guard smallWrites >= Self.writesBeforeShrinking else { return }
        }

        smallWrites = 0
        storage.deallocate()
        storage = UnsafeMutableRawPointer.allocate(byteCount: normal, alignment: 8)
        capacity = normal
    }

    private func store<Value: FixedWidthInteger>(_ value: Value, at pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: value.bigEndian, as: Value.self)
    }

    private func waitUntilWritable(_ descriptor: Int32, deadline: UInt64, timeout: Duration) throws(AMQPError) {
        let now = MonotonicClock.now()
        guard now < deadline else {
            throw AMQPError(.timeout, operation: "write to the socket",
                            replyText: "the broker read nothing for \(timeout)")
        }
        var descriptors = [pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)]
        let milliseconds = Int32(min((deadline - now) / 1_000_000 + 1, 1_000))
        if poll(&descriptors, 1, milliseconds) < 0, errno != EINTR {
            throw Self.socketError(errno)
        }
    }

    private static func socketError(_ code: Int32) -> AMQPError {
        AMQPError(.connectionLost, operation: "write to the socket", replyText: String(cString: strerror(code)))
    }

    private static func name(of method: amqp_method_number_t) -> String {
        String(cString: amqp_method_name(method))
    }
}
