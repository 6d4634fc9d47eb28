import AMQPRetry

/// A ``Worker`` hosting benchmark services in this process, for W1 to W3.
final class InProcessWorker: Sendable {
    private enum Phase: Sendable {
        case starting
        case consuming
        case failed(String)
    }

    private let worker: Worker
    private let phase = Locked(Phase.starting)
    private let runTask = Locked<Task<Void, Never>?>(nil)

    private init(worker: Worker) {
        self.worker = worker
    }

    /// Starts a worker with the services `register` adds and returns once it consumes them.
    static func start(configuration: ConnectionConfiguration, concurrency: Int,
                      register: (Worker) throws -> Void) async throws -> InProcessWorker {
        let worker = Worker(
            configuration: .init(connection: configuration, concurrency: concurrency, name: "amqp-retry-bench worker"),
            logger: .standardError(label: "amqp-retry-bench.worker", logLevel: .warning)
        )
        try register(worker)
        let host = InProcessWorker(worker: worker)
        let task = Task {
            do {
                try await worker.run { host.phase.withLock { $0 = .consuming } }
            } catch {
                host.phase.withLock { $0 = .failed("\(error)") }
            }
        }
        host.runTask.withLock { $0 = task }
        try await host.waitUntilConsuming()
        return host
    }

    /// Stops the worker and waits until its handlers finished and its connections closed.
    func stop() async {
        worker.stop()
        await runTask.withLock { $0 }?.value
    }

    private func waitUntilConsuming() async throws {
        try await waitUntil("the AMQPRetry worker to start consuming", within: .seconds(30)) {
            switch phase.withLock({ $0 }) {
            case .starting: return false
            case .consuming: return true
            case .failed(let error): throw BenchError("the AMQPRetry worker failed to start: \(error)")
            }
        }
    }
}

/// Polls `condition` every 2 ms until it holds.
/// - Throws: ``BenchError`` when `limit` passes first, or what `condition` throws.
func waitUntil(_ what: String, within limit: Duration, condition: () throws -> Bool) async throws {
    let deadline = MonotonicTime.deadline(after: limit)
    while try !condition() {
        guard MonotonicTime.now() < deadline else {
            throw BenchError("timed out after \(limit) waiting for \(what)")
        }
        try await Task.sleep(for: .milliseconds(2))
    }
}

/// Counts the callbacks of a run and notes when the last one arrived.
final class CallbackCounter: Sendable {
    private struct State {
        var count = 0
        var finishedAt: UInt64?
    }

    let expected: Int
    private let state = Locked(State())

    init(expected: Int) {
        self.expected = expected
    }

    func increment() {
        let now = MonotonicTime.now()
        state.withLock { state in
            state.count += 1
            if state.count == expected {
                state.finishedAt = now
            }
        }
    }

    /// The time the expected callback count was reached, once it was.
    var finishedAt: UInt64? {
        state.withLock { $0.finishedAt }
    }
}

/// The handler-call times of attempts 1 to 3 of each invocation, for retry lateness.
final class HandlerCallTimes: Sendable {
    private let times: Locked<[UInt64]>
    private let count: Int

    init(count: Int) {
        self.count = count
        times = Locked([UInt64](repeating: 0, count: count * 3))
    }

    func record(index: Int?, attempt: Int) {
        let now = MonotonicTime.now()
        guard let index, (0..<count).contains(index), (1...3).contains(attempt) else { return }
        times.withLock { $0[index * 3 + attempt - 1] = now }
    }

    /// The lateness of every retry in milliseconds: the time between two handler calls of one
    /// invocation minus the configured interval.
    func lateness(retries: Int, intervalMilliseconds: Int) throws -> [Double] {
        let times = self.times.withLock { $0 }
        var lateness: [Double] = []
        for index in 0..<count {
            for attempt in 1...retries {
                let before = times[index * 3 + attempt - 1]
                let after = times[index * 3 + attempt]
                guard before != 0, after != 0 else {
                    throw BenchError("invocation \(index) has no handler call for attempt \(attempt) or \(attempt + 1)")
                }
                lateness.append(Double(after - before) / 1e6 - Double(intervalMilliseconds))
            }
        }
        return lateness
    }
}

/// The failure a benchmark service throws on purpose.
struct IntendedFailure: Error, CustomStringConvertible {
    var description: String {
        "the benchmark service failed on purpose"
    }
}
