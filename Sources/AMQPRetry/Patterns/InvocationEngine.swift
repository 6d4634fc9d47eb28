import Foundation

/// The calling side of invoke/retry on one connection: publishes background invocations and
/// makes blocking calls through RabbitMQ's direct reply-to.
final class InvocationEngine: Sendable {
    private struct CallKey: Hashable {
        let cid: CID
        let attempt: Int
    }

    private struct PendingCall {
        let continuation: CheckedContinuation<CallOutcome, Never>
        var timer: Task<Void, Never>?
    }

    let connection: AMQPConnection
    let logger: Logger
    private let pendingCalls = Locked<[CallKey: PendingCall]>([:])

    private init(connection: AMQPConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    /// Connects and starts consuming replies from `amq.rabbitmq.reply-to`.
    static func start(configuration: ConnectionConfiguration, name: String, logger: Logger) async throws(AMQPError) -> InvocationEngine {
        let connection = AMQPConnection(configuration: configuration, name: name, logger: logger)
        try await connection.start()
        let engine = InvocationEngine(connection: connection, logger: logger)
        let replies = AMQPConnection.Consumer(
            queue: TopologyNames.directReplyTo, noAck: true, topology: []
        ) { [weak engine] delivery, _ in
            engine?.receiveReply(delivery)
        }
        do {
            _ = try await connection.addConsumer(replies)
        } catch {
            await connection.close()
            throw error
        }
        return engine
    }

    /// Closes the connection; calls still waiting for a reply end with a failure.
    func close() async {
        await connection.close()
        let pending = pendingCalls.withLock { calls in
            defer { calls.removeAll() }
            return calls.values
        }
        for call in pending {
            call.timer?.cancel()
            call.continuation.resume(returning: .failure("the connection was closed before the reply came"))
        }
    }

    /// Publishes a background invocation to its service queue, or to the delay queue of
    /// `delayMilliseconds` so that the service receives it one interval later.
    func publish(_ invocation: Invocation, delayMilliseconds: Int64? = nil) async throws(AMQPError) {
        let serviceQueue = TopologyNames.serviceQueue(invocation.target)
        let type = connection.configuration.queueType
        var topology = Topology.service(invocation.target, type: type)
        var exchange = ""
        if let delayMilliseconds {
            topology += Topology.delay(milliseconds: delayMilliseconds, type: type)
            exchange = TopologyNames.delayExchange(milliseconds: delayMilliseconds)
        }
        let expiration = delayMilliseconds.flatMap { Topology.retryExpiration(milliseconds: $0, type: type) }
        let message = OutgoingMessage(exchange: exchange, routingKey: serviceQueue, mandatory: true,
                                      properties: invocation.messageProperties(expirationMilliseconds: expiration),
                                      body: invocation.payload.bytes)
        try await connection.publish([message], declaring: topology)
    }

    /// Sends one request of a blocking call and waits for its reply up to `timeout`.
    ///
    /// The request carries `expiration` equal to the timeout, so the broker drops it rather than
    /// deliver it after the caller has stopped waiting. A timeout, a failed publish and an error
    /// reply are all failures.
    func call(_ invocation: Invocation, timeout: Duration) async -> CallOutcome {
        let key = CallKey(cid: invocation.cid, attempt: invocation.attempt)
        let expiration = max(1, Int64(timeout.milliseconds.rounded(.up)))
        let message = OutgoingMessage(
            exchange: "", routingKey: TopologyNames.serviceQueue(invocation.target), mandatory: true,
            properties: invocation.messageProperties(replyTo: TopologyNames.directReplyTo,
                                                     expirationMilliseconds: expiration),
            body: invocation.payload.bytes
        )

        return await withCheckedContinuation { continuation in
            pendingCalls.withLock { $0[key] = PendingCall(continuation: continuation) }
            let timer = Task { [weak self] in
                try? await Task.sleep(for: timeout)
                guard !Task.isCancelled else { return }
                self?.resolve(key, with: .failure("no reply within \(timeout)"))
            }
            pendingCalls.withLock { $0[key]?.timer = timer }
            Task { [connection] in
                do throws(AMQPError) {
                    try await connection.publish([message])
                } catch {
                    self.resolve(key, with: .failure(Self.publishFailure(error, target: invocation.target)))
                }
            }
        }
    }

    private static func publishFailure(_ error: AMQPError, target: String) -> String {
        if error.code == .unroutable {
            return "service '\(target)' has no queue '\(TopologyNames.serviceQueue(target))'; start a worker that hosts it"
        }
        return "sending the request failed: \(error)"
    }

    private func resolve(_ key: CallKey, with outcome: CallOutcome) {
        guard let call = pendingCalls.withLock({ $0.removeValue(forKey: key) }) else { return }
        call.timer?.cancel()
        call.continuation.resume(returning: outcome)
    }

    /// Matches a reply to its waiting call by correlation ID and attempt; late replies of
    /// earlier attempts find no call and are dropped.
    private func receiveReply(_ delivery: Delivery) {
        guard let reply = Reply(delivery) else {
            logger.debug("dropped a reply that matches no call", metadata: [
                LogKey.cid: delivery.properties.correlationID ?? "",
            ])
            return
        }
        resolve(CallKey(cid: reply.cid, attempt: reply.attempt), with: reply.outcome)
    }
}

/// A reply to one request of a blocking call, as a worker sends it.
struct Reply {
    let cid: CID
    let attempt: Int
    let outcome: CallOutcome

    /// Decodes a reply; returns `nil` when the message is not a well-formed reply.
    init?(_ delivery: Delivery) {
        let headers = delivery.properties.headers
        guard let correlationID = delivery.properties.correlationID,
              let cid = try? CID(validating: correlationID),
              let attempt = headers[WireHeader.attempt]?.integerValue,
              let status = headers[WireHeader.status]?.textValue else {
            return nil
        }
        self.cid = cid
        self.attempt = Int(attempt)
        if status == Reply.ok {
            let contentType = delivery.properties.contentType ?? "application/json"
            outcome = .success(Payload(bytes: delivery.body, contentType: contentType))
        } else {
            outcome = .failure(headers[WireHeader.error]?.textValue ?? "the service failed without a message")
        }
    }

    /// The `amqpretry-status` of a successful call.
    static let ok = "ok"
    /// The `amqpretry-status` of a failed call.
    static let error = "error"

    /// Builds the reply message a worker publishes to the caller's `reply_to`.
    static func message(to replyTo: String, for invocation: Invocation, outcome: CallOutcome) -> OutgoingMessage {
        var headers: FieldTable = [
            WireHeader.version: .int64(WireHeader.currentVersion),
            WireHeader.attempt: .int64(Int64(invocation.attempt)),
        ]
        var body: [UInt8] = []
        var contentType = "application/json"
        switch outcome {
        case .success(let payload):
            headers[WireHeader.status] = .text(ok)
            body = payload.bytes
            contentType = payload.contentType
        case .failure(let message):
            headers[WireHeader.status] = .text(error)
            headers[WireHeader.error] = .text(WireHeader.boundedErrorMessage(message))
        }
        let properties = MessageProperties(contentType: contentType, headers: headers, deliveryMode: 1,
                                           correlationID: invocation.cid.rawValue)
        // Not mandatory: a caller that gave up has no reply queue left, and that is no error.
        return OutgoingMessage(exchange: "", routingKey: replyTo, mandatory: false, properties: properties, body: body)
    }
}
