import Foundation

/// A command of the tool, such as `worker`: its help, the options it accepts, and what it runs.
struct Command: Sendable {
    /// The name typed after the tool's name.
    let name: String

    /// One sentence that `--help` shows under OVERVIEW and the tool's help lists next to the name.
    let abstract: String

    /// Further paragraphs of `--help`, or the empty string.
    let discussion: String

    /// The options the command accepts, in the order `--help` lists them; `-h, --help` is implied.
    let options: [OptionDefinition]

    /// The positional arguments the command accepts, in order; none by default.
    var arguments: [ArgumentDefinition] = []

    /// Checks the arguments, then runs the command.
    ///
    /// It throws ``UsageError`` for invalid arguments before it does anything else. Failures
    /// while running are printed by the command itself, which returns ``ExitStatus/failure``.
    let run: @Sendable (CommandLineArguments) async throws(UsageError) -> ExitStatus
}

/// A positional argument of a command, such as the service that `invoke` calls.
struct ArgumentDefinition: Sendable {
    /// The placeholder in help text, such as `target`.
    let name: String

    /// The help text: what the argument sets and its default.
    let help: String

    /// Whether the argument may be left out.
    var isOptional = false

    /// Whether the argument may be given several times; such an argument comes last.
    var isRepeatable = false

    /// The argument as the usage line shows it, such as `<target>`, `[<payload>]` or `[<service> ...]`.
    var synopsis: String {
        let placeholder = "<\(name)>" + (isRepeatable ? " ..." : "")
        return isOptional ? "[\(placeholder)]" : placeholder
    }
}

/// The tool: runs the command named by the first argument, prints help for `--help`, and turns
/// usage errors into messages on standard error and exit status 64.
struct CommandLineTool {
    /// The name of the executable, as help text and errors show it.
    let name: String

    /// One sentence about the tool, shown under OVERVIEW.
    let abstract: String

    /// The commands, in the order `--help` lists them.
    let commands: [Command]

    /// Runs the command line `arguments`, which exclude the executable's name.
    func run(_ arguments: [String]) async -> ExitStatus {
        guard let first = arguments.first, first != "-h", first != "--help" else {
            Self.writeOutput(toolHelp())
            return .success
        }

        if first == "help" {
            return showHelp(for: Array(arguments.dropFirst()))
        }

        guard let command = commands.first(where: { $0.name == first }) else {
            return reportUnknownCommand(first)
        }

        return await run(command, Array(arguments.dropFirst()))
    }

    private func run(_ command: Command, _ arguments: [String]) async -> ExitStatus {
        if CommandLineArguments.requestsHelp(arguments) {
            Self.writeOutput(help(for: command))
            return .success
        }

        do {
            let parsed = try CommandLineArguments(parsing: arguments, options: command.options)
            return try await command.run(parsed)
        } catch {
            Self.writeError("Error: \(error.message)\n" + usageFooter(for: command))
            return .usage
        }
    }

    /// Prints the help for `amqp-retry help [command]`, as swift-argument-parser's built-in `help` does.
    private func showHelp(for arguments: [String]) -> ExitStatus {
        guard let name = arguments.first else {
            Self.writeOutput(toolHelp())
            return .success
        }

        guard let command = commands.first(where: { $0.name == name }) else {
            return reportUnknownCommand(name)
        }
        Self.writeOutput(help(for: command))
        return .success
    }

    private func reportUnknownCommand(_ argument: String) -> ExitStatus {
        let names = commands.map(\.name).joined(separator: ", ")
        let problem = argument.hasPrefix("-")
            ? "Unknown option '\(argument)'; options go after a command (\(names))"
            : "Unknown command '\(argument)'; the commands are: \(names)"
        Self.writeError("""
            Error: \(problem)
            Usage: \(name) <command> [options]
              See '\(name) --help' for more information.

            """)
        return .usage
    }
}

// MARK: - Help text

extension CommandLineTool {
    /// The width of the first column of OPTIONS and COMMANDS, as swift-argument-parser uses.
    private static let labelWidth = 26

    /// The width help text wraps at.
    private static let lineWidth = 80

    /// Returns the help of the tool itself, which lists the commands.
    func toolHelp() -> String {
        let commandLines = commands.map { Self.helpRow(label: $0.name, text: $0.abstract) }
        return """
            \(Self.wrapParagraphs("OVERVIEW: " + abstract))

            USAGE: \(name) <command> [options]

            OPTIONS:
            \(Self.helpRow(label: "-h, --help", text: "Show help information."))

            COMMANDS:
            \(commandLines.joined(separator: "\n"))

              See '\(name) help <command>' for detailed help.

            """
    }

    /// Returns the help of one command: overview, usage, discussion and options.
    func help(for command: Command) -> String {
        var text = Self.wrapParagraphs("OVERVIEW: " + command.abstract) + "\n\n"
        text += "USAGE: \(usage(of: command))\n\n"
        if !command.discussion.isEmpty {
            text += Self.wrapParagraphs(command.discussion) + "\n\n"
        }

        if !command.arguments.isEmpty {
            text += "ARGUMENTS:\n"
            for argument in command.arguments {
                text += Self.helpRow(label: "<\(argument.name)>", text: argument.help) + "\n"
            }
            text += "\n"
        }

        text += "OPTIONS:\n"
        for option in command.options {
            text += Self.helpRow(label: option.synopsis, text: option.help) + "\n"
        }
        text += Self.helpRow(label: "-h, --help", text: "Show help information.") + "\n"
        return text
    }

    /// Returns the one-line usage of a command, such as `amqp-retry worker [--url <url>]`.
    func usage(of command: Command) -> String {
        let arguments = command.arguments.map(\.synopsis)
        let options = command.options.map { "[\($0.synopsis)]" }
        return ([name, command.name] + arguments + options).joined(separator: " ")
    }

    private func usageFooter(for command: Command) -> String {
        """
        Usage: \(usage(of: command))
          See '\(name) \(command.name) --help' for more information.

        """
    }

    /// Formats one entry of OPTIONS or COMMANDS: the label, then the text wrapped in a column
    /// that starts at ``labelWidth``. After a longer label, the text starts on the next line.
    private static func helpRow(label: String, text: String) -> String {
        let indent = String(repeating: " ", count: labelWidth)
        let lines = wrap(text, width: lineWidth - labelWidth)
        var first = "  " + label
        if first.count + 1 > labelWidth {
            first += "\n" + indent
        } else {
            first += String(repeating: " ", count: labelWidth - first.count)
        }
        return first + lines.joined(separator: "\n" + indent)
    }

    /// Wraps each paragraph of text at ``lineWidth``; paragraphs are separated by a blank line.
    private static func wrapParagraphs(_ text: String) -> String {
        let paragraphs = text.split(separator: "\n\n", omittingEmptySubsequences: false)
        return paragraphs.map { wrap(String($0), width: lineWidth).joined(separator: "\n") }
            .joined(separator: "\n\n")
    }

    /// Splits text into lines of at most `width` characters at spaces; a longer word gets a line of its own.
    private static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty, line.count + 1 + word.count > width {
                lines.append(line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        return lines + [line]
    }
}

// MARK: - Output

extension CommandLineTool {
    /// Writes text to standard output as it is.
    static func writeOutput(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// Writes text to standard error as it is.
    static func writeError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
