@testable import AMQPRetry
import CRabbitMQ
import Foundation
import XCTest

// MARK: - Broker settings

/// Reads the broker settings of the integration tests from the environment.
enum IntegrationEnvironment {
    /// The name of the environment variable that contains the broker URL.
    static let urlVariable = "AMQP_URL"

    /// An error that stops a test before it starts, with what to do about it.
    struct SetupError: Error, CustomStringConvertible {
        let description: String
    }

    /// Parses `AMQP_URL`, and throws ``SetupError`` when it is unset, empty or invalid.
    ///
    /// The connection timeout is cut to 5 seconds so that a broker that does not respond fails
    /// the test quickly.
    static func configuration() throws -> ConnectionConfiguration {
        guard let url = ProcessInfo.processInfo.environment[urlVariable], !url.isEmpty else {
            throw SetupError(description: "\(urlVariable) is not set, so the integration tests have no RabbitMQ broker: "
                + "run `make test`, which provides one, or set \(urlVariable), "
                + "for example AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F")
        }

        var configuration: ConnectionConfiguration
        do {
            configuration = try ConnectionConfiguration(url: url)
        } catch {
            throw SetupError(description: "\(urlVariable) is invalid: \(error)")
        }
        configuration.connectionTimeout = .seconds(5)
        return configuration
    }

    /// Opens the connection a test uses to declare, count, publish and delete.
    static func connect(_ configuration: ConnectionConfiguration, name: String) async throws -> AMQPConnection {
        let connection = AMQPConnection(configuration: configuration, name: name, logger: .disabled)
        do {
            try await connection.start()
        } catch {
            throw SetupError(description: "connecting to RabbitMQ at \(configuration.redactedURL) failed (\(error)): "
                + "run `make test`, which provides a broker, or set \(urlVariable) to a running one")
        }
        return connection
    }
}

// MARK: - Logs

/// An in-memory log handler that keeps every record in order. Warnings and worse also go to
/// standard error, so that the output of a failing run shows them.
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
            if record.level >= .warning {
                let metadata = record.metadata.keys.sorted().map { "\($0)=\(record.metadata[$0] ?? "")" }
                let line = "[\(record.label)] \(record.level): \(record.message) \(metadata.joined(separator: " "))\n"
                FileHandle.standardError.write(Data(line.utf8))
            }
        }
    }
}

// MARK: - Service handlers

/// The error a test handler throws. Its description becomes the failure message on the wire.
struct HandlerFailure: Error, CustomStringConvertible {
    let description: String
}

/// Every call of one service's handler, in the order the calls started.
final class CallRecorder: Sendable {
    /// One handler call.
    struct Call: Sendable {
        /// The 1-based number of the call.
        let number: Int
        /// When the handler was entered.
        let time: ContinuousClock.Instant
        /// The request the handler received.
        let request: ServiceRequest
    }

    private let calls = Locked<[Call]>([])

    /// Stores a call and returns its 1-based number.
    @discardableResult
    func record(_ request: ServiceRequest) -> Int {
        let time = ContinuousClock.now
        return calls.withLock { calls in
            calls.append(Call(number: calls.count + 1, time: time, request: request))
            return calls.count
        }
    }

    /// The calls so far.
    var all: [Call] {
        calls.withLock { $0 }
    }

    /// The number of calls so far.
    var count: Int {
        calls.withLock { $0.count }
    }
}

/// Handlers whose calls are recorded, for the services under test.
enum TestHandlers {
    /// Returns the failure message of call `number`.
    static func failureMessage(call number: Int) -> String {
        "failure on call \(number)"
    }

    /// Makes a handler that fails on its first `failures` calls and returns `response` after that.
    static func failing(_ failures: Int, thenReturning response: Payload, recorder: CallRecorder) -> ServiceHandler {
        { request in
            let number = recorder.record(request)
            guard number > failures else {
                throw HandlerFailure(description: failureMessage(call: number))
            }
            return response
        }
    }

