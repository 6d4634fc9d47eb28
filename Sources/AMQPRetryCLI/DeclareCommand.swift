import AMQPRetry

/// `amqp-retry declare`: declares AMQPRetry's queues and exchanges as the library does and
/// reports those whose existing arguments differ.
enum DeclareCommand {
    /// The `--log-level` of `declare` without one. It hides the `warning` that this library logs
    /// each time the broker rejects a declaration and closes the channel.
    static let defaultLogLevel = Logger.Level.error

    /// The entry of `declare` in the tool's table of commands.
    static let command = Command(
        name: "declare",
        abstract: "Declare service, delay and parking queues as AMQPRetry does, and report those that differ.",
        discussion: """
            The command declares the queue of each service, the delay exchange, queue and \
            binding of each --delay interval, and the parking queue, with the arguments and the \
            queue type (the URL's queue_type, classic by default) that workers and publishers \
            use. Missing objects are created. An object that exists with other arguments makes \
            RabbitMQ reject the declaration with 406 PRECONDITION_FAILED: the command prints the \
            object, the broker's message and what the difference does to messages, goes on with \
            the other objects, and exits with status 1. RabbitMQ names only the first argument \
            that differs.

            With no service and no --delay, the command declares the demo services \
            (\(DemoServices.names.joined(separator: ", "))) and the delay topology of the demo's \
            intervals (\(SharedOptions.defaultDelays.map { "\($0) ms" }.joined(separator: ", "))).
            """,
        options: [
            ConnectionOptions.urlDefinition, SharedOptions.delay,
            ConnectionOptions.logLevelDefinition(default: defaultLogLevel),
        ],
        arguments: [
            ArgumentDefinition(name: "service", help: "A service whose queue to declare.", isOptional: true,
                               isRepeatable: true),
        ],
        run: run
    )

    private static func run(_ arguments: CommandLineArguments) async throws(UsageError) -> ExitStatus {
        let (services, delays) = try SharedOptions.servicesAndDelays(arguments)
        let options = try ConnectionOptions(arguments, defaultLogLevel: defaultLogLevel)

        let inspector = TopologyInspector(
            configuration: options.connection, name: "amqp-retry declare",
            logger: .standardError(label: "amqpretry.declare", logLevel: options.logLevel)
        )
        let results: [DeclarationResult]
        do {
            results = try await inspector.declare(services: services, delays: delays)
        } catch {
            await inspector.close()
            CommandLineTool.writeError(options.connectionFailureMessage(error) + "\n")
            return .failure
        }
        await inspector.close()

        CommandLineTool.writeOutput(results.map(describe).joined())
        return summarize(results)
    }

    /// Describes one result in a line, followed for a difference by indented lines that explain it.
    private static func describe(_ result: DeclarationResult) -> String {
        switch result.outcome {
        case .declared(let counts):
            let detail = counts.map { " (\($0.messageCount) ready, \(consumers($0.consumerCount)))" } ?? ""
            return "ok       \(result.objectDescription)\(detail)\n"
        case .differs(let difference):
            var text = "DIFFERS  \(result.objectDescription): \(difference.replyText)\n"
            if let consequence = difference.consequence {
                text += "         \(consequence)\n"
            }
            return text + "         \(DeclarationDifference.declarationFailureNote)\n"
        case .rejected(let error):
            return "REJECTED \(result.objectDescription): \(error)\n"
        }
    }

    /// Prints a summary of the failures on standard error and returns the exit status.
    private static func summarize(_ results: [DeclarationResult]) -> ExitStatus {
        let failed = results.filter { result in
            if case .declared = result.outcome {
                return false
            }
            return true
        }
        guard !failed.isEmpty else {
            return .success
        }

        let names = failed.map(\.objectDescription).joined(separator: ", ")
        CommandLineTool.writeError("Error: \(failed.count) of \(results.count) objects differ from AMQPRetry's "
            + "declaration or were rejected: \(names)\n")
        return .failure
    }

    private static func consumers(_ count: Int) -> String {
        count == 1 ? "1 consumer" : "\(count) consumers"
    }
}
