import Foundation

/// One message of an invoke/retry call: who is invoked, how, which attempt it is, and the payload.
///
/// ``decode(properties:body:queueService:)`` makes an invocation from a delivered message and
/// checks every header. The initializer does not check its arguments: callers validate the
/// options a user gives with ``RetryOptions`` and ``ServiceName`` first.
public struct Invocation: Sendable, Hashable {
    /// The CID of the invocation, sent as the `correlation_id` property.
    public var cid: CID

    /// The mode that decides how the worker handles the message.
    public var mode: InvocationMode

    /// The name of the invoked service.
    public var target: String

    /// The 1-based number of the attempt this message makes.
    public var attempt: Int

    /// The retry options; always set for ``InvocationMode/async``, optional otherwise.
    public var options: RetryOptions?

    /// The name of the service to call back with the outcome, if any.
    public var callback: String?

    /// The name of the calling service, or the empty string when it is unknown.
    public var source: String

    /// The CID the calling service was invoked with, if any.
    public var origCID: CID?

    /// Data for the callback; a JSON object when set.
    public var context: JSONValue?

    /// When the target was first invoked, as a ``WireTimestamp``.
    public var requestTimestamp: String?

    /// The error message of the previous attempt, if any.
    public var lastError: String?

    /// The request body and its MIME type.
    public var payload: Payload

    /// Creates an invocation.
    ///
    /// - Parameters:
    ///   - cid: The CID. The default is a new random one.
    ///   - mode: How the worker handles the message.
    ///   - target: The name of the invoked service.
    ///   - attempt: The 1-based attempt number. The default is 1.
    ///   - options: The retry options; required for ``InvocationMode/async``.
    ///   - callback: The callback service, if any.
    ///   - source: The name of the calling service. The default is the empty string.
    ///   - origCID: The CID the calling service was invoked with, if any.
    ///   - context: Data for the callback, which must be a JSON object.
    ///   - requestTimestamp: When the target was first invoked. The default is now.
    ///   - lastError: The error message of the previous attempt, if any.
    ///   - payload: The request body. The default is ``Payload/empty``.
    public init(
        cid: CID = .random(),
        mode: InvocationMode,
        target: String,
        attempt: Int = 1,
        options: RetryOptions? = nil,
        callback: String? = nil,
        source: String = "",
        origCID: CID? = nil,
        context: JSONValue? = nil,
        requestTimestamp: String? = WireTimestamp.now(),
        lastError: String? = nil,
        payload: Payload = .empty
    ) {
        self.cid = cid
        self.mode = mode
        self.target = target
        self.attempt = attempt
        self.options = options
        self.callback = callback
        self.source = source
        self.origCID = origCID
        self.context = context
        self.requestTimestamp = requestTimestamp
        self.lastError = lastError
        self.payload = payload
    }

    /// Returns the invocation of the next attempt after a failure.
    ///
    /// - Parameter failure: The error message of the failed attempt, stored as ``lastError``
    ///   after ``WireHeader/boundedErrorMessage(_:maxBytes:)`` bounds it to 1024 bytes.
    public func nextAttempt(after failure: String) -> Invocation {
        var next = self
        next.attempt += 1
        next.lastError = WireHeader.boundedErrorMessage(failure)
        return next
    }
}

// MARK: - Encoding

extension Invocation {
    /// Makes the application headers of the message.
    ///
    /// Integers are written as ``FieldValue/int64(_:)`` and text as ``FieldValue/text(_:)``.
    /// Absent optional values are left out.
    public func headers() -> FieldTable {
        headerList().table
    }

    /// Makes the headers of ``headers()`` in the order of their names' bytes, the order in
    /// which they are encoded.
    func headerList() -> HeaderList {
        var headers = HeaderList(capacity: 12)
        headers.appendNew(WireHeader.attempt, .int64(Int64(attempt)), nameIsASCII: true)
        if let callback {
            headers.appendNew(WireHeader.callback, .text(callback), nameIsASCII: true)
        }
        if let context {
            headers.appendNew(WireHeader.context, .text(context.serialized()), nameIsASCII: true)
        }
        if let options {
            headers.appendNew(WireHeader.intervalMilliseconds, .int64(options.intervalMilliseconds), nameIsASCII: true)
        }
        if let lastError {
            headers.appendNew(WireHeader.lastError, .text(lastError), nameIsASCII: true)
        }
        headers.appendNew(WireHeader.mode, .text(mode.rawValue), nameIsASCII: true)
        if let origCID {
            headers.appendNew(WireHeader.origCID, .text(origCID.rawValue), nameIsASCII: true)
        }
        if let options {
            headers.appendNew(WireHeader.repeats, .int64(Int64(options.repeats)), nameIsASCII: true)
        }
        if let requestTimestamp {
            headers.appendNew(WireHeader.requestTimestamp, .text(requestTimestamp), nameIsASCII: true)
        }
        headers.appendNew(WireHeader.source, .text(source), nameIsASCII: true)
        headers.appendNew(WireHeader.target, .text(target), nameIsASCII: true)
        headers.appendNew(WireHeader.version, .int64(WireHeader.currentVersion), nameIsASCII: true)
        return headers
    }

    /// Makes the basic properties of the message.
    ///
    /// The delivery mode is 2 (persistent) for ``InvocationMode/async`` and
    /// ``InvocationMode/callback`` and 1 (transient) for ``InvocationMode/sync``, whose
    /// requests are worthless once the caller stops waiting.
    ///
    /// - Parameters:
    ///   - replyTo: The queue for the reply of a blocking call, such as
    ///     ``TopologyNames/directReplyTo``.
    ///   - expirationMilliseconds: A per-message TTL, written as the `expiration` property.
    /// - Returns: Properties with the payload's content type, the CID as `correlation_id`,
    ///   a new unique `message_id`, the current time as `timestamp`, and ``headers()``.
    public func messageProperties(replyTo: String? = nil, expirationMilliseconds: Int64? = nil) -> MessageProperties {
        var properties = MessageProperties(
            contentType: payload.contentType,
            deliveryMode: mode == .sync ? 1 : 2,
            correlationID: cid.rawValue,
            replyTo: replyTo,
            expiration: expirationMilliseconds.map { String($0) },
            messageID: MessageID.random(),
            timestamp: UInt64(max(0, Date().timeIntervalSince1970))
        )
        properties.headerList = headerList()
        return properties
    }
}
