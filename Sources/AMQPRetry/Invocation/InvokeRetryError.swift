/// An error of an invoke/retry call.
public enum InvokeRetryError: Error, Sendable, CustomStringConvertible {
    /// An option of the call has an invalid value.
    ///
    /// - Parameters:
    ///   - name: The name of the option, such as `repeats`, `seconds` or `target`.
    ///   - value: The value as given, rendered on one line and cut after 200 characters.
    ///   - reason: What the value must be, such as `must be at least 1`.
    case invalidOption(name: String, value: String, reason: String)

    /// Every attempt of a blocking invocation failed.
    ///
    /// - Parameters:
    ///   - cid: The CID of the invocation.
    ///   - target: The invoked service.
    ///   - attempts: The number of attempts made, including the first.
    ///   - lastFailure: The error message of the last attempt.
    case retriesExhausted(cid: CID, target: String, attempts: Int, lastFailure: String)

    /// A message that names the failure and, where the caller can fix it, what to change.
    public var description: String {
        switch self {
        case .invalidOption(let name, let value, let reason):
            return "invalid value '\(value)' for option '\(name)': \(reason)"

        case .retriesExhausted(let cid, let target, let attempts, let lastFailure):
            let noun = attempts == 1 ? "attempt" : "attempts"
            return "invoking '\(target)' failed after \(attempts) \(noun) (CID \(cid)): \(lastFailure)"
        }
    }

    /// Makes an ``invalidOption(name:value:reason:)`` error with the value rendered on one line
    /// and cut after 200 characters.
    static func invalid(_ name: String, _ value: String, _ reason: String) -> InvokeRetryError {
        .invalidOption(name: name, value: DisplayText.escaped(value), reason: reason)
    }
}

/// A value that does not have the expected format, such as text that is not a CID.
public struct InvalidValueError: Error, Sendable, CustomStringConvertible {
    /// The value as given.
    public let value: String

    /// The format the value must have.
    public let expected: String

    /// Creates an error for `value`, which must have the format described by `expected`.
    public init(value: String, expected: String) {
        self.value = value
        self.expected = expected
    }

    /// A message with the value, on one line and cut after 200 characters, and the expected format.
    public var description: String {
        "invalid value \(DisplayText.quoted(value)): expected \(expected)"
    }
}
