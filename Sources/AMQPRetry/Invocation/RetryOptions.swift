/// The validated options of one invoke/retry call: how many times to repeat a failed
/// invocation and how long to wait between attempts.
///
/// The interval has millisecond resolution because it becomes the `x-message-ttl` of a
/// RabbitMQ delay queue.
public struct RetryOptions: Sendable, Hashable {
    /// The largest accepted value of ``repeats``.
    public static let maximumRepeats = 1_000_000

    /// The longest accepted interval: `Int32.max` milliseconds, about 24.8 days.
    ///
    /// It fits a signed 32-bit AMQP field and the range 0 to 2^32 that older RabbitMQ
    /// documentation gives for `x-message-ttl`.
    public static let maximumIntervalMilliseconds: Int64 = 2_147_483_647

    /// The longest accepted timeout of a blocking call.
    public static let maximumTimeout: Duration = .seconds(3600)

    /// How many times a failed invocation is repeated, so at most `repeats + 1` attempts are made.
    public let repeats: Int

    /// The time between two attempts, in milliseconds.
    public let intervalMilliseconds: Int64

    /// The time between two attempts, in seconds.
    public var intervalSeconds: Double {
        Double(intervalMilliseconds) / 1000
    }

    /// Creates options from Zato's `repeats` and either `seconds` or `minutes`.
    ///
    /// Minutes are converted to seconds, and the interval is rounded to the nearest millisecond.
    ///
    /// - Parameters:
    ///   - repeats: How many times to repeat a failed invocation, from 1 to 1,000,000.
    ///   - seconds: The interval in seconds. Give either this or `minutes`.
    ///   - minutes: The interval in minutes. Give either this or `seconds`.
    /// - Throws: ``InvokeRetryError/invalidOption(name:value:reason:)`` naming the option when
    ///   `repeats` is out of range or when both or neither of `seconds` and `minutes` are given.
    ///   The same error names the interval when it is not finite, not positive, shorter than
    ///   1 ms after rounding, or longer than ``maximumIntervalMilliseconds``.
    public init(repeats: Int, seconds: Double? = nil, minutes: Double? = nil) throws {
        try Self.validateRepeats(repeats)

        let (name, value, millisecondsPerUnit) = try Self.intervalArgument(seconds: seconds, minutes: minutes)
        let milliseconds = try Self.roundedMilliseconds(value, millisecondsPerUnit: millisecondsPerUnit, option: name)

        self.repeats = repeats
        self.intervalMilliseconds = milliseconds
    }

    /// Creates options from a number of repeats and an interval in milliseconds, as carried in
    /// message headers.
    ///
    /// - Throws: ``InvokeRetryError/invalidOption(name:value:reason:)`` naming `repeats` or
    ///   `intervalMilliseconds` when a value is out of range.
    public init(repeats: Int, intervalMilliseconds: Int64) throws {
        try Self.validateRepeats(repeats)

        guard intervalMilliseconds >= 1 else {
            throw InvokeRetryError.invalid("intervalMilliseconds", String(intervalMilliseconds), "must be at least 1")
        }
        guard intervalMilliseconds <= Self.maximumIntervalMilliseconds else {
            let reason = "must be at most \(Self.maximumIntervalMilliseconds) (about 24.8 days)"
            throw InvokeRetryError.invalid("intervalMilliseconds", String(intervalMilliseconds), reason)
        }

        self.repeats = repeats
        self.intervalMilliseconds = intervalMilliseconds
    }

    /// Checks the timeout of a blocking call.
    ///
    /// - Throws: ``InvokeRetryError/invalidOption(name:value:reason:)`` naming `timeout` unless
    ///   it is greater than zero and at most ``maximumTimeout`` (1 hour).
    public static func validateTimeout(_ timeout: Duration) throws {
        guard timeout > .zero else {
            throw InvokeRetryError.invalid("timeout", DisplayText.duration(timeout), "must be greater than 0")
        }
        guard timeout <= maximumTimeout else {
            throw InvokeRetryError.invalid("timeout", DisplayText.duration(timeout), "must be at most 3600 seconds (1 hour)")
        }
    }
}

extension RetryOptions {
    private static func validateRepeats(_ repeats: Int) throws {
        guard repeats >= 1 else {
            throw InvokeRetryError.invalid("repeats", String(repeats), "must be at least 1")
        }
        guard repeats <= maximumRepeats else {
            throw InvokeRetryError.invalid("repeats", String(repeats), "must be at most \(maximumRepeats)")
        }
    }

    /// Picks the one interval argument that was given, with its name and its unit in milliseconds.
    private static func intervalArgument(
        seconds: Double?, minutes: Double?
    ) throws -> (name: String, value: Double, millisecondsPerUnit: Double) {
        switch (seconds, minutes) {
        case (let seconds?, nil):
            return ("seconds", seconds, 1000)
        case (nil, let minutes?):
            return ("minutes", minutes, 60_000)
        case (_?, let minutes?):
            throw InvokeRetryError.invalid("minutes", "\(minutes)", "give exactly one of seconds or minutes, not both")
        case (nil, nil):
            throw InvokeRetryError.invalid("seconds", "nil", "give seconds or minutes to set the interval between attempts")
        }
    }

    /// Converts an interval to whole milliseconds, rounding to the nearest one.
    private static func roundedMilliseconds(_ value: Double, millisecondsPerUnit: Double, option: String) throws -> Int64 {
        guard value.isFinite, value > 0 else {
            throw InvokeRetryError.invalid(option, "\(value)", "must be a finite number greater than 0")
        }

        let milliseconds = (value * millisecondsPerUnit).rounded()
        guard milliseconds >= 1 else {
            let smallest = 0.5 / millisecondsPerUnit
            throw InvokeRetryError.invalid(option, "\(value)", "must be at least \(smallest), which rounds to 1 millisecond")
        }
        guard milliseconds <= Double(maximumIntervalMilliseconds) else {
            let largest = Double(maximumIntervalMilliseconds) / millisecondsPerUnit
            throw InvokeRetryError.invalid(option, "\(value)", "must be at most \(largest) (about 24.8 days)")
        }
        return Int64(milliseconds)
    }
}
