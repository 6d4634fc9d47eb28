import Foundation

/// One run of a worker: its consumer connection, its consumers, and the processing of each
/// delivery from decode to acknowledgement.
final class WorkerSession: Sendable {
    typealias DeliveryReference = AMQPConnection.DeliveryReference

    let worker: Worker
    let connection: AMQPConnection
    let engine: InvocationEngine
    private let consumerIDs = Locked<[UInt64]>([])
    /// How long a delivery whose replacement could not be published waits before it goes back
    /// to its queue, so that a lasting fault does not turn into a tight redelivery loop.
    static let requeueDelay: Duration = .seconds(1)
    /// How long a redelivered invocation that arrives while another one runs spends in a delay
    /// queue before it comes back, in milliseconds.
    static let postponeMilliseconds: Int64 = 200
    /// How long postponements skip the delay queue after the broker rejected its declaration.
    static let rejectedDelayQueueMemory: Duration = .seconds(5)

    /// When the broker last rejected the delay queue of postponements, and how many
    /// postponements skipped it since.
    struct DelayQueueRejection {
        var rejectedAt: ContinuousClock.Instant?
        var skipped = 0

        /// Returns whether a postponement at `now` skips the delay queue, and counts it if so.
        mutating func skips(at now: ContinuousClock.Instant) -> Bool {
            guard remembers(at: now) else { return false }
            skipped += 1
            return true
        }

        /// Records a rejection at `now` and returns how many postponements skipped the delay
        /// queue since the previous one. Returns `nil` when a rejection is still remembered, as
        /// when concurrent postponements were rejected together, so that only the first is logged.
        mutating func rejected(at now: ContinuousClock.Instant) -> Int? {
            guard !remembers(at: now) else { return nil }
            let skippedBefore = skipped
            rejectedAt = now
            skipped = 0
            return skippedBefore
        }

        private func remembers(at now: ContinuousClock.Instant) -> Bool {
            guard let rejectedAt else { return false }
            return now - rejectedAt < WorkerSession.rejectedDelayQueueMemory
        }
    }

    private let delayQueueRejection = Locked(DelayQueueRejection())

    private var logger: Logger { worker.logger }
    private var queueType: QueueType { connection.configuration.queueType }

    init(worker: Worker, connection: AMQPConnection, engine: InvocationEngine) {
        self.worker = worker
        self.connection = connection
        self.engine = engine
    }

    /// Sets the prefetch and starts one consumer per service, all in one step.
    func subscribe(_ services: [String: ServiceHandler]) async throws {
        try await connection.setPrefetch(UInt16(worker.configuration.concurrency))
        let ids = try await connection.addConsumers(makeConsumers(services))
        consumerIDs.withLock { $0.append(contentsOf: ids) }
    }

    private func makeConsumers(_ services: [String: ServiceHandler]) -> [AMQPConnection.Consumer] {
        services.sorted(by: { $0.key < $1.key }).map { service, handler in
            AMQPConnection.Consumer(
                queue: TopologyNames.serviceQueue(service), noAck: false,
                // The parking queue too, so that a quorum service queue's delivery limit has
                // its dead-letter target before the first message is parked.
                topology: Topology.service(service, type: queueType) + Topology.parking(type: queueType)
            ) { [self] delivery, reference in
                let suspect = delivery.redelivered || Self.wasRedelivered(delivery)
                let suspectNumber = worker.handlerStarted(suspect: suspect)
                Task {
                    await self.process(delivery, reference, service: service, handler: handler)
                    self.worker.handlerFinished(suspect: suspectNumber)
                }
            }
        }
    }

    /// Cancels every consumer. Deliveries already received are still processed.
    func unsubscribe() async {
        for id in consumerIDs.withLock({ $0 }) {
            do {
                try await connection.removeConsumer(id)
            } catch {
                logger.warning("cancelling a consumer failed", metadata: [LogKey.error: "\(error)"])
            }
        }
    }

