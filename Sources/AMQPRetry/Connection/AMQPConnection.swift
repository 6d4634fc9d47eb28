import Foundation
import Synchronization

/// A connection to RabbitMQ whose frames are all owned by one I/O thread.
///
/// Callers on any thread or task enqueue commands; the I/O thread runs them against
/// librabbitmq, reads every inbound frame (deliveries, publisher confirms, returns, consumer
/// cancellations, closes and heartbeats), and completes the commands. The one exception is a
/// publish on an idle plain TCP connection: the caller's thread encodes its frames and writes
/// what the socket takes without waiting (``ConnectionLoop/publishIfIdle(_:)``). No call that
/// can block runs on Swift's cooperative thread pool. After a connection is lost the thread
/// reconnects with backoff and restores the prefetch and the consumers. Deliveries from the old
/// connection can no longer be acknowledged, so the broker redelivers them.
final class AMQPConnection: Sendable {
    /// Completes a command; the I/O thread calls it once.
    typealias Completion = @Sendable (Result<Void, AMQPError>) -> Void

    /// A delivery as the I/O thread saw it: the tag plus the connection it arrived on.
    struct DeliveryReference: Sendable, Hashable {
        /// The number of the connection the delivery arrived on; 1 for the first connection.
        let generation: UInt64
        /// The delivery tag on that connection's channel.
        let deliveryTag: UInt64
    }

    /// A consumer that the I/O thread restores after every reconnect.
    struct Consumer: Sendable {
        /// The queue to consume from.
        let queue: String
        /// Whether the broker considers deliveries acknowledged as soon as it sends them.
        let noAck: Bool
        /// The topology declared before consuming, so that a deleted queue comes back.
        let topology: [TopologyItem]
        /// Called on the I/O thread for each delivery; must return quickly.
        let onDelivery: @Sendable (Delivery, DeliveryReference) -> Void
    }

    /// A group of messages published together, optionally followed by the ack of a delivery
    /// once every message in the group is confirmed.
    struct PublishRequest: Sendable {
        let messages: [OutgoingMessage]
        let acknowledging: DeliveryReference?
        let deadline: UInt64
        let completion: Completion
    }

    enum Command: Sendable {
        case publish(PublishRequest)
        case ack(DeliveryReference)
        case reject(DeliveryReference, requeue: Bool)
        case perform(operation: String, deadline: UInt64, body: @Sendable (ConnectionHandle) throws(AMQPError) -> Void,
                     failure: @Sendable (AMQPError) -> Void)
        case addConsumers([(id: UInt64, consumer: Consumer)], deadline: UInt64, completion: Completion)
        case removeConsumer(id: UInt64, completion: Completion)
        case setPrefetch(UInt16, completion: Completion)
    }

    struct Inbox: ~Copyable {
        var commands: [Command] = []
        var closing = false
        var finished = false
        var onClosed: [@Sendable () -> Void] = []
    }

    let configuration: ConnectionConfiguration
    let name: String
    let logger: Logger
    let inbox = Locked(Inbox())
    let wakeup: Wakeup
    private let nextConsumerID = Atomic<UInt64>(1)
    /// Topology items declared on this connection, so each is declared once, not per publish.
    let declaredTopology = Locked(DeclaredTopology())
    /// The loop that publishes on an idle connection from the caller's thread, from ``start()``
    /// until the I/O thread ends.
    let idlePublisher = Locked<ConnectionLoop?>(nil)

    /// Creates a connection object; nothing is sent until ``start()``.
    init(configuration: ConnectionConfiguration, name: String, logger: Logger) {
        self.configuration = configuration
        self.name = name
        self.logger = logger
        self.wakeup = Wakeup()
    }

    /// Connects and starts the I/O thread; throws when the first connection attempt fails.
    func start() async throws(AMQPError) {
        if let tls = configuration.tls, !tls.verifyPeer || !tls.verifyHostname {
            logger.warning("TLS certificate or host name verification is off; the broker's identity is not checked",
                           metadata: [LogKey.broker: configuration.brokerAddress])
        }
        let result: Result<Void, AMQPError> = await withCheckedContinuation { continuation in
            let loop = ConnectionLoop(connection: self) { continuation.resume(returning: $0) }
            idlePublisher.withLock { $0 = loop }
            let thread = Thread { loop.run() }
            thread.name = "amqpretry-io \(name)"
            thread.start()
        }
        try result.get()
    }

