@testable import AMQPRetry
import Foundation
import XCTest

// MARK: - Environment

/// Reads the settings of the security tests from the environment that
/// `AMQPRETRY_BROKER_TLS=1 deploy/with-broker.sh` provides.
enum SecurityEnvironment {
    /// An error that stops a test before it starts, with what to do about it.
    struct SetupError: Error, CustomStringConvertible {
        let description: String
    }

    /// Returns the value of an environment variable, and throws ``SetupError`` when it is unset or empty.
    static func require(_ variable: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty else {
            throw SetupError(description: "\(variable) is not set: run the security tests with `make faults`, "
                + "or under `AMQPRETRY_BROKER_TLS=1 deploy/with-broker.sh`, which starts a RabbitMQ node "
                + "with TLS listeners and sets AMQP_URL, AMQPRETRY_RABBITMQCTL and the AMQPRETRY_TLS_* variables")
        }
        return value
    }

    /// Parses the URL in `variable`, with a 5-second connection timeout so that a broker that
    /// does not respond fails the test quickly.
    static func configuration(_ variable: String) throws -> ConnectionConfiguration {
        let url = try require(variable)
        var configuration: ConnectionConfiguration
        do {
            configuration = try ConnectionConfiguration(url: url)
        } catch {
            throw SetupError(description: "\(variable) is invalid: \(error)")
        }
        configuration.connectionTimeout = .seconds(5)
        return configuration
    }

    /// Returns a random tag of 8 lowercase letters and digits for names unique to one test.
    static func makeRunID() -> String {
        String((0..<8).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
    }
}

// MARK: - Logs

/// An in-memory log handler that keeps every record in order.
final class SecurityLogCapture: Sendable {
    private let storage = Locked<[LogRecord]>([])

    /// The records received so far.
    var records: [LogRecord] {
        storage.withLock { $0 }
    }

    /// Makes a logger at `trace` level that appends its records to this capture.
    func logger(label: String) -> Logger {
        Logger(label: label, logLevel: .trace) { record in
            self.storage.withLock { $0.append(record) }
        }
    }

    /// Every record as the line that ``Logger/standardError(label:logLevel:)`` would write,
    /// which contains the message and every metadata key and value.
    var lines: [String] {
        records.map { $0.formattedLine() }
    }
}

// MARK: - Secrets

/// The forms in which a password could leak into a log or a message.
struct SecuritySecretForms {
    /// Each form with a name for failure messages.
    let forms: [(name: String, text: String)]

    init(password: String) {
        var forms = [(name: "plain", text: password)]
        let encoded = ConnectionConfiguration.percentEncoded(password)
        if encoded != password {
            forms.append((name: "percent-encoded", text: encoded))
            forms.append((name: "percent-encoded in lowercase", text: Self.lowercasingEscapes(encoded)))
        }
        forms.append((name: "base64", text: Data(password.utf8).base64EncodedString()))
        self.forms = forms
    }

    /// Returns the names of the forms that occur in `text`.
    func leaks(in text: String) -> [String] {
        forms.filter { text.contains($0.text) }.map(\.name)
    }