    private func process(_ delivery: Delivery, _ reference: DeliveryReference, service: String,
                         handler: ServiceHandler) async {
        if delivery.redelivered {
            await countRedelivery(delivery, reference, service: service)
            return
        }
        let invocation: Invocation
        switch Invocation.decode(properties: delivery.properties, body: delivery.body, queueService: service) {
        case .failure(let reason):
            await parkWithCallback(delivery, reference, service: service, reason: reason,
                                   invocation: Self.callbackTarget(of: delivery, service: service))
            return
        case .success(let decoded):
            invocation = decoded
        }
        if Self.wasRedelivered(delivery) {
            await processAlone(invocation, delivery, reference, handler: handler)
            return
        }

        let outcome = await call(handler, invocation)
        let action = RetryPolicy.decide(invocation: invocation, outcome: outcome)
        await carryOut(action, invocation: invocation, outcome: outcome, delivery: delivery, reference: reference)
    }

    private func call(_ handler: ServiceHandler, _ invocation: Invocation) async -> CallOutcome {
        let request = ServiceRequest(
            payload: invocation.payload, cid: invocation.cid, service: invocation.target,
            attempt: invocation.attempt, mode: invocation.mode, source: invocation.source,
            patterns: Patterns(invokeRetry: InvokeRetry(engine: engine, source: invocation.target,
                                                        origCID: invocation.cid))
        )
        await worker.handlerSlots.acquire()
        defer { worker.handlerSlots.release() }
        do {
            return .success(try await handler(request))
        } catch {
            let message = WireHeader.boundedErrorMessage(String(describing: error))
            logger.info("service call failed", metadata: metadata(invocation, [LogKey.error: message]))
            return .failure(message)
        }
    }
}

// MARK: - Redeliveries

extension WorkerSession {
    /// Handles a delivery that the broker redelivered: republishes it with its redelivery count
    /// one higher and acknowledges the original, or parks it once the count passes the limit.
    ///
    /// The handler does not run on the redelivered copy itself. Counting in a header of the
    /// message survives the death of the worker, which an in-memory count would not.
    private func countRedelivery(_ delivery: Delivery, _ reference: DeliveryReference, service: String) async {
        let count = (delivery.properties.headerList[WireHeader.redeliveries]?.integerValue ?? 0) + 1
        guard count <= Int64(worker.configuration.redeliveryLimit) else {
            await parkRedelivered(delivery, reference, service: service, count: count)
            return
        }
        var properties = delivery.properties
        properties.headerList[WireHeader.redeliveries] = .int64(count)
        logger.notice("an invocation was redelivered; requeueing it with its count", metadata: [
            LogKey.queue: TopologyNames.serviceQueue(service), "amqpretry.redeliveries": String(count),
            LogKey.cid: delivery.properties.correlationID.map { String($0.prefix(64)) } ?? "",
        ])
        await requeueCopy(delivery, reference, properties: properties, service: service)
    }

