/// The librabbitmq baseline program built from Benchmarks/baseline, which also does the
/// broker upkeep of the benchmark (counting, purging and deleting queues), because this target
/// links only AMQPRetry's public API.
struct Baseline: Sendable {
    /// The path of `amqp-retry-baseline`.
    let executable: String
    /// How long one baseline command may run.
    let timeout: Duration

    /// Runs a workload command and returns the `key=value` pairs it printed.
    @discardableResult
    func run(_ arguments: [String]) async throws -> [String: String] {
        let seconds = String(Int(timeout.components.seconds))
        return try await runToEnd(arguments + ["--max-seconds", seconds])
    }

    /// Runs admin steps such as `delete-queue:NAME` in order and returns what they printed.
    @discardableResult
    func admin(_ steps: [String]) async throws -> [String: String] {
        try await runToEnd(["admin"] + steps)
    }

    /// Counts the ready messages in a queue with a passive `queue.declare`; -1 when the queue
    /// does not exist.
    func messageCount(queue: String) async throws -> Int {
        let pairs = try await admin(["count:\(queue)"])
        guard let count = pairs["count"].flatMap({ Int($0) }) else {
            throw BenchError("the baseline printed no count for queue '\(queue)'")
        }
        return count
    }

    /// The broker's product and version, and librabbitmq's version.
    func versions() async throws -> (broker: String, librabbitmq: String) {
        let pairs = try await runToEnd(["info"])
        return (pairs["broker"] ?? "unknown", pairs["librabbitmq"] ?? "unknown")
    }

    /// Starts `amqp-retry-baseline worker` for the W4 and W5 workloads.
    func startWorker(service: String, failingAttempts: Int, prefetch: Int) throws -> ChildProcess {
        try ChildProcess(executable: executable, arguments: [
            "worker", "--service", service, "--failing-attempts", String(failingAttempts),
            "--prefetch", String(prefetch), "--max-seconds", String(Int(timeout.components.seconds)),
        ])
    }

    /// Reads a number the baseline printed.
    static func number(_ key: String, in pairs: [String: String]) throws -> Double {
        guard let text = pairs[key], let value = Double(text) else {
            throw BenchError("the baseline printed no number for '\(key)'")
        }
        return value
    }

    private func runToEnd(_ arguments: [String]) async throws -> [String: String] {
        let executable = self.executable
        let deadline = MonotonicTime.deadline(after: timeout)
        let lines = try await onDedicatedThread {
            try ChildProcess(executable: executable, arguments: arguments).readToEnd(before: deadline)
        }
        return Self.pairs(in: lines)
    }

    /// Collects `key=value` pairs; words without `=` belong to the value before them, so that
    /// `broker=RabbitMQ 3.10.8` keeps its space.
    static func pairs(in lines: [String]) -> [String: String] {
        var pairs: [String: String] = [:]
        for line in lines {
            var lastKey: String?
            for word in line.split(separator: " ") {
                if let equals = word.firstIndex(of: "=") {
                    let key = String(word[..<equals])
                    pairs[key] = String(word[word.index(after: equals)...])
                    lastKey = key
                } else if let key = lastKey {
                    pairs[key, default: ""] += " " + word
                }
            }
        }
        return pairs
    }
}
