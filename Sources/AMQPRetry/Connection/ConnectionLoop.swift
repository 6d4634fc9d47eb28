import Foundation

/// The state and loop of one connection's I/O thread.
///
/// The I/O thread holds `stateLock` for everything except its `poll`. While it waits for input,
/// another thread may take the lock to publish on an idle connection with
/// ``publishIfIdle(_:)``. Every other access to the state below happens on the I/O thread.
final class ConnectionLoop: @unchecked Sendable {
    private struct PendingGroup {
        var remaining: Int
        var error: AMQPError?
        let request: AMQPConnection.PublishRequest
        /// The `message_id` of each mandatory message, for matching a `basic.return`.
        let returnableMessageIDs: [String]
    }

    private let connection: AMQPConnection
    /// The lock of the loop's state. It guards the number of publishes that callers' threads
    /// wrote, for tests. With a lock of an empty value, ThreadSanitizer reported the lock's own
    /// accesses as races.
    private let stateLock = Locked(0)
    private var onStarted: ((Result<Void, AMQPError>) -> Void)?
    private let watchdog = Watchdog()
    private var logger: Logger { connection.logger }
    private var configuration: ConnectionConfiguration { connection.configuration }

    private var handle: ConnectionHandle?
    private var generation: UInt64 = 0
    private var backlog: [AMQPConnection.Command] = []
    private var prefetch: UInt16?
    private var consumers: [UInt64: AMQPConnection.Consumer] = [:]
    private var consumerTags: [String: UInt64] = [:]
    /// Consumers cancelled on the current connection, by tag. Deliveries the broker sent before
    /// `basic.cancel-ok` may still wait in librabbitmq's buffers and go to these.
    private var cancelledConsumers: [String: AMQPConnection.Consumer] = [:]
    private var resubscribeAt: [UInt64: UInt64] = [:]

    private var groups: [UInt64: PendingGroup] = [:]
    private var nextGroupID: UInt64 = 1
    private var groupBySequence: [UInt64: UInt64] = [:]
    private var lowestUnconfirmed: UInt64 = 1
    private var sequenceByMessageID: [String: UInt64] = [:]
    private var nextDeadlineScan: UInt64 = 0
    /// The deliveries of the current connection that wait for an ack, so that acks due in the
    /// same turn go out as one `basic.ack` with `multiple` set where AMQP allows it.
    private var acknowledgements = AcknowledgementQueue()
    /// The completions of publish requests whose messages are confirmed and whose delivery's ack
    /// is due, by delivery tag. Each runs once that ack is written.
    private var completionsAwaitingAck: [(deliveryTag: UInt64, completion: AMQPConnection.Completion)] = []
    /// The maximum time, in nanoseconds, that a due ack waits for lower tags whose replacements
    /// wait for their confirms, so that one ack with `multiple` set settles them all. Confirms
    /// normally arrive within milliseconds, and the limit bounds the wait when they stall.
    private static let ackHoldLimit: UInt64 = 20_000_000
    /// Whether the application asked to close the connection, so that no ack is held.
    private var closeRequested = false
    /// The completions whose ack is encoded and waits in the handle's buffer for ``writeOutput()``.
    private var completionsAwaitingWrite: [AMQPConnection.Completion] = []

    private var addressIndex = 0
    /// The `host:port` of the broker of the current or last connection, for log metadata.
    private var currentAddress: String
    private var reconnectAt: UInt64 = 0
    private var backoff: Duration = .milliseconds(100)
    private static let maximumBackoff: Duration = .seconds(5)
    private static let resubscribeDelay: Duration = .seconds(1)
    private static let maximumEventsPerTurn = 512

    init(connection: AMQPConnection, onStarted: @escaping (Result<Void, AMQPError>) -> Void) {
        self.connection = connection
        self.onStarted = onStarted
        self.currentAddress = connection.configuration.brokerAddress
    }

    /// Runs until the connection is closed, or until the first connection attempt fails.
    func run() {
        guard stateLock.withLock({ _ in connectFirst() }) else {
            stateLock.withLock { _ in finish() }
            return
        }
        while turn() {}
        stateLock.withLock { _ in finish() }
    }

