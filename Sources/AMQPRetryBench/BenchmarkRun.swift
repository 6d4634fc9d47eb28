import AMQPRetry
import Foundation

/// The implementation a run measures.
enum Side: String, Sendable {
    case amqpRetry = "AMQPRetry"
    case baseline = "baseline"

    /// The side an option value names: `amqpretry` or `baseline`.
    init?(option: String) {
        switch option.lowercased() {
        case "amqpretry": self = .amqpRetry
        case "baseline": self = .baseline
        default: return nil
        }
    }

    /// Orders the sides of a round, alternating from round to round so that a drift of the
    /// broker's speed during a run does not favour one side.
    static func order(round: Int, of sides: [Side]) -> [Side] {
        round.isMultiple(of: 2) ? sides.reversed() : sides
    }
}

/// The service names of one run of one side, unique to the benchmark run.
struct ServiceNames: Sendable {
    let target: String
    let callback: String

    init(run: String, workload: String, round: Int, side: Side) {
        let base = "\(run).\(workload).r\(round).\(side == .amqpRetry ? "amqpretry" : "baseline")"
        target = base + ".target"
        callback = base + ".callback"
    }

    var queues: [String] {
        ["amqpretry.service.\(target)", "amqpretry.service.\(callback)"]
    }
}

/// A benchmark run: every chosen workload on both sides, then the results page.
struct BenchmarkRun: Sendable {
    /// The maximum time one run of one side may take.
    static let runTimeout: Duration = .seconds(300)
    /// The interval of W2's retries.
    static let retryIntervalMilliseconds = 100

    let options: BenchOptions
    let configuration: ConnectionConfiguration
    let baseline: Baseline
    /// A prefix of every service name of this run.
    let runID = "bench-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)

    init(options: BenchOptions) throws {
        self.options = options
        configuration = try BenchOptions.loopbackConfiguration()
        baseline = Baseline(executable: options.baselinePath, timeout: Self.runTimeout)
    }

    /// Runs the chosen workloads in order and returns the results page.
    func run() async throws -> ResultsPage {
        _ = Self.startTime
        let versions = await versions()
        let date = Date()
        var rows: [ResultRow] = []
        if options.workloads.contains(.w1) { rows += try await backgroundSuccess() }
        if options.workloads.contains(.w2) { rows += try await retries() }
        if options.workloads.contains(.w3) { rows += try await syncCalls() }
        if options.workloads.contains(.w4) { rows += try await memory() }
        if options.workloads.contains(.w5) { rows += try await startUp() }
        var page = ResultsPage(command: options.command, rounds: options.rounds, scale: options.scale, date: date,
                               machine: .current(), broker: versions.broker, brokerURL: configuration.redactedURL,
                               librabbitmq: versions.librabbitmq, rows: rows)
        page.blockName = options.resultsBlock
        page.cpuLayout = options.cpuLayout
        return page
    }

    /// Reads the broker's and librabbitmq's versions, or returns "unknown" with a warning.
    private func versions() async -> (broker: String, librabbitmq: String) {
        do {
            return try await baseline.versions()
        } catch {
            Self.progress("warning: reading the broker's version failed: \(error)")
            return ("unknown broker", "unknown")
        }
    }

    private func scaled(_ count: Int) -> Int {
        max(1, Int((Double(count) * options.scale).rounded()))
    }

    /// Runs `body` for each round and side, deleting the run's queues after each, and returns
    /// the figures of each side in round order.
    private func rounds<Figures: Sendable>(
        _ workload: String, rounds: Int? = nil,
        _ body: (Side, ServiceNames) async throws -> Figures
    ) async throws -> (amqpRetry: [Figures], baseline: [Figures]) {
        var amqpRetry: [Figures] = []
        var baselineFigures: [Figures] = []
        let count = rounds ?? options.rounds
        for round in 1...count {
            for side in Side.order(round: round, of: options.sides) {
                let names = ServiceNames(run: runID, workload: workload, round: round, side: side)
                let figures = try await deletingQueues(names.queues) { try await body(side, names) }
                Self.progress("\(workload) round \(round)/\(count), \(side.rawValue): \(figures)")
                if side == .amqpRetry {
                    amqpRetry.append(figures)
                } else {
                    baselineFigures.append(figures)
                }
            }
        }
        return (amqpRetry, baselineFigures)
    }

    /// Runs `body`, then deletes `queues` whether it succeeded or not.
    private func deletingQueues<T>(_ queues: [String], _ body: () async throws -> T) async throws -> T {
        let result: Result<T, any Error>
        do {
            result = .success(try await body())
        } catch {
            result = .failure(error)
        }
        await upkeep(queues.map { "delete-queue:\($0)" })
        return try result.get()
    }

    /// Runs admin steps that delete what a workload left on the broker. A failure only warns,
    /// with the steps to repeat, because the figures already measured are still valid.
    private func upkeep(_ steps: [String]) async {
        do {
            try await baseline.admin(steps)
        } catch {
            Self.progress("warning: cleaning up the broker failed (\(error)); repeat by hand: "
                + "amqp-retry-baseline admin \(steps.joined(separator: " "))")
        }
    }

