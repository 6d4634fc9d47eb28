import AMQPRetry

/// An in-memory log handler: every record a logger made by ``logger(label:logLevel:)`` sends
/// is kept in order, so tests can check what was logged.
final class LogCapture: Sendable {
    private let storage = Locked<[LogRecord]>([])

    /// The records received so far.
    var records: [LogRecord] {
        storage.withLock { $0 }
    }

    /// Makes a logger that appends its records to this capture.
    func logger(label: String = "test", logLevel: Logger.Level = .trace) -> Logger {
        Logger(label: label, logLevel: logLevel) { record in
            self.append(record)
        }
    }

    private func append(_ record: LogRecord) {
        storage.withLock { $0.append(record) }
    }
}
