@testable import AMQPRetry
import CRabbitMQ
import Foundation
import XCTest

// MARK: - Environment

/// The broker, its control script and the worker executable of the fault tests.
///
/// The tests stop, stall and restart the broker, so they fail unless `deploy/with-broker.sh`
/// started a private node for them. `AMQP_URL` must point at a loopback address, and
/// `AMQPRETRY_RABBITMQCTL` must name the node's control script.
enum FaultEnvironment {
    /// An error that stops a test before it starts, with what to do about it.
    struct SetupError: Error, CustomStringConvertible {
        let description: String
    }

    /// How to run the fault tests, for the messages of setup errors.
    static let howToRun = "run `make faults`, which starts a private RabbitMQ node for them "
        + "(AMQPRETRY_BROKER_PORT=5760 deploy/with-broker.sh swift test --filter AMQPRetryFaultTests)"

    /// Reads the broker URL from `AMQP_URL` and checks that it names a loopback address.
    static func brokerURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["AMQP_URL"], !url.isEmpty else {
            throw SetupError(description: "AMQP_URL is not set: \(howToRun)")
        }
        let configuration = try ConnectionConfiguration(url: url)
        guard ["127.0.0.1", "localhost", "::1"].contains(configuration.host) else {
            throw SetupError(description: "AMQP_URL points at \(configuration.host), but the fault tests restart and "
                + "stall their broker, so they only run against a private node on loopback: \(howToRun)")
        }
        return url
    }

    /// Reads the path of `deploy/rabbitmqctl.sh` from `AMQPRETRY_RABBITMQCTL`.
    static func controlScript() throws -> String {
        guard let path = ProcessInfo.processInfo.environment["AMQPRETRY_RABBITMQCTL"], !path.isEmpty else {
            throw SetupError(description: "AMQPRETRY_RABBITMQCTL is not set, so the tests cannot control the broker: "
                + howToRun)
        }
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw SetupError(description: "AMQPRETRY_RABBITMQCTL=\(path) is not an executable file")
        }
        return path
    }

    /// Finds the `amqp-retry` executable built next to the test bundle, in `.build/debug` or
    /// under the `--scratch-path` of the build.
    static func workerExecutable() throws -> String {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [
            bundle.deletingLastPathComponent().appendingPathComponent("amqp-retry").path,
            Bundle.main.bundleURL.appendingPathComponent("amqp-retry").path,
        ]
        guard let found = candidates.first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw SetupError(description: "amqp-retry not found at \(candidates.joined(separator: " or ")): "
                + "build it with `swift build --build-tests` (with the same --scratch-path as the tests)")
        }
        return found
    }

    /// Returns `url` with query parameters added, such as `heartbeat=2`.
    static func url(_ url: String, adding parameters: [(String, String)]) -> String {
        guard !parameters.isEmpty else { return url }
        let query = parameters.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        return url + (url.contains("?") ? "&" : "?") + query
    }
}

// MARK: - Child processes

/// A process started by a test, whose end a test can wait for with a deadline.
///
/// The process's standard output and error go to files, so that nothing blocks on a full pipe
/// and the output stays readable after the process died.
final class ChildProcess: Sendable {
    private struct State {
        var status: Int32?
        var waiters: [UInt64: CheckedContinuation<Int32?, Never>] = [:]
        var nextWaiterID: UInt64 = 0
    }

    /// The process ID; never signalled after the process has been reaped.
    let pid: Int32
    let standardOutputPath: String
    let standardErrorPath: String
    private let state = Locked(State())
    private let process: Process

    /// Starts `executable` with `arguments`, adding `environment` to this process's environment.
    init(executable: String, arguments: [String], environment: [String: String] = [:],
         standardOutputPath: String, standardErrorPath: String) throws {
        _ = FileManager.default.createFile(atPath: standardOutputPath, contents: nil)
        _ = FileManager.default.createFile(atPath: standardErrorPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: standardOutputPath))
        let errors = try FileHandle(forWritingTo: URL(fileURLWithPath: standardErrorPath))

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = errors
        self.process = process
        self.standardOutputPath = standardOutputPath
        self.standardErrorPath = standardErrorPath

