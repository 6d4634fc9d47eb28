import AMQPRetry

/// W3: blocking calls (sync + sync) to an echo service, one caller at a time or several at once.
struct SyncCallWorkload: Sendable {
    let count: Int
    let callers: Int
    let payloadBytes: Int

    struct Figures: Sendable, CustomStringConvertible {
        /// Calls per second over the whole run.
        let rate: Double
        /// Call latency p50 and p99 in ms, from the request's publish to its reply.
        let latencyP50: Double
        let latencyP99: Double

        var description: String {
            "\(ResultRow.format(rate)) calls/s, latency p50 \(ResultRow.format(latencyP50)) ms, "
                + "p99 \(ResultRow.format(latencyP99)) ms"
        }
    }

    /// Runs the calls through `invoke` of an AMQPRetry client against an in-process worker.
    func runAMQPRetry(service: String, configuration: ConnectionConfiguration, timeout: Duration) async throws -> Figures {
        let worker = try await InProcessWorker.start(configuration: configuration,
                                                     concurrency: PipelineWorkload.concurrency) {
            try $0.register(service) { request in request.payload }
        }
        let client = try await AMQPRetryClient.connect(configuration: configuration, name: "amqp-retry-bench client")
        let deadline = MonotonicTime.deadline(after: timeout)
        let start = MonotonicTime.now()
        var latencies: [Double] = []
        do {
            latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
                for caller in 0..<callers {
                    group.addTask {
                        try await self.call(client.invokeRetry, service: service, caller: caller, deadline: deadline)
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
        } catch {
            await client.close()
            await worker.stop()
            throw error
        }
        let seconds = MonotonicTime.seconds(from: start, to: MonotonicTime.now())
        await client.close()
        await worker.stop()
        return figures(latencies: latencies, seconds: seconds)
    }

    /// Runs the calls through the baseline's hand-written direct reply-to RPC.
    func runBaseline(service: String, baseline: Baseline) async throws -> Figures {
        let pairs = try await baseline.run([
            "rpc", "--service", service, "--count", String(count), "--callers", String(callers),
            "--payload-bytes", String(payloadBytes),
        ])
        return Figures(rate: try Baseline.number("rate", in: pairs),
                       latencyP50: try Baseline.number("latency_ms_p50", in: pairs),
                       latencyP99: try Baseline.number("latency_ms_p99", in: pairs))
    }

    /// Makes one caller's share of the calls one after another and returns their latencies.
    private func call(_ invokeRetry: InvokeRetry, service: String, caller: Int, deadline: UInt64) async throws -> [Double] {
        var latencies: [Double] = []
        for index in stride(from: caller, to: count, by: callers) {
            guard MonotonicTime.now() < deadline else {
                throw BenchError("the blocking calls did not finish in time")
            }
            let payload = BenchPayload.make(index: index, size: payloadBytes)
            let sent = MonotonicTime.now()
            _ = try await invokeRetry.invoke(service, payload, repeats: 1, seconds: 1)
            latencies.append(Double(MonotonicTime.now() - sent) / 1e6)
        }
        return latencies
    }

    private func figures(latencies: [Double], seconds: Double) -> Figures {
        Figures(rate: Double(count) / seconds, latencyP50: Percentile.nearestRank(latencies, 0.5) ?? .nan,
                latencyP99: Percentile.nearestRank(latencies, 0.99) ?? .nan)
    }
}