    /// Publishes a copy of a delivery with `properties` to the end of its service queue, then
    /// acknowledges the delivery.
    private func requeueCopy(_ delivery: Delivery, _ reference: DeliveryReference, properties: MessageProperties,
                             service: String) async {
        let copy = OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(service), mandatory: true,
                                   properties: properties, body: delivery.body)
        do {
            try await connection.publish([copy], declaring: Topology.service(service, type: queueType), thenAcknowledge: reference)
        } catch where error.code == .invalidMessage {
            await parkWithCallback(delivery, reference, service: service,
                                   reason: ParkReason(code: .undeliverable, detail: error.description),
                                   invocation: Self.invocationForCallback(delivery, service: service))
        } catch {
            await requeueLater(reference, after: error, metadata: [LogKey.queue: TopologyNames.serviceQueue(service)])
        }
    }

    /// Parks an invocation past the redelivery limit and, when a callback can be read from it,
    /// publishes a failure callback too.
    private func parkRedelivered(_ delivery: Delivery, _ reference: DeliveryReference, service: String,
                                 count: Int64) async {
        let detail = "redelivered \(count) times without a worker finishing it; "
            + "a handler may crash or hang the worker on this message"
        let reason = ParkReason(code: .redeliveryLimit, detail: detail)
        await parkWithCallback(delivery, reference, service: service, reason: reason,
                               invocation: Self.invocationForCallback(delivery, service: service))
    }

    /// Returns whether a publish failed in a way that repeating it cannot fix: AMQP cannot carry
    /// the message, or the broker rejected a declaration with 403 ACCESS_REFUSED or 406
    /// PRECONDITION_FAILED. A 404, such as for a queue whose node is down, can be temporary.
    static func isPermanentRejection(_ error: AMQPError) -> Bool {
        if error.code == .invalidMessage { return true }
        return error.code == .channelClosed && (error.replyCode == 403 || error.replyCode == 406)
    }

    /// Returns the invocation a delivery carries, or else just enough of it to send a callback.
    private static func invocationForCallback(_ delivery: Delivery, service: String) -> Invocation? {
        let decoded = try? Invocation.decode(properties: delivery.properties, body: delivery.body,
                                             queueService: service).get()
        return decoded ?? callbackTarget(of: delivery, service: service)
    }

    /// Parks a message and, when `invocation` is a background invocation with a callback,
    /// first publishes a failure callback whose `error` is the park reason.
    ///
    /// A callback that no repeat can publish (``isPermanentRejection(_:)``) is left out and named
    /// in the park reason. Otherwise the message would return to its queue forever.
    func parkWithCallback(_ delivery: Delivery, _ reference: DeliveryReference, service: String,
                          reason: ParkReason, invocation: Invocation?) async {
        var reason = reason
        if let invocation, invocation.mode == .async, let callback = invocation.callback {
            let body = CallbackBody.make(invocation: invocation, outcome: .failure(reason.description),
                                         attempts: invocation.attempt)
            let message = Self.callbackMessage(body, to: callback, for: invocation)
            do {
                try await connection.publish([message], declaring: Topology.service(callback, type: queueType))
            } catch where Self.isPermanentRejection(error) {
                logger.error("publishing the failure callback failed; parking without it",
                             metadata: metadata(invocation, [LogKey.error: error.description]))
                reason = ParkReason(code: reason.code,
                                    detail: "\(reason.detail); the failure callback to '\(callback)' failed: \(error)")
            } catch {
                await requeueLater(reference, after: error, metadata: metadata(invocation))
                return
            }
        }
        await park(delivery, reference, service: service, reason: reason)
    }

    /// Reads just enough of a message that failed to decode to send its failure callback.
    ///
    /// That takes a `correlation_id` that is a CID, a valid `amqpretry-callback`, and a mode
    /// other than `sync` or `callback`. A missing or unknown mode counts as a background
    /// invocation. Returns `nil` when any of them is missing.
    static func callbackTarget(of delivery: Delivery, service: String) -> Invocation? {
        let headers = delivery.properties.headerList
        guard let correlationID = delivery.properties.correlationID,
              let cid = try? CID(validating: correlationID),
              let callback = headers[WireHeader.callback]?.textValue,
              (try? ServiceName.validate(callback, option: "callback")) != nil,
              !Self.isSyncOrCallback(headers[WireHeader.mode]) else {
            return nil
        }
        let attempt = headers[WireHeader.attempt]?.integerValue.flatMap { Int(exactly: $0) }
        return makeCallbackTarget(cid: cid, callback: callback, attempt: attempt, headers: headers, service: service)
    }

    private static func isSyncOrCallback(_ mode: FieldValue?) -> Bool {
        let text = mode?.textValue
        return text == InvocationMode.sync.rawValue || text == InvocationMode.callback.rawValue
    }

    private static func makeCallbackTarget(cid: CID, callback: String, attempt: Int?, headers: HeaderList,
                                           service: String) -> Invocation {
        return Invocation(
            cid: cid, mode: .async, target: service, attempt: max(1, min(attempt ?? 1, RetryOptions.maximumRepeats + 1)),
            callback: callback, source: headers[WireHeader.source]?.textValue.map { String($0.prefix(255)) } ?? "",
            origCID: headers[WireHeader.origCID]?.textValue.flatMap { try? CID(validating: $0) },
            requestTimestamp: nil, payload: Payload(bytes: [], contentType: "application/octet-stream")
        )
    }
}

// MARK: - Running redelivered invocations alone

extension WorkerSession {
    /// Whether a delivery carries a redelivery count, so that a worker may have died while
    /// holding it, perhaps because its handler crashed.
    static func wasRedelivered(_ delivery: Delivery) -> Bool {
        (delivery.properties.headerList[WireHeader.redeliveries]?.integerValue ?? 0) >= 1
    }

