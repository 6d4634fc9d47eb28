import Foundation

/// Hosts services: consumes their queues, calls their handlers, and carries out the retry
/// decisions through the broker.
///
/// ```swift
/// let worker = Worker(configuration: .init(connection: try .fromEnvironment()), logger: logger)
/// try worker.register("billing.charge") { request in try await charge(request.payload) }
/// try await worker.run()   // until stop()
/// ```
///
/// A failed background call is published to the delay queue of its interval and only then
/// acknowledged, so a pending retry always lives in the broker. Handlers run concurrently up to
/// ``Configuration/concurrency``. ``stop()`` cancels the consumers, lets the handlers finish and
/// closes the connections.
///
/// An invocation that was redelivered carries its redelivery count in the header
/// `amqpretry-redeliveries`, and such invocations run one at a time. One that arrives while
/// another runs goes back through a delay queue for 200 ms instead of waiting in the worker, and
/// a handler starts only after the others the worker received before it went back. Other
/// invocations run as usual meanwhile. So when a handler crashes the worker, the invocations
/// delivered with it are counted once, and the crashing one reaches
/// ``Configuration/redeliveryLimit`` on its own.
public final class Worker: Sendable {
    /// The settings of a worker.
    public struct Configuration: Sendable {
        /// The broker URL and connection settings.
        public var connection: ConnectionConfiguration
        /// The number of handlers that run at once, and each consumer's prefetch count.
        /// Default: 8.
        public var concurrency: Int
        /// How long ``Worker/stop()`` waits for running handlers before closing. Default: 30 s.
        public var drainTimeout: Duration
        /// The connection name the broker's management UI shows. Default: `amqp-retry worker`.
        public var name: String
        /// How many times an invocation may be redelivered unfinished before it is parked with
        /// reason `redelivery-limit` and, when it names one, a failure callback. A redelivery
        /// follows a worker that died or lost its connection while holding the invocation, so
        /// this stops a handler that crashes the worker from crash-looping it. Default: 3.
        public var redeliveryLimit: Int

        /// Creates a worker configuration.
        public init(
            connection: ConnectionConfiguration,
            concurrency: Int = 8,
            drainTimeout: Duration = .seconds(30),
            name: String = "amqp-retry worker",
            redeliveryLimit: Int = 3
        ) {
            self.connection = connection
            self.concurrency = concurrency
            self.drainTimeout = drainTimeout
            self.name = name
            self.redeliveryLimit = redeliveryLimit
        }
    }

    struct State: ~Copyable {
        var services: [String: ServiceHandler] = [:]
        var running = false
        var stopRequested = false
        var inFlight = 0
        /// The numbers of the deliveries in flight that were redelivered or carry a redelivery
        /// count. ``Worker/handlerStarted(suspect:)`` numbers them in the order they arrive.
        var suspectsInFlight: Set<UInt64> = []
        /// The number of the last suspect delivery received.
        var lastSuspectNumber: UInt64 = 0
        /// Whether a redelivered invocation has claimed its run.
        var redeliveredRunning = false
        /// The run that waits, with the number of the last suspect that arrived before it began
        /// to wait.
        var suspectsWaiter: (lastBefore: UInt64, continuation: CheckedContinuation<Void, Never>)?
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
        /// The task that subscribes to the service queues, which ``Worker/stop()`` cancels so
        /// that a worker still subscribing again after lost connections stops at once.
        var subscribing: Task<Void, any Error>?
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
    }

    let configuration: Configuration
    let logger: Logger
    let state = Locked(State())
    let handlerSlots: AsyncSemaphore

    /// Creates a worker; nothing connects until ``run()``.
    public init(configuration: Configuration, logger: Logger = .disabled) {
        self.configuration = configuration
        self.logger = logger
        self.handlerSlots = AsyncSemaphore(permits: max(1, configuration.concurrency))
    }

