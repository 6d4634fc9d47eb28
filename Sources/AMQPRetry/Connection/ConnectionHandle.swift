import CRabbitMQ
import Foundation

/// The owner of one librabbitmq connection and its single channel.
///
/// librabbitmq connections are blocking and not thread-safe. A handle is therefore created on
/// its connection's I/O thread and used only while the connection's state lock is held, by the
/// I/O thread or by a caller's thread that publishes on an idle connection without waiting.
/// Every method that waits has a deadline: the
/// socket open and login take `connectionTimeout`, RPCs take `operationTimeout`, and sends are
/// bounded by the I/O thread's watchdog, which shuts the socket down when a step overruns.
final class ConnectionHandle {
    /// The channel of publishes, confirms, consumers and acks; one channel keeps confirms and
    /// deliveries in one order.
    static let channel: amqp_channel_t = 1
    /// The channel of declares, deletes and purges. A declare that the broker refuses (404 or
    /// 406) closes only this channel, which is then opened anew, so that the deliveries and
    /// confirms on ``channel`` are not lost with it.
    static let topologyChannel: amqp_channel_t = 2

    let state: amqp_connection_state_t
    private(set) var isOpen = false
    /// The C memory of each publish's properties, reset after every publish and reused.
    private let publishArena = CArena()
    /// Events of other channels that arrived while a message's content was read, returned by
    /// the next calls of `nextEvent()` before any new frame.
    var deferredEvents: [InboundEvent] = []
    /// The sequence number the next publish gets once the channel is in confirm mode.
    private(set) var nextPublishSequence: UInt64 = 1
    /// The publishes, acks and rejects waiting for ``writeFrames()`` on a plain TCP connection.
    /// It is `nil` on a TLS connection, whose frames librabbitmq writes at once.
    // NOTE: librabbitmq 0.11 exports no call that writes raw bytes through its TLS socket, so a
    // TLS connection still makes one system call per frame.
    private var outbound: OutboundFrames?
    /// How long a write may wait for the broker to read, from `operationTimeout`.
    private let writeTimeout: Duration

    /// Opens the socket, logs in, opens the channel and puts it in confirm mode.
    init(configuration: ConnectionConfiguration, connectionName: String) throws(AMQPError) {
        guard let state = amqp_new_connection() else {
            throw AMQPError(.libraryError, operation: "connect", replyText: "amqp_new_connection failed")
        }
        self.state = state
        writeTimeout = configuration.operationTimeout

        try openSocket(configuration)
        try login(configuration, connectionName: connectionName)
        isOpen = true
        try openChannel()
        if configuration.tls == nil {
            outbound = OutboundFrames(frameMax: frameMax)
        }
    }

    deinit {
        amqp_destroy_connection(state)
    }

    /// The socket's file descriptor, for `poll` and for the watchdog's `shutdown`.
    var socketDescriptor: Int32 {
        amqp_get_sockfd(state)
    }

    /// The `frame_max` negotiated with the broker.
    var frameMax: Int {
        Int(amqp_get_frame_max(state))
    }

    /// The heartbeat interval negotiated with the broker, in seconds; 0 when off.
    var heartbeatSeconds: Int {
        Int(amqp_get_heartbeat(state))
    }

    /// Whether publishes, acks or rejects wait for ``writeFrames()``.
    var hasFramesToWrite: Bool {
        !(outbound?.isEmpty ?? true)
    }

    /// Whether publishes, acks and rejects wait in AMQPRetry's own buffer, which is the case on
    /// plain TCP connections. On TLS connections librabbitmq writes them at once.
    var buffersFrames: Bool {
        outbound != nil
    }

    /// Whether frames wait in librabbitmq's buffers, so that `poll` must be skipped.
    var hasBufferedFrames: Bool {
        !deferredEvents.isEmpty || amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0
    }

    private func openSocket(_ configuration: ConnectionConfiguration) throws(AMQPError) {
        let socket = try makeSocket(configuration)
        var timeout = timeval(configuration.connectionTimeout)
        let status = amqp_socket_open_noblock(socket, configuration.host, Int32(configuration.port), &timeout)
        if status != AMQP_STATUS_OK.rawValue {
            // NOTE: librabbitmq 0.11 reports a refused or unreachable socket only as "a socket
            // error occurred"; the system error is lost inside its non-blocking connect.
            let cause = AMQPError.status(status, operation: "connect")
            throw AMQPError(.connectionFailed, operation: "connect to \(configuration.brokerAddress)",
                            replyText: cause.replyText)
        }
    }

