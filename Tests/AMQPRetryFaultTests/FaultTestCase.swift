@testable import AMQPRetry
import Foundation
import XCTest

/// The base of every fault test. It connects to the private broker and resets what an earlier
/// test may have left: a stopped application, a stalled VM, demo queues with messages. It starts
/// and kills worker processes, and stops everything at the end.
///
/// A test fails, and never skips, when the broker or the worker executable is missing.
class FaultTestCase: XCTestCase {
    /// The demo services every `amqp-retry worker` hosts.
    static let demoServices = ["demo.echo", "demo.flaky", "demo.fail", "demo.slow", "demo.callbacks"]

    /// The memory high watermark RabbitMQ 3.10 starts with, which tests restore.
    static let defaultMemoryHighWatermark = 0.4

    /// A random tag, unique to this test, in the names the test declares.
    private(set) var runID = ""
    /// The log records of the connections the test opens itself.
    let logs = LogCapture()

    private var setupError: (any Error)?
    private var baseURL = ""
    private var control: BrokerControl?
    private var setupConnection: AMQPConnection?
    private var workerExecutable = ""
    private var outputDirectory: URL?

    private let state = Locked(TestState())

    private struct TestState {
        var workers: [WorkerProcess] = []
        var clients: [AMQPRetryClient] = []
        var collectors: [QueueCollector] = []
        var stalledPID: Int32?
        var memoryAlarmSet = false
        var declaredQueues: [String] = []
        var declaredExchanges: [String] = []
    }

    /// The broker URL from `AMQP_URL`, without query parameters added by the test.
    var brokerURL: String {
        get throws {
            try checkSetup()
            return baseURL
        }
    }

    /// The control of the private broker.
    var broker: BrokerControl {
        get throws {
            try checkSetup()
            return control!
        }
    }

    /// The connection the test uses to declare, count, purge and delete.
    var connection: AMQPConnection {
        get throws {
            try checkSetup()
            return setupConnection!
        }
    }