    /// Makes a handler that fails on every call with the message `message(callNumber)`.
    static func alwaysFailing(
        recorder: CallRecorder,
        message: @escaping @Sendable (Int) -> String = failureMessage(call:)
    ) -> ServiceHandler {
        { request in
            let number = recorder.record(request)
            throw HandlerFailure(description: message(number))
        }
    }
}

// MARK: - Worker

/// A worker running in a task, whose end a test can wait for with a deadline.
final class TestWorker: Sendable {
    private struct State {
        var result: Result<Void, any Error>?
        var waiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        var nextWaiterID: UInt64 = 0
    }

    let worker: Worker
    private let state = Locked(State())

    /// Starts `worker.run()` in a task.
    init(_ worker: Worker) {
        self.worker = worker
        Task { [self] in
            do {
                try await worker.run()
                finish(.success(()))
            } catch {
                finish(.failure(error))
            }
        }
    }

    /// How `run()` ended, or `nil` while it runs.
    var result: Result<Void, any Error>? {
        state.withLock { $0.result }
    }

    /// Asks the worker to stop and waits up to `timeout` for `run()` to return.
    /// Returns whether it returned in time.
    func stop(timeout: Duration = .seconds(15)) async -> Bool {
        worker.stop()
        return await waitForEnd(timeout: timeout)
    }

    /// Waits up to `timeout` for `run()` to return and returns whether it did.
    func waitForEnd(timeout: Duration) async -> Bool {
        let id = state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            resumeWaiter(id, with: false)
        }
        let ended = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let alreadyEnded = state.withLock { state -> Bool in
                guard state.result == nil else { return true }
                state.waiters[id] = continuation
                return false
            }
            if alreadyEnded {
                continuation.resume(returning: true)
            }
        }
        timer.cancel()
        return ended
    }

    private func resumeWaiter(_ id: UInt64, with value: Bool) {
        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: value)
    }

    private func finish(_ result: Result<Void, any Error>) {
        let waiters = state.withLock { state in
            state.result = result
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        waiters.forEach { $0.resume(returning: true) }
    }
}

// MARK: - Reading queues

/// A consumer of one queue that keeps the messages a filter accepts and acknowledges them.
///
/// Messages the filter rejects stay unacknowledged until ``close()``, which returns them to the
/// queue, so a reader of a shared queue takes away only its own messages.
final class QueueReader: Sendable {
    /// One accepted message and when it arrived.
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

    private struct State {
        var accepted: [Message] = []
        var unacknowledgedOthers: [AMQPConnection.DeliveryReference] = []
        var consumerID: UInt64?
    }

    /// The queue this reader consumes.
    let queue: String
    private let connection: AMQPConnection
    private let state = Locked(State())

    private init(queue: String, connection: AMQPConnection) {
        self.queue = queue
        self.connection = connection
    }

    /// Connects and starts consuming `queue` after declaring `topology`.
    ///
    /// - Parameter accept: Returns whether a delivery belongs to the test. It runs on the I/O thread.
    static func start(
        queue: String,
        topology: [TopologyItem],
        configuration: ConnectionConfiguration,
        accept: @escaping @Sendable (Delivery) -> Bool = { _ in true }
    ) async throws -> QueueReader {
        let connection = AMQPConnection(configuration: configuration, name: "amqpretry itest reader \(queue)",
                                        logger: .disabled)
        try await connection.start()
        let reader = QueueReader(queue: queue, connection: connection)
        let consumer = AMQPConnection.Consumer(queue: queue, noAck: false, topology: topology) { delivery, reference in
            reader.receive(delivery, reference, accepted: accept(delivery))
        }
        do {
            let id = try await connection.addConsumer(consumer)
            reader.state.withLock { $0.consumerID = id }
        } catch {
            await connection.close()
            throw error
        }
        return reader
    }

