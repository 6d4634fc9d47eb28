import AMQPRetry
import Foundation

/// A workload of the benchmark.
enum Workload: String, CaseIterable, Sendable {
    case w1, w2, w3, w4, w5
}

/// An invalid command line; the message names the option and the value.
struct UsageError: Error, CustomStringConvertible {
    let description: String
}

/// The options of a benchmark run.
struct BenchOptions: Sendable {
    static let usage = """
        OVERVIEW: Run each workload through AMQPRetry and through a librabbitmq baseline, and compare them.

        USAGE: amqp-retry-bench --baseline <path> [--rounds <n>] [--workloads <list>] [--scale <fraction>]
                                [--output <file>] [--command <text>]
               amqp-retry-bench worker --service <name> [--failing-attempts <n>] [--concurrency <n>]
                                [--max-seconds <n>]

        OPTIONS:
          --baseline <path>       The amqp-retry-baseline program built from Benchmarks/baseline.
          --rounds <n>            The rounds of W1, W2, W3 and W5, from 1 to 20; W4 runs once. (default: 5)
          --workloads <list>      Comma-separated workloads among w1, w2, w3, w4 and w5. (default: all)
          --scale <fraction>      Multiplies every message count, from 0.01 to 1, for quick trials whose
                                  figures are not comparable with full runs. (default: 1)
          --output <file>         A Markdown page whose results block is replaced, or appended when it
                                  has none. (default: print only)
          --command <text>        The command the page records. (default: this command line)
          --results-block <name>  The name in the markers of the block that --output replaces,
                                  <!-- <name>: start --> and <!-- <name>: end -->; letters, digits
                                  and hyphens. (default: results)
          --cpu-layout <text>     How the broker and this program share the CPUs, recorded on the page.
                                  (default: AMQPRETRY_CPU_LAYOUT, which Benchmarks/separate-cores.sh
                                  sets, or nothing)
          --sides <list>          The sides to run, amqpretry and baseline; one alone is for profiling.
                                  (default: amqpretry,baseline)
          -h, --help              Show help information.

        The broker is the one AMQP_URL names, and it must be on the loopback interface (127.0.0.1,
        localhost or ::1). Every workload uses queues of its own and deletes them afterwards.
        The worker subcommand hosts one benchmark service for W4 and W5.
        """

    var baselinePath = ""
    var rounds = 5
    var workloads = Set(Workload.allCases)
    var scale = 1.0
    var output: String?
    var command: String
    /// The name in the markers of the results block that `--output` replaces.
    var resultsBlock = "results"
    /// The CPU layout of the broker and the benchmark, as the page records it.
    var cpuLayout: String?
    /// The sides to run; one side alone is for profiling.
    var sides: [Side] = [.amqpRetry, .baseline]

    /// Parses the options of a run.
    /// - Throws: ``UsageError`` for an unknown option, a missing value or a value out of range.
    init(arguments: [String]) throws {
        command = (["amqp-retry-bench"] + arguments).joined(separator: " ")
        cpuLayout = ProcessInfo.processInfo.environment["AMQPRETRY_CPU_LAYOUT"].flatMap { $0.isEmpty ? nil : $0 }
        var remaining = arguments[...]
        while let option = remaining.popFirst() {
            guard let value = remaining.popFirst() else {
                throw UsageError(description: "missing value for '\(option)'")
            }
            try apply(option, value)
        }
        guard !baselinePath.isEmpty else {
            throw UsageError(description: "missing '--baseline <path>'; build it with `make bench`")
        }
    }

    private mutating func apply(_ option: String, _ value: String) throws {
        switch option {
        case "--baseline": baselinePath = value
        case "--rounds": rounds = try Self.integer(value, option: option, in: 1...20)
        case "--workloads": workloads = try Self.workloads(value)
        case "--scale": scale = try Self.fraction(value, option: option)
        case "--output": output = value
        case "--command": command = value
        case "--sides": sides = try Self.sides(value)
        case "--results-block": resultsBlock = try Self.blockName(value)
        case "--cpu-layout": cpuLayout = value
        default: throw UsageError(description: "unknown option '\(option)'; see --help")
        }
    }

    private static func blockName(_ text: String) throws -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
        guard !text.isEmpty, text.allSatisfy(allowed.contains) else {
            throw UsageError(description: "invalid value '\(text)' for '--results-block': expected letters, digits "
                + "and hyphens, such as results-separate-cores")
        }
        return text
    }

    private static func sides(_ text: String) throws -> [Side] {
        let sides = try text.split(separator: ",").map { name in
            guard let side = Side(option: String(name)) else {
                throw UsageError(description: "unknown side '\(name)' in '--sides': expected amqpretry or baseline")
            }
            return side
        }
        guard !sides.isEmpty else {
            throw UsageError(description: "'--sides' names no side")
        }
        return sides
    }

    static func integer(_ text: String, option: String, in range: ClosedRange<Int>) throws -> Int {
        guard let value = Int(text), range.contains(value) else {
            throw UsageError(description: "invalid value '\(text)' for '\(option)': expected a whole number "
                + "from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    private static func fraction(_ text: String, option: String) throws -> Double {
        guard let value = Double(text), value >= 0.01, value <= 1 else {
            throw UsageError(description: "invalid value '\(text)' for '\(option)': expected a number from 0.01 to 1")
        }
        return value
    }

    private static func workloads(_ text: String) throws -> Set<Workload> {
        var chosen = Set<Workload>()
        for name in text.split(separator: ",") {
            guard let workload = Workload(rawValue: name.lowercased()) else {
                throw UsageError(description: "unknown workload '\(name)' in '--workloads': expected w1, w2, w3, w4 or w5")
            }
            chosen.insert(workload)
        }
        guard !chosen.isEmpty else {
            throw UsageError(description: "'--workloads' names no workload")
        }
        return chosen
    }

    /// Reads the broker configuration of `AMQP_URL`.
    /// - Throws: ``UsageError`` when the variable is unset or names a broker that is not on the
    ///   loopback interface, because the benchmark floods its broker with messages.
    static func loopbackConfiguration() throws -> ConnectionConfiguration {
        guard let url = ProcessInfo.processInfo.environment["AMQP_URL"], !url.isEmpty else {
            throw UsageError(description: "AMQP_URL is not set; run `make bench`, which starts a private broker, "
                + "or set it to the URL of a broker on the loopback interface")
        }
        let configuration = try ConnectionConfiguration.fromEnvironment()
        let loopback: Set<String> = ["127.0.0.1", "localhost", "::1"]
        guard configuration.addresses.allSatisfy({ loopback.contains($0.host) }) else {
            throw UsageError(description: "AMQP_URL names \(configuration.brokerAddress); the benchmark runs only "
                + "against a broker on the loopback interface (127.0.0.1, localhost or ::1)")
        }
        return configuration
    }
}