    /// Registers the handler of a service; call it before ``run()``.
    /// - Throws: ``InvokeRetryError/invalidOption(name:value:reason:)`` for an invalid service
    ///   name, a name registered twice, a worker already running, or an invalid concurrency.
    public func register(_ service: String, handler: @escaping ServiceHandler) throws {
        try ServiceName.validate(service, option: "service")
        try state.withLock { (state) throws in
            guard !state.running else {
                throw InvokeRetryError.invalidOption(name: "service", value: service,
                                                     reason: "register services before run()")
            }
            guard state.services[service] == nil else {
                throw InvokeRetryError.invalidOption(name: "service", value: service,
                                                     reason: "is already registered")
            }
            state.services[service] = handler
        }
    }

    /// Connects, consumes every registered service's queue, and returns after ``stop()`` once the
    /// running handlers have finished and the connections are closed.
    /// - Parameter onConsuming: called once every service queue is declared and consumed, so that
    ///   a caller can wait for the worker before it invokes the services.
    /// - Throws: ``AMQPError`` when the broker cannot be reached at start, or
    ///   ``InvokeRetryError/invalidOption(name:value:reason:)`` for an invalid configuration.
    public func run(onConsuming: @Sendable () -> Void = {}) async throws {
        let services = try markRunning()
        let consumer = AMQPConnection(configuration: configuration.connection, name: configuration.name, logger: logger)
        try await consumer.start()
        let engine: InvocationEngine
        do {
            engine = try await InvocationEngine.start(configuration: configuration.connection,
                                                      name: configuration.name + " (invocations)", logger: logger)
        } catch {
            await consumer.close()
            throw error
        }

        let session = WorkerSession(worker: self, connection: consumer, engine: engine)
        do {
            try await subscribe(session, services)
        } catch {
            await consumer.close()
            await engine.close()
            if state.withLock({ $0.stopRequested }) {
                logger.notice("worker stopped before it consumed its queues", metadata: [LogKey.error: "\(error)"])
                return
            }
            logger.error("worker failed to start consuming", metadata: [LogKey.error: "\(error)"])
            throw error
        }
        logger.info("worker started", metadata: ["amqpretry.services": services.keys.sorted().joined(separator: ",")])
        onConsuming()
        await waitForStop()
        await session.unsubscribe()
        await waitForDrain()
        await consumer.close()
        await engine.close()
        logger.info("worker stopped")
    }

    /// Asks a running worker to stop: it cancels its consumers, lets running handlers finish
    /// (up to ``Configuration/drainTimeout``) and closes. ``run()`` returns when that is done.
    public func stop() {
        let (waiters, subscribing) = state.withLock { state in
            state.stopRequested = true
            defer { state.stopWaiters.removeAll() }
            return (state.stopWaiters, state.subscribing)
        }
        subscribing?.cancel()
        waiters.forEach { $0.resume() }
    }

    /// Subscribes in a task that ``stop()`` can cancel. A failure after a stop was requested is
    /// thrown too, and ``run()`` then stops without an error.
    private func subscribe(_ session: WorkerSession, _ services: [String: ServiceHandler]) async throws {
        let task = Task { try await session.subscribe(services) }
        let stopRequested = state.withLock { state -> Bool in
            state.subscribing = task
            return state.stopRequested
        }
        if stopRequested {
            task.cancel()
        }
        defer { state.withLock { $0.subscribing = nil } }
        try await task.value
    }

    private func markRunning() throws -> [String: ServiceHandler] {
        guard configuration.concurrency >= 1, configuration.concurrency <= Int(UInt16.max) else {
            throw InvokeRetryError.invalidOption(name: "concurrency", value: String(configuration.concurrency),
                                                 reason: "must be between 1 and \(UInt16.max)")
        }
        return try state.withLock { (state) throws -> [String: ServiceHandler] in
            guard !state.running else {
                throw InvokeRetryError.invalidOption(name: "run", value: "called twice",
                                                     reason: "a worker runs once; create a new one")
            }
            guard !state.services.isEmpty else {
                throw InvokeRetryError.invalidOption(name: "service", value: "none",
                                                     reason: "register at least one service before run()")
            }
            state.running = true
            return state.services
        }
    }

