@testable import AMQPRetry
import Foundation
import XCTest

// MARK: - Running the tool

/// How one run of the `amqp-retry` executable ended.
struct CLIResult: Sendable {
    /// The exit status, or the signal number for a process killed by a signal.
    let status: Int32
    /// Standard output, byte for byte.
    let output: Data
    /// Standard error as text.
    let errorText: String

    /// Standard output as text.
    var outputText: String {
        String(decoding: output, as: UTF8.self)
    }

    /// The non-empty lines of standard output.
    var outputLines: [String] {
        outputText.split(separator: "\n").map(String.init)
    }

    /// Returns the command line and both outputs, for failure messages.
    func describe(_ arguments: [String]) -> String {
        "amqp-retry \(arguments.joined(separator: " ")) exited with \(status)\n"
            + "stdout: \(outputText)\nstderr: \(errorText)"
    }
}

/// Runs the `amqp-retry` executable that the package builds next to the test bundle.
enum CLIProcess {
    /// The environment variable that names the executable to test instead of the one found next
    /// to the test bundle.
    static let pathVariable = "AMQP_RETRY_CLI"

    /// The executable, found once: `AMQP_RETRY_CLI`, else `amqp-retry` in the products folder
    /// of the running test bundle, which is `.build/debug` or `<scratch-path>/debug`.
    static let executable: Result<URL, IntegrationEnvironment.SetupError> = {
        if let path = ProcessInfo.processInfo.environment[pathVariable], !path.isEmpty {
            return .success(URL(fileURLWithPath: path))
        }

        let candidates = productFolders().map { $0.appendingPathComponent("amqp-retry") }
        if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) {
            return .success(found)
        }
        return .failure(IntegrationEnvironment.SetupError(description:
            "the amqp-retry executable was not found at \(candidates.map(\.path).joined(separator: ", ")); "
                + "build it with `swift build` or set \(pathVariable) to its path"))
    }()

    /// Returns the folders that may contain the built executable: those of the test runner and
    /// of the test bundle, and `.build/debug` of the package that contains this file.
    private static func productFolders() -> [URL] {
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let bundle = Bundle(for: CLITestCase.self).bundleURL.resolvingSymlinksInPath()
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return [
            runner.deletingLastPathComponent(),
            bundle.deletingLastPathComponent(),
            bundle.deletingLastPathComponent().deletingLastPathComponent(),
            package.appendingPathComponent(".build/debug"),
        ]
    }

    /// Runs the executable with `arguments` and returns how it ended.
    ///
    /// Standard output and error go to temporary files, so that a large output never blocks the
    /// process. The process gets SIGINT after `interruptAfter`, when given, and SIGKILL when it
    /// is still running after `timeout`, which fails the test.
    static func run(
        _ arguments: [String],
        input: Data? = nil,
        environment: [String: String] = [:],
        interruptAfter: Duration? = nil,
        timeout: Duration = .seconds(30),
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> CLIResult {
        let process = Process()
        process.executableURL = try executable.get()
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("amqp-retry-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let outputURL = folder.appendingPathComponent("stdout")
        let errorURL = folder.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorURL.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: outputURL)
        process.standardError = try FileHandle(forWritingTo: errorURL)

        let inputPipe = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : inputPipe

        let ended = try await launch(process, input: input, pipe: inputPipe, interruptAfter: interruptAfter,
                                     timeout: timeout)
        XCTAssertTrue(ended, "amqp-retry \(arguments.joined(separator: " ")) did not end within \(timeout)",
                      file: file, line: line)

        return CLIResult(status: process.terminationStatus,
                         output: try Data(contentsOf: outputURL),
                         errorText: String(decoding: try Data(contentsOf: errorURL), as: UTF8.self))
    }

    /// Starts the process, feeds it `input`, and waits for it; returns `false` when it had to be killed.
    private static func launch(_ process: Process, input: Data?, pipe: Pipe, interruptAfter: Duration?,
                               timeout: Duration) async throws -> Bool {
        let exited = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in exited.continuation.finish() }
        try process.run()
        if let input {
            pipe.fileHandleForWriting.write(input)
            try? pipe.fileHandleForWriting.close()
        }

        let signals = Task {
            if let interruptAfter {
                try await Task.sleep(for: interruptAfter)
                kill(process.processIdentifier, SIGINT)
            }
            try await Task.sleep(for: timeout)
            kill(process.processIdentifier, SIGKILL)
        }
        for await _ in exited.stream {}
        process.waitUntilExit()
        signals.cancel()
        return !(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL)
    }
}

// MARK: - Test case

/// The base of the tests of the `amqp-retry` commands: an integration test that runs the
/// executable and deletes the queues and exchanges the commands created.
class CLITestCase: IntegrationTestCase {
    /// Queues a command created, which the end of the test deletes.
    var createdQueues: [String] = []