        let exited = Locked<(@Sendable (Int32) -> Void)?>(nil)
        process.terminationHandler = { finished in
            exited.withLock { $0 }?(finished.terminationStatus)
        }
        try process.run()
        pid = process.processIdentifier
        try? output.close()
        try? errors.close()
        exited.withLock { $0 = { [weak self] status in self?.finish(status) } }
        if !process.isRunning {
            finish(process.terminationStatus)
        }
    }

    /// The exit status, or the signal number for a process a signal ended; `nil` while it runs.
    var status: Int32? {
        state.withLock { $0.status }
    }

    /// Whether the process still runs.
    var isRunning: Bool {
        status == nil
    }

    /// Sends `signal` unless the process has already ended.
    func send(_ signal: Int32) {
        state.withLock { state in
            if state.status == nil {
                _ = Glibc.kill(pid, signal)
            }
        }
    }

    /// Waits up to `timeout` for the process to end and returns its status, or `nil` when it
    /// still runs.
    func waitForExit(timeout: Duration) async -> Int32? {
        let id = state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
        let status = await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
            let ended = state.withLock { state -> Int32? in
                if let status = state.status { return status }
                state.waiters[id] = continuation
                return nil
            }
            if let ended {
                continuation.resume(returning: ended)
            }
        }
        timer.cancel()
        return status
    }

    /// Returns the CPU time in seconds the process has used so far, from `/proc/PID/stat`, or
    /// `nil` once it has ended.
    func cpuSeconds() -> Double? {
        guard isRunning, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let afterName = stat.range(of: ") ", options: .backwards) else {
            return nil
        }
        // Fields after the command name start at field 3 (state); utime and stime are 14 and 15.
        let fields = stat[afterName.upperBound...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else {
            return nil
        }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Reads the standard output written so far.
    func standardOutput() -> String {
        (try? String(contentsOfFile: standardOutputPath, encoding: .utf8)) ?? ""
    }

    /// Reads the standard error written so far.
    func standardError() -> String {
        (try? String(contentsOfFile: standardErrorPath, encoding: .utf8)) ?? ""
    }

    private func finish(_ status: Int32) {
        let waiters = state.withLock { state in
            state.status = status
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        waiters.forEach { $0.resume(returning: status) }
    }
}

/// Runs a command to its end with a deadline and returns its exit status and output.
func runCommand(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                timeout: Duration) async throws -> (status: Int32?, output: String) {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("amqpretry-faults-command-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }

    let child = try ChildProcess(executable: executable, arguments: arguments, environment: environment,
                                 standardOutputPath: directory.appendingPathComponent("out").path,
                                 standardErrorPath: directory.appendingPathComponent("err").path)
    let status = await child.waitForExit(timeout: timeout)
    if status == nil {
        child.send(SIGKILL)
        _ = await child.waitForExit(timeout: .seconds(5))
    }
    return (status, child.standardOutput() + child.standardError())
}

// MARK: - Broker control

/// Controls the private RabbitMQ node through `deploy/rabbitmqctl.sh`.
struct BrokerControl: Sendable {
    let script: String
    /// The node's AMQP port, passed to the script as `AMQPRETRY_BROKER_PORT` so that it always
    /// controls the node behind `AMQP_URL`.
    let port: Int

    /// Runs `rabbitmqctl` with `arguments` and returns its output; throws when it fails.
    @discardableResult
    func run(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> String {
        let (status, output) = try await runCommand(script, arguments,
                                                    environment: ["AMQPRETRY_BROKER_PORT": String(port)],
                                                    timeout: timeout)
        guard status == 0 else {
            let outcome = status.map { "exited with status \($0)" } ?? "did not finish within \(timeout)"
            throw FaultEnvironment.SetupError(description: "rabbitmqctl \(arguments.joined(separator: " ")) "
                + "\(outcome): \(output.suffix(2000))")
        }
        return output
    }

    /// Stops the RabbitMQ application but not the Erlang VM; durable queues keep their
    /// persistent messages on disk.
    func stopApp() async throws {
        try await run(["stop_app"])
    }

    /// Starts the RabbitMQ application again and waits until it runs.
    func startApp() async throws {
        try await run(["start_app"])
        try await run(["await_startup"])
    }

    /// Closes every client connection with `reason`.
    func closeAllConnections(_ reason: String) async throws {
        try await run(["close_all_connections", reason])
    }

    /// Sets the memory high watermark as a fraction of the machine's memory.
    func setMemoryHighWatermark(_ fraction: Double) async throws {
        try await run(["set_vm_memory_high_watermark", String(fraction)])
    }

    /// Deletes a queue with its messages, as an operator would.
    func deleteQueue(_ queue: String) async throws {
        try await run(["delete_queue", queue])
    }

    /// Returns the number of messages, ready and unacknowledged, of each queue.
    func messageCounts() async throws -> [String: Int] {
        let output = try await run(["list_queues", "--quiet", "--no-table-headers", "name", "messages"])
        var counts: [String: Int] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: "\t")
            if fields.count == 2, let count = Int(fields[1]) {
                counts[String(fields[0])] = count
            }
        }
        return counts
    }

    /// Returns the OS process ID of the node's Erlang VM.
    func virtualMachinePID() async throws -> Int32 {
        let output = try await run(["eval", "os:getpid()."])
        guard let pid = Int32(output.filter(\.isNumber)), pid > 1 else {
            throw FaultEnvironment.SetupError(description: "rabbitmqctl eval 'os:getpid().' returned \(output)")
        }
        return pid
    }
}

// MARK: - Worker processes

/// One `amqp-retry worker` process hosting the demo services.
final class WorkerProcess: Sendable {
    /// One finished handler call, from a line the worker prints on standard output.
    struct HandlerCall: Sendable, Hashable {
        let service: String
        let attempt: Int
        let cid: String
        let ok: Bool
    }

    /// The number of this worker within its test, from 1, which its file names carry.
    let number: Int
    let process: ChildProcess

    init(number: Int, process: ChildProcess) {
        self.number = number
        self.process = process
    }

    /// Waits until the worker logged that it consumes its queues, or until it exits.
    func waitUntilConsuming(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if process.standardError().contains("worker started") {
                return true
            }
            if !process.isRunning {
                return false
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// Every handler call the worker printed.
    func handlerCalls() -> [HandlerCall] {
        process.standardOutput().split(separator: "\n").compactMap(Self.parseCall)
    }

    /// Returns the CID of every redelivered invocation the worker logged, once per redelivery.
    func redeliveredCIDs() -> [String] {
        process.standardError().split(separator: "\n").compactMap { line -> String? in
            guard line.contains("an invocation was redelivered"),
                  let match = line.firstMatch(of: #/amqpretry\.cid=(K[0-9A-Z]{27})/#) else {
                return nil
            }
            return String(match.1)
        }
    }

    /// Parses a line such as
    /// `2026-12-04T20:25:25.446Z  demo.flaky      attempt 2  async    K04E…  ok: {"attempt":2}`.
    static func parseCall(_ line: Substring) -> HandlerCall? {
        let pattern = #/^\S+\s+(\S+)\s+attempt (\d+)\s+\w+\s+(K[0-9A-Z]{27})\s+(ok|failed): /#
        guard let match = line.firstMatch(of: pattern), let attempt = Int(match.2) else {
            return nil
        }
        return HandlerCall(service: String(match.1), attempt: attempt, cid: String(match.3), ok: match.4 == "ok")
    }
}

// MARK: - Reading queues

/// A consumer of one queue that acknowledges every message and keeps it.
///
/// It reconnects and resubscribes by itself after a connection loss. A message whose
/// acknowledgement was lost with the connection arrives again, so the same message may be kept
/// twice; readers compare by correlation ID.
final class QueueCollector: Sendable {
    /// One received message.
    struct Message: Sendable {
        let delivery: Delivery
        let time: ContinuousClock.Instant

        /// The `correlation_id` property.
        var correlationID: String? {
            delivery.properties.correlationID
        }

        /// Returns the text of a header, or `nil` when it is absent or not text.
        func header(_ name: String) -> String? {
            delivery.properties.headers[name]?.textValue
        }
    }

    let queue: String
    private let connection: AMQPConnection
    private let received = Locked<[Message]>([])

    private init(queue: String, connection: AMQPConnection) {
        self.queue = queue
        self.connection = connection
    }

    /// Connects, declares `topology` and consumes `queue`.
    static func start(queue: String, topology: [TopologyItem], configuration: ConnectionConfiguration,
                      logger: Logger) async throws -> QueueCollector {
        let connection = AMQPConnection(configuration: configuration, name: "amqpretry faults reader \(queue)",
                                        logger: logger)
        try await connection.start()
        let collector = QueueCollector(queue: queue, connection: connection)
        let consumer = AMQPConnection.Consumer(queue: queue, noAck: false, topology: topology) { delivery, reference in
            connection.ack(reference)
            collector.received.withLock { $0.append(Message(delivery: delivery, time: .now)) }
        }
        do {
            _ = try await connection.addConsumer(consumer)
        } catch {
            await connection.close()
            throw error
        }
        return collector
    }

    /// The messages received so far, in arrival order.
    var messages: [Message] {
        received.withLock { $0 }
    }

    /// Returns the messages whose `correlation_id` is `correlationID`.
    func messages(correlationID: String) -> [Message] {
        messages.filter { $0.correlationID == correlationID }
    }

    /// Closes the connection; messages not yet acknowledged go back to the queue.
    func close() async {
        await connection.close()
    }
}

extension AMQPConnection {
    /// Returns the number of ready messages of a queue that exists, with a passive declare.
    func readyMessageCount(_ queue: String) async throws -> Int {
        let counts = try await declare([.queue(QueueDeclaration(name: queue, passive: true))])
        return counts.first??.messageCount ?? -1
    }

    /// Deletes a queue with `queue.delete`.
    func deleteQueue(_ queue: String) async throws {
        _ = try await perform("queue.delete") { (handle) throws(AMQPError) in
            try handle.deleteQueue(queue)
        }
    }

    /// Deletes an exchange with `exchange.delete`, which AMQPRetry itself never sends.
    func deleteExchange(_ exchange: String) async throws {
        try await perform("exchange.delete") { (handle) throws(AMQPError) in
            // Publishes and acks still buffered go out first, in their order.
            try handle.writeFrames()
            let error = exchange.withCString { name -> AMQPError? in
                amqp_exchange_delete(handle.state, ConnectionHandle.channel, amqp_cstring_bytes(name), 0)
                return AMQPError.rpcReply(amqp_get_rpc_reply(handle.state), operation: "exchange.delete '\(exchange)'")
            }
            if let error {
                if error.code == .channelClosed {
                    handle.sendChannelCloseOK()
                }
                throw error
            }
        }
    }

    /// Purges a queue with `queue.purge`.
    func purgeQueue(_ queue: String) async throws {
        _ = try await perform("queue.purge") { (handle) throws(AMQPError) in
            try handle.purgeQueue(queue)
        }
    }
}

// MARK: - Waiting

/// Evaluates `condition` every `pollInterval` until it is true or `timeout` passes, and returns
/// whether it became true.
func eventually(
    timeout: Duration,
    pollInterval: Duration = .milliseconds(100),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() {
            return true
        }
        try? await Task.sleep(for: pollInterval)
    }
    return try await condition()
}

extension Duration {
    /// The duration in seconds as a floating-point number.
    var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