    private func makeSocket(_ configuration: ConnectionConfiguration) throws(AMQPError) -> OpaquePointer {
        guard let tls = configuration.tls else {
            guard let socket = amqp_tcp_socket_new(state) else {
                throw AMQPError(.libraryError, operation: "connect", replyText: "amqp_tcp_socket_new failed")
            }
            return socket
        }
        guard let socket = amqp_ssl_socket_new(state) else {
            throw AMQPError(.libraryError, operation: "connect", replyText: "amqp_ssl_socket_new failed")
        }
        try configureTLS(socket, tls)
        return socket
    }

    private func configureTLS(_ socket: OpaquePointer, _ tls: ConnectionConfiguration.TLSConfiguration) throws(AMQPError) {
        amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
        amqp_ssl_socket_set_verify_hostname(socket, tls.verifyHostname ? 1 : 0)
        if let ca = tls.caCertificatePath ?? Self.systemCABundle(),
           amqp_ssl_socket_set_cacert(socket, ca) != AMQP_STATUS_OK.rawValue {
            throw AMQPError(.connectionFailed, operation: "TLS set-up",
                            replyText: "cannot read the CA certificate file '\(ca)'")
        }
        if let certificate = tls.certificatePath, let key = tls.keyPath,
           amqp_ssl_socket_set_key(socket, certificate, key) != AMQP_STATUS_OK.rawValue {
            throw AMQPError(.connectionFailed, operation: "TLS set-up",
                            replyText: "cannot read the client certificate '\(certificate)' or key '\(key)'")
        }
    }

    /// Debian's bundle of the system's trusted CA certificates, when the file exists.
    private static func systemCABundle() -> String? {
        let path = "/etc/ssl/certs/ca-certificates.crt"
        return FileManager.default.isReadableFile(atPath: path) ? path : nil
    }

    private func login(_ configuration: ConnectionConfiguration, connectionName: String) throws(AMQPError) {
        var handshake = timeval(configuration.connectionTimeout)
        var rpc = timeval(configuration.operationTimeout)
        amqp_set_handshake_timeout(state, &handshake)
        amqp_set_rpc_timeout(state, &rpc)

        let arena = CArena()
        var properties = arena.table(Self.clientProperties(connectionName: connectionName))
        let reply = crabbitmq_login_plain(
            state, configuration.virtualHost, Int32(configuration.channelMax), Int32(configuration.frameMax),
            Int32(configuration.heartbeat.components.seconds), &properties,
            configuration.user, configuration.password
        )
        if let error = AMQPError.rpcReply(reply, operation: "login to \(configuration.brokerAddress)") {
            throw Self.loginError(error, configuration: configuration)
        }
    }

    /// Returns the client properties sent in `connection.start-ok`, with the capabilities
    /// AMQPRetry handles.
    static func clientProperties(connectionName: String) -> FieldTable {
        [
            "product": .text("AMQPRetry"),
            "connection_name": .text(connectionName),
            "capabilities": .table([
                "consumer_cancel_notify": .bool(true),
                "publisher_confirms": .bool(true),
                "basic.nack": .bool(true),
                "connection.blocked": .bool(true),
                "authentication_failure_close": .bool(true),
            ]),
        ]
    }

    private static func loginError(_ error: AMQPError, configuration: ConnectionConfiguration) -> AMQPError {
        let hint = "check the user name, password and virtual host '\(configuration.virtualHost)' in the URL"
        if error.replyCode == 403 || error.replyText?.contains("ACCESS_REFUSED") == true
            || error.code == .connectionLost {
            return AMQPError(.loginFailed, operation: error.operation, replyCode: error.replyCode,
                             replyText: [error.replyText, hint].compactMap { $0 }.joined(separator: "; "))
        }
        return error
    }

    private func openChannel() throws(AMQPError) {
        amqp_channel_open(state, Self.channel)
        try checkReply("channel.open")
        amqp_confirm_select(state, Self.channel)
        try checkReply("confirm.select")
        nextPublishSequence = 1
        amqp_channel_open(state, Self.topologyChannel)
        try checkReply("channel.open", channel: Self.topologyChannel)
    }

    /// Throws the error of the last RPC. A broker that closed the topology channel gets its
    /// `channel.close-ok` and a new channel, so the connection stays usable. The thrown error
    /// still carries the broker's reply code and text.
    private func checkReply(_ operation: String, channel: amqp_channel_t = ConnectionHandle.channel) throws(AMQPError) {
        guard let error = AMQPError.rpcReply(amqp_get_rpc_reply(state), operation: operation) else { return }
        guard error.code == .channelClosed else { throw error }

        sendChannelCloseOK(channel: channel)
        guard channel == Self.topologyChannel else { throw error }
        amqp_channel_open(state, Self.topologyChannel)
        if let reopenError = AMQPError.rpcReply(amqp_get_rpc_reply(state), operation: "channel.open") {
            throw AMQPError(.connectionLost, operation: reopenError.operation, replyCode: reopenError.replyCode,
                            replyText: reopenError.replyText)
        }
        throw error
    }
}