    override func setUp() async throws {
        try await super.setUp()
        runID = String((0..<8).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
        continueAfterFailure = true
        // A throwing setUp would mark the test as skipped, so the failure is recorded here and
        // the test's first use of the broker throws it again.
        do {
            try await prepare()
        } catch {
            setupError = error
            XCTFail("\(error)")
        }
    }

    private func prepare() async throws {
        baseURL = try FaultEnvironment.brokerURL()
        let configuration = try ConnectionConfiguration(url: baseURL)
        control = BrokerControl(script: try FaultEnvironment.controlScript(), port: configuration.port)
        workerExecutable = try FaultEnvironment.workerExecutable()

        WorkerRegistry.killLeftovers(port: configuration.port, executable: workerExecutable)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("amqpretry-faults-\(runID)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        outputDirectory = directory

        let connection = AMQPConnection(configuration: try self.configuration(), name: "amqpretry faults \(runID)",
                                        logger: logs.logger(label: "test connection"))
        do {
            try await connection.start()
        } catch {
            try await resetBroker()
            try await connection.start()
        }
        setupConnection = connection
        try await deleteDemoQueues(on: connection)
    }

    /// Undoes what an earlier test that ended half-way may have left: a stalled VM or a stopped
    /// application.
    private func resetBroker() async throws {
        let control = control!
        // The pid file of the deploy scripts names the VM even while SIGSTOP stops it.
        if let stalled = Self.pidFromPidFile(port: control.port) {
            _ = Glibc.kill(stalled, SIGCONT)
        }
        try await control.run(["start_app"])
        try await control.run(["await_startup"])
        try await control.setMemoryHighWatermark(Self.defaultMemoryHighWatermark)
    }

    /// Reads the VM's pid from the pid file that `deploy/rabbitmq-start.sh` gives the node.
    static func pidFromPidFile(port: Int) -> Int32? {
        let directory = ProcessInfo.processInfo.environment["AMQPRETRY_BROKER_DIR"]
            ?? "/tmp/amqpretry-rabbitmq-\(port)"
        let text = try? String(contentsOfFile: directory + "/rabbitmq.pid", encoding: .utf8)
        return text.flatMap { Int32($0.filter(\.isNumber)) }
    }

    /// Deletes the demo services' queues and purges the parking queue, so that messages an
    /// earlier test left cannot reach this one.
    private func deleteDemoQueues(on connection: AMQPConnection) async throws {
        for service in Self.demoServices + [FaultServiceNames.crash] {
            try await connection.deleteQueue(TopologyNames.serviceQueue(service))
        }
        _ = try await connection.declare(Self.parkingTopology)
        try await connection.purgeQueue(TopologyNames.parkingQueue)
    }

    override func tearDown() async throws {
        let (workers, clients, collectors, stalled) = state.withLock { state in
            (state.workers, state.clients, state.collectors, state.stalledPID)
        }
        if let stalled {
            _ = Glibc.kill(stalled, SIGCONT)
        }
        for worker in workers where worker.process.isRunning {
            worker.process.send(SIGKILL)
            _ = await worker.process.waitForExit(timeout: .seconds(10))
        }
        for client in clients {
            await client.close()
        }
        for collector in collectors {
            await collector.close()
        }
        if let control, state.withLock({ $0.memoryAlarmSet }) {
            try? await control.setMemoryHighWatermark(Self.defaultMemoryHighWatermark)
        }
        if let setupConnection {
            try? await deleteDemoQueues(on: setupConnection)
            let (queues, exchanges) = state.withLock { ($0.declaredQueues, $0.declaredExchanges) }
            for queue in queues {
                try? await setupConnection.deleteQueue(queue)
            }
            for exchange in exchanges {
                try? await setupConnection.deleteExchange(exchange)
            }
            await setupConnection.close()
        }
        if let outputDirectory {
            let keep = ProcessInfo.processInfo.environment["AMQPRETRY_FAULTS_KEEP_OUTPUT"] == "1"
            if testRun?.totalFailureCount == 0 && !keep {
                try? FileManager.default.removeItem(at: outputDirectory)
            } else {
                print("The output of the worker processes is in \(outputDirectory.path)")
            }
        }
        try await super.tearDown()
    }

    private func checkSetup() throws {
        if let setupError {
            throw setupError
        }
        guard control != nil, setupConnection != nil || !baseURL.isEmpty else {
            throw FaultEnvironment.SetupError(description: "setUp did not run")
        }
    }

    // MARK: Configuration and names

    /// The topology of the shared parking queue, as workers declare it.
    static let parkingTopology: [TopologyItem] = [.queue(QueueDeclaration(name: TopologyNames.parkingQueue))]

    /// Returns the broker URL with query parameters added, such as `("heartbeat", "2")`.
    func url(_ parameters: [(String, String)] = []) throws -> String {
        FaultEnvironment.url(try brokerURL, adding: parameters)
    }

    /// Parses the broker URL with query parameters added. The connection timeout is 5 s unless
    /// the parameters set it, so that a broker that does not respond fails a test quickly.
    func configuration(_ parameters: [(String, String)] = []) throws -> ConnectionConfiguration {
        var configuration = try ConnectionConfiguration(url: try url(parameters))
        if !parameters.contains(where: { $0.0 == "connection_timeout" }) {
            configuration.connectionTimeout = .seconds(5)
        }
        return configuration
    }

    /// Returns a callback service name unique to this test and declares its queue, which the
    /// end of the test deletes.
    func makeCallbackService() async throws -> String {
        try await makeService("callbacks")
    }

    /// Returns a service name unique to this test, such as `faults.k3x9a0qz.callbacks`, and
    /// declares its queue, which the end of the test deletes.
    func makeService(_ suffix: String) async throws -> String {
        let service = "faults.\(runID).\(suffix)"
        _ = try await connection.declare(Topology.service(service))
        state.withLock { $0.declaredQueues.append(TopologyNames.serviceQueue(service)) }
        return service
    }

    /// Returns a retry interval in milliseconds within `range` and declares its delay queue, so
    /// that the test can count the queue from the start. The end of the test deletes the delay
    /// queue and exchange.
    func makeRetryInterval(_ range: ClosedRange<Int64>) async throws -> Int64 {
        let milliseconds = Int64.random(in: range)
        _ = try await connection.declare(Topology.delay(milliseconds: milliseconds))
        state.withLock {
            $0.declaredQueues.append(TopologyNames.delayQueue(milliseconds: milliseconds))
            $0.declaredExchanges.append(TopologyNames.delayExchange(milliseconds: milliseconds))
        }
        return milliseconds
    }

    /// Deletes `queue` at the end of the test.
    func deleteAtEnd(queue: String) {
        state.withLock { $0.declaredQueues.append(queue) }
    }

    /// Deletes `exchange` at the end of the test.
    func deleteAtEnd(exchange: String) {
        state.withLock { $0.declaredExchanges.append(exchange) }
    }

    // MARK: Workers, clients and readers

    /// Starts an `amqp-retry worker` process and waits until it consumes its queues.
    ///
    /// With `crashService`, the worker also hosts `demo.crash`, which may end it before it logs
    /// that it consumes every queue. An exit with the crash's status then counts as a start.
    @discardableResult
    func startWorker(url workerURL: String? = nil, concurrency: Int = 8,
                     crashService: Bool = false) async throws -> WorkerProcess {
        guard let outputDirectory else { throw FaultEnvironment.SetupError(description: "setUp did not run") }
        let number = state.withLock { $0.workers.count + 1 }
        let process = try ChildProcess(
            executable: workerExecutable,
            arguments: ["worker", "--url", try workerURL ?? brokerURL, "--concurrency", String(concurrency)],
            environment: crashService ? [FaultServiceNames.crashVariable: "1"] : [:],
            standardOutputPath: outputDirectory.appendingPathComponent("worker-\(number).out").path,
            standardErrorPath: outputDirectory.appendingPathComponent("worker-\(number).err").path
        )
        WorkerRegistry.add(process.pid, port: try ConnectionConfiguration(url: try brokerURL).port)
        let worker = WorkerProcess(number: number, process: process)
        state.withLock { $0.workers.append(worker) }
        let consuming = await worker.waitUntilConsuming(timeout: .seconds(30))
        guard consuming || (crashService && worker.process.status == FaultServiceNames.crashStatus) else {
            throw FaultEnvironment.SetupError(description: "worker \(number) did not start consuming within 30 s: "
                + String(worker.process.standardError().suffix(2000)))
        }
        return worker
    }

    /// Every worker process the test started, running or not.
    var workers: [WorkerProcess] {
        state.withLock { $0.workers }
    }

    /// Kills a worker with SIGKILL and waits until it has ended.
    func kill(_ worker: WorkerProcess, file: StaticString = #filePath, line: UInt = #line) async {
        worker.process.send(SIGKILL)
        let status = await worker.process.waitForExit(timeout: .seconds(10))
        XCTAssertNotNil(status, "worker \(worker.number) still runs 10 s after SIGKILL", file: file, line: line)
    }

    /// Connects a client that the end of the test closes.
    func connectClient(_ parameters: [(String, String)] = []) async throws -> AMQPRetryClient {
        let client = try await AMQPRetryClient.connect(configuration: try configuration(parameters),
                                                       name: "amqpretry faults \(runID) client",
                                                       logger: logs.logger(label: "client"))
        state.withLock { $0.clients.append(client) }
        return client
    }

    /// Starts collecting the messages of a service's queue, acknowledging each.
    func collectQueue(of service: String) async throws -> QueueCollector {
        try await collect(TopologyNames.serviceQueue(service), topology: Topology.service(service))
    }

    /// Starts collecting the parking queue.
    func collectParkedMessages() async throws -> QueueCollector {
        try await collect(TopologyNames.parkingQueue, topology: Self.parkingTopology)
    }

    private func collect(_ queue: String, topology: [TopologyItem]) async throws -> QueueCollector {
        let collector = try await QueueCollector.start(queue: queue, topology: topology,
                                                       configuration: try configuration(),
                                                       logger: logs.logger(label: "reader \(queue)"))
        state.withLock { $0.collectors.append(collector) }
        return collector
    }

    // MARK: Broker alarms and stalls

    /// Sets RabbitMQ's memory high watermark so low that the memory alarm goes off at once and
    /// the broker blocks every publishing connection; the end of the test restores it.
    func raiseMemoryAlarm() async throws {
        state.withLock { $0.memoryAlarmSet = true }
        try await broker.setMemoryHighWatermark(0.000001)
    }

    /// Restores the memory high watermark, which clears the alarm.
    func clearMemoryAlarm() async throws {
        try await broker.setMemoryHighWatermark(Self.defaultMemoryHighWatermark)
        state.withLock { $0.memoryAlarmSet = false }
    }

    /// Stops the broker's VM with SIGSTOP; the end of the test sends SIGCONT when the test
    /// did not.
    func stallBroker(_ pid: Int32) {
        state.withLock { $0.stalledPID = pid }
        _ = Glibc.kill(pid, SIGSTOP)
    }

    /// Resumes a VM stopped by ``stallBroker(_:)``.
    func resumeBroker() {
        let pid = state.withLock { state -> Int32? in
            defer { state.stalledPID = nil }
            return state.stalledPID
        }
        if let pid {
            _ = Glibc.kill(pid, SIGCONT)
        }
    }
}

/// A file of the process IDs of every worker the fault tests started against one broker, so
/// that a test run that crashed before its tear-down leaves no worker behind for the next run.
enum WorkerRegistry {
    private static func path(port: Int) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("amqpretry-faults-\(port)-workers.pids").path
    }

    /// Records a started worker.
    static func add(_ pid: Int32, port: Int) {
        let line = Data("\(pid)\n".utf8)
        let path = path(port: port)
        if let handle = FileHandle(forWritingAtPath: path) {
            handle.seekToEndOfFile()
            handle.write(line)
            try? handle.close()
        } else {
            _ = FileManager.default.createFile(atPath: path, contents: line)
        }
    }

    /// Kills each recorded worker that still runs `executable`, then empties the file. A
    /// recorded pid whose process is gone, or now runs another program, is left alone.
    static func killLeftovers(port: Int, executable: String) {
        let path = path(port: port)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        for pid in text.split(separator: "\n").compactMap({ Int32($0) }) {
            let commandLine = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
            let arguments = commandLine.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if arguments.first == executable && arguments.dropFirst().first == "worker" {
                print("killing worker \(pid), left running by an earlier test run")
                _ = Glibc.kill(pid, SIGKILL)
            }
        }
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// The names `FaultServices` of the command-line tool uses, repeated here because the test
/// target cannot import an executable target.
enum FaultServiceNames {
    /// The service that exits the worker process on `{"crash": true}`.
    static let crash = "demo.crash"
    /// The environment variable that makes `amqp-retry worker` host ``crash``.
    static let crashVariable = "AMQPRETRY_DEMO_CRASH_SERVICE"
    /// The exit status of a worker that ``crash`` ended.
    static let crashStatus: Int32 = 1
}

// MARK: - Logs

/// An in-memory log handler that keeps every record in order.
final class LogCapture: Sendable {
    private let storage = Locked<[LogRecord]>([])

    /// The records received so far.
    var records: [LogRecord] {
        storage.withLock { $0 }
    }

    /// Returns the records whose message is exactly `message`.
    func records(withMessage message: String) -> [LogRecord] {
        records.filter { $0.message == message }
    }

    /// Makes a logger that appends its records to this capture.
    func logger(label: String, logLevel: Logger.Level = .info) -> Logger {
        Logger(label: label, logLevel: logLevel) { record in
            self.storage.withLock { $0.append(record) }
        }
    }
}
