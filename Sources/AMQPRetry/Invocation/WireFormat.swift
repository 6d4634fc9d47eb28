/// The names of the application headers AMQPRetry puts in a message's `headers` table, and
/// the helpers that bound the text written to them.
///
/// Integers are written as signed 64-bit integers (`l`) and text as long strings (`S`) of UTF-8.
/// Readers accept integers of any width and text as a long string or a byte array.
public enum WireHeader {
    /// The version of this header contract, an integer. Messages without it, or with another
    /// version than ``currentVersion``, are parked.
    public static let version = "amqpretry-version"
    /// The ``InvocationMode`` as text: `async`, `sync` or `callback`.
    public static let mode = "amqpretry-mode"
    /// The name of the invoked service.
    public static let target = "amqpretry-target"
    /// The 1-based number of the attempt this message makes.
    public static let attempt = "amqpretry-attempt"
    /// How many times a failed invocation is repeated.
    public static let repeats = "amqpretry-repeats"
    /// The time between attempts in milliseconds.
    public static let intervalMilliseconds = "amqpretry-interval-ms"
    /// The name of the callback service.
    public static let callback = "amqpretry-callback"
    /// The name of the calling service.
    public static let source = "amqpretry-source"
    /// The CID the calling service was invoked with.
    public static let origCID = "amqpretry-orig-cid"
    /// The context for the callback: a JSON object as text.
    public static let context = "amqpretry-context"
    /// When the target was first invoked, as a ``WireTimestamp``.
    public static let requestTimestamp = "amqpretry-req-ts"
    /// The error message of the previous attempt.
    public static let lastError = "amqpretry-last-error"
    /// The outcome of a blocking call in its reply: `ok` or `error`.
    public static let status = "amqpretry-status"
    /// The error message in the reply to a failed blocking call.
    public static let error = "amqpretry-error"
    /// Why a message was parked: a ``ParkReason`` as text.
    public static let parkedReason = "amqpretry-parked-reason"
    /// The queue a parked message came from.
    public static let parkedQueue = "amqpretry-parked-queue"
    /// When a message was parked, as a ``WireTimestamp``.
    public static let parkedAt = "amqpretry-parked-at"
    /// How many times the broker redelivered the invocation to a worker that did not finish it;
    /// a worker increments it on each redelivery and parks the invocation past its limit.
    public static let redeliveries = "amqpretry-redeliveries"

    /// The version of the header contract this library writes and reads.
    public static let currentVersion: Int64 = 1

    /// Makes an error message safe to put in a header or a callback body.
    ///
    /// Control characters other than tab and line feed become U+FFFD (`�`). A message of more
    /// than `maxBytes` bytes of UTF-8 is cut at a character boundary and ends with `…`, so the
    /// result is at most `maxBytes` bytes long, the ellipsis included. When `maxBytes` is less
    /// than the 3 bytes of the ellipsis, the result is cut without one.
    ///
    /// - Parameters:
    ///   - message: The error message.
    ///   - maxBytes: The largest result in UTF-8 bytes. The default is 1024.
    public static func boundedErrorMessage(_ message: String, maxBytes: Int = 1024) -> String {
        var cleaned = String.UnicodeScalarView()
        for scalar in message.unicodeScalars {
            let isAllowedControl = scalar == "\t" || scalar == "\n"
            let isControl = scalar.properties.generalCategory == .control
            cleaned.append(isControl && !isAllowedControl ? "\u{FFFD}" : scalar)
        }

        let text = String(cleaned)
        guard text.utf8.count > maxBytes else {
            return text
        }

        let ellipsis = "…"
        guard maxBytes >= ellipsis.utf8.count else {
            return prefix(of: text, maxBytes: max(0, maxBytes))
        }
        return prefix(of: text, maxBytes: maxBytes - ellipsis.utf8.count) + ellipsis
    }

    /// Returns the longest run of whole characters from the start of `text` that fits in `maxBytes`.
    private static func prefix(of text: String, maxBytes: Int) -> String {
        var result = ""
        var byteCount = 0
        for character in text {
            byteCount += character.utf8.count
            guard byteCount <= maxBytes else {
                break
            }
            result.append(character)
        }
        return result
    }
}

/// The kind of invocation message, which decides how the consuming worker handles it.
public enum InvocationMode: String, Sendable, CaseIterable {
    /// An invocation in the background: when the target fails, the worker retries through delay
    /// queues, and at the end it publishes a callback when one is set.
    case async
    /// One request of a blocking call: the worker runs the target once and replies to `reply_to`.
    case sync
    /// A callback delivered to a callback service, whose handler runs once.
    case callback
}