    /// When the run started, for the elapsed time of the progress lines.
    static let startTime = MonotonicTime.now()

    /// Writes a progress line with the seconds since the start to standard error.
    static func progress(_ line: String) {
        let elapsed = Int(MonotonicTime.seconds(from: startTime, to: MonotonicTime.now()))
        FileHandle.standardError.write(Data("amqp-retry-bench: [\(elapsed) s] \(line)\n".utf8))
    }
}

// MARK: - Workloads

extension BenchmarkRun {
    /// W1: background invocations of a service that succeeds, each ending in a callback.
    private func backgroundSuccess() async throws -> [ResultRow] {
        var rows: [ResultRow] = []
        for (payloadBytes, label) in [(100, "100 B"), (10 * 1024, "10 KiB")] {
            let workload = PipelineWorkload(count: scaled(20_000), payloadBytes: payloadBytes, failingAttempts: 0,
                                            repeats: 1, intervalMilliseconds: 1000, rate: nil)
            let figures = try await rounds("w1-\(payloadBytes)b") { side, names in
                try await pipeline(workload, side: side, names: names)
            }
            rows.append(ResultRow("W1 background success, \(ResultRow.grouped(workload.count)) × \(label)", "invocations/s",
                                  amqpRetry: figures.amqpRetry.map(\.rate), baseline: figures.baseline.map(\.rate),
                                  target: .ratioAtLeast(0.9)))
        }
        return rows
    }

    /// W2: invocations that fail twice and then succeed, at full load and paced.
    private func retries() async throws -> [ResultRow] {
        let interval = Self.retryIntervalMilliseconds
        let full = PipelineWorkload(count: scaled(5_000), payloadBytes: 100, failingAttempts: 2, repeats: 2,
                                    intervalMilliseconds: interval, rate: nil)
        let paced = PipelineWorkload(count: scaled(250), payloadBytes: 100, failingAttempts: 2, repeats: 2,
                                     intervalMilliseconds: interval, rate: 50)
        let delay = "amqpretry.delay.\(interval)ms"
        let fullFigures = try await rounds("w2-full") { side, names in try await pipeline(full, side: side, names: names) }
        let pacedFigures = try await rounds("w2-paced") { side, names in try await pipeline(paced, side: side, names: names) }
        // Other programs on the broker may use the same interval, so the delay queue goes only when empty.
        await upkeep(["delete-queue-if-empty:\(delay)", "delete-exchange-if-unused:\(delay)"])

        let fullName = "W2 retries, \(ResultRow.grouped(full.count)) at full load"
        let pacedName = "W2 retries, \(ResultRow.grouped(paced.count)) paced at 50/s"
        return [
            ResultRow(fullName, "invocations/s", amqpRetry: fullFigures.amqpRetry.map(\.rate),
                      baseline: fullFigures.baseline.map(\.rate), target: .ratioAtLeast(0.9)),
            ResultRow(fullName, "retry lateness p50 (ms)", amqpRetry: fullFigures.amqpRetry.compactMap(\.latenessP50),
                      baseline: fullFigures.baseline.compactMap(\.latenessP50)),
            ResultRow(fullName, "retry lateness p99 (ms)", amqpRetry: fullFigures.amqpRetry.compactMap(\.latenessP99),
                      baseline: fullFigures.baseline.compactMap(\.latenessP99)),
            ResultRow(pacedName, "retry lateness p50 (ms)", amqpRetry: pacedFigures.amqpRetry.compactMap(\.latenessP50),
                      baseline: pacedFigures.baseline.compactMap(\.latenessP50)),
            ResultRow(pacedName, "retry lateness p99 (ms)", amqpRetry: pacedFigures.amqpRetry.compactMap(\.latenessP99),
                      baseline: pacedFigures.baseline.compactMap(\.latenessP99), target: .amqpRetryBelow(10)),
        ]
    }

    private func pipeline(_ workload: PipelineWorkload, side: Side, names: ServiceNames) async throws
        -> PipelineWorkload.Figures {
        switch side {
        case .amqpRetry:
            try await workload.runAMQPRetry(target: names.target, callback: names.callback,
                                            configuration: configuration, timeout: Self.runTimeout)
        case .baseline:
            try await workload.runBaseline(target: names.target, callback: names.callback, baseline: baseline)
        }
    }