    /// Tries every broker address once; fails with the last error when none responds.
    private func connectFirst() -> Bool {
        var lastError = AMQPError(.connectionFailed, operation: "connect")
        for _ in configuration.addresses {
            do {
                try connect()
                onStarted?(.success(()))
                onStarted = nil
                return true
            } catch {
                lastError = error
            }
        }
        onStarted?(.failure(lastError))
        onStarted = nil
        return false
    }

    /// Runs one turn of the loop: takes commands, runs them, reads frames, checks deadlines.
    /// Returns `false` when the loop should end.
    private func turn() -> Bool {
        let wait = stateLock.withLock { _ -> PollRequest? in
            let closing = takeCommands()
            closeRequested = closing
            if handle == nil {
                reconnectIfDue()
            }
            if handle != nil {
                runBacklog()
                resubscribeDueConsumers()
            }
            expireDeadlines()
            sendDueAcks()
            writeOutput()
            if closing && groups.isEmpty && (backlog.isEmpty || handle == nil) {
                return nil
            }
            return pollRequest()
        }
        guard let wait else { return false }

        waitForInput(wait)
        stateLock.withLock { _ in
            readEvents()
            // The confirms just read made acks due. They are written with the next turn's
            // publishes, which follow without waiting for input.
            sendDueAcks()
        }
        return true
    }

    /// Publishes a request on the calling thread, when the connection is idle: connected over
    /// plain TCP, with no command waiting and no publish waiting for its confirm. Returns
    /// `false` without waiting when it is not, or when the I/O thread is busy, so that the
    /// caller enqueues the request instead.
    ///
    /// A publish on an idle connection then costs no wake-up of the I/O thread, which matters
    /// for a blocking call. Under load the I/O thread keeps publishing, so that it writes the
    /// publishes of a whole turn with one system call. The caller's thread writes only what the
    /// socket takes at once, and wakes the I/O thread to write the rest, so that a broker that
    /// stops reading never blocks a caller past its own timeout. A TLS connection is never idle
    /// here, because librabbitmq's TLS writes block.
    func publishIfIdle(_ request: AMQPConnection.PublishRequest) -> Bool {
        let outcome = stateLock.withLockIfAvailable { callerPublishes -> (published: Bool, wake: Bool) in
            guard let handle, handle.buffersFrames, groups.isEmpty, backlog.isEmpty, !handle.hasFramesToWrite,
                  connection.inbox.withLock({ !$0.closing && $0.commands.isEmpty }) else {
                return (false, false)
            }
            callerPublishes += 1
            do throws(AMQPError) {
                // On a plain TCP connection this only encodes the frames, so it cannot block.
                try publish(request, on: handle)
            } catch {
                drop(error)
                return (true, true)
            }
            let written = writeOutputWithoutWaiting()
            return (true, !written || self.handle == nil)
        }
        guard let outcome else { return false }
        if outcome.wake {
            // The I/O thread writes what is left, or reconnects after a dropped connection.
            connection.wakeup.signal()
        }
        return outcome.published
    }

    /// The number of publishes that ``publishIfIdle(_:)`` wrote on callers' threads.
    var callerPublishCount: Int {
        stateLock.withLock { $0 }
    }

    private func takeCommands() -> Bool {
        let (commands, closing) = connection.inbox.withLock { inbox in
            defer { inbox.commands.removeAll(keepingCapacity: true) }
            return (inbox.commands, inbox.closing)
        }
        backlog.append(contentsOf: commands)
        return closing
    }

    private func finish() {
        connection.idlePublisher.withLock { $0 = nil }
        handle?.close()
        handle = nil
        watchdog.watch(socketDescriptor: -1)
        let error = AMQPError(.closed, operation: "close")
        failAllGroups(with: error)
        let (commands, waiters) = connection.inbox.withLock { inbox in
            inbox.finished = true
            inbox.closing = true
            defer {
                inbox.commands.removeAll()
                inbox.onClosed.removeAll()
            }
            return (inbox.commands, inbox.onClosed)
        }
        for command in backlog + commands {
            Self.fail(command, with: error)
        }
        backlog.removeAll()
        waiters.forEach { $0() }
    }
}

// MARK: - Connecting