    /// Runs a redelivered invocation while the worker has no other redelivered one
    /// unacknowledged, so that a crash during its handler counts against it alone.
    ///
    /// A redelivered invocation that arrives while another one runs is postponed through a
    /// delay queue instead of waiting in the worker. The handler starts only after the worker
    /// postponed the others it received. Other invocations and their consumers go on meanwhile,
    /// so the handler may invoke services of the same worker.
    private func processAlone(_ invocation: Invocation, _ delivery: Delivery, _ reference: DeliveryReference,
                              handler: ServiceHandler) async {
        guard worker.claimRedeliveredRun() else {
            await postpone(delivery, reference, invocation: invocation)
            return
        }
        defer { worker.releaseRedeliveredRun() }

        await worker.waitUntilOnlySuspect()
        logger.notice("running a redelivered invocation alone", metadata: metadata(invocation, [
            "amqpretry.redeliveries": String(delivery.properties.headerList[WireHeader.redeliveries]?.integerValue ?? 0),
        ]))

        let outcome = await call(handler, invocation)
        let action = RetryPolicy.decide(invocation: invocation, outcome: outcome)
        await carryOut(action, invocation: invocation, outcome: outcome, delivery: delivery, reference: reference)
    }

    /// Sends a redelivered invocation unchanged, except for RabbitMQ's dead-lettering headers,
    /// through the delay queue of ``postponeMilliseconds`` back to its service queue, then
    /// acknowledges it.
    private func postpone(_ delivery: Delivery, _ reference: DeliveryReference, invocation: Invocation) async {
        if delayQueueRejection.withLock({ $0.skips(at: .now) }) {
            await postponeInServiceQueue(delivery, reference, invocation: invocation)
            return
        }
        let milliseconds = Self.postponeMilliseconds
        var properties = delivery.properties
        properties.headerList.removeAll(where: Self.isDeadLetteringHeader)
        if let expiration = Topology.retryExpiration(milliseconds: milliseconds, type: queueType) {
            properties.expiration = String(expiration)
        }
        let copy = OutgoingMessage(exchange: TopologyNames.delayExchange(milliseconds: milliseconds),
                                   routingKey: TopologyNames.serviceQueue(invocation.target), mandatory: true,
                                   properties: properties, body: delivery.body)
        logger.info("another redelivered invocation runs; postponing this one", metadata: metadata(invocation, [
            "amqpretry.delay_ms": String(milliseconds),
        ]))
        let topology = Topology.delay(milliseconds: milliseconds, type: queueType)
            + Topology.service(invocation.target, type: queueType)
        do {
            try await connection.publish([copy], declaring: topology, thenAcknowledge: reference)
        } catch where error.code == .channelClosed {
            if let skipped = delayQueueRejection.withLock({ $0.rejected(at: .now) }) {
                logger.error("declaring the delay queue for a postponement failed; postponing in the service queue",
                             metadata: metadata(invocation, [
                                 LogKey.error: error.description,
                                 "amqpretry.skipped_since_last_rejection": String(skipped),
                             ]))
            }
            await postponeInServiceQueue(delivery, reference, invocation: invocation)
        } catch where error.code == .invalidMessage {
            await parkWithCallback(delivery, reference, service: invocation.target,
                                   reason: ParkReason(code: .undeliverable, detail: error.description),
                                   invocation: invocation)
        } catch {
            await requeueLater(reference, after: error, metadata: metadata(invocation))
        }
    }

    /// Postpones a redelivered invocation without the delay queue, whose declaration the broker
    /// rejected (for example because it exists with other arguments). The worker waits
    /// ``postponeMilliseconds`` itself, then sends the invocation to the end of its service
    /// queue. The invocation is not parked, because another one running is no reason to end it.
    /// After a rejection, postponements skip the delay queue for ``rejectedDelayQueueMemory``, so
    /// the broker gets one rejected declaration and the log one error per that time.
    ///
    /// NOTE: The delivery is unacknowledged while it waits, which is nearly all the time while
    /// another redelivered handler runs. A crash during that handler then counts as a
    /// redelivery of every waiting invocation too, as it does not with the delay queue.
    private func postponeInServiceQueue(_ delivery: Delivery, _ reference: DeliveryReference,
                                        invocation: Invocation) async {
        try? await Task.sleep(for: .milliseconds(Self.postponeMilliseconds))

        var properties = delivery.properties
        properties.headerList.removeAll(where: Self.isDeadLetteringHeader)
        await requeueCopy(delivery, reference, properties: properties, service: invocation.target)
    }
}

// MARK: - Carrying out the retry decision

