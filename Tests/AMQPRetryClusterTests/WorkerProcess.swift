import Foundation

/// An `amqp-retry worker` process, which hosts the demo services and prints one line per
/// finished call on standard output.
struct WorkerProcess: Sendable {
    /// The URL list the worker connects with; its first URL is the node it tries first.
    let urlList: String
    let process: ChildProcess

    /// Starts a worker with `--concurrency concurrency`, writing its output to
    /// `directory/worker-<name>.out` and `.err`.
    static func start(
        executable: String, urlList: String, concurrency: Int, directory: String, name: String
    ) throws -> WorkerProcess {
        let process = try ChildProcess(
            executable: executable,
            arguments: ["worker", "--url", urlList, "--concurrency", String(concurrency), "--log-level", "notice"],
            standardOutputPath: "\(directory)/worker-\(name).out",
            standardErrorPath: "\(directory)/worker-\(name).err"
        )
        return WorkerProcess(urlList: urlList, process: process)
    }

    /// Parses the calls the worker has printed so far.
    func calls() -> [CallLine] {
        process.standardOutput().split(separator: "\n").compactMap { CallLine(parsing: $0) }
    }
}

/// One line that `amqp-retry worker` prints when a call of a demo service finishes, such as
/// `2026-12-04T21:08:01.123Z  demo.flaky      attempt 2  async  K04…  failed: …`.
struct CallLine: Sendable {
    /// When the call finished, from the worker's clock, with millisecond precision.
    let time: Date
    let service: String
    let attempt: Int
    let cid: String
    /// Whether the line reports a response (`ok:`) rather than an error (`failed:`).
    let ok: Bool

    /// Parses a call line; returns `nil` for any other line, such as the worker's greeting.
    init?(parsing line: Substring) {
        let fields = line.split(separator: " ", maxSplits: 6, omittingEmptySubsequences: true)
        guard fields.count == 7, fields[2] == "attempt", let attempt = Int(fields[3]),
              let time = try? Self.timeStyle.parse(String(fields[0])) else {
            return nil
        }
        self.time = time
        self.service = String(fields[1])
        self.attempt = attempt
        self.cid = String(fields[5])
        self.ok = fields[6].hasPrefix("ok:")
    }

    /// The format of the time at the start of a line: ISO 8601 in UTC with milliseconds.
    private static let timeStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
}
