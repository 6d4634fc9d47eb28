import CRabbitMQ
import Foundation
import XCTest

@testable import AMQPRetry

/// Checks the frames ``OutboundFrames`` encodes against the bytes librabbitmq 0.11 itself
/// writes for the same calls, both read from a local socket pair.
final class OutboundFramesTests: XCTestCase {
    private static let frameMax: Int32 = 4096

    /// A librabbitmq connection state that writes into one end of a socket pair.
    private final class LibrabbitmqWriter {
        let state: amqp_connection_state_t
        let peer: Int32

        init() throws {
            var descriptors: [Int32] = [-1, -1]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &descriptors) == 0 else {
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            state = amqp_new_connection()
            let socket = amqp_tcp_socket_new(state)
            amqp_tcp_socket_set_sockfd(socket, descriptors[0])
            peer = descriptors[1]
            OutboundFramesTests.setNonBlocking(peer)
            // A protocol header read as if the broker sent it moves librabbitmq's state machine
            // to idle, where `amqp_tune_connection` may set the frame size as a login does.
            var header: [UInt8] = Array("AMQP".utf8) + [0, 0, 9, 1]
            var frame = amqp_frame_t()
            let consumed = header.withUnsafeMutableBytes { raw in
                amqp_handle_input(state, amqp_bytes_t(len: raw.count, bytes: raw.baseAddress), &frame)
            }
            XCTAssertEqual(consumed, 8)
            XCTAssertEqual(amqp_tune_connection(state, 16, OutboundFramesTests.frameMax, 0), 0)
        }

        deinit {
            amqp_destroy_connection(state)
            close(peer)
        }

        var descriptor: Int32 { amqp_get_sockfd(state) }
    }

    private static func setNonBlocking(_ descriptor: Int32) {
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    /// Reads every byte waiting on `descriptor`.
    private static func drain(_ descriptor: Int32) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        for _ in 0..<1_000 {
            let count = read(descriptor, &chunk, chunk.count)
            guard count > 0 else { break }
            bytes += chunk[0..<count]
        }
        return bytes
    }

    private static func sampleProperties(in arena: CArena) -> amqp_basic_properties_t {
        MessageProperties(
            contentType: "application/json", headers: [
                "amqpretry-version": .int64(1), "amqpretry-target": .text("billing.charge"),
                "nested": .table(["list": .array([.bool(true), .void])]),
            ],
            deliveryMode: 2, correlationID: "c-1", replyTo: "amq.rabbitmq.reply-to", expiration: "30000",
            messageID: "m-1", timestamp: 1_764_892_800, type: "invocation", appID: "tests"
        ).cProperties(in: arena)
    }

    /// Publishes one message through librabbitmq and through ``OutboundFrames`` and returns both
    /// byte streams.
    private func bothEncodings(bodySize: Int, mandatory: Bool) throws -> (library: [UInt8], ours: [UInt8]) {
        let writer = try LibrabbitmqWriter()
        let arena = CArena()
        var properties = Self.sampleProperties(in: arena)
        let body = (0..<bodySize).map { UInt8(truncatingIfNeeded: $0) }
        let exchange = arena.bytes("amqpretry.delay.100ms")
        let routingKey = arena.bytes("amqpretry.service.billing.charge")

        let status = body.withUnsafeBytes { raw in
            amqp_basic_publish(writer.state, 1, exchange, routingKey, mandatory ? 1 : 0, 0, &properties,
                               amqp_bytes_t(len: raw.count, bytes: UnsafeMutableRawPointer(mutating: raw.baseAddress)))
        }
        XCTAssertEqual(status, AMQP_STATUS_OK.rawValue)
        let library = Self.drain(writer.peer)

        let frames = OutboundFrames(frameMax: Int(Self.frameMax))
        try body.withUnsafeBytes { raw in
            try frames.appendPublish(channel: 1, exchange: exchange, routingKey: routingKey, mandatory: mandatory,
                                     properties: &properties, body: raw)
        }
        try frames.write(to: writer.descriptor, timeout: .seconds(5))
        return (library, Self.drain(writer.peer))
    }