extension ConnectionLoop {
    /// Connects to the current broker address; a failure moves on to the next address, so that
    /// the following attempt tries another node of the cluster.
    private func connect() throws(AMQPError) {
        let addresses = configuration.addresses
        let address = addresses[addressIndex % addresses.count]
        var attempt = configuration.connecting(to: address)
        attempt.connectionTimeout = connectTimeout()
        let newHandle: ConnectionHandle
        do {
            newHandle = try ConnectionHandle(configuration: attempt, connectionName: connection.name)
        } catch {
            addressIndex += 1
            throw error
        }
        generation += 1
        handle = newHandle
        watchdog.watch(socketDescriptor: newHandle.socketDescriptor)
        groupBySequence.removeAll()
        sequenceByMessageID.removeAll()
        lowestUnconfirmed = 1
        acknowledgements.removeAll()
        do {
            try restore(newHandle)
        } catch {
            drop(error)
            throw error
        }
        backoff = .milliseconds(100)
        currentAddress = configuration.connecting(to: address).brokerAddress
        logger.debug("connected to RabbitMQ", metadata: [LogKey.broker: currentAddress])
    }

    /// The timeout of one connection attempt.
    ///
    /// A reconnect waits at most `operationTimeout`, and less when a waiting command's deadline
    /// comes sooner, so that a broker that does not respond never keeps the I/O thread past a
    /// caller's deadline. The next attempt follows after the backoff.
    private func connectTimeout() -> Duration {
        guard generation > 0 else { return configuration.connectionTimeout }
        var timeout = min(configuration.connectionTimeout, configuration.operationTimeout)
        let now = MonotonicClock.now()
        if let earliest = backlog.compactMap(Self.deadline(of:)).filter({ $0 > now }).min() {
            timeout = min(timeout, Duration.nanoseconds(Int64(clamping: earliest - now)))
        }
        return max(.milliseconds(100), timeout)
    }

    private func restore(_ handle: ConnectionHandle) throws(AMQPError) {
        try watchdog.guarding(configuration.operationTimeout) { () throws(AMQPError) in
            if let prefetch {
                try handle.setPrefetch(prefetch)
            }
            consumerTags.removeAll()
            cancelledConsumers.removeAll()
            resubscribeAt.removeAll()
            for id in consumers.keys.sorted() {
                try subscribe(id, on: handle)
            }
        }
    }

    private func subscribe(_ id: UInt64, on handle: ConnectionHandle) throws(AMQPError) {
        guard let consumer = consumers[id] else { return }
        for item in consumer.topology {
            try handle.declare(item)
        }
        let tag = try handle.consume(queue: consumer.queue, noAck: consumer.noAck)
        consumerTags[tag] = id
    }

    private func reconnectIfDue() {
        guard MonotonicClock.now() >= reconnectAt else { return }
        do {
            try connect()
            logger.notice("reconnected to RabbitMQ", metadata: [LogKey.broker: currentAddress])
        } catch {
            // The error names the broker address that failed.
            logger.warning("reconnecting to RabbitMQ failed", metadata: [LogKey.error: error.description])
            // Another node is tried at once; the backoff grows after every address failed.
            let roundFailed = addressIndex % configuration.addresses.count == 0
            reconnectAt = roundFailed ? MonotonicClock.deadline(after: backoff) : 0
            if roundFailed {
                backoff = min(backoff * 2, Self.maximumBackoff)
            }
        }
    }

    /// Abandons the current connection after an error; the loop reconnects after a backoff.
    private func drop(_ error: AMQPError) {
        guard let dropped = handle else { return }
        logger.warning("connection to RabbitMQ lost", metadata: [
            LogKey.broker: currentAddress, LogKey.error: error.description,
        ])
        dropped.abandon()
        handle = nil
        watchdog.watch(socketDescriptor: -1)
        // The node that failed is the least likely to accept a new connection at once, so the
        // next node is tried first.
        addressIndex += 1
        failAllGroups(with: AMQPError(.connectionLost, operation: error.operation,
                                      replyCode: error.replyCode, replyText: error.replyText))
        reconnectAt = MonotonicClock.deadline(after: backoff)
        backoff = min(backoff * 2, Self.maximumBackoff)
    }
}

// MARK: - Commands

extension ConnectionLoop {
    private func runBacklog() {
        let commands = backlog
        backlog.removeAll(keepingCapacity: true)
        for (index, command) in commands.enumerated() {
            guard let handle else {
                backlog.append(contentsOf: commands[index...])
                return
            }
            do {
                try watchdog.guarding(configuration.operationTimeout) { () throws(AMQPError) in
                    try run(command, on: handle)
                }
            } catch {
                drop(error)
            }
        }
    }

