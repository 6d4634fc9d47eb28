import AMQPRetry

/// `amqp-retry worker`: hosts the demo services until SIGINT or SIGTERM.
enum WorkerCommand {
    /// The `--concurrency` of a worker without one.
    static let defaultConcurrency = 8

    /// The `--log-level` of a worker without one.
    static let defaultLogLevel = Logger.Level.info

    /// How long the worker lets running calls finish after SIGINT or SIGTERM.
    static let drainTimeout: Duration = .seconds(30)

    /// The largest `--concurrency`, because it is also the prefetch count, a 16-bit field of
    /// AMQP's `basic.qos`.
    static let maximumConcurrency = Int(UInt16.max)

    /// The entry of `worker` in the tool's table of commands.
    static let command = Command(
        name: "worker",
        abstract: "Run a worker that hosts the demo services until SIGINT or SIGTERM.",
        discussion: """
            The worker consumes the queues of \(DemoServices.names.joined(separator: ", ")), \
            calls the services and carries out the retries. It prints each finished call and \
            each callback on standard output and writes its log lines to standard error.

            On SIGINT (Ctrl-C) or SIGTERM it stops consuming, lets the running calls finish \
            (for at most \(Int(drainTimeout.seconds)) seconds) and exits with status 0. A second signal exits at once \
            with status 1, and the broker redelivers what was not acknowledged.
            """,
        options: [
            ConnectionOptions.urlDefinition,
            OptionDefinition(
                name: "concurrency", valueName: "n",
                help: "The number of calls that run at once, from 1 to \(maximumConcurrency); also the "
                    + "prefetch count of each queue. (default: \(defaultConcurrency))"
            ),
            ConnectionOptions.logLevelDefinition(default: defaultLogLevel),
        ],
        run: run
    )

    private static func run(_ arguments: CommandLineArguments) async throws(UsageError) -> ExitStatus {
        try arguments.checkPositionalCount(atMost: 0)
        let options = try ConnectionOptions(arguments, defaultLogLevel: defaultLogLevel)
        let concurrency = try concurrency(arguments.value(of: "concurrency"))

        let logger = Logger.standardError(label: "amqpretry.worker", logLevel: options.logLevel)
        let worker = Worker(
            configuration: .init(connection: options.connection, concurrency: concurrency, drainTimeout: drainTimeout),
            logger: logger
        )
        let console = Console(timeStyle: .dateTime, keepsRecords: false)
        do {
            try DemoServices.register(on: worker, console: console)
            if FaultServices.isEnabled {
                try FaultServices.register(on: worker, console: console)
            }
        } catch {
            CommandLineTool.writeError("Error: registering the demo services failed: \(error)\n")
            return .failure
        }

        return await host(worker, options: options, console: console)
    }

    /// Runs the worker until a signal stops it.
    private static func host(_ worker: Worker, options: ConnectionOptions, console: Console) async -> ExitStatus {
        let signals = ShutdownSignals { worker.stop() }
        console.write("Starting a worker for \(DemoServices.names.joined(separator: ", ")) "
            + "on \(options.connection.redactedURL); press Ctrl-C to stop it.")

        do {
            try await worker.run()
        } catch {
            CommandLineTool.writeError(options.connectionFailureMessage(error) + "\n")
            return .failure
        }

        withExtendedLifetime(signals) {}
        return .success
    }

    private static func concurrency(_ text: String?) throws(UsageError) -> Int {
        guard let text else {
            return defaultConcurrency
        }
        guard let value = Int(text), (1...maximumConcurrency).contains(value) else {
            throw UsageError(
                message: "Invalid value '\(text)' for '--concurrency <n>': expected a whole number "
                    + "from 1 to \(maximumConcurrency)"
            )
        }
        return value
    }
}