    /// Returns the type octet of each frame in `bytes`, walking the frames by their size field,
    /// or `nil` when a frame runs past the end or lacks its end octet.
    private static func frameTypes(_ bytes: [UInt8]) -> [UInt8]? {
        var types: [UInt8] = []
        var offset = 0
        while offset < bytes.count {
            guard offset + 7 <= bytes.count else { return nil }
            let size = bytes[(offset + 3)..<(offset + 7)].reduce(0) { $0 << 8 | Int($1) }
            let end = offset + 7 + size
            guard end < bytes.count, bytes[end] == 0xCE else { return nil }
            types.append(bytes[offset])
            offset = end + 1
        }
        return types
    }

    func testPublishMatchesLibrabbitmq() throws {
        let (library, ours) = try bothEncodings(bodySize: 100, mandatory: true)

        XCTAssertGreaterThan(library.count, 100)
        XCTAssertEqual(ours, library)
    }

    func testBodyLargerThanFrameMaxSplitsLikeLibrabbitmq() throws {
        let (library, ours) = try bothEncodings(bodySize: 10_000, mandatory: false)

        XCTAssertGreaterThan(library.count, 10_000)
        XCTAssertEqual(ours, library)
        // 10,000 bytes in frames of at most 4,088 bytes of payload take three body frames.
        XCTAssertEqual(Self.frameTypes(ours), [1, 2, 3, 3, 3])
    }

    func testEmptyBodyHasNoBodyFrame() throws {
        let (library, ours) = try bothEncodings(bodySize: 0, mandatory: true)

        XCTAssertEqual(ours, library)
        XCTAssertEqual(Self.frameTypes(ours), [1, 2])
    }

    func testAckAndRejectMatchLibrabbitmq() throws {
        let writer = try LibrabbitmqWriter()
        XCTAssertEqual(amqp_basic_ack(writer.state, 1, 42, 1), 0)
        XCTAssertEqual(amqp_basic_reject(writer.state, 1, 43, 1), 0)
        XCTAssertEqual(amqp_basic_ack(writer.state, 1, 1 << 40, 0), 0)
        let library = Self.drain(writer.peer)

        let frames = OutboundFrames(frameMax: Int(Self.frameMax))
        var multipleAck = amqp_basic_ack_t(delivery_tag: 42, multiple: 1)
        var reject = amqp_basic_reject_t(delivery_tag: 43, requeue: 1)
        var singleAck = amqp_basic_ack_t(delivery_tag: 1 << 40, multiple: 0)
        try frames.appendMethod(AMQP_BASIC_ACK_METHOD, channel: 1, decoded: &multipleAck)
        try frames.appendMethod(AMQP_BASIC_REJECT_METHOD, channel: 1, decoded: &reject)
        try frames.appendMethod(AMQP_BASIC_ACK_METHOD, channel: 1, decoded: &singleAck)
        XCTAssertFalse(frames.isEmpty)
        try frames.write(to: writer.descriptor, timeout: .seconds(5))

        XCTAssertTrue(frames.isEmpty)
        XCTAssertEqual(Self.drain(writer.peer), library)
    }

    func testPropertiesLargerThanFrameLeaveNothingBehind() throws {
        let arena = CArena()
        var properties = MessageProperties(headers: ["big": .text(String(repeating: "x", count: 10_000))])
            .cProperties(in: arena)
        let frames = OutboundFrames(frameMax: Int(Self.frameMax))
        var ack = amqp_basic_ack_t(delivery_tag: 1, multiple: 0)
        try frames.appendMethod(AMQP_BASIC_ACK_METHOD, channel: 1, decoded: &ack)
        let before = frames.count

        XCTAssertThrowsError(try [UInt8](repeating: 1, count: 10).withUnsafeBytes { raw in
            try frames.appendPublish(channel: 1, exchange: arena.bytes(""), routingKey: arena.bytes("q"),
                                     mandatory: false, properties: &properties, body: raw)
        })
        XCTAssertEqual(frames.count, before)
    }