    private func waitForStop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let stopped = state.withLock { state -> Bool in
                if state.stopRequested { return true }
                state.stopWaiters.append(continuation)
                return false
            }
            if stopped { continuation.resume() }
        }
    }

    private func waitForDrain() async {
        let deadline = Task { [weak self] in
            try? await Task.sleep(for: self?.configuration.drainTimeout ?? .zero)
            self?.resumeDrainWaiters(force: true)
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let drained = state.withLock { state -> Bool in
                if state.inFlight == 0 { return true }
                state.drainWaiters.append(continuation)
                return false
            }
            if drained { continuation.resume() }
        }
        deadline.cancel()
    }

    /// Counts a delivery in flight. A `suspect` delivery was redelivered or carries a
    /// redelivery count. Returns the number of a suspect delivery, for
    /// ``handlerFinished(suspect:)``.
    func handlerStarted(suspect: Bool) -> UInt64? {
        state.withLock { state -> UInt64? in
            state.inFlight += 1
            guard suspect else { return nil }
            state.lastSuspectNumber += 1
            state.suspectsInFlight.insert(state.lastSuspectNumber)
            return state.lastSuspectNumber
        }
    }

    /// Ends the count of a delivery in flight. `suspect` is the number that
    /// ``handlerStarted(suspect:)`` returned.
    func handlerFinished(suspect: UInt64?) {
        let (done, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            state.inFlight -= 1
            if let suspect {
                state.suspectsInFlight.remove(suspect)
            }
            guard let waiter = state.suspectsWaiter,
                  Self.suspectCount(in: state.suspectsInFlight, upTo: waiter.lastBefore) <= 1 else {
                return (state.inFlight == 0, nil)
            }
            state.suspectsWaiter = nil
            return (state.inFlight == 0, waiter.continuation)
        }
        waiter?.resume()
        if done {
            resumeDrainWaiters(force: false)
        }
    }

    private static func suspectCount(in suspects: Set<UInt64>, upTo last: UInt64) -> Int {
        suspects.count { $0 <= last }
    }

    /// Claims the one run of a redelivered invocation that a worker allows at a time. Returns
    /// `false` while another redelivered invocation's handler runs.
    func claimRedeliveredRun() -> Bool {
        state.withLock { state -> Bool in
            guard !state.redeliveredRunning else { return false }
            state.redeliveredRunning = true
            return true
        }
    }

    /// Waits until no other suspect that arrived before this call is in flight, so that those
    /// went back to the broker and a crash during the claimed run cannot redeliver them.
    ///
    /// Later suspects do not delay the run. A copy postponed in the service queue comes back at
    /// once, so waiting for every suspect could wait forever.
    func waitUntilOnlySuspect() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let alone = state.withLock { state -> Bool in
                if state.suspectsInFlight.count <= 1 { return true }
                state.suspectsWaiter = (state.lastSuspectNumber, continuation)
                return false
            }
            if alone { continuation.resume() }
        }
    }

    /// Ends the run that ``claimRedeliveredRun()`` claimed.
    func releaseRedeliveredRun() {
        state.withLock { $0.redeliveredRunning = false }
    }

    private func resumeDrainWaiters(force: Bool) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard force || state.inFlight == 0 else { return [] }
            if force && state.inFlight > 0 {
                logger.warning("stopping with handlers still running", metadata: ["amqpretry.in_flight": String(state.inFlight)])
            }
            defer { state.drainWaiters.removeAll() }
            return state.drainWaiters
        }
        waiters.forEach { $0.resume() }
    }
}

/// A counting semaphore for tasks: ``acquire()`` suspends, never blocks a thread.
final class AsyncSemaphore: Sendable {
    private struct State: ~Copyable {
        var permits: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Locked<State>

    init(permits: Int) {
        state = Locked(State(permits: permits))
    }

    func acquire() async {
        // A free permit is taken without a continuation. Resuming one from inside
        // `withCheckedContinuation` would still suspend the task and enqueue it on the executor
        // again, a detour for every handler call.
        let acquired = state.withLock { state -> Bool in
            guard state.permits > 0 else { return false }
            state.permits -= 1
            return true
        }
        if acquired {
            return
        }

        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { state -> Bool in
                if state.permits > 0 {
                    state.permits -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    func release() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.permits += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume()
    }
}
