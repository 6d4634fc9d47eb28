import AMQPRetry
import Foundation

/// The options of every command that connects to RabbitMQ: `--url` and `--log-level`.
struct ConnectionOptions {
    /// The URL used when neither `--url` nor `AMQP_URL` is given.
    static let defaultURL = "amqp://guest:guest@localhost:5672/%2F"

    /// The environment variable that `--url` defaults to.
    static let urlVariable = "AMQP_URL"

    /// The levels `--log-level` accepts, from the most verbose.
    static let logLevels: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error]

    /// The broker to connect to.
    let connection: ConnectionConfiguration

    /// The lowest level of the log records written to standard error.
    let logLevel: Logger.Level

    /// The definition of `--url`.
    static let urlDefinition = OptionDefinition(
        name: "url", valueName: "url",
        help: "The RabbitMQ URL, amqp://user:password@host:port/vhost or amqps://… for TLS. "
            + "(default: the \(urlVariable) environment variable, else \(defaultURL))"
    )

    /// Returns the definition of `--log-level` for a command whose log level defaults to `defaultLogLevel`.
    static func logLevelDefinition(default defaultLogLevel: Logger.Level) -> OptionDefinition {
        let levels = logLevels.map(\.description).joined(separator: ", ")
        return OptionDefinition(
            name: "log-level", valueName: "level",
            help: "The lowest level of the log lines written to standard error: \(levels). "
                + "(default: \(defaultLogLevel))"
        )
    }

    /// Reads and checks `--url` and `--log-level`.
    /// - Throws: ``UsageError`` naming the invalid value; the message never shows a password.
    init(_ arguments: CommandLineArguments, defaultLogLevel: Logger.Level) throws(UsageError) {
        connection = try Self.connection(url: arguments.value(of: "url"))
        logLevel = try Self.logLevel(arguments.value(of: "log-level")) ?? defaultLogLevel
    }

    private static func connection(url: String?) throws(UsageError) -> ConnectionConfiguration {
        do {
            if let url {
                return try ConnectionConfiguration(url: url)
            }
            return try ConnectionConfiguration.fromEnvironment(variable: urlVariable, default: defaultURL)
        } catch let error as ConnectionConfiguration.URLError {
            let fix = url == nil ? "Set \(urlVariable) to a valid URL or pass --url." : "Pass a valid URL to --url."
            throw UsageError(message: "\(error). \(fix)")
        } catch {
            throw UsageError(message: "The broker URL could not be read: \(error)")
        }
    }

    private static func logLevel(_ text: String?) throws(UsageError) -> Logger.Level? {
        guard let text else {
            return nil
        }
        guard let level = logLevels.first(where: { $0.description == text }) else {
            let levels = logLevels.map(\.description).joined(separator: ", ")
            throw UsageError(message: "Invalid value '\(text)' for '--log-level <level>': expected one of \(levels)")
        }
        return level
    }
}

// MARK: - Connection errors

extension ConnectionOptions {
    /// Returns the message for a failure to connect or to start consuming; when the broker could
    /// not be reached, it names the URL to check. The message of a login failure already names
    /// what to check.
    func connectionFailureMessage(_ error: any Error) -> String {
        var message = "Error: \(error)"
        if let error = error as? AMQPError, error.code == .connectionFailed {
            message += "\nCheck that RabbitMQ runs at \(connection.redactedURL), or pass another URL with --url."
        }
        return message
    }
}