extension WorkerSession {
    private func carryOut(_ action: RetryAction, invocation: Invocation, outcome: CallOutcome,
                          delivery: Delivery, reference: DeliveryReference) async {
        switch action {
        case .reply:
            await reply(invocation, outcome: outcome, delivery: delivery, reference: reference)
        case .retry(let nextAttempt, let delayMilliseconds):
            await retry(invocation, nextAttempt: nextAttempt, delayMilliseconds: delayMilliseconds,
                        outcome: outcome, delivery: delivery, reference: reference)
        case .finish(let ok):
            await finish(invocation, ok: ok, outcome: outcome, delivery: delivery, reference: reference)
        case .park(let reason):
            await park(delivery, reference, service: invocation.target, reason: reason)
        }
    }

    private func reply(_ invocation: Invocation, outcome: CallOutcome, delivery: Delivery,
                       reference: DeliveryReference) async {
        guard let replyTo = delivery.properties.replyTo, !replyTo.isEmpty else {
            logger.warning("sync request without reply_to; the outcome is dropped", metadata: metadata(invocation))
            connection.ack(reference)
            return
        }
        let message = Reply.message(to: replyTo, for: invocation, outcome: outcome)
        await publish([message], declaring: [], replacing: delivery, reference, invocation: invocation)
    }

    private func retry(_ invocation: Invocation, nextAttempt: Int, delayMilliseconds: Int64,
                       outcome: CallOutcome, delivery: Delivery, reference: DeliveryReference) async {
        var next = invocation
        next.attempt = nextAttempt
        if case .failure(let message) = outcome {
            next.lastError = message
        }
        var properties = next.messageProperties(
            expirationMilliseconds: Topology.retryExpiration(milliseconds: delayMilliseconds, type: queueType))
        properties.headerList = Self.republishedHeaders(delivery.properties.headerList,
                                                        replacingWith: properties.headerList)
        let message = OutgoingMessage(
            exchange: TopologyNames.delayExchange(milliseconds: delayMilliseconds),
            routingKey: TopologyNames.serviceQueue(invocation.target), mandatory: true,
            properties: properties, body: invocation.payload.bytes
        )
        logger.info("scheduling a retry", metadata: metadata(invocation, [
            "amqpretry.next_attempt": String(nextAttempt), "amqpretry.delay_ms": String(delayMilliseconds),
        ]))
        let topology = Topology.delay(milliseconds: delayMilliseconds, type: queueType)
            + Topology.service(invocation.target, type: queueType)
        await publish([message], declaring: topology, replacing: delivery, reference, invocation: invocation)
    }

    /// Returns the headers of a republished invocation: the application's own headers, without
    /// the broker's dead-lettering history, and with AMQPRetry's headers replaced.
    ///
    /// Leaving `x-death` in place would make RabbitMQ count each retry as one more
    /// dead-lettering cycle of the same message.
    static func republishedHeaders(_ original: HeaderList, replacingWith own: HeaderList) -> HeaderList {
        var headers = original
        headers.removeAll { isDeadLetteringHeader($0) || $0.hasPrefix("amqpretry-") }
        headers.merge(own)
        return headers
    }

    /// Returns whether RabbitMQ adds the header `key` when it dead-letters a message.
    static func isDeadLetteringHeader(_ key: String) -> Bool {
        key == "x-death" || key.hasPrefix("x-first-death-") || key.hasPrefix("x-last-death-")
    }

    private func finish(_ invocation: Invocation, ok: Bool, outcome: CallOutcome, delivery: Delivery,
                        reference: DeliveryReference) async {
        guard let callback = invocation.callback, invocation.mode == .async else {
            logger.debug("invocation finished", metadata: metadata(invocation, ["amqpretry.ok": String(ok)]))
            connection.ack(reference)
            return
        }
        let body = CallbackBody.make(invocation: invocation, outcome: outcome, attempts: invocation.attempt)
        let message = Self.callbackMessage(body, to: callback, for: invocation)
        logger.info("publishing the callback", metadata: metadata(invocation, [
            LogKey.callback: callback, "amqpretry.ok": String(ok),
        ]))
        await publish([message], declaring: Topology.service(callback, type: queueType), replacing: delivery, reference,
                      invocation: invocation)
    }