    /// The accepted messages so far, in arrival order.
    var messages: [Message] {
        state.withLock { $0.accepted }
    }

    /// Returns the accepted messages whose `correlation_id` is `correlationID`.
    func messages(correlationID: String) -> [Message] {
        messages.filter { $0.correlationID == correlationID }
    }

    /// Cancels the consumer, returns the messages it did not accept to the queue and closes
    /// the connection.
    func close() async {
        if let id = state.withLock({ $0.consumerID }) {
            try? await connection.removeConsumer(id)
        }
        let others = state.withLock { state in
            defer { state.unacknowledgedOthers.removeAll() }
            return state.unacknowledgedOthers
        }
        for reference in others {
            connection.reject(reference, requeue: true)
        }
        await connection.close()
    }

    private func receive(_ delivery: Delivery, _ reference: AMQPConnection.DeliveryReference, accepted: Bool) {
        guard accepted else {
            state.withLock { $0.unacknowledgedOthers.append(reference) }
            return
        }
        connection.ack(reference)
        let message = Message(delivery: delivery, time: .now)
        state.withLock { $0.accepted.append(message) }
    }
}

// MARK: - Broker operations

extension AMQPConnection {
    /// Returns the number of ready messages in a queue that exists, with a passive `queue.declare`.
    func readyMessageCount(_ queue: String) async throws -> Int {
        let counts = try await declare([.queue(QueueDeclaration(name: queue, passive: true))])
        return counts.first??.messageCount ?? -1
    }