    /// Exchanges a command created, which the end of the test deletes.
    var createdExchanges: [String] = []

    override func tearDown() async throws {
        if let broker = try? broker {
            for queue in createdQueues {
                try? await broker.deleteQueue(queue)
            }
            for exchange in createdExchanges {
                try? await broker.deleteExchange(exchange)
            }
        }
        try await super.tearDown()
    }

    /// Runs `amqp-retry` with `arguments` and the broker of `AMQP_URL`.
    func runCLI(
        _ arguments: [String],
        input: Data? = nil,
        interruptAfter: Duration? = nil,
        timeout: Duration = .seconds(30),
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> CLIResult {
        _ = try configuration
        return try await CLIProcess.run(arguments, input: input, interruptAfter: interruptAfter, timeout: timeout,
                                        file: file, line: line)
    }

    /// Checks that a run ended with `status` and, when given, that standard error contains each of `texts`.
    func assertExit(
        _ result: CLIResult,
        _ status: Int32,
        stderrContains texts: [String] = [],
        _ arguments: [String],
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertEqual(result.status, status, result.describe(arguments), file: file, line: line)
        for text in texts {
            XCTAssertTrue(result.errorText.contains(text),
                          "standard error lacks '\(text)': \(result.describe(arguments))", file: file, line: line)
        }
    }

    /// Returns whether a queue exists, with a passive declare on a connection of its own.
    func queueExists(_ queue: String) async throws -> Bool {
        let inspector = TopologyInspector(configuration: try configuration)
        do {
            let exists = try await inspector.queueStatus(queue).exists
            await inspector.close()
            return exists
        } catch {
            await inspector.close()
            throw error
        }
    }

    /// Removes every ready message from a queue.
    func purge(_ queue: String) async throws {
        _ = try await broker.perform("queue.purge") { (handle) throws(AMQPError) in
            try handle.purgeQueue(queue)
        }
    }
}

// MARK: - Tests

/// The tool-level behaviour of the operator commands: help and unknown names.
final class CLIProcessTests: CLITestCase {
    static let operatorCommands = ["invoke", "status", "declare", "parked"]

    func testEveryOperatorCommandHasHelp() async throws {
        for command in Self.operatorCommands {
            let result = try await runCLI([command, "--help"])

            assertExit(result, 0, [command, "--help"])
            XCTAssertTrue(result.outputText.hasPrefix("OVERVIEW: "), "\(command) --help: \(result.outputText)")
            XCTAssertTrue(result.outputText.contains("USAGE: amqp-retry \(command) "),
                          "\(command) --help lacks its usage line: \(result.outputText)")
            XCTAssertTrue(result.outputText.contains("--url <url>"), "\(command) --help lacks --url")
        }
    }

    func testToolHelpListsOperatorCommands() async throws {
        let result = try await runCLI(["--help"])

        assertExit(result, 0, ["--help"])
        for command in Self.operatorCommands {
            XCTAssertTrue(result.outputText.contains("\n  \(command) "), "the tool's help lacks \(command)")
        }
    }

    func testStatusHelpExplainsUnacked() async throws {
        let result = try await runCLI(["status", "--help"])

        XCTAssertTrue(result.outputText.contains("UNACKED is always n/a"), result.outputText)
        XCTAssertTrue(result.outputText.contains("messages_unacknowledged"), result.outputText)
    }

    func testUnknownOptionIsUsageError() async throws {
        for command in Self.operatorCommands {
            let arguments = [command, "--bogus-option"]
            let result = try await runCLI(arguments)

            assertExit(result, 64, stderrContains: ["'--bogus-option'"], arguments)
            XCTAssertTrue(result.output.isEmpty, "\(command) wrote to standard output: \(result.outputText)")
        }
    }

    func testUnreachableBrokerExitsOne() async throws {
        // Nothing listens on port 1 of the loopback interface, so the connection is refused at once.
        let url = "amqp://guest:guest@127.0.0.1:1/%2F"
        let commands = [
            ["invoke", "cli.\(runID).any", "--seconds", "1"],
            ["status"],
            ["declare", "cli.\(runID).any"],
            ["parked", "list"],
        ]

        for command in commands {
            let arguments = command + ["--url", url]
            let result = try await runCLI(arguments)

            assertExit(result, 1, stderrContains: ["127.0.0.1:1", "--url"], arguments)
            XCTAssertFalse(result.errorText.contains("guest:guest"), "the error shows the password")
        }
    }

    func testInvalidURLIsUsageError() async throws {
        let arguments = ["status", "--url", "http://nowhere"]
        let result = try await runCLI(arguments)

        assertExit(result, 64, stderrContains: ["http"], arguments)
    }
}