    /// Builds the callback of a finished background invocation, addressed to the callback
    /// service's queue with `correlation_id` set to the call's CID.
    static func callbackMessage(_ body: CallbackBody, to callback: String, for invocation: Invocation) -> OutgoingMessage {
        let callbackInvocation = Invocation(
            cid: invocation.cid, mode: .callback, target: callback, attempt: 1, options: invocation.options,
            callback: nil, source: invocation.target, origCID: invocation.origCID, context: invocation.context,
            requestTimestamp: invocation.requestTimestamp, lastError: nil,
            payload: Payload(bytes: body.encoded(), contentType: "application/json")
        )
        return OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(callback), mandatory: true,
                               properties: callbackInvocation.messageProperties(),
                               body: callbackInvocation.payload.bytes)
    }

    /// Moves a message to the parking queue with the reason in its headers, then acknowledges it.
    ///
    /// A message whose headers leave no room for the reason is parked with the reason and its
    /// correlation ID only, so that it is never dropped.
    func park(_ delivery: Delivery, _ reference: DeliveryReference, service: String, reason: ParkReason) async {
        let queue = TopologyNames.serviceQueue(service)
        logger.warning("parking a message", metadata: [
            LogKey.queue: queue, LogKey.reason: reason.description,
            LogKey.cid: delivery.properties.correlationID.map { String($0.prefix(64)) } ?? "",
        ])
        do {
            try await publishParked(delivery, keepingHeaders: true, reason: reason, queue: queue, reference)
        } catch where error.code == .invalidMessage {
            do {
                try await publishParked(delivery, keepingHeaders: false, reason: reason, queue: queue, reference)
            } catch {
                await requeueLater(reference, after: error, metadata: [LogKey.queue: queue])
            }
        } catch {
            await requeueLater(reference, after: error, metadata: [LogKey.queue: queue])
        }
    }

    private func publishParked(_ delivery: Delivery, keepingHeaders: Bool, reason: ParkReason, queue: String,
                               _ reference: DeliveryReference) async throws(AMQPError) {
        var properties = keepingHeaders
            ? delivery.properties
            : MessageProperties(contentType: delivery.properties.contentType,
                                correlationID: delivery.properties.correlationID.map { String($0.prefix(255)) })
        properties.headerList.merge(HeaderList(reason.headers(queue: queue)))
        properties.deliveryMode = 2
        // A per-message TTL would make the broker delete the parked copy when it runs out.
        properties.expiration = nil
        let message = OutgoingMessage(exchange: "", routingKey: TopologyNames.parkingQueue, mandatory: true,
                                      properties: properties, body: delivery.body)
        try await connection.publish([message], declaring: Topology.parking(type: queueType), thenAcknowledge: reference)
    }

    /// Publishes what replaces a delivery, then acknowledges it. A replacement that AMQP cannot
    /// carry (for example headers larger than `frame_max`) parks the delivery instead.
    private func publish(_ messages: [OutgoingMessage], declaring topology: [TopologyItem],
                         replacing delivery: Delivery, _ reference: DeliveryReference,
                         invocation: Invocation) async {
        do {
            try await connection.publish(messages, declaring: topology, thenAcknowledge: reference)
        } catch where error.code == .invalidMessage || error.code == .channelClosed {
            // The message cannot be encoded, or the broker refused to declare where it goes
            // (for example a delay queue declared elsewhere with other arguments).
            await parkWithCallback(delivery, reference, service: invocation.target,
                                   reason: ParkReason(code: .undeliverable, detail: error.description),
                                   invocation: invocation.mode == .async ? invocation : nil)
        } catch {
            await requeueLater(reference, after: error, metadata: metadata(invocation))
        }
    }

    /// Gives a delivery back to its queue after its replacement could not be published; the
    /// broker already redelivers it when the connection was lost.
    private func requeueLater(_ reference: DeliveryReference, after error: AMQPError, metadata: Logger.Metadata) async {
        var metadata = metadata
        metadata[LogKey.error] = error.description
        logger.error("publishing failed; the delivery goes back to its queue", metadata: metadata)
        guard error.code != .connectionLost else { return }
        try? await Task.sleep(for: Self.requeueDelay)
        connection.reject(reference, requeue: true)
    }

    private func metadata(_ invocation: Invocation, _ extra: Logger.Metadata = [:]) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            LogKey.cid: invocation.cid.rawValue, LogKey.target: invocation.target,
            LogKey.attempt: String(invocation.attempt),
        ]
        metadata.merge(extra) { _, new in new }
        return metadata
    }
}
