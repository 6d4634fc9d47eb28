import Foundation

/// The tool and its commands, in the order `amqp-retry --help` lists them. A new command is
/// one more entry here.
let tool = CommandLineTool(
    name: "amqp-retry",
    abstract: "Invoke services and retry failed calls through RabbitMQ, as Zato's invoke/retry pattern does.",
    commands: [
        DemoCommand.command,
        WorkerCommand.command,
        InvokeCommand.command,
        StatusCommand.command,
        DeclareCommand.command,
        ParkedCommand.command,
    ]
)

let status = await tool.run(Array(CommandLine.arguments.dropFirst()))
exit(status.rawValue)
