import AMQPRetry

/// W1 and W2: background invocations that end in callbacks, with or without retries.
struct PipelineWorkload: Sendable {
    /// Handlers that run at once in the AMQPRetry worker, and the prefetch count of every
    /// consumer on both sides.
    static let concurrency = 64
    /// `invokeAsync` calls the AMQPRetry client keeps in flight at full load: the baseline's
    /// confirm batch, so that neither side has more invocations unconfirmed than the other.
    /// With more, the client runs further ahead of the worker, and the longer service queue costs
    /// the broker more CPU per message.
    static let callsInFlight = baselineConfirmBatch
    /// Invocations the baseline publishes between two waits for publisher confirms.
    static let baselineConfirmBatch = 100

    let count: Int
    let payloadBytes: Int
    /// Attempts up to this number fail: 0 for W1, 2 for W2.
    let failingAttempts: Int
    let repeats: Int
    let intervalMilliseconds: Int
    /// Invocations per second, or `nil` to publish as fast as confirms allow.
    let rate: Double?

    /// The figures of one run.
    struct Figures: Sendable, CustomStringConvertible {
        /// Invocations per second from the first publish to the last callback.
        let rate: Double
        /// Retry lateness p50 and p99 in ms; `nil` without retries.
        let latenessP50: Double?
        let latenessP99: Double?

        var description: String {
            let rate = "\(ResultRow.format(self.rate)) invocations/s"
            guard let latenessP50, let latenessP99 else { return rate }
            return rate + ", retry lateness p50 \(ResultRow.format(latenessP50)) ms, p99 \(ResultRow.format(latenessP99)) ms"
        }
    }

    /// Runs the workload through AMQPRetry: an in-process worker hosting `target` and a
    /// counting `callback` service, and a client calling `invokeAsync`.
    func runAMQPRetry(target: String, callback: String, configuration: ConnectionConfiguration,
                      timeout: Duration) async throws -> Figures {
        let counter = CallbackCounter(expected: count)
        let callTimes = HandlerCallTimes(count: failingAttempts > 0 ? count : 0)
        let failingAttempts = self.failingAttempts
        let worker = try await InProcessWorker.start(configuration: configuration, concurrency: Self.concurrency) {
            try $0.register(target) { request in
                callTimes.record(index: BenchPayload.index(of: request.payload.bytes), attempt: request.attempt)
                if request.attempt <= failingAttempts {
                    throw IntendedFailure()
                }
                return .empty
            }
            try $0.register(callback) { _ in
                counter.increment()
                return .empty
            }
        }
        let client = try await AMQPRetryClient.connect(configuration: configuration, name: "amqp-retry-bench client")

        let start = MonotonicTime.now()
        let finished: UInt64
        do {
            try await invokeAll(client.invokeRetry, target: target, callback: callback)
            try await waitUntil("\(count) callbacks", within: timeout) { counter.finishedAt != nil }
            finished = counter.finishedAt ?? start
        } catch {
            await client.close()
            await worker.stop()
            throw error
        }
        await client.close()
        await worker.stop()
        return try figures(seconds: MonotonicTime.seconds(from: start, to: finished), callTimes: callTimes)
    }

    /// Runs the workload through the librabbitmq baseline.
    func runBaseline(target: String, callback: String, baseline: Baseline) async throws -> Figures {
        let pairs = try await baseline.run([
            "pipeline", "--service", target, "--callback", callback, "--count", String(count),
            "--payload-bytes", String(payloadBytes), "--failing-attempts", String(failingAttempts),
            "--repeats", String(repeats), "--interval-ms", String(intervalMilliseconds),
            "--rate", String(Int(rate ?? 0)), "--batch", String(Self.baselineConfirmBatch),
            "--prefetch", String(Self.concurrency),
        ])
        let hasRetries = failingAttempts > 0
        return Figures(
            rate: try Baseline.number("rate", in: pairs),
            latenessP50: hasRetries ? try Baseline.number("lateness_ms_p50", in: pairs) : nil,
            latenessP99: hasRetries ? try Baseline.number("lateness_ms_p99", in: pairs) : nil
        )
    }

    /// Calls `invokeAsync` `count` times, keeping ``callsInFlight`` calls in flight, or paced at
    /// ``rate``.
    private func invokeAll(_ invokeRetry: InvokeRetry, target: String, callback: String) async throws {
        let seconds = Double(intervalMilliseconds) / 1000
        let (payloadBytes, repeats, rate) = (self.payloadBytes, self.repeats, self.rate)
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                if let rate {
                    try await clock.sleep(until: start + .seconds(Double(index) / rate))
                } else if index >= Self.callsInFlight {
                    try await group.next()
                }
                group.addTask {
                    _ = try await invokeRetry.invokeAsync(target, BenchPayload.make(index: index, size: payloadBytes),
                                                          repeats: repeats, seconds: seconds, callback: callback)
                }
            }
            try await group.waitForAll()
        }
    }

    private func figures(seconds: Double, callTimes: HandlerCallTimes) throws -> Figures {
        guard failingAttempts > 0 else {
            return Figures(rate: Double(count) / seconds, latenessP50: nil, latenessP99: nil)
        }
        let lateness = try callTimes.lateness(retries: failingAttempts, intervalMilliseconds: intervalMilliseconds)
        return Figures(rate: Double(count) / seconds, latenessP50: Percentile.nearestRank(lateness, 0.5),
                       latenessP99: Percentile.nearestRank(lateness, 0.99))
    }
}
