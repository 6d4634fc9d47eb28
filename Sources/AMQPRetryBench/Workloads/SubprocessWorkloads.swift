import AMQPRetry

/// W4: the resident memory of a worker process while retries wait in a delay queue.
///
/// The benchmark publishes invocations whose first attempt fails, so the worker moves each to
/// the delay queue of a one-hour interval, where it stays. The worker's memory should not grow
/// with the retries it scheduled, because they live in the broker.
struct MemoryWorkload: Sendable {
    /// Invocations sent through the worker first, then purged, so that "idle" is measured after
    /// the allocator and lazily made state have warmed up.
    let warmUpCount: Int
    let pendingCount: Int
    let intervalMilliseconds: Int

    /// Resident memory in MiB at each step.
    struct Figures: Sendable, CustomStringConvertible {
        let started: Double
        let idle: Double
        let pending: Double
        let purged: Double

        var description: String {
            [("started", started), ("idle", idle), ("pending", pending), ("purged", purged)]
                .map { "\($0.0) \(ResultRow.format($0.1)) MiB" }.joined(separator: ", ")
        }
    }

    /// How long the worker is left alone before each reading.
    static let settleTime: Duration = .seconds(2)

    var delayQueue: String {
        "amqpretry.delay.\(intervalMilliseconds)ms"
    }

    func run(worker: ChildProcess, service: String, baseline: Baseline, timeout: Duration) async throws -> Figures {
        _ = try await onDedicatedThread { try worker.waitForLine(startingWith: "ready", before: MonotonicTime.deadline(after: timeout)) }
        try await Task.sleep(for: Self.settleTime)
        let started = try worker.residentMemoryBytes()

        try await schedule(warmUpCount, service: service, baseline: baseline, timeout: timeout)
        try await baseline.admin(["purge:\(delayQueue)"])
        try await Task.sleep(for: Self.settleTime)
        let idle = try worker.residentMemoryBytes()

        try await schedule(pendingCount, service: service, baseline: baseline, timeout: timeout)
        try await Task.sleep(for: Self.settleTime)
        let pending = try worker.residentMemoryBytes()

        try await baseline.admin(["purge:\(delayQueue)"])
        try await Task.sleep(for: Self.settleTime)
        let purged = try worker.residentMemoryBytes()
        return Figures(started: Self.mebibytes(started), idle: Self.mebibytes(idle),
                       pending: Self.mebibytes(pending), purged: Self.mebibytes(purged))
    }

    /// Publishes `count` invocations and waits until the worker has moved them all to the
    /// delay queue.
    ///
    /// The baseline's publisher sends them on both sides, because it is the faster one and it
    /// leaves the benchmark process idle while the worker process is measured.
    private func schedule(_ count: Int, service: String, baseline: Baseline, timeout: Duration) async throws {
        try await baseline.run([
            "publish", "--service", service, "--count", String(count), "--repeats", "1",
            "--interval-ms", String(intervalMilliseconds),
        ])
        let deadline = MonotonicTime.deadline(after: timeout)
        while try await baseline.messageCount(queue: delayQueue) < count {
            guard MonotonicTime.now() < deadline else {
                throw BenchError("the worker did not move \(count) invocations to \(delayQueue) within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    private static func mebibytes(_ bytes: Int) -> Double {
        Double(bytes) / 1_048_576
    }
}

/// W5: the time from starting a worker process to its first handled invocation.
struct StartUpWorkload: Sendable {
    struct Figures: Sendable, CustomStringConvertible {
        /// From starting the process to the worker's first handler call.
        let milliseconds: Double

        var description: String {
            "\(ResultRow.format(milliseconds)) ms to the first handled invocation"
        }
    }

    /// Publishes one invocation, starts the worker with `start`, and measures the time until
    /// the worker reported its first handler call.
    func run(service: String, client: AMQPRetryClient, timeout: Duration,
             start: @escaping @Sendable () throws -> ChildProcess) async throws -> Figures {
        _ = try await client.invokeRetry.invokeAsync(service, BenchPayload.make(index: 0, size: 100),
                                                     repeats: 1, seconds: 1)
        let (launched, handled) = try await onDedicatedThread {
            let launched = MonotonicTime.now()
            let worker = try start()
            defer { worker.stop(within: .seconds(40)) }
            let text = try worker.waitForLine(startingWith: "first_handled_ns=",
                                              before: MonotonicTime.deadline(after: timeout))
            guard let handled = UInt64(text) else {
                throw BenchError("the worker printed an invalid time '\(text)'")
            }
            return (launched, handled)
        }
        return Figures(milliseconds: Double(handled - launched) / 1e6)
    }
}
