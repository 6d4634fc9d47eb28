import AMQPRetry
import Dispatch
import Glibc
import Synchronization

/// `amqp-retry-bench worker`: an AMQPRetry worker in a process of its own, for the memory (W4)
/// and start-up (W5) workloads of docs/benchmarks.md.
///
/// It hosts one service whose attempts up to `--failing-attempts` fail, prints `ready` once it
/// consumes and `first_handled_ns=<CLOCK_MONOTONIC time>` when its handler is first called, and
/// stops on SIGTERM or SIGINT, or after `--max-seconds`.
enum WorkerSubprocess {
    struct Options {
        var service: String
        var failingAttempts = 0
        var concurrency = PipelineWorkload.concurrency
        var maxSeconds = 900
    }

    /// Makes the arguments that start this subcommand in a child process.
    static func arguments(service: String, failingAttempts: Int) -> [String] {
        ["worker", "--service", service, "--failing-attempts", String(failingAttempts),
         "--concurrency", String(PipelineWorkload.concurrency)]
    }

    static func run(_ options: Options) async throws {
        let configuration = try BenchOptions.loopbackConfiguration()
        let worker = Worker(
            configuration: .init(connection: configuration, concurrency: options.concurrency,
                                 name: "amqp-retry-bench worker"),
            logger: .standardError(label: "amqp-retry-bench.worker", logLevel: .warning)
        )
        let firstCall = Atomic<Bool>(false)
        let failingAttempts = options.failingAttempts
        try worker.register(options.service) { request in
            let now = MonotonicTime.now()
            if !firstCall.exchange(true, ordering: .relaxed) {
                writeLine("first_handled_ns=\(now)")
            }
            if request.attempt <= failingAttempts {
                throw IntendedFailure()
            }
            return .empty
        }

        let signals = stopOnSignals(worker)
        let limit = Task {
            try? await Task.sleep(for: .seconds(options.maxSeconds))
            worker.stop()
        }
        try await worker.run { writeLine("ready") }
        limit.cancel()
        withExtendedLifetime(signals) {}
    }

    /// Stops the worker on SIGTERM and SIGINT; the sources must be kept alive.
    private static func stopOnSignals(_ worker: Worker) -> [any DispatchSourceSignal] {
        [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { worker.stop() }
            source.resume()
            return source
        }
    }

    /// Writes a line to standard output at once; `print` would buffer it in a pipe.
    private static func writeLine(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
    }

    /// Reads the path of this executable from `/proc/self/exe`, for starting the subcommand.
    static func executablePath() throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else {
            throw BenchError("reading /proc/self/exe failed with errno \(errno)")
        }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