    func testWriteToClosedPeerFails() throws {
        var descriptors: [Int32] = [-1, -1]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &descriptors), 0)
        defer { close(descriptors[0]) }
        close(descriptors[1])
        let frames = OutboundFrames(frameMax: Int(Self.frameMax))
        var ack = amqp_basic_ack_t(delivery_tag: 1, multiple: 0)
        try frames.appendMethod(AMQP_BASIC_ACK_METHOD, channel: 1, decoded: &ack)

        XCTAssertThrowsError(try frames.write(to: descriptors[0], timeout: .seconds(1))) { error in
            XCTAssertEqual((error as? AMQPError)?.code, .connectionLost)
        }
    }

    func testWriteToFullSocketTimesOut() throws {
        var descriptors: [Int32] = [-1, -1]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &descriptors), 0)
        defer {
            close(descriptors[0])
            close(descriptors[1])
        }
        Self.setNonBlocking(descriptors[0])
        let arena = CArena()
        var properties = MessageProperties().cProperties(in: arena)
        let frames = OutboundFrames(frameMax: Int(Self.frameMax))
        let body = [UInt8](repeating: 7, count: 4 << 20)
        try body.withUnsafeBytes { raw in
            try frames.appendPublish(channel: 1, exchange: arena.bytes(""), routingKey: arena.bytes("q"),
                                     mandatory: false, properties: &properties, body: raw)
        }

        XCTAssertThrowsError(try frames.write(to: descriptors[0], timeout: .milliseconds(200))) { error in
            XCTAssertEqual((error as? AMQPError)?.code, .timeout)
        }
    }

    /// Reads from `descriptor` on a thread of its own until `count` bytes arrived or 30 s pass.
    private static func startReading(_ descriptor: Int32, count: Int) -> (Thread, Locked<[UInt8]>, DispatchSemaphore) {
        let received = Locked<[UInt8]>([])
        let finished = DispatchSemaphore(value: 0)
        let thread = Thread {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let deadline = Date().addingTimeInterval(30)
            while received.withLock({ $0.count }) < count, Date() < deadline {
                let length = read(descriptor, &chunk, chunk.count)
                if length > 0 {
                    received.withLock { $0 += chunk[0..<length] }
                } else if length == 0 {
                    break
                } else {
                    usleep(1_000)
                }
            }
            finished.signal()
        }
        return (thread, received, finished)
    }

    private static func largePublish(into frames: OutboundFrames, arena: CArena, bodySize: Int) throws {
        var properties = MessageProperties(correlationID: "large").cProperties(in: arena)
        let body = (0..<bodySize).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try body.withUnsafeBytes { raw in
            try frames.appendPublish(channel: 1, exchange: arena.bytes(""), routingKey: arena.bytes("q"),
                                     mandatory: true, properties: &properties, body: raw)
        }
    }

    func testWriteWithoutWaitingLeavesRestForWrite() throws {
        let arena = CArena()
        let bodySize = 2 << 20
        let reference = OutboundFrames(frameMax: Int(Self.frameMax))
        try Self.largePublish(into: reference, arena: arena, bodySize: bodySize)
        let frames = OutboundFrames(frameMax: Int(Self.frameMax))
        try Self.largePublish(into: frames, arena: arena, bodySize: bodySize)
        let total = frames.count

        var expectedPair: [Int32] = [-1, -1]
        var pair: [Int32] = [-1, -1]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &expectedPair), 0)
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        defer { (expectedPair + pair).forEach { close($0) } }
        Self.setNonBlocking(pair[1])
        Self.setNonBlocking(expectedPair[1])

        // The socket takes far less than 2 MiB while its peer reads nothing, so the write stops early.
        let complete = try frames.writeWithoutWaiting(to: pair[0])
        XCTAssertFalse(complete)
        XCTAssertTrue(frames.hasPartialWrite)
        XCTAssertFalse(frames.isEmpty)

        let (reader, received, finished) = Self.startReading(pair[1], count: total)
        reader.start()
        try frames.write(to: pair[0], timeout: .seconds(10))
        XCTAssertEqual(finished.wait(timeout: .now() + 60), .success)
        let (expectedReader, expected, expectedFinished) = Self.startReading(expectedPair[1], count: total)
        expectedReader.start()
        try reference.write(to: expectedPair[0], timeout: .seconds(10))
        XCTAssertEqual(expectedFinished.wait(timeout: .now() + 60), .success)

        XCTAssertFalse(frames.hasPartialWrite)
        XCTAssertTrue(frames.isEmpty)
        XCTAssertEqual(received.withLock { $0.count }, total)
        XCTAssertTrue(received.withLock { $0 } == expected.withLock { $0 }, "the bytes differ from one whole write")
    }

    func testWriteWithoutWaitingSendsSmallBufferAtOnce() throws {
        var pair: [Int32] = [-1, -1]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        defer { pair.forEach { close($0) } }
        Self.setNonBlocking(pair[1])
        let frames = OutboundFrames(frameMax: Int(Self.frameMax))
        var ack = amqp_basic_ack_t(delivery_tag: 9, multiple: 0)
        try frames.appendMethod(AMQP_BASIC_ACK_METHOD, channel: 1, decoded: &ack)
        let total = frames.count

        let complete = try frames.writeWithoutWaiting(to: pair[0])

        XCTAssertTrue(complete)
        XCTAssertTrue(frames.isEmpty)
        XCTAssertFalse(frames.hasPartialWrite)
        XCTAssertEqual(Self.drain(pair[1]).count, total)
    }

    /// Writes everything buffered in `frames` to a socket pair whose far end a thread reads.
    private static func writeAll(_ frames: OutboundFrames) throws {
        var pair: [Int32] = [-1, -1]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        defer { pair.forEach { close($0) } }
        Self.setNonBlocking(pair[1])
        let (reader, _, finished) = Self.startReading(pair[1], count: frames.count)
        reader.start()
        try frames.write(to: pair[0], timeout: .seconds(10))
        XCTAssertEqual(finished.wait(timeout: .now() + 60), .success)
    }

    func testGrownBufferKeptUntilSmallWrites() throws {
        let arena = CArena()
        let frames = OutboundFrames(frameMax: Int(Self.frameMax))
        let normal = frames.capacity
        try Self.largePublish(into: frames, arena: arena, bodySize: 2 << 20)
        try Self.writeAll(frames)
        let grown = frames.capacity
        XCTAssertGreaterThan(grown, 2 << 20)

        var ack = amqp_basic_ack_t(delivery_tag: 1, multiple: 0)
        for _ in 0..<31 {
            try frames.appendMethod(AMQP_BASIC_ACK_METHOD, channel: 1, decoded: &ack)
            try Self.writeAll(frames)
        }
        XCTAssertEqual(frames.capacity, grown)

        try frames.appendMethod(AMQP_BASIC_ACK_METHOD, channel: 1, decoded: &ack)
        try Self.writeAll(frames)
        XCTAssertEqual(frames.capacity, normal)
    }

    func testHugeBufferGivenBackAfterWrite() throws {
        let arena = CArena()
        let frames = OutboundFrames(frameMax: Int(Self.frameMax))
        let normal = frames.capacity
        try Self.largePublish(into: frames, arena: arena, bodySize: 5 << 20)
        XCTAssertGreaterThan(frames.capacity, 5 << 20)

        try Self.writeAll(frames)

        XCTAssertEqual(frames.capacity, normal)
    }
}