    /// W3: blocking calls to an echo service, by one caller and by eight at once.
    private func syncCalls() async throws -> [ResultRow] {
        let sequential = SyncCallWorkload(count: scaled(2_000), callers: 1, payloadBytes: 100)
        let concurrent = SyncCallWorkload(count: scaled(2_000), callers: 8, payloadBytes: 100)
        let one = try await rounds("w3-1") { side, names in try await syncCall(sequential, side: side, names: names) }
        let eight = try await rounds("w3-8") { side, names in try await syncCall(concurrent, side: side, names: names) }
        let oneName = "W3 sync calls, \(ResultRow.grouped(sequential.count)) by 1 caller"
        let eightName = "W3 sync calls, \(ResultRow.grouped(concurrent.count)) by 8 callers"
        return [
            ResultRow(oneName, "latency p50 (ms)", amqpRetry: one.amqpRetry.map(\.latencyP50),
                      baseline: one.baseline.map(\.latencyP50), target: .ratioAtMost(1.2)),
            ResultRow(oneName, "latency p99 (ms)", amqpRetry: one.amqpRetry.map(\.latencyP99),
                      baseline: one.baseline.map(\.latencyP99)),
            ResultRow(oneName, "calls/s", amqpRetry: one.amqpRetry.map(\.rate), baseline: one.baseline.map(\.rate)),
            ResultRow(eightName, "calls/s", amqpRetry: eight.amqpRetry.map(\.rate), baseline: eight.baseline.map(\.rate)),
            ResultRow(eightName, "latency p50 (ms)", amqpRetry: eight.amqpRetry.map(\.latencyP50),
                      baseline: eight.baseline.map(\.latencyP50)),
        ]
    }

    private func syncCall(_ workload: SyncCallWorkload, side: Side, names: ServiceNames) async throws
        -> SyncCallWorkload.Figures {
        switch side {
        case .amqpRetry:
            try await workload.runAMQPRetry(service: names.target, configuration: configuration,
                                            timeout: Self.runTimeout)
        case .baseline:
            try await workload.runBaseline(service: names.target, baseline: baseline)
        }
    }

    /// W4: a worker process's resident memory with retries pending in a one-hour delay queue.
    private func memory() async throws -> [ResultRow] {
        // One hour plus up to a second, so that the delay queue's name belongs to this run.
        let workload = MemoryWorkload(warmUpCount: scaled(1_000), pendingCount: scaled(100_000),
                                      intervalMilliseconds: 3_600_000 + Int.random(in: 1...999))
        let result: Result<(amqpRetry: [MemoryWorkload.Figures], baseline: [MemoryWorkload.Figures]), any Error>
        do {
            result = .success(try await rounds("w4", rounds: 1) { side, names in
                let worker = try startWorker(side: side, service: names.target, failingAttempts: 1)
                defer { worker.stop(within: .seconds(40)) }
                return try await workload.run(worker: worker, service: names.target, baseline: baseline,
                                              timeout: Self.runTimeout)
            })
        } catch {
            result = .failure(error)
        }
        await upkeep(["delete-queue:\(workload.delayQueue)", "delete-exchange-if-unused:\(workload.delayQueue)"])
        let figures = try result.get()

        let name = "W4 worker memory, \(ResultRow.grouped(workload.pendingCount)) retries pending"
        func row(_ figure: String, _ value: (MemoryWorkload.Figures) -> Double, target: Target? = nil) -> ResultRow {
            ResultRow(name, figure, amqpRetry: figures.amqpRetry.map(value), baseline: figures.baseline.map(value),
                      target: target)
        }
        return [
            row("RSS after start (MiB)", \.started),
            row("RSS idle, after \(ResultRow.grouped(workload.warmUpCount)) warm-up retries (MiB)", \.idle),
            row("RSS with the retries pending (MiB)", \.pending),
            row("RSS after the purge (MiB)", \.purged),
            row("growth, pending minus idle (MiB)", { $0.pending - $0.idle }, target: .amqpRetryAtMost(5)),
        ]
    }

    /// W5: the time from starting a worker process to its first handled invocation.
    private func startUp() async throws -> [ResultRow] {
        let workload = StartUpWorkload()
        let client = try await AMQPRetryClient.connect(configuration: configuration, name: "amqp-retry-bench client")
        let result: Result<(amqpRetry: [StartUpWorkload.Figures], baseline: [StartUpWorkload.Figures]), any Error>
        do {
            result = .success(try await rounds("w5") { side, names in
                try await workload.run(service: names.target, client: client, timeout: Self.runTimeout) {
                    try startWorker(side: side, service: names.target, failingAttempts: 0)
                }
            })
        } catch {
            result = .failure(error)
        }
        await client.close()
        let figures = try result.get()
        return [ResultRow("W5 worker start-up", "ms to the first handled invocation",
                          amqpRetry: figures.amqpRetry.map(\.milliseconds), baseline: figures.baseline.map(\.milliseconds))]
    }

    private func startWorker(side: Side, service: String, failingAttempts: Int) throws -> ChildProcess {
        switch side {
        case .amqpRetry:
            try ChildProcess(executable: try WorkerSubprocess.executablePath(),
                             arguments: WorkerSubprocess.arguments(service: service, failingAttempts: failingAttempts))
        case .baseline:
            try baseline.startWorker(service: service, failingAttempts: failingAttempts,
                                     prefetch: PipelineWorkload.concurrency)
        }
    }
}
