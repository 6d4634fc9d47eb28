import Foundation

/// A logger that sends records at or above its level to a handler.
///
/// AMQPRetry logs at `debug` and `trace` for routine work, at `info` for events a caller cannot
/// see as a thrown error (such as a scheduled retry), and at `warning` or above for errors it
/// handles without throwing. Messages are constant texts; the variable data goes into metadata
/// under the keys in ``LogKey``.
public struct Logger: Sendable {
    /// The severity of a record, from the most verbose to the most severe.
    public enum Level: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
        case trace
        case debug
        case info
        case notice
        case warning
        case error
        case critical

        /// The lowercase name of the level, as printed in log lines.
        public var description: String {
            switch self {
            case .trace: "trace"
            case .debug: "debug"
            case .info: "info"
            case .notice: "notice"
            case .warning: "warning"
            case .error: "error"
            case .critical: "critical"
            }
        }

        public static func < (lhs: Level, rhs: Level) -> Bool {
            lhs.rawValue < rhs.rawValue
        }
    }

    /// Metadata of a record: keys, usually from ``LogKey``, mapped to values.
    public typealias Metadata = [String: String]

    /// The name of the component that logs, such as `amqpretry.worker`.
    public var label: String

    /// The lowest level that reaches the handler.
    public var logLevel: Level

    /// Metadata attached to every record; a key given to a single call overrides it.
    public var metadata: Metadata

    private let handler: @Sendable (LogRecord) -> Void
    private let isDisabled: Bool

    /// Creates a logger that passes each enabled record to `handler`.
    ///
    /// - Parameters:
    ///   - label: The name of the component that logs.
    ///   - logLevel: The lowest level that reaches the handler. The default is `info`.
    ///   - handler: Called once per record, possibly from several threads at a time.
    public init(label: String, logLevel: Level = .info, handler: @escaping @Sendable (LogRecord) -> Void) {
        self.init(label: label, logLevel: logLevel, isDisabled: false, handler: handler)
    }

    private init(label: String, logLevel: Level, isDisabled: Bool, handler: @escaping @Sendable (LogRecord) -> Void) {
        self.label = label
        self.logLevel = logLevel
        self.metadata = [:]
        self.isDisabled = isDisabled
        self.handler = handler
    }

    /// Creates a logger that writes one line per record to standard error.
    ///
    /// A line has the time in UTC with milliseconds, the level, the label, the message and the
    /// metadata as `key=value` pairs sorted by key, for example
    /// `2026-12-04T20:25:25.446Z info amqpretry.worker: retry scheduled amqpretry.attempt=2`.
    /// Values that contain spaces, quotes or `=` are quoted, and control characters are escaped,
    /// so every record stays on one line.
    ///
    /// - Parameters:
    ///   - label: The name of the component that logs.
    ///   - logLevel: The lowest level written. The default is `info`.
    public static func standardError(label: String, logLevel: Level = .info) -> Logger {
        Logger(label: label, logLevel: logLevel) { record in
            let line = record.formattedLine() + "\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    /// A logger that drops every record without building its message, whatever its level.
    public static let disabled = Logger(label: "disabled", logLevel: .critical, isDisabled: true) { _ in }

    /// Returns whether a record at `level` would reach the handler.
    public func isEnabled(_ level: Level) -> Bool {
        !isDisabled && level >= logLevel
    }

    /// Logs a message at `level`.
    ///
    /// The message and the metadata are built only when the level is enabled.
    ///
    /// - Parameters:
    ///   - level: The severity of the record.
    ///   - message: A constant text that describes the event.
    ///   - metadata: The variable data of the record, merged over ``metadata``.
    public func log(level: Level, _ message: @autoclosure () -> String, metadata: @autoclosure () -> Metadata = [:]) {
        guard isEnabled(level) else {
            return
        }

        let merged = self.metadata.merging(metadata()) { _, callValue in callValue }
        let record = LogRecord(level: level, label: label, message: message(), metadata: merged, date: Date())
        handler(record)
    }

    /// Logs a message at the `trace` level; see ``log(level:_:metadata:)``.
    public func trace(_ message: @autoclosure () -> String, metadata: @autoclosure () -> Metadata = [:]) {
        log(level: .trace, message(), metadata: metadata())
    }

    /// Logs a message at the `debug` level; see ``log(level:_:metadata:)``.
    public func debug(_ message: @autoclosure () -> String, metadata: @autoclosure () -> Metadata = [:]) {
        log(level: .debug, message(), metadata: metadata())
    }

    /// Logs a message at the `info` level; see ``log(level:_:metadata:)``.
    public func info(_ message: @autoclosure () -> String, metadata: @autoclosure () -> Metadata = [:]) {
        log(level: .info, message(), metadata: metadata())
    }

    /// Logs a message at the `notice` level; see ``log(level:_:metadata:)``.
    public func notice(_ message: @autoclosure () -> String, metadata: @autoclosure () -> Metadata = [:]) {
        log(level: .notice, message(), metadata: metadata())
    }

    /// Logs a message at the `warning` level; see ``log(level:_:metadata:)``.
    public func warning(_ message: @autoclosure () -> String, metadata: @autoclosure () -> Metadata = [:]) {
        log(level: .warning, message(), metadata: metadata())
    }

    /// Logs a message at the `error` level; see ``log(level:_:metadata:)``.
    public func error(_ message: @autoclosure () -> String, metadata: @autoclosure () -> Metadata = [:]) {
        log(level: .error, message(), metadata: metadata())
    }

    /// Logs a message at the `critical` level; see ``log(level:_:metadata:)``.
    public func critical(_ message: @autoclosure () -> String, metadata: @autoclosure () -> Metadata = [:]) {
        log(level: .critical, message(), metadata: metadata())
    }
}