    /// Returns the number of consumers of a queue, declaring the queue as AMQPRetry does.
    func consumerCount(_ queue: String) async throws -> Int {
        let arguments = Topology.serviceQueueArguments(type: configuration.queueType)
        let counts = try await declare([.queue(QueueDeclaration(name: queue, arguments: arguments))])
        return counts.first??.consumerCount ?? -1
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

    /// Returns the heartbeat interval in seconds that the broker agreed to on this connection.
    func negotiatedHeartbeatSeconds() async throws -> Int {
        try await perform("heartbeat") { handle in handle.heartbeatSeconds }
    }
}

// MARK: - Waiting

/// Evaluates `condition` every `pollInterval` until it is true or `timeout` passes, and returns
/// whether it became true.
func eventually(
    timeout: Duration = .seconds(10),
    pollInterval: Duration = .milliseconds(50),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    let maximumPolls = Int((timeout / pollInterval).rounded(.up)) + 1
    for _ in 0..<maximumPolls {
        if try await condition() {
            return true
        }
        guard ContinuousClock.now < deadline else {
            break
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

// MARK: - Test case

/// The base of every integration test: it connects to the broker from `AMQP_URL`, names the
/// test's services uniquely, and at the end stops the test's workers and checks and deletes
/// every queue the test used.
///
/// A test fails, and never skips, when `AMQP_URL` is unset or no broker responds.
class IntegrationTestCase: XCTestCase {
    private var setupConfiguration: ConnectionConfiguration?
    private var setupConnection: AMQPConnection?
    private var setupError: (any Error)?

    /// The broker settings from `AMQP_URL`. Reading them throws the setup error when there are none.
    var configuration: ConnectionConfiguration {
        get throws {
            guard let setupConfiguration else {
                throw setupError ?? IntegrationEnvironment.SetupError(description: "setUp did not run")
            }
            return setupConfiguration
        }
    }

    /// The connection the test uses to declare, count, publish and delete. Reading it throws the
    /// setup error when there is none.
    var broker: AMQPConnection {
        get throws {
            guard let setupConnection else {
                throw setupError ?? IntegrationEnvironment.SetupError(description: "setUp did not run")
            }
            return setupConnection
        }
    }

    /// The records of every logger the test gave to a worker or client.
    let logs = LogCapture()

    /// A random tag, unique to this test run, in every name the test declares.
    private(set) var runID = ""

    private var workers: [TestWorker] = []
    private var clients: [AMQPRetryClient] = []
    private var readers: [QueueReader] = []
    private var serviceQueues: [String] = []
    private var delayIntervals: [Int64] = []

    override func setUp() async throws {
        try await super.setUp()
        runID = String((0..<8).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
        // A throwing setUp would mark the test as skipped, so the failure is recorded here and
        // the test's first use of the broker throws it again, which ends the test.
        do {
            let configuration = try IntegrationEnvironment.configuration()
            setupConfiguration = configuration
            setupConnection = try await IntegrationEnvironment.connect(configuration, name: "amqpretry itest \(runID)")
        } catch {
            setupError = error
            XCTFail("\(error)")
        }
    }

    override func tearDown() async throws {
        for worker in workers where worker.result == nil {
            await stopWorker(worker)
        }
        for client in clients {
            await client.close()
        }
        for reader in readers {
            await reader.close()
        }
        if let setupConnection {
            await checkAndDeleteQueues(on: setupConnection)
            await setupConnection.close()
        }
        try await super.tearDown()
    }

    // MARK: Names and topology

    /// Returns a service name unique to this test, such as `itest.k3x9a0qz.flaky`, after
    /// declaring its queue, which the end of the test checks and deletes.
    func makeService(_ suffix: String) async throws -> String {
        let service = "itest.\(runID).\(suffix)"
        _ = try await broker.declare(Topology.service(service, type: configuration.queueType))
        serviceQueues.append(TopologyNames.serviceQueue(service))
        return service
    }

    /// Returns a retry interval in seconds, from 0.401 to 0.599 and never 0.5, whose delay
    /// queue no other test is likely to use, after declaring that queue and its exchange.
    ///
    /// The end of the test checks the delay queue is empty and deletes it and its exchange.
    func makeRetryInterval() async throws -> Double {
        var milliseconds: Int64 = 500
        while milliseconds == 500 {
            milliseconds = Int64.random(in: 401...599)
        }
        _ = try await broker.declare(Topology.delay(milliseconds: milliseconds, type: configuration.queueType))
        delayIntervals.append(milliseconds)
        return Double(milliseconds) / 1000
    }

    // MARK: Workers, clients and readers

    /// Starts a worker hosting `services` and waits until it consumes every service's queue.
    @discardableResult
    func startWorker(
        _ services: [String: ServiceHandler],
        configure: (inout Worker.Configuration) -> Void = { _ in }
    ) async throws -> TestWorker {
        let connection = try configuration
        var workerConfiguration = Worker.Configuration(connection: connection, name: "amqpretry itest \(runID) worker")
        configure(&workerConfiguration)
        let worker = Worker(configuration: workerConfiguration, logger: logs.logger(label: "worker"))
        for (service, handler) in services {
            try worker.register(service, handler: handler)
        }

        let testWorker = TestWorker(worker)
        workers.append(testWorker)
        let consuming = try await eventually {
            if case .failure(let error) = testWorker.result {
                throw IntegrationEnvironment.SetupError(description: "the worker failed to start: \(error)")
            }
            for service in services.keys {
                let consumers = try await broker.consumerCount(TopologyNames.serviceQueue(service))
                if consumers < 1 {
                    return false
                }
            }
            return true
        }
        guard consuming else {
            throw IntegrationEnvironment.SetupError(description: "the worker did not start consuming its queues within 10 seconds")
        }
        return testWorker
    }

    /// Connects a client that the end of the test closes.
    func connectClient(configuration clientConfiguration: ConnectionConfiguration? = nil) async throws -> AMQPRetryClient {
        let client = try await AMQPRetryClient.connect(
            configuration: clientConfiguration ?? configuration, name: "amqpretry itest \(runID) client",
            logger: logs.logger(label: "client")
        )
        clients.append(client)
        return client
    }

    /// Starts reading the queue of `service` raw, the way a callback arrives on the wire.
    func readQueue(of service: String) async throws -> QueueReader {
        let reader = try await QueueReader.start(queue: TopologyNames.serviceQueue(service),
                                                 topology: Topology.service(service, type: configuration.queueType),
                                                 configuration: configuration)
        readers.append(reader)
        return reader
    }

    /// Starts reading the delay queue of a retry interval, which takes each retry published
    /// there before the broker returns it to its service queue.
    func readDelayQueue(milliseconds: Int64) async throws -> QueueReader {
        let reader = try await QueueReader.start(queue: TopologyNames.delayQueue(milliseconds: milliseconds),
                                                 topology: Topology.delay(milliseconds: milliseconds,
                                                                          type: configuration.queueType),
                                                 configuration: configuration)
        readers.append(reader)
        return reader
    }

    /// Starts reading the shared parking queue, keeping only the messages parked from the
    /// queue of `service`.
    func readParkedMessages(of service: String) async throws -> QueueReader {
        let queue = TopologyNames.serviceQueue(service)
        let reader = try await QueueReader.start(queue: TopologyNames.parkingQueue, topology: Topology.parking(type: configuration.queueType),
                                                 configuration: configuration) { delivery in
            delivery.properties.headers[WireHeader.parkedQueue]?.textValue == queue
        }
        readers.append(reader)
        return reader
    }

    /// Stops a worker and checks that `run()` returned without an error.
    func stopWorker(_ worker: TestWorker, file: StaticString = #filePath, line: UInt = #line) async {
        let stopped = await worker.stop()
        XCTAssertTrue(stopped, "the worker did not stop within 15 seconds", file: file, line: line)
        if case .failure(let error) = worker.result {
            XCTFail("the worker's run() threw: \(error)", file: file, line: line)
        }
    }

    // MARK: Checks

    /// Checks that consecutive calls are `seconds` apart, within 20% of `seconds` or 150 ms,
    /// whichever is larger.
    func assertIntervals(
        _ calls: [CallRecorder.Call],
        seconds: Double,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let tolerance = max(0.2 * seconds, 0.15)
        for (previous, next) in zip(calls, calls.dropFirst()) {
            let gap = (next.time - previous.time).inSeconds
            XCTAssertEqual(gap, seconds, accuracy: tolerance,
                           "call \(next.number) started \(gap) s after call \(previous.number), "
                               + "expected \(seconds) s ± \(tolerance) s",
                           file: file, line: line)
        }
    }

    /// Waits until `reader` has received `count` messages, then waits `settle` more and checks that
    /// no further message arrived.
    func assertReceivesExactly(
        _ count: Int,
        from reader: QueueReader,
        within timeout: Duration = .seconds(10),
        settle: Duration = .milliseconds(800),
        file: StaticString = #filePath,
        line: UInt = #line
    ) async {
        let arrived = await eventually(timeout: timeout) { reader.messages.count >= count }
        XCTAssertTrue(arrived, "queue '\(reader.queue)' received \(reader.messages.count) messages "
            + "within \(timeout), expected \(count)", file: file, line: line)
        try? await Task.sleep(for: settle)
        XCTAssertEqual(reader.messages.count, count,
                       "queue '\(reader.queue)' received \(reader.messages.count) messages, expected exactly \(count)",
                       file: file, line: line)
    }

    /// Waits until `recorder` has `count` calls, then waits `settle` more and checks that
    /// no further call came.
    func assertCalledExactly(
        _ count: Int,
        _ recorder: CallRecorder,
        service: String,
        within timeout: Duration = .seconds(10),
        settle: Duration = .milliseconds(800),
        file: StaticString = #filePath,
        line: UInt = #line
    ) async {
        let called = await eventually(timeout: timeout) { recorder.count >= count }
        XCTAssertTrue(called, "service '\(service)' was called \(recorder.count) times within \(timeout), "
            + "expected \(count)", file: file, line: line)
        try? await Task.sleep(for: settle)
        XCTAssertEqual(recorder.count, count,
                       "service '\(service)' was called \(recorder.count) times, expected exactly \(count)",
                       file: file, line: line)
    }

    /// Checks that each used queue contains no ready message, then deletes the queues and exchanges.
    ///
    /// It runs after the workers, clients and readers closed, when every unacknowledged
    /// message is back in its queue, so a count of 0 also means nothing was left unacknowledged.
    private func checkAndDeleteQueues(on broker: AMQPConnection) async {
        let delayQueues = delayIntervals.map { TopologyNames.delayQueue(milliseconds: $0) }
        for queue in serviceQueues + delayQueues {
            do {
                let count = try await broker.readyMessageCount(queue)
                XCTAssertEqual(count, 0, "queue '\(queue)' holds \(count) messages after the test, expected none")
            } catch {
                XCTFail("counting the messages of queue '\(queue)' failed: \(error)")
            }
        }

        for queue in serviceQueues + delayQueues {
            do {
                try await broker.deleteQueue(queue)
            } catch {
                XCTFail("deleting queue '\(queue)' failed: \(error)")
            }
        }
        for milliseconds in delayIntervals {
            let exchange = TopologyNames.delayExchange(milliseconds: milliseconds)
            do {
                try await broker.deleteExchange(exchange)
            } catch {
                XCTFail("deleting exchange '\(exchange)' failed: \(error)")
            }
        }
    }
}

// MARK: - Callbacks

/// What the callback of one background invocation must contain.
struct ExpectedCallback {
    /// The CID of the invocation, which is also the callback's `correlation_id`.
    var cid: CID
    var ok: Bool
    var target: String
    var source: String = ""
    /// The CID the calling service was invoked with, or `nil` to accept any valid CID.
    var origCID: CID?
    var attempts: Int
    var repeats: Int
    var seconds: Double
    var context: JSONValue?
    /// The response text on success.
    var response: String?
    var responseEncoding: String = "utf-8"
    var responseContentType: String = "application/json"
    /// The error message on failure.
    var error: String?
}

extension IntegrationTestCase {
    /// The keys every callback body has, `null` or not.
    static let callbackKeys: Set<String> = [
        "ok", "source", "target", "retry_repeats", "retry_seconds", "call_cid", "orig_cid", "req_ts_utc",
        "resp_ts_utc", "context", "response", "response_encoding", "response_content_type", "attempts", "error",
    ]

    /// Checks the properties and the JSON body of a callback read raw from its queue.
    func assertCallback(
        _ message: QueueReader.Message,
        matches expected: ExpectedCallback,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let properties = message.delivery.properties
        XCTAssertEqual(properties.correlationID, expected.cid.rawValue,
                       "the callback's correlation_id is not the CID of the call", file: file, line: line)
        XCTAssertEqual(message.header(WireHeader.mode), InvocationMode.callback.rawValue,
                       "the callback's mode header is not 'callback'", file: file, line: line)
        XCTAssertEqual(properties.contentType, "application/json",
                       "the callback's content_type is not JSON", file: file, line: line)

        let keys = (try? JSONValue(parsing: message.delivery.body))?.objectValue.map { Set($0.keys) }
        XCTAssertEqual(keys, Self.callbackKeys, "the callback body does not have exactly the documented keys",
                       file: file, line: line)

        let body: CallbackBody
        do {
            body = try CallbackBody.decode(message.delivery.body)
        } catch {
            XCTFail("the callback body is not a CallbackBody: \(error)", file: file, line: line)
            return
        }
        assertCallbackBody(body, matches: expected, file: file, line: line)
    }

    /// Checks the fields of a decoded callback body.
    func assertCallbackBody(
        _ body: CallbackBody,
        matches expected: ExpectedCallback,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertEqual(body.ok, expected.ok, "callback 'ok'", file: file, line: line)
        XCTAssertEqual(body.source, expected.source, "callback 'source'", file: file, line: line)
        XCTAssertEqual(body.target, expected.target, "callback 'target'", file: file, line: line)
        XCTAssertEqual(body.callCID, expected.cid.rawValue, "callback 'call_cid' is not the CID of the call",
                       file: file, line: line)
        XCTAssertNotNil(try? CID(validating: body.origCID), "callback 'orig_cid' \(body.origCID) is not a CID",
                        file: file, line: line)
        if let origCID = expected.origCID {
            XCTAssertEqual(body.origCID, origCID.rawValue, "callback 'orig_cid'", file: file, line: line)
        }
        XCTAssertEqual(body.attempts, expected.attempts, "callback 'attempts'", file: file, line: line)
        XCTAssertEqual(body.retryRepeats, expected.repeats, "callback 'retry_repeats'", file: file, line: line)
        XCTAssertEqual(body.retrySeconds, expected.seconds, accuracy: 1e-9, "callback 'retry_seconds'",
                       file: file, line: line)
        XCTAssertEqual(body.context, expected.context, "callback 'context' is not the context of the call",
                       file: file, line: line)

        let requestTime = WireTimestamp.parse(body.requestTimestamp)
        let responseTime = WireTimestamp.parse(body.responseTimestamp)
        XCTAssertNotNil(requestTime, "callback 'req_ts_utc' \(body.requestTimestamp) is not a timestamp",
                        file: file, line: line)
        XCTAssertNotNil(responseTime, "callback 'resp_ts_utc' \(body.responseTimestamp) is not a timestamp",
                        file: file, line: line)
        if let requestTime, let responseTime {
            XCTAssertLessThanOrEqual(requestTime, responseTime, "callback 'resp_ts_utc' is before 'req_ts_utc'",
                                     file: file, line: line)
        }

        if expected.ok {
            XCTAssertEqual(body.response, expected.response, "callback 'response'", file: file, line: line)
            XCTAssertEqual(body.responseEncoding, expected.responseEncoding, "callback 'response_encoding'",
                           file: file, line: line)
            XCTAssertEqual(body.responseContentType, expected.responseContentType,
                           "callback 'response_content_type'", file: file, line: line)
            XCTAssertNil(body.error, "callback 'error' is set on success", file: file, line: line)
        } else {
            XCTAssertNil(body.response, "callback 'response' is set on failure", file: file, line: line)
            XCTAssertNil(body.responseEncoding, "callback 'response_encoding' is set on failure", file: file, line: line)
            XCTAssertNil(body.responseContentType, "callback 'response_content_type' is set on failure",
                         file: file, line: line)
            XCTAssertLessThanOrEqual(body.error?.utf8.count ?? 0, 1024, "callback 'error' is longer than 1024 bytes",
                                     file: file, line: line)
            if let error = expected.error {
                XCTAssertEqual(body.error, error, "callback 'error'", file: file, line: line)
            } else {
                XCTAssertNotNil(body.error, "callback 'error' is missing on failure", file: file, line: line)
            }
        }
    }
}

// MARK: - Redelivered invocations

extension IntegrationTestCase {
    /// Returns the message of an invocation that carries a redelivery count.
    static func redeliveredMessage(_ invocation: Invocation, redeliveries: Int64 = 1) -> OutgoingMessage {
        var properties = invocation.messageProperties()
        properties.headers[WireHeader.redeliveries] = .int64(redeliveries)
        return OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(invocation.target), mandatory: true,
                               properties: properties, body: invocation.payload.bytes)
    }

    /// Replaces the 200 ms delay queue with one of other arguments, so that declaring it fails,
    /// and deletes it at the end of the test.
    func replacePostponementQueue() async throws {
        let queue = TopologyNames.delayQueue(milliseconds: WorkerSession.postponeMilliseconds)
        try await broker.deleteQueue(queue)
        _ = try await broker.declare([.queue(QueueDeclaration(name: queue))])
        let broker = try broker
        addTeardownBlock { try? await broker.deleteQueue(queue) }
    }
}