    /// Publishes messages, waits for every publisher confirm, then acknowledges `delivery`.
    ///
    /// Throws ``AMQPError`` with `unroutable` when a mandatory message came back, `publishNacked`
    /// on a `basic.nack`, `timeout` when a confirm is late, and `connectionLost` when the
    /// connection broke first; in each case `delivery` is not acknowledged.
    func publish(_ messages: [OutgoingMessage], thenAcknowledge delivery: DeliveryReference? = nil) async throws(AMQPError) {
        let deadline = MonotonicClock.deadline(after: configuration.operationTimeout)
        let result: Result<Void, AMQPError> = await withCheckedContinuation { continuation in
            let request = PublishRequest(messages: messages, acknowledging: delivery, deadline: deadline) {
                continuation.resume(returning: $0)
            }
            enqueue(.publish(request))
        }
        try result.get()
    }

    /// Publishes messages without waiting: `completion` runs on the I/O thread once every
    /// message is confirmed, or with the error that ``publish(_:thenAcknowledge:)`` would throw.
    func publish(_ messages: [OutgoingMessage], completion: @escaping Completion) {
        let deadline = MonotonicClock.deadline(after: configuration.operationTimeout)
        enqueue(.publish(PublishRequest(messages: messages, acknowledging: nil, deadline: deadline,
                                        completion: completion)))
    }

    /// Acknowledges a delivery with `basic.ack`; a no-op for a delivery of an earlier connection.
    func ack(_ delivery: DeliveryReference) {
        enqueue(.ack(delivery))
    }

    /// Rejects a delivery with `basic.reject`; a no-op for a delivery of an earlier connection.
    func reject(_ delivery: DeliveryReference, requeue: Bool) {
        enqueue(.reject(delivery, requeue: requeue))
    }

    /// Runs a step on the I/O thread with the live connection and returns its result.
    ///
    /// A declare, delete or purge that the broker refuses closes only the topology channel,
    /// which the handle reopens. A step that loses the connection or overruns its deadline drops
    /// the connection, which the I/O thread then replaces.
    func perform<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (ConnectionHandle) throws(AMQPError) -> T
    ) async throws(AMQPError) -> T {
        let deadline = MonotonicClock.deadline(after: configuration.operationTimeout)
        let result: Result<T, AMQPError> = await withCheckedContinuation { continuation in
            let box = ResumeOnce(continuation)
            enqueue(.perform(operation: operation, deadline: deadline, body: { (handle) throws(AMQPError) in
                box.resume(.success(try body(handle)))
            }, failure: { box.resume(.failure($0)) }))
        }
        return try result.get()
    }

    /// Declares topology items in order and returns the counts of each declared queue.
    func declare(_ items: [TopologyItem]) async throws(AMQPError) -> [QueueCounts?] {
        try await perform("declare") { (handle) throws(AMQPError) in
            var counts: [QueueCounts?] = []
            for item in items {
                counts.append(try handle.declare(item))
            }
            return counts
        }
    }

    /// Sets the prefetch count, now and after every reconnect.
    ///
    /// A lost connection does not fail this call, because the I/O thread keeps the count and
    /// sets it first on the next connection.
    func setPrefetch(_ count: UInt16) async throws(AMQPError) {
        let result: Result<Void, AMQPError> = await withCheckedContinuation { continuation in
            enqueue(.setPrefetch(count) { continuation.resume(returning: $0) })
        }
        if case .failure(let error) = result, error.code == .connectionLost {
            return
        }
        try result.get()
    }

    /// Declares the consumer's topology and starts consuming, now and after every reconnect.
    /// Returns an ID for ``removeConsumer(_:)``.
    func addConsumer(_ consumer: Consumer) async throws(AMQPError) -> UInt64 {
        try await addConsumers([consumer])[0]
    }

    /// Starts several consumers in one step of the I/O thread, so that no handler of the first
    /// can publish, and perhaps get the connection blocked, before the last is subscribed.
    /// Returns their IDs in order; on failure none of them stays subscribed.
    ///
    /// When the connection is lost meanwhile, the consumers are subscribed again on the next
    /// connection, in at most ``maximumSubscribeAttempts`` attempts within one
    /// `operationTimeout`, with a pause before each that grows from 100 ms to 5 s. The broker
    /// itself can cause that: a `basic.consume` on a quorum queue whose member on the connected
    /// node is not running yet, as just after another node declared the queue, closes the
    /// connection with 541 INTERNAL_ERROR. A cancelled task makes no further attempt.
    func addConsumers(_ consumers: [Consumer]) async throws(AMQPError) -> [UInt64] {
        let entries = consumers.map { (id: nextConsumerID.add(1, ordering: .relaxed).oldValue, consumer: $0) }
        let deadline = MonotonicClock.deadline(after: configuration.operationTimeout)
        var lastLoss: AMQPError?
        var pause = Self.firstSubscribePause
        for attempt in 1...Self.maximumSubscribeAttempts {
            let result = await subscribe(entries, deadline: deadline)
            guard case .failure(let error) = result else { break }

            // Each connection that opens resets the I/O thread's backoff to 100 ms, so this
            // pause is what spreads the attempts over the operation timeout.
            let retry = error.code == .connectionLost && attempt < Self.maximumSubscribeAttempts
                && MonotonicClock.deadline(after: pause) < deadline && !Task.isCancelled
            guard retry else {
                // The lost connection's reply names the cause, which a later timeout would hide.
                throw error.code == .timeout ? lastLoss ?? error : error
            }
            lastLoss = error
            logger.notice("subscribing again on the next connection", metadata: [
                LogKey.queue: consumers.map(\.queue).joined(separator: ","),
                LogKey.error: error.description,
                "amqpretry.delay_ms": String(pause.nanoseconds / 1_000_000),
            ])
            try? await Task.sleep(for: pause)
            if Task.isCancelled {
                throw error
            }
            pause = min(pause * 2, Self.maximumSubscribePause)
        }
        return entries.map(\.id)
    }

    private func subscribe(_ entries: [(id: UInt64, consumer: Consumer)], deadline: UInt64) async
        -> Result<Void, AMQPError> {
        await withCheckedContinuation { continuation in
            enqueue(.addConsumers(entries, deadline: deadline) { continuation.resume(returning: $0) })
        }
    }

    /// The maximum number of times ``addConsumers(_:)`` subscribes after a lost connection.
    static let maximumSubscribeAttempts = 8
    /// The pause of ``addConsumers(_:)`` before it subscribes again. It doubles after each
    /// attempt, up to ``maximumSubscribePause``.
    static let firstSubscribePause: Duration = .milliseconds(100)
    static let maximumSubscribePause: Duration = .seconds(5)

    /// Cancels a consumer with `basic.cancel`; deliveries already sent to it still arrive.
    func removeConsumer(_ id: UInt64) async throws(AMQPError) {
        let result: Result<Void, AMQPError> = await withCheckedContinuation { continuation in
            enqueue(.removeConsumer(id: id) { continuation.resume(returning: $0) })
        }
        try result.get()
    }

    /// Runs the commands already enqueued, waits for their confirms, closes the connection and
    /// stops the I/O thread.
    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let alreadyClosed = inbox.withLock { inbox -> Bool in
                if inbox.finished {
                    return true
                }
                inbox.closing = true
                inbox.onClosed.append { continuation.resume() }
                return false
            }
            if alreadyClosed {
                continuation.resume()
            }
            wakeup.signal()
        }
    }

    /// The number of publishes written on callers' threads because the connection was idle.
    var callerPublishCount: Int {
        idlePublisher.withLock { $0 }?.callerPublishCount ?? 0
    }

    private func enqueue(_ command: Command) {
        if case .publish(let request) = command, let loop = idlePublisher.withLock({ $0 }),
           loop.publishIfIdle(request) {
            return
        }
        let (accepted, wasEmpty) = inbox.withLock { inbox -> (Bool, Bool) in
            guard !inbox.closing else { return (false, false) }
            let wasEmpty = inbox.commands.isEmpty
            inbox.commands.append(command)
            return (true, wasEmpty)
        }
        guard accepted else {
            ConnectionLoop.fail(command, with: AMQPError(.closed, operation: "enqueue"))
            return
        }
        // Commands already waiting mean a wake-up is pending too: the I/O thread takes the
        // whole inbox between clearing the pipe and its next poll.
        if wasEmpty {
            wakeup.signal()
        }
    }
}

