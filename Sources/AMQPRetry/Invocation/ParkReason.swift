import Foundation

/// The reason a worker moved a message to the parking queue instead of handling it.
public struct ParkReason: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of problem, stable enough for tools to match on.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The version header is not ``WireHeader/currentVersion``.
        case unsupportedVersion = "unsupported-version"
        /// A required header is absent.
        case missingHeader = "missing-header"
        /// A header has the wrong type or a value out of range.
        case invalidHeader = "invalid-header"
        /// The `correlation_id` property or the original CID is absent or not a CID.
        case invalidCID = "invalid-cid"
        /// The target header names another service than the one whose queue contains the message.
        case targetMismatch = "target-mismatch"
        /// The context header is not a JSON object.
        case invalidContext = "invalid-context"
        /// Every attempt of an invocation without a callback failed.
        case retriesExhausted = "retries-exhausted"
        /// The handler of a callback service failed.
        case callbackFailed = "callback-failed"
        /// What replaces the message (a retry, reply or callback) cannot be published, for
        /// example because its headers exceed the connection's `frame_max`.
        case undeliverable = "undeliverable"
        /// The broker redelivered the message more often than the worker's redelivery limit
        /// allows without a worker finishing it, as when a handler crashes the worker process.
        case redeliveryLimit = "redelivery-limit"
    }

    /// The kind of problem.
    public let code: Code

    /// A sentence that names the header, its value and the problem.
    public let detail: String

    /// Creates a reason.
    public init(code: Code, detail: String) {
        self.code = code
        self.detail = detail
    }

    /// The code and the detail, such as `missing-header: header 'amqpretry-mode' is missing`.
    public var description: String {
        "\(code.rawValue): \(detail)"
    }

    /// Makes the headers that record this reason on a parked message.
    ///
    /// - Parameters:
    ///   - queue: The queue the message came from.
    ///   - date: When the message was parked. The default is now.
    /// - Returns: ``WireHeader/parkedReason`` (the description, at most 1024 bytes),
    ///   ``WireHeader/parkedQueue`` and ``WireHeader/parkedAt``.
    public func headers(queue: String, date: Date = Date()) -> FieldTable {
        [
            WireHeader.parkedReason: .text(WireHeader.boundedErrorMessage(description)),
            WireHeader.parkedQueue: .text(queue),
            WireHeader.parkedAt: .text(WireTimestamp.format(date)),
        ]
    }
}
