import Dispatch
import Foundation
import Synchronization

/// amqp-retry-bench: the benchmark behind `make bench`, whose workloads docs/benchmarks.md
/// describes. See ``BenchOptions/usage`` for the command line.
enum BenchCommand {
    static func main(_ arguments: [String]) async -> Int32 {
        if arguments.contains("--help") || arguments.contains("-h") {
            print(BenchOptions.usage)
            return 0
        }
        do {
            if arguments.first == "worker" {
                try await WorkerSubprocess.run(try workerOptions(Array(arguments.dropFirst())))
                return 0
            }
            let options = try BenchOptions(arguments: arguments)
            let page = try await BenchmarkRun(options: options).run()
            print(page.markdown)
            if let output = options.output {
                try page.write(to: output)
                BenchmarkRun.progress("wrote the results to \(output)")
            }
            return 0
        } catch let error as UsageError {
            writeError("error: \(error)")
            return 64
        } catch {
            writeError("error: \(error)")
            return 1
        }
    }

    private static func workerOptions(_ arguments: [String]) throws -> WorkerSubprocess.Options {
        var options = WorkerSubprocess.Options(service: "")
        var remaining = arguments[...]
        while let option = remaining.popFirst() {
            guard let value = remaining.popFirst() else {
                throw UsageError(description: "missing value for '\(option)'")
            }
            switch option {
            case "--service": options.service = value
            case "--failing-attempts": options.failingAttempts = try BenchOptions.integer(value, option: option, in: 0...1_000)
            case "--concurrency": options.concurrency = try BenchOptions.integer(value, option: option, in: 1...65_535)
            case "--max-seconds": options.maxSeconds = try BenchOptions.integer(value, option: option, in: 1...86_400)
            default: throw UsageError(description: "unknown worker option '\(option)'; see --help")
            }
        }
        guard !options.service.isEmpty else {
            throw UsageError(description: "missing '--service <name>' for the worker")
        }
        return options
    }

    private static func writeError(_ message: String) {
        FileHandle.standardError.write(Data(("amqp-retry-bench: " + message + "\n").utf8))
    }
}

// The main thread waits on a semaphore instead of using top-level `await`.
// NOTE: valgrind 3.19 (Debian 12) crashes in the signal thread that top-level `await` starts
// through dispatch_main, which would leave the benchmark impossible to profile with callgrind.
let exitStatus = Atomic<Int32>(1)
let finished = DispatchSemaphore(value: 0)
Task.detached {
    exitStatus.store(await BenchCommand.main(Array(CommandLine.arguments.dropFirst())), ordering: .relaxed)
    finished.signal()
}
finished.wait()
exit(exitStatus.load(ordering: .relaxed))