    private func run(_ command: AMQPConnection.Command, on handle: ConnectionHandle) throws(AMQPError) {
        switch command {
        case .publish(let request):
            try publish(request, on: handle)
        case .ack(let delivery):
            if delivery.generation == generation, !acknowledgements.ackDue(delivery.deliveryTag) {
                try handle.ack(deliveryTag: delivery.deliveryTag)
            }
        case .reject(let delivery, let requeue):
            if delivery.generation == generation {
                acknowledgements.rejected(delivery.deliveryTag)
                try handle.reject(deliveryTag: delivery.deliveryTag, requeue: requeue)
            }
        case .perform(_, _, let body, let failure):
            do {
                try body(handle)
            } catch {
                failure(error)
                // A refused declare closed only the topology channel, which the handle reopened.
                if error.code == .connectionLost || error.code == .timeout || error.code == .libraryError {
                    throw error
                }
            }
        case .addConsumers(let entries, _, let completion):
            for entry in entries {
                consumers[entry.id] = entry.consumer
            }
            do {
                for entry in entries {
                    try subscribe(entry.id, on: handle)
                }
                completion(.success(()))
            } catch {
                // The connection is dropped below, which cancels whatever did subscribe.
                for entry in entries {
                    consumers[entry.id] = nil
                }
                completion(.failure(error))
                throw error
            }
        case .removeConsumer(let id, let completion):
            try removeConsumer(id, on: handle, completion: completion)
        case .setPrefetch(let count, let completion):
            prefetch = count
            do {
                try handle.setPrefetch(count)
                completion(.success(()))
            } catch {
                completion(.failure(error))
                throw error
            }
        }
    }

    private func removeConsumer(_ id: UInt64, on handle: ConnectionHandle,
                                completion: AMQPConnection.Completion) throws(AMQPError) {
        let consumer = consumers.removeValue(forKey: id)
        resubscribeAt[id] = nil
        guard let tag = consumerTags.first(where: { $0.value == id })?.key else {
            completion(.success(()))
            return
        }
        consumerTags[tag] = nil
        cancelledConsumers[tag] = consumer
        do {
            try handle.cancel(consumerTag: tag)
            completion(.success(()))
        } catch {
            completion(.failure(error))
            throw error
        }
    }

    private func publish(_ request: AMQPConnection.PublishRequest, on handle: ConnectionHandle) throws(AMQPError) {
        // A delivery from an earlier connection is redelivered by the broker, so publishing
        // its replacement now would only make a duplicate.
        if let delivery = request.acknowledging, delivery.generation != generation {
            request.completion(.failure(AMQPError(.connectionLost, operation: "basic.publish",
                                                  replyText: "the delivery belongs to a closed connection")))
            return
        }
        let messages = request.messages.map(Self.withMessageID)
        do {
            for message in messages {
                try FrameSize.validate(message, frameMax: handle.frameMax)
            }
        } catch {
            request.completion(.failure(error))
            return
        }

        let groupID = nextGroupID
        nextGroupID += 1
        let returnable = messages.filter(\.mandatory).compactMap(\.properties.messageID)
        groups[groupID] = PendingGroup(remaining: messages.count, error: nil, request: request,
                                       returnableMessageIDs: returnable)
        for message in messages {
            let sequence = try handle.publish(message)
            groupBySequence[sequence] = groupID
            if message.mandatory, let messageID = message.properties.messageID {
                sequenceByMessageID[messageID] = sequence
            }
        }
        if request.messages.isEmpty {
            try completeGroup(groupID)
        } else if let delivery = request.acknowledging {
            acknowledgements.replacementPublished(delivery.deliveryTag)
        }
    }

    /// Gives a message a `message_id` when it has none, so that a `basic.return` can be matched
    /// to its publish.
    private static func withMessageID(_ message: OutgoingMessage) -> OutgoingMessage {
        guard message.properties.messageID == nil else { return message }
        var copy = message
        copy.properties.messageID = MessageID.random()
        return copy
    }

