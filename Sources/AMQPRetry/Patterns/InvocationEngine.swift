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
        /// The monotonic time in nanoseconds when the call fails for want of a reply.
        let deadline: UInt64
        let timeout: Duration
    }

    /// The waiting calls and the one timer task that fails them at their deadlines.
    private struct Calls {
        var pending: [CallKey: PendingCall] = [:]
        /// The time the timer task sleeps until, `nil` when no timer task runs.
        var timerDeadline: UInt64?
        var timer: Task<Void, Never>?
    }

    let connection: AMQPConnection
    let logger: Logger
    private let calls = Locked(Calls())

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
        let pending = calls.withLock { calls in
            defer {
                calls.pending.removeAll()
                calls.timer?.cancel()
                calls.timer = nil
                calls.timerDeadline = nil
            }
            return calls.pending.values
        }
        for call in pending {
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
            let deadline = MonotonicClock.deadline(after: timeout)
            let call = PendingCall(continuation: continuation, deadline: deadline, timeout: timeout)
            let needsTimer = calls.withLock { calls -> Bool in
                calls.pending[key] = call
                if let timerDeadline = calls.timerDeadline, timerDeadline <= deadline {
                    return false
                }
                calls.timerDeadline = deadline
                return true
            }
            if needsTimer {
                startTimer(until: deadline)
            }
            // The request is enqueued from here, not from a task of its own, so that no thread
            // hop comes before the publish. The completion runs on the I/O thread.
            connection.publish([message]) { [weak self] result in
                if case .failure(let error) = result {
                    self?.resolve(key, with: .failure(Self.publishFailure(error, target: invocation.target)))
                }
            }
        }
    }

    /// Starts the timer task that fails calls at their deadlines and cancels the one it
    /// replaces, which slept until a later deadline.
    ///
    /// One task serves every call. It sleeps until the earliest deadline of the waiting calls,
    /// fails the calls that are due, and sleeps again until the next deadline, so calls with the
    /// same timeout never start a task after the first.
    private func startTimer(until deadline: UInt64) {
        let task = Task { [weak self] in
            var target = deadline
            while !Task.isCancelled {
                let now = MonotonicClock.now()
                if target > now {
                    try? await Task.sleep(for: .nanoseconds(Int64(clamping: target - now)))
                }
                guard let self, !Task.isCancelled, let next = self.expireCalls(timerDeadline: target) else { return }
                target = next
            }
        }
        let replaced = calls.withLock { calls -> Task<Void, Never>? in
            guard calls.timerDeadline == deadline else { return task }
            defer { calls.timer = task }
            return calls.timer
        }
        replaced?.cancel()
    }

    /// Fails the calls whose deadline passed and returns the deadline the timer sleeps until
    /// next, or `nil` when the timer task should end because no call waits or another task took
    /// over.
    private func expireCalls(timerDeadline: UInt64) -> UInt64? {
        let now = MonotonicClock.now()
        let (expired, next) = calls.withLock { calls -> ([PendingCall], UInt64?) in
            guard calls.timerDeadline == timerDeadline else { return ([], nil) }
            var expired: [PendingCall] = []
            var next: UInt64?
            for (key, call) in calls.pending {
                if call.deadline <= now {
                    expired.append(call)
                    calls.pending[key] = nil
                } else {
                    next = min(next ?? call.deadline, call.deadline)
                }
            }
            calls.timerDeadline = next
            if next == nil {
                calls.timer = nil
            }
            return (expired, next)
        }
        for call in expired {
            call.continuation.resume(returning: .failure("no reply within \(call.timeout)"))
        }
        return next
    }

    private static func publishFailure(_ error: AMQPError, target: String) -> String {
        if error.code == .unroutable {
            return "service '\(target)' has no queue '\(TopologyNames.serviceQueue(target))'; start a worker that hosts it"
        }
        return "sending the request failed: \(error)"
    }

    private func resolve(_ key: CallKey, with outcome: CallOutcome) {
        guard let call = calls.withLock({ $0.pending.removeValue(forKey: key) }) else { return }
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
        let headers = delivery.properties.headerList
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
        var headers = HeaderList(capacity: 4)
        headers.appendNew(WireHeader.attempt, .int64(Int64(invocation.attempt)), nameIsASCII: true)
        var body: [UInt8] = []
        var contentType = "application/json"
        switch outcome {
        case .success(let payload):
            headers.appendNew(WireHeader.status, .text(ok), nameIsASCII: true)
            body = payload.bytes
            contentType = payload.contentType
        case .failure(let message):
            headers.appendNew(WireHeader.error, .text(WireHeader.boundedErrorMessage(message)), nameIsASCII: true)
            headers.appendNew(WireHeader.status, .text(error), nameIsASCII: true)
        }
        headers.appendNew(WireHeader.version, .int64(WireHeader.currentVersion), nameIsASCII: true)

        var properties = MessageProperties(contentType: contentType, deliveryMode: 1,
                                           correlationID: invocation.cid.rawValue)
        properties.headerList = headers
        // Not mandatory: a caller that gave up has no reply queue left, and that is no error.
        return OutgoingMessage(exchange: "", routingKey: replyTo, mandatory: false, properties: properties, body: body)
    }
}