// MARK: - Operations

extension ConnectionHandle {
    /// Publishes a message and returns the publish sequence number its confirm will carry.
    ///
    /// On a plain TCP connection the frames wait for ``writeFrames()``.
    func publish(_ message: OutgoingMessage) throws(AMQPError) -> UInt64 {
        defer { publishArena.reset() }
        var properties = message.properties.cProperties(in: publishArena)
        let exchange = publishArena.bytes(message.exchange)
        let routingKey = publishArena.bytes(message.routingKey)
        // Both paths only read the body during the call, so it needs no copy.
        var encodingError: AMQPError?
        let status = message.body.withUnsafeBytes { body -> Int32 in
            if let outbound {
                do throws(AMQPError) {
                    try outbound.appendPublish(channel: Self.channel, exchange: exchange, routingKey: routingKey,
                                               mandatory: message.mandatory, properties: &properties, body: body)
                } catch {
                    encodingError = error
                }
                return AMQP_STATUS_OK.rawValue
            }
            return amqp_basic_publish(
                state, Self.channel, exchange, routingKey, message.mandatory ? 1 : 0, 0, &properties,
                amqp_bytes_t(len: body.count, bytes: body.count > 0 ? UnsafeMutableRawPointer(mutating: body.baseAddress) : nil)
            )
        }
        if let encodingError {
            throw encodingError
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError.status(status, operation: "basic.publish")
        }
        defer { nextPublishSequence += 1 }
        return nextPublishSequence
    }

    /// Acknowledges a delivery with `basic.ack`. On a plain TCP connection the frame waits for
    /// ``writeFrames()``.
    func ack(deliveryTag: UInt64, multiple: Bool = false) throws(AMQPError) {
        if let outbound {
            var ack = amqp_basic_ack_t(delivery_tag: deliveryTag, multiple: multiple ? 1 : 0)
            try outbound.appendMethod(AMQP_BASIC_ACK_METHOD, channel: Self.channel, decoded: &ack)
            return
        }
        let status = amqp_basic_ack(state, Self.channel, deliveryTag, multiple ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError.status(status, operation: "basic.ack")
        }
    }

    /// Rejects a delivery with `basic.reject`, returning it to its queue when `requeue` is set.
    /// On a plain TCP connection the frame waits for ``writeFrames()``.
    func reject(deliveryTag: UInt64, requeue: Bool) throws(AMQPError) {
        if let outbound {
            var reject = amqp_basic_reject_t(delivery_tag: deliveryTag, requeue: requeue ? 1 : 0)
            try outbound.appendMethod(AMQP_BASIC_REJECT_METHOD, channel: Self.channel, decoded: &reject)
            return
        }
        let status = amqp_basic_reject(state, Self.channel, deliveryTag, requeue ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError.status(status, operation: "basic.reject")
        }
    }

    /// Writes the frames that publishes, acks and rejects left waiting, in their order.
    ///
    /// Every operation that sends through librabbitmq calls this first, so frames of channel 1
    /// never overtake each other. A failed write abandons the connection.
    func writeFrames() throws(AMQPError) {
        guard let outbound, !outbound.isEmpty else { return }
        do {
            try outbound.write(to: socketDescriptor, timeout: writeTimeout)
        } catch {
            abandon()
            throw error
        }
    }

    /// Writes what the socket takes of the waiting frames without waiting, and returns whether
    /// all of them went out. A frame sent in part is finished by the next ``writeFrames()``,
    /// which ``nextEvent()`` and every librabbitmq operation call first.
    func writeFramesWithoutWaiting() throws(AMQPError) -> Bool {
        guard let outbound, !outbound.isEmpty else { return true }
        do {
            return try outbound.writeWithoutWaiting(to: socketDescriptor)
        } catch {
            abandon()
            throw error
        }
    }

    /// Whether a frame went out only in part, so that librabbitmq must not write, heartbeats
    /// included, before ``writeFrames()`` sends the rest.
    var hasPartialWrite: Bool {
        outbound?.hasPartialWrite ?? false
    }

