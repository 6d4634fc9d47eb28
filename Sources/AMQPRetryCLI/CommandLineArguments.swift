/// The exit status of the tool.
enum ExitStatus: Int32 {
    /// The command did what it was asked to do.
    case success = 0
    /// The command ran but failed, for example because the broker could not be reached.
    case failure = 1
    /// The command line is invalid; `EX_USAGE` from BSD's `sysexits.h`.
    case usage = 64
}

/// A command line that cannot be run as written. The tool prints the message with the usage of
/// the command and exits with ``ExitStatus/usage``.
struct UsageError: Error, CustomStringConvertible {
    /// The problem, naming the argument and, where it helps, the accepted values.
    let message: String

    var description: String {
        message
    }
}

/// An option that a command accepts: `--name <value>`, or a flag `--name` without a value.
struct OptionDefinition: Sendable {
    /// The name in kebab case, without the leading dashes, such as `log-level`.
    let name: String

    /// The placeholder of the value in help text, such as `url`, or `nil` for a flag.
    let valueName: String?

    /// The help text: the value the option sets, its unit and its default.
    let help: String

    /// Whether the option may be given more than once to pass several values, which
    /// ``CommandLineArguments/values(of:)`` returns in order.
    var isRepeatable = false

    /// The option as help text and errors show it, such as `--url <url>` or `--verbose`;
    /// a repeatable option ends with `...`.
    var synopsis: String {
        let option = valueName.map { "--\(name) <\($0)>" } ?? "--\(name)"
        return isRepeatable ? option + " ..." : option
    }

    /// The option and its value placeholder without the `...` of a repeatable option, as error
    /// messages about one value show it.
    var singleSynopsis: String {
        valueName.map { "--\(name) <\($0)>" } ?? "--\(name)"
    }
}

/// The options, flags and positional arguments of a command line, split but not yet checked
/// for meaning.
///
/// The syntax follows swift-argument-parser: an option takes its value as `--name value` or
/// `--name=value`, the last of repeated options wins, and `--` ends the options so that every
/// later argument is positional. `-h` and `--help` are left to the caller, which looks for
/// them with ``requestsHelp(_:)`` before parsing.
struct CommandLineArguments {
    /// The values of the options given, by option name.
    private(set) var values: [String: String] = [:]

    /// Every value of each option given, in command-line order, by option name.
    private(set) var allValues: [String: [String]] = [:]

    /// The names of the flags given.
    private(set) var flags: Set<String> = []

    /// The positional arguments, in order.
    private(set) var positionals: [String] = []

    /// Splits `arguments` by the options of one command.
    /// - Throws: ``UsageError`` for an unknown option, a missing value, or a value given to a flag.
    init(parsing arguments: [String], options: [OptionDefinition]) throws(UsageError) {
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            if argument == "--" {
                positionals += remaining
                return
            }

            if Self.isOption(argument) {
                try parseOption(argument, remaining: &remaining, options: options)
            } else {
                positionals.append(argument)
            }
        }
    }

    /// Returns whether `-h` or `--help` appears before any `--`.
    static func requestsHelp(_ arguments: some Sequence<String>) -> Bool {
        for argument in arguments {
            if argument == "--" {
                return false
            }
            if argument == "-h" || argument == "--help" {
                return true
            }
        }
        return false
    }

    /// Returns the value of an option, or `nil` when it was not given.
    func value(of option: String) -> String? {
        values[option]
    }

    /// Returns every value of an option, in command-line order; empty when it was not given.
    func values(of option: String) -> [String] {
        allValues[option] ?? []
    }

    /// Returns whether a flag was given.
    func contains(flag: String) -> Bool {
        flags.contains(flag)
    }

    /// Throws unless the command line has at most `maximum` positional arguments.
    func checkPositionalCount(atMost maximum: Int) throws(UsageError) {
        guard positionals.count > maximum else {
            return
        }
        throw UsageError(message: "Unexpected argument '\(positionals[maximum])'")
    }
}

// MARK: - Parsing

extension CommandLineArguments {
    /// Returns whether an argument is an option rather than a value: it starts with `-`, is not
    /// `-` alone (which conventionally means standard input), and is not a negative number,
    /// so that `--concurrency -1` reaches the range check.
    private static func isOption(_ argument: String) -> Bool {
        argument.hasPrefix("-") && argument != "-" && Double(argument) == nil
    }

    private mutating func parseOption(
        _ argument: String,
        remaining: inout ArraySlice<String>,
        options: [OptionDefinition]
    ) throws(UsageError) {
        let (name, attachedValue) = Self.split(argument)
        guard let option = options.first(where: { "--" + $0.name == name }) else {
            throw UsageError(message: "Unknown option '\(name)'")
        }

        guard option.valueName != nil else {
            if attachedValue != nil {
                throw UsageError(message: "The flag '\(option.synopsis)' takes no value, but got '\(argument)'")
            }
            flags.insert(option.name)
            return
        }

        let value: String
        if let attachedValue {
            value = attachedValue
        } else if let next = remaining.first, !Self.isOption(next) {
            value = remaining.removeFirst()
        } else {
            throw UsageError(message: "Missing value for '\(option.singleSynopsis)'")
        }
        values[option.name] = value
        allValues[option.name, default: []].append(value)
    }

    /// Splits `--name=value` into its name and value; other arguments have no attached value.
    private static func split(_ argument: String) -> (name: String, value: String?) {
        guard argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") else {
            return (argument, nil)
        }
        return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
    }
}