    /// Turns `%2F` into `%2f`, as some encoders write it.
    private static func lowercasingEscapes(_ text: String) -> String {
        var result = ""
        var hexDigitsLeft = 0
        for character in text {
            if character == "%" {
                hexDigitsLeft = 2
                result.append(character)
            } else if hexDigitsLeft > 0 {
                hexDigitsLeft -= 1
                result += character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }
}

extension SecuritySecretForms {
    /// Fails once for each text that contains a form of the password, naming the source.
    func assertAbsent(in texts: [String], source: String, file: StaticString = #filePath, line: UInt = #line) {
        for text in texts {
            let found = leaks(in: text)
            XCTAssertTrue(found.isEmpty, "\(source) contains the password (\(found.joined(separator: ", "))): \(text)",
                          file: file, line: line)
        }
    }

    /// Returns every text form of an error that a caller might print or log.
    static func texts(of error: any Error) -> [String] {
        ["\(error)", String(reflecting: error), error.localizedDescription]
    }
}

// MARK: - Subprocesses

/// A program run to its end, with its status and output.
struct SecurityProgramRun {
    /// The exit status, or the signal number when a signal ended the program.
    let status: Int32
    /// Standard output and standard error, interleaved as the program wrote them.
    let output: String
}

extension SecurityProgramRun {
    /// Runs a program with a deadline and returns its status and output.
    ///
    /// The output goes to a temporary file rather than a pipe, so a program that writes more than a
    /// pipe buffer never blocks. A program still running at the deadline gets SIGTERM, then SIGKILL
    /// after 5 more seconds, and the call throws.
    static func run(_ executable: String, _ arguments: [String], timeout: Duration) async throws -> SecurityProgramRun {
        let outputURL = FileManager.default.temporaryDirectory
            .appendingPathComponent("amqpretry-security-\(SecurityEnvironment.makeRunID()).log")
        guard FileManager.default.createFile(atPath: outputURL.path, contents: nil) else {
            throw SecurityEnvironment.SetupError(description: "cannot create the output file \(outputURL.path)")
        }
        defer { try? FileManager.default.removeItem(at: outputURL) }

        let output = try FileHandle(forWritingTo: outputURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        try process.run()
        try output.close()

        let finished = await waitForExit(process, timeout: timeout)
        if !finished {
            process.terminate()
            if !(await waitForExit(process, timeout: .seconds(5))) {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        let text = (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
        guard finished else {
            throw SecurityEnvironment.SetupError(description: "\(executable) \(arguments.first ?? "") did not exit within "
                + "\(timeout); its output was:\n\(text)")
        }
        return SecurityProgramRun(status: process.terminationStatus, output: text)
    }

    /// Polls until the process has exited or `timeout` passes, and returns whether it exited.
    private static func waitForExit(_ process: Process, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else {
                return false
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return true
    }
}

extension SecurityEnvironment {
    /// Runs `rabbitmqctl` against the private node through `AMQPRETRY_RABBITMQCTL` and throws when
    /// it fails.
    @discardableResult
    static func rabbitmqctl(_ arguments: [String]) async throws -> String {
        let ctl = try require("AMQPRETRY_RABBITMQCTL")
        let result = try await SecurityProgramRun.run(ctl, arguments, timeout: .seconds(60))
        guard result.status == 0 else {
            throw SecurityEnvironment.SetupError(description: "rabbitmqctl \(arguments.first ?? "") failed with status "
                + "\(result.status): \(result.output)")
        }
        return result.output
    }

    /// Returns the path of the `amqp-retry` program that `swift build` put next to the test
    /// bundle, or the value of `AMQPRETRY_BIN` when that is set.
    static func commandLineToolPath() throws -> String {
        if let path = ProcessInfo.processInfo.environment["AMQPRETRY_BIN"], !path.isEmpty {
            return path
        }
        let testBundle = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        let path = testBundle.deletingLastPathComponent().appendingPathComponent("amqp-retry").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw SecurityEnvironment.SetupError(description: "\(path) not found: build it with `swift build` "
                + "(same scratch path as the tests) or set AMQPRETRY_BIN to the amqp-retry program")
        }
        return path
    }

    /// Deletes the queue of each service over `configuration`, and records a test failure when a
    /// queue cannot be deleted.
    static func deleteServiceQueues(_ services: [String], configuration: ConnectionConfiguration) async {
        let connection = AMQPConnection(configuration: configuration, name: "amqpretry security cleanup", logger: .disabled)
        do {
            try await connection.start()
            for service in services {
                let queue = TopologyNames.serviceQueue(service)
                _ = try await connection.perform("queue.delete") { (handle) throws(AMQPError) in
                    try handle.deleteQueue(queue)
                }
            }
        } catch {
            XCTFail("deleting the queues of \(services) failed: \(error)")
        }
        await connection.close()
    }
}

// MARK: - Workers

/// A worker running in a task, stopped with a deadline.
final class SecurityWorker: Sendable {
    let worker: Worker
    private let consuming = Locked(false)
    private let result = Locked<Result<Void, any Error>?>(nil)

    /// Starts `worker.run()` in a task and waits up to `timeout` until it consumes its queues.
    init(_ worker: Worker, timeout: Duration = .seconds(20)) async throws {
        self.worker = worker
        Task { [self] in
            do {
                try await worker.run { self.consuming.withLock { $0 = true } }
                result.withLock { $0 = .success(()) }
            } catch {
                result.withLock { $0 = .failure(error) }
            }
        }

        let deadline = ContinuousClock.now + timeout
        while !consuming.withLock({ $0 }) {
            if case .failure(let error) = result.withLock({ $0 }) {
                throw SecurityEnvironment.SetupError(description: "the worker failed to start: \(error)")
            }
            guard ContinuousClock.now < deadline else {
                worker.stop()
                throw SecurityEnvironment.SetupError(description: "the worker did not consume its queues within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Stops the worker, waits up to `timeout` for `run()` to return, and returns whether it did.
    func stop(timeout: Duration = .seconds(15)) async -> Bool {
        worker.stop()
        let deadline = ContinuousClock.now + timeout
        while result.withLock({ $0 }) == nil {
            guard ContinuousClock.now < deadline else {
                return false
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return true
    }
}