    /// Completes a command that never ran, for example because the connection was closed.
    static func fail(_ command: AMQPConnection.Command, with error: AMQPError) {
        switch command {
        case .publish(let request): request.completion(.failure(error))
        case .perform(_, _, _, let failure): failure(error)
        case .addConsumers(_, _, let completion): completion(.failure(error))
        case .removeConsumer(_, let completion): completion(.failure(error))
        case .setPrefetch(_, let completion): completion(.failure(error))
        case .ack, .reject: break
        }
    }
}

// MARK: - Inbound frames

extension ConnectionLoop {
    /// The input the I/O thread waits for outside `stateLock`: its socket and the wake-up pipe.
    private struct PollRequest {
        /// The handle whose socket is polled, kept alive so that its descriptor stays open
        /// even when another thread drops the connection meanwhile.
        let handle: ConnectionHandle?
        let skip: Bool
        let timeoutMilliseconds: Int32
    }

    private func pollRequest() -> PollRequest {
        PollRequest(handle: handle, skip: handle?.hasBufferedFrames ?? false,
                    timeoutMilliseconds: pollTimeoutMilliseconds())
    }

    private func waitForInput(_ request: PollRequest) {
        guard !request.skip else { return }
        var descriptors = [pollfd(fd: connection.wakeup.descriptor, events: Int16(POLLIN), revents: 0)]
        if let handle = request.handle {
            descriptors.append(pollfd(fd: handle.socketDescriptor, events: Int16(POLLIN), revents: 0))
        }
        _ = poll(&descriptors, nfds_t(descriptors.count), request.timeoutMilliseconds)
        if descriptors[0].revents != 0 {
            connection.wakeup.drain()
        }
    }

    /// Waits at most 200 ms, so that heartbeats, deadlines and reconnects are checked often,
    /// and no longer than held acks may wait.
    private func pollTimeoutMilliseconds() -> Int32 {
        var timeout: UInt64 = 200_000_000
        let now = MonotonicClock.now()
        if handle == nil, reconnectAt > now {
            timeout = min(timeout, reconnectAt - now)
        }
        if let heldSince = acknowledgements.heldSince {
            let release = heldSince + Self.ackHoldLimit
            timeout = min(timeout, release > now ? release - now : 0)
        }
        // Rounded up, so that a wait shorter than a millisecond does not poll without waiting.
        return Int32((timeout + 999_999) / 1_000_000)
    }

    private func readEvents() {
        guard let handle else { return }
        do {
            try watchdog.guarding(configuration.operationTimeout) { () throws(AMQPError) in
                for index in 0..<Self.maximumEventsPerTurn {
                    // The first read also lets librabbitmq send and check heartbeats. After it,
                    // an empty buffer ends the turn on plain TCP, because one more read would
                    // only cost a `recv` and a `poll` on an empty socket. The next turn's `poll`
                    // returns at once when more has arrived. On TLS, OpenSSL may hold records
                    // that neither librabbitmq's buffer nor `poll` shows, so those connections
                    // read until librabbitmq reports nothing.
                    if index > 0 && handle.buffersFrames && !handle.hasBufferedFrames {
                        break
                    }
                    guard let event = try handle.nextEvent() else { break }
                    try handleEvent(event)
                    if self.handle == nil { break }
                }
            }
            handle.releaseBuffers()
            // basic.cancel waits for its cancel-ok, and the broker sends nothing to a tag after
            // that, so once the buffers are empty no delivery for a cancelled consumer is left.
            if !cancelledConsumers.isEmpty && !handle.hasBufferedFrames {
                cancelledConsumers.removeAll()
            }
        } catch {
            drop(error)
        }
    }

    private func handleEvent(_ event: InboundEvent) throws(AMQPError) {
        switch event {
        case .delivery(let delivery):
            dispatch(delivery)
        case .confirmAck(let sequence, let multiple):
            try confirm(sequence, multiple: multiple, error: nil)
        case .confirmNack(let sequence, let multiple):
            try confirm(sequence, multiple: multiple, error: AMQPError(.publishNacked, operation: "basic.publish"))
        case .returned(let messageID, let routingKey, let replyCode, let replyText):
            markReturned(messageID: messageID, routingKey: routingKey, replyCode: replyCode, replyText: replyText)
        case .consumerCancelled(let tag):
            consumerCancelled(tag)
        case .closed(let error):
            drop(error)
        case .blocked(let reason):
            logger.warning("RabbitMQ blocked publishing on this connection", metadata: [
                LogKey.broker: currentAddress, LogKey.reason: reason,
            ])
        case .unblocked:
            logger.notice("RabbitMQ unblocked publishing on this connection",
                          metadata: [LogKey.broker: currentAddress])
        }
    }