/// Resumes a continuation at most once, whichever of two paths gets there first.
final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Locked<CheckedContinuation<T, Never>?>

    init(_ continuation: CheckedContinuation<T, Never>) {
        self.continuation = Locked(continuation)
    }

    func resume(_ value: T) {
        let taken = continuation.withLock { stored -> CheckedContinuation<T, Never>? in
            defer { stored = nil }
            return stored
        }
        taken?.resume(returning: value)
    }
}

/// A non-blocking pipe that wakes the I/O thread from `poll` when a command arrives.
final class Wakeup: Sendable {
    /// The end the I/O thread polls.
    let descriptor: Int32
    private let writeDescriptor: Int32

    init() {
        var descriptors: [Int32] = [-1, -1]
        let status = pipe(&descriptors)
        precondition(status == 0, "pipe failed with errno \(errno)")
        for end in descriptors {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        descriptor = descriptors[0]
        writeDescriptor = descriptors[1]
    }

    deinit {
        Glibc.close(descriptor)
        Glibc.close(writeDescriptor)
    }

    /// Wakes the I/O thread. A full pipe already contains a pending wake-up, so a failed write
    /// loses nothing.
    func signal() {
        var byte: UInt8 = 1
        _ = write(writeDescriptor, &byte, 1)
    }

    /// Clears pending wake-ups. A read that returns fewer bytes than the buffer's size emptied
    /// the pipe, so the usual single wake-up costs one `read`.
    func drain() {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { buffer in
            while read(descriptor, buffer.baseAddress, buffer.count) == buffer.count {}
        }
    }
}