    /// Sets the channel's prefetch count with `basic.qos`.
    func setPrefetch(_ count: UInt16) throws(AMQPError) {
        try writeFrames()
        amqp_basic_qos(state, Self.channel, 0, count, 0)
        try checkReply("basic.qos")
    }

    /// Declares a queue, an exchange or a binding; a queue declaration returns the queue's counts.
    @discardableResult
    func declare(_ item: TopologyItem) throws(AMQPError) -> QueueCounts? {
        try writeFrames()
        let arena = CArena()
        switch item {
        case .queue(let queue):
            let ok = amqp_queue_declare(state, Self.topologyChannel, arena.bytes(queue.name), queue.passive ? 1 : 0,
                                        queue.durable ? 1 : 0, 0, 0, arena.table(queue.arguments))
            try checkReply("queue.declare '\(queue.name)'", channel: Self.topologyChannel)
            guard let ok else { return nil }
            return QueueCounts(messageCount: Int(ok.pointee.message_count),
                               consumerCount: Int(ok.pointee.consumer_count))
        case .exchange(let name, let type, let durable):
            amqp_exchange_declare(state, Self.topologyChannel, arena.bytes(name), arena.bytes(type), 0,
                                  durable ? 1 : 0, 0, 0, amqp_table_t(num_entries: 0, entries: nil))
            try checkReply("exchange.declare '\(name)'", channel: Self.topologyChannel)
        case .binding(let queue, let exchange, let routingKey):
            amqp_queue_bind(state, Self.topologyChannel, arena.bytes(queue), arena.bytes(exchange),
                            arena.bytes(routingKey), amqp_table_t(num_entries: 0, entries: nil))
            try checkReply("queue.bind '\(queue)' to '\(exchange)'", channel: Self.topologyChannel)
        }
        return nil
    }

    /// Deletes a queue with `queue.delete` and returns the number of messages it held.
    func deleteQueue(_ name: String) throws(AMQPError) -> Int {
        try writeFrames()
        let arena = CArena()
        let ok = amqp_queue_delete(state, Self.topologyChannel, arena.bytes(name), 0, 0)
        try checkReply("queue.delete '\(name)'", channel: Self.topologyChannel)
        return Int(ok?.pointee.message_count ?? 0)
    }

    /// Purges a queue with `queue.purge` and returns the number of messages removed.
    func purgeQueue(_ name: String) throws(AMQPError) -> Int {
        try writeFrames()
        let arena = CArena()
        let ok = amqp_queue_purge(state, Self.topologyChannel, arena.bytes(name))
        try checkReply("queue.purge '\(name)'", channel: Self.topologyChannel)
        return Int(ok?.pointee.message_count ?? 0)
    }

    /// Starts a consumer with `basic.consume` and returns the consumer tag the broker assigned.
    func consume(queue: String, noAck: Bool) throws(AMQPError) -> String {
        try writeFrames()
        let arena = CArena()
        let ok = amqp_basic_consume(state, Self.channel, arena.bytes(queue), arena.bytes(""), 0,
                                    noAck ? 1 : 0, 0, amqp_table_t(num_entries: 0, entries: nil))
        try checkReply("basic.consume '\(queue)'")
        guard let ok else {
            throw AMQPError(.libraryError, operation: "basic.consume '\(queue)'", replyText: "no consumer tag")
        }
        return String(amqpBytes: ok.pointee.consumer_tag)
    }

    /// Cancels a consumer with `basic.cancel`.
    func cancel(consumerTag: String) throws(AMQPError) {
        try writeFrames()
        let arena = CArena()
        amqp_basic_cancel(state, Self.channel, arena.bytes(consumerTag))
        try checkReply("basic.cancel '\(consumerTag)'")
    }

    /// Closes the channel and the connection politely; errors are ignored because the socket
    /// is destroyed right after.
    func close() {
        guard isOpen else { return }
        try? writeFrames()
        isOpen = false
        amqp_channel_close(state, Self.channel, Int32(AMQP_REPLY_SUCCESS))
        amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS))
    }

    /// Marks the connection as unusable without sending anything, after a socket error.
    func abandon() {
        isOpen = false
    }

    func sendChannelCloseOK(channel: amqp_channel_t = ConnectionHandle.channel) {
        try? writeFrames()
        var ok = amqp_channel_close_ok_t(dummy: 0)
        amqp_send_method(state, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok)
    }

    func sendConnectionCloseOK() {
        try? writeFrames()
        var ok = amqp_connection_close_ok_t(dummy: 0)
        amqp_send_method(state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok)
        isOpen = false
    }
}

extension timeval {
    /// Converts a duration into a `timeval`, rounding down to microseconds.
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
