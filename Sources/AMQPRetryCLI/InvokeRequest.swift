import AMQPRetry
import Foundation

/// The checked command line of `amqp-retry invoke`: the target, the request and the retry options.
///
/// Everything is checked before the command connects, with the same rules the library applies
/// before it publishes, so an invalid command line publishes nothing.
struct InvokeRequest {
    /// The invoke/retry mode: where the first call and the retries run.
    enum Mode: String, CaseIterable {
        /// Blocking first call, blocking retries (sync + sync).
        case sync
        /// Blocking first call, retries in the background (sync + async).
        case fallback
        /// Every call in the background (async + async).
        case async
    }

    let target: String
    let payload: Payload
    let mode: Mode
    let repeats: Int
    let seconds: Double?
    let minutes: Double?
    let callback: String?
    let context: JSONValue?
    let timeout: Duration

    /// Reads and checks the command line.
    /// - Throws: ``UsageError`` naming the first invalid argument or option.
    init(_ arguments: CommandLineArguments) throws(UsageError) {
        try arguments.checkPositionalCount(atMost: 2)
        guard let target = arguments.positionals.first else {
            throw UsageError(message: "Missing expected argument '<target>'")
        }
        try SharedOptions.checkServiceName(target, label: "argument '<target>'")
        self.target = target

        mode = try Self.mode(arguments)
        repeats = try arguments.integer(InvokeCommand.repeatsOption, in: 1...RetryOptions.maximumRepeats)
            ?? InvokeCommand.defaultRepeats
        (seconds, minutes) = try Self.interval(arguments, repeats: repeats)
        callback = try Self.callback(arguments, mode: mode)
        context = try Self.context(arguments, mode: mode)
        timeout = try Self.timeout(arguments, mode: mode)
        payload = try Self.payload(arguments)
    }
}

// MARK: - Options

extension InvokeRequest {
    private static func mode(_ arguments: CommandLineArguments) throws(UsageError) -> Mode {
        guard let text = arguments.value(of: InvokeCommand.modeOption.name) else {
            return .sync
        }
        guard let mode = Mode(rawValue: text) else {
            let modes = Mode.allCases.map(\.rawValue).joined(separator: ", ")
            throw UsageError.invalidValue(text, for: InvokeCommand.modeOption, expected: "one of \(modes)")
        }
        return mode
    }

    /// Reads `--seconds` or `--minutes` and checks the interval with the library's own rules.
    private static func interval(_ arguments: CommandLineArguments,
                                 repeats: Int) throws(UsageError) -> (seconds: Double?, minutes: Double?) {
        let seconds = try arguments.number(InvokeCommand.secondsOption)
        let minutes = try arguments.number(InvokeCommand.minutesOption)
        switch (seconds, minutes) {
        case (nil, nil):
            throw UsageError(message: "Missing '--seconds <s>' or '--minutes <m>': give exactly one to set "
                + "the interval between calls")
        case (_?, _?):
            throw UsageError(message: "Both '--seconds <s>' and '--minutes <m>' were given: give exactly one of them")
        default:
            break
        }

        do {
            _ = try RetryOptions(repeats: repeats, seconds: seconds, minutes: minutes)
        } catch {
            let option = seconds == nil ? InvokeCommand.minutesOption : InvokeCommand.secondsOption
            throw UsageError.invalidValue(arguments.value(of: option.name) ?? "", for: option,
                                          reason: Self.reason(of: error))
        }
        return (seconds, minutes)
    }

    private static func callback(_ arguments: CommandLineArguments, mode: Mode) throws(UsageError) -> String? {
        let callback = arguments.value(of: InvokeCommand.callbackOption.name)
        switch (mode, callback) {
        case (.sync, _?):
            throw UsageError(message: "The option '--callback <service>' needs --mode fallback or async; "
                + "a sync call returns its outcome itself")
        case (.fallback, nil):
            throw UsageError(message: "Missing '--callback <service>': --mode fallback needs a callback service "
                + "to receive the outcome of the background retries")
        case (_, let callback?):
            try SharedOptions.checkServiceName(callback, label: "'--callback <service>'")
            return callback
        case (_, nil):
            return nil
        }
    }

    private static func context(_ arguments: CommandLineArguments, mode: Mode) throws(UsageError) -> JSONValue? {
        let option = InvokeCommand.contextOption
        guard let text = arguments.value(of: option.name) else {
            return nil
        }
        guard mode != .sync else {
            throw UsageError(message: "The option '\(option.singleSynopsis)' needs --mode fallback or async, "
                + "because only a callback receives the context")
        }

        let context: JSONValue
        do {
            context = try JSONValue(parsing: text)
        } catch {
            throw UsageError.invalidValue(text, for: option, expected: "a JSON object (\(error.reason))")
        }
        guard context.objectValue != nil else {
            throw UsageError.invalidValue(text, for: option, expected: "a JSON object, such as '{\"order\": 1}'")
        }
        return context
    }

    private static func timeout(_ arguments: CommandLineArguments, mode: Mode) throws(UsageError) -> Duration {
        let option = InvokeCommand.timeoutOption
        guard let seconds = try arguments.number(option) else {
            return .seconds(InvokeCommand.defaultTimeoutSeconds)
        }
        guard mode != .async else {
            throw UsageError(message: "The option '\(option.singleSynopsis)' needs --mode sync or fallback, "
                + "because only blocking calls wait for a reply")
        }

        // Rounded to microseconds, which keeps the value within Duration's range.
        let timeout = Duration.microseconds(Int64((seconds * 1_000_000).rounded().clamped(to: -1e15...1e15)))
        do {
            try RetryOptions.validateTimeout(timeout)
        } catch {
            throw UsageError.invalidValue(arguments.value(of: option.name) ?? "", for: option,
                                          reason: Self.reason(of: error))
        }
        return timeout
    }

    /// Returns the reason of the library's `invalidOption` error, such as `must be at least 1`.
    private static func reason(of error: any Error) -> String {
        guard case InvokeRetryError.invalidOption(_, _, let reason) = error else {
            return String(describing: error)
        }
        return reason
    }
}

// MARK: - Request body

extension InvokeRequest {
    private static func payload(_ arguments: CommandLineArguments) throws(UsageError) -> Payload {
        let contentType = arguments.value(of: InvokeCommand.contentTypeOption.name) ?? InvokeCommand.defaultContentType
        let inline = arguments.positionals.dropFirst().first
        let path = arguments.value(of: InvokeCommand.fileOption.name)

        switch (inline, path) {
        case (_?, _?):
            throw UsageError(message: "Both the argument '<payload>' and '--file <path>' were given: "
                + "pass the request in one of them")
        case (let text?, nil):
            return Payload(bytes: Array(text.utf8), contentType: contentType)
        case (nil, let path?):
            return Payload(bytes: try read(path), contentType: contentType)
        case (nil, nil):
            return Payload(bytes: [], contentType: contentType)
        }
    }

    /// Reads the request from a file, or from standard input when `path` is `-`.
    private static func read(_ path: String) throws(UsageError) -> [UInt8] {
        if path == "-" {
            return Array(FileHandle.standardInput.readDataToEndOfFile())
        }
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            let cause = (error as NSError).localizedDescription
            throw UsageError(message: "Cannot read the request from '--file <path>' '\(path)': \(cause)")
        }
    }
}

extension Comparable {
    /// Returns the value limited to `range`.
    func clamped(to range: ClosedRange<Self>) -> Self {
        min(max(self, range.lowerBound), range.upperBound)
    }
}