    private func dispatch(_ delivery: Delivery) {
        let reference = AMQPConnection.DeliveryReference(generation: generation, deliveryTag: delivery.deliveryTag)
        let active = consumerTags[delivery.consumerTag].flatMap { consumers[$0] }
        guard let consumer = active ?? cancelledConsumers[delivery.consumerTag] else {
            // No consumer of this connection has the tag: give the message back to its queue.
            try? handle?.reject(deliveryTag: delivery.deliveryTag, requeue: true)
            return
        }
        if !consumer.noAck {
            acknowledgements.delivered(delivery.deliveryTag)
        }
        consumer.onDelivery(delivery, reference)
    }

    private func consumerCancelled(_ tag: String) {
        guard let id = consumerTags.removeValue(forKey: tag), let consumer = consumers[id] else { return }
        logger.warning("RabbitMQ cancelled a consumer; resubscribing", metadata: [LogKey.queue: consumer.queue])
        resubscribeAt[id] = MonotonicClock.deadline(after: Self.resubscribeDelay)
    }

    private func resubscribeDueConsumers() {
        let now = MonotonicClock.now()
        for (id, time) in resubscribeAt where time <= now {
            resubscribeAt[id] = nil
            guard let handle else { return }
            do {
                try watchdog.guarding(configuration.operationTimeout) { () throws(AMQPError) in
                    try subscribe(id, on: handle)
                }
            } catch {
                drop(error)
                return
            }
        }
    }
}

// MARK: - Publisher confirms

extension ConnectionLoop {
    private func confirm(_ sequence: UInt64, multiple: Bool, error: AMQPError?) throws(AMQPError) {
        if multiple {
            while lowestUnconfirmed <= sequence {
                try confirmOne(lowestUnconfirmed, error: error)
                lowestUnconfirmed += 1
            }
        } else {
            try confirmOne(sequence, error: error)
            while lowestUnconfirmed < (handle?.nextPublishSequence ?? 0),
                  groupBySequence[lowestUnconfirmed] == nil {
                lowestUnconfirmed += 1
            }
        }
    }

    private func confirmOne(_ sequence: UInt64, error: AMQPError?) throws(AMQPError) {
        guard let groupID = groupBySequence.removeValue(forKey: sequence) else { return }
        guard var group = groups[groupID] else { return }
        group.remaining -= 1
        if let error, group.error == nil {
            group.error = error
        }
        groups[groupID] = group
        if group.remaining == 0 {
            try completeGroup(groupID)
        }
    }

    private func markReturned(messageID: String?, routingKey: String, replyCode: UInt16, replyText: String) {
        guard let messageID, let sequence = sequenceByMessageID.removeValue(forKey: messageID),
              let groupID = groupBySequence[sequence], var group = groups[groupID] else { return }
        group.error = AMQPError(.unroutable, operation: "basic.publish to '\(routingKey)'",
                                replyCode: replyCode, replyText: replyText)
        groups[groupID] = group
    }

    private func completeGroup(_ groupID: UInt64) throws(AMQPError) {
        guard let group = groups.removeValue(forKey: groupID) else { return }
        for messageID in group.returnableMessageIDs {
            sequenceByMessageID[messageID] = nil
        }
        if let error = group.error {
            group.request.completion(.failure(error))
            return
        }
        if let delivery = group.request.acknowledging {
            guard delivery.generation == generation, let handle else {
                group.request.completion(.failure(AMQPError(.connectionLost, operation: "basic.ack")))
                return
            }
            guard acknowledgements.ackDue(delivery.deliveryTag) else {
                do {
                    try handle.ack(deliveryTag: delivery.deliveryTag)
                } catch {
                    group.request.completion(.failure(error))
                    throw error
                }
                completionsAwaitingWrite.append(group.request.completion)
                return
            }
            completionsAwaitingAck.append((delivery.deliveryTag, group.request.completion))
            return
        }
        group.request.completion(.success(()))
    }

