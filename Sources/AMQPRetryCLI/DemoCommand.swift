import AMQPRetry
import Foundation

/// `amqp-retry demo`: hosts the demo services in this process and walks through the three
/// invoke/retry modes against them.
enum DemoCommand {
    /// How long a background step waits for its callback before it counts as failed.
    static let callbackTimeout: Duration = .seconds(30)

    /// How long the demo waits for its worker to consume the queues of the demo services.
    static let workerStartTimeout: Duration = .seconds(30)

    /// The `--log-level` of a demo without one; it hides the log lines of routine retries.
    static let defaultLogLevel = Logger.Level.warning

    /// The entry of `demo` in the tool's table of commands.
    static let command = Command(
        name: "demo",
        abstract: "Walk through the three invoke/retry modes against demo services hosted in this process.",
        discussion: """
            The demo starts a worker that hosts \(DemoServices.names.joined(separator: ", ")) \
            and a client that invokes them in each mode: sync + sync, sync + async and \
            async + async. It prints every call and callback as it happens, checks each step \
            against what the mode promises, and takes about 13 seconds.

            It exits with status 0 when every step behaved as expected and 1 otherwise. Run it \
            while no other worker hosts the demo services on the same broker, because such a \
            worker would take some of the calls and callbacks.
            """,
        options: [ConnectionOptions.urlDefinition, ConnectionOptions.logLevelDefinition(default: defaultLogLevel)],
        run: run
    )

    private static func run(_ arguments: CommandLineArguments) async throws(UsageError) -> ExitStatus {
        try arguments.checkPositionalCount(atMost: 0)
        let options = try ConnectionOptions(arguments, defaultLogLevel: defaultLogLevel)

        let client: AMQPRetryClient
        do {
            client = try await AMQPRetryClient.connect(
                configuration: options.connection, name: "amqp-retry demo client",
                logger: .standardError(label: "amqpretry.client", logLevel: options.logLevel)
            )
        } catch {
            CommandLineTool.writeError(options.connectionFailureMessage(error) + "\n")
            return .failure
        }

        let console = Console(timeStyle: .sinceStart, keepsRecords: true)
        printIntroduction(on: console, broker: options.connection.redactedURL)
        return await runSteps(client: client, options: options, console: console)
    }

    /// Hosts the demo services, runs the steps, then stops the worker and closes the client.
    private static func runSteps(client: AMQPRetryClient, options: ConnectionOptions, console: Console) async -> ExitStatus {
        let startSignal = WorkerStartSignal()
        let worker = Worker(
            configuration: .init(connection: options.connection, name: "amqp-retry demo worker"),
            logger: .standardError(label: "amqpretry.worker", logLevel: options.logLevel)
        )
        do {
            try DemoServices.register(on: worker, console: console)
        } catch {
            CommandLineTool.writeError("Error: registering the demo services failed: \(error)\n")
            await client.close()
            return .failure
        }

        let workerTask = startWorker(worker, options: options, startSignal: startSignal)
        guard await startSignal.wait(timeout: workerStartTimeout) else {
            CommandLineTool.writeError("Error: the demo's worker did not start consuming within "
                + "\(Int(workerStartTimeout.seconds)) s. Rerun with --log-level debug to see why.\n")
            worker.stop()
            await client.close()
            return .failure
        }

        let walkthrough = DemoWalkthrough(invokeRetry: client.invokeRetry, console: console,
                                          callbackTimeout: callbackTimeout)
        let passed = await walkthrough.run()

        worker.stop()
        await workerTask.value
        await client.close()
        return passed ? .success : .failure
    }

    /// Runs the worker in a task until ``Worker/stop()``.
    ///
    /// Every step needs the worker, so when it fails the demo prints the error and exits with
    /// status 1 at once instead of letting each step wait for its timeout.
    private static func startWorker(_ worker: Worker, options: ConnectionOptions,
                                    startSignal: WorkerStartSignal) -> Task<Void, Never> {
        Task {
            do {
                try await worker.run(onConsuming: startSignal.markStarted)
            } catch {
                CommandLineTool.writeError(options.connectionFailureMessage(error) + "\n")
                exit(ExitStatus.failure.rawValue)
            }
        }
    }

    private static func printIntroduction(on console: Console, broker: String) {
        console.write("AMQPRetry demo: Zato's invoke/retry pattern on RabbitMQ at \(broker)")
        console.write("")
        console.write("This process runs a worker that hosts the demo services, and a client that invokes them:")
        for (name, summary) in DemoServices.summaries {
            console.write("  \(name.padding(toLength: 16, withPad: " ", startingAt: 0))\(summary)")
        }
        console.write("")
        console.write("Each timeline line is one finished call or callback: seconds since the demo started, the service,")
        console.write("the attempt and whether it was a blocking call (sync) or ran in the background (async), the CID")
        console.write("of the invocation, and the outcome.")
    }
}

/// Tells when the demo's worker consumes its queues.
///
/// The steps must not start earlier: a blocking call to a service whose queue the worker has
/// not declared yet fails at once instead of waiting.
final class WorkerStartSignal: Sendable {
    private let started = Locked(false)

    /// Records that the worker consumes every queue; pass it as `Worker.run(onConsuming:)`.
    func markStarted() {
        started.withLock { $0 = true }
    }

    /// Waits until the worker started; returns `false` when `timeout` passes first.
    func wait(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if started.withLock({ $0 }) {
                return true
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}