    /// Sends the acks that became due since the last call, combining runs of tags and holding
    /// the others for up to ``ackHoldLimit``. On a plain TCP connection the handle buffers them
    /// until ``writeOutput()``, and either way the publish requests that waited for them
    /// complete there.
    private func sendDueAcks() {
        guard acknowledgements.hasDueAcks, let handle else { return }
        let holdLimit = closeRequested ? 0 : Self.ackHoldLimit
        let acks = acknowledgements.takeAcks(now: MonotonicClock.now(), holdLimit: holdLimit)
        guard !acks.isEmpty else { return }

        completionsAwaitingAck.removeAll { entry in
            guard !acknowledgements.isDue(entry.deliveryTag) else { return false }
            completionsAwaitingWrite.append(entry.completion)
            return true
        }

        do {
            try watchdog.guarding(configuration.operationTimeout) { () throws(AMQPError) in
                for ack in acks {
                    try handle.ack(deliveryTag: ack.deliveryTag, multiple: ack.multiple)
                }
            }
        } catch {
            drop(error)
        }
    }

    /// Writes what the socket takes of the encoded frames without waiting, and completes the
    /// publish requests whose acks went out. Returns `false` when frames are left for
    /// ``writeOutput()``, which then runs the other completions.
    private func writeOutputWithoutWaiting() -> Bool {
        guard let handle else { return true }
        let written: Bool
        do {
            written = try handle.writeFramesWithoutWaiting()
        } catch {
            completeWrite(.failure(error))
            drop(error)
            return true
        }
        guard written else { return false }
        completeWrite(.success(()))
        return true
    }

    /// Writes the frames this turn encoded, then completes the publish requests whose acks
    /// were among them.
    private func writeOutput() {
        guard let handle else { return }
        do {
            try watchdog.guarding(configuration.operationTimeout) { () throws(AMQPError) in
                try handle.writeFrames()
            }
        } catch {
            completeWrite(.failure(error))
            drop(error)
            return
        }
        completeWrite(.success(()))
    }

    /// Runs the completions that waited for their acks to be written.
    private func completeWrite(_ result: Result<Void, AMQPError>) {
        let completions = completionsAwaitingWrite
        completionsAwaitingWrite.removeAll(keepingCapacity: true)
        for completion in completions {
            completion(result)
        }
    }

    private func failAllGroups(with error: AMQPError) {
        let pending = groups
        groups.removeAll()
        groupBySequence.removeAll()
        sequenceByMessageID.removeAll()
        for group in pending.values {
            group.request.completion(.failure(error))
        }
        // Their acks can no longer be sent, so the broker redelivers those deliveries.
        acknowledgements.removeAll()
        let awaitingAck = completionsAwaitingAck.map(\.completion) + completionsAwaitingWrite
        completionsAwaitingAck.removeAll()
        completionsAwaitingWrite.removeAll()
        for completion in awaitingAck {
            completion(.failure(error))
        }
    }

    /// Fails publishes whose confirm is late and commands that waited too long for a connection.
    private func expireDeadlines() {
        let now = MonotonicClock.now()
        guard now >= nextDeadlineScan else { return }
        nextDeadlineScan = now + 50_000_000

        for (groupID, group) in groups where group.request.deadline < now {
            groups[groupID] = nil
            for messageID in group.returnableMessageIDs {
                sequenceByMessageID[messageID] = nil
            }
            group.request.completion(.failure(AMQPError(
                .timeout, operation: "basic.publish",
                replyText: "no publisher confirm within \(configuration.operationTimeout)")))
        }
        guard handle == nil else { return }
        backlog.removeAll { command in
            guard let deadline = Self.deadline(of: command), deadline < now else { return false }
            Self.fail(command, with: AMQPError(.timeout, operation: "connect to \(currentAddress)",
                                               replyText: "no connection to RabbitMQ within \(configuration.operationTimeout)"))
            return true
        }
    }

    private static func deadline(of command: AMQPConnection.Command) -> UInt64? {
        switch command {
        case .publish(let request): return request.deadline
        case .perform(_, let deadline, _, _): return deadline
        case .addConsumers(_, let deadline, _): return deadline
        case .ack, .reject: return 0
        case .removeConsumer, .setPrefetch: return nil
        }
    }
}
