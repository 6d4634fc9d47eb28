import Foundation

/// The JSON body a callback service receives, with the keys of Zato's invoke/retry callback
/// and a few more about the response.
///
/// ``encoded()`` writes every key, with `null` for absent optional values.
public struct CallbackBody: Sendable, Hashable, Codable {
    /// Whether the target produced a response (`ok`).
    public var ok: Bool
    /// The calling service (`source`).
    public var source: String
    /// The invoked service (`target`).
    public var target: String
    /// How many times a failed invocation was to be repeated (`retry_repeats`).
    public var retryRepeats: Int
    /// The time between attempts in seconds (`retry_seconds`).
    public var retrySeconds: Double
    /// The CID the target was invoked with (`call_cid`).
    public var callCID: String
    /// The CID the calling service was invoked with, or the empty string when unknown (`orig_cid`).
    public var origCID: String
    /// When the target was first invoked, as a ``WireTimestamp`` (`req_ts_utc`).
    public var requestTimestamp: String
    /// When the invocation ended, as a ``WireTimestamp`` (`resp_ts_utc`).
    public var responseTimestamp: String
    /// The context the caller passed, a JSON object, or `nil` (`context`).
    public var context: JSONValue?
    /// The target's response as text or base64, `nil` on failure (`response`).
    public var response: String?
    /// `utf-8` or `base64`, the encoding of ``response``; `nil` on failure (`response_encoding`).
    public var responseEncoding: String?
    /// The MIME type of the response; `nil` on failure (`response_content_type`).
    public var responseContentType: String?
    /// The number of attempts made, including the first (`attempts`).
    public var attempts: Int
    /// The error message of the last attempt, at most 1024 bytes; `nil` on success (`error`).
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case ok
        case source
        case target
        case retryRepeats = "retry_repeats"
        case retrySeconds = "retry_seconds"
        case callCID = "call_cid"
        case origCID = "orig_cid"
        case requestTimestamp = "req_ts_utc"
        case responseTimestamp = "resp_ts_utc"
        case context
        case response
        case responseEncoding = "response_encoding"
        case responseContentType = "response_content_type"
        case attempts
        case error
    }

    /// Creates a body from its fields; see the properties for their meaning.
    public init(
        ok: Bool,
        source: String,
        target: String,
        retryRepeats: Int,
        retrySeconds: Double,
        callCID: String,
        origCID: String,
        requestTimestamp: String,
        responseTimestamp: String,
        context: JSONValue?,
        response: String?,
        responseEncoding: String?,
        responseContentType: String?,
        attempts: Int,
        error: String?
    ) {
        self.ok = ok
        self.source = source
        self.target = target
        self.retryRepeats = retryRepeats
        self.retrySeconds = retrySeconds
        self.callCID = callCID
        self.origCID = origCID
        self.requestTimestamp = requestTimestamp
        self.responseTimestamp = responseTimestamp
        self.context = context
        self.response = response
        self.responseEncoding = responseEncoding
        self.responseContentType = responseContentType
        self.attempts = attempts
        self.error = error
    }
}

// MARK: - Building

extension CallbackBody {
    /// Makes the callback body that reports the end of an invocation.
    ///
    /// The response is stored as text when it is valid UTF-8 and as base64 otherwise. Without
    /// retry options, `retry_repeats` and `retry_seconds` are 0. Without an original CID or a
    /// request time, `orig_cid` and `req_ts_utc` are the empty string.
    ///
    /// - Parameters:
    ///   - invocation: The invocation that ended.
    ///   - outcome: The outcome of its last attempt.
    ///   - attempts: The number of attempts made, including the first.
    public static func make(invocation: Invocation, outcome: CallOutcome, attempts: Int) -> CallbackBody {
        var body = CallbackBody(
            ok: false,
            source: invocation.source,
            target: invocation.target,
            retryRepeats: invocation.options?.repeats ?? 0,
            retrySeconds: invocation.options?.intervalSeconds ?? 0,
            callCID: invocation.cid.rawValue,
            origCID: invocation.origCID?.rawValue ?? "",
            requestTimestamp: invocation.requestTimestamp ?? "",
            responseTimestamp: WireTimestamp.now(),
            context: invocation.context,
            response: nil,
            responseEncoding: nil,
            responseContentType: nil,
            attempts: attempts,
            error: nil
        )

        switch outcome {
        case .success(let payload):
            body.ok = true
            body.setResponse(payload)
        case .failure(let message):
            body.error = WireHeader.boundedErrorMessage(message)
        }
        return body
    }

    private mutating func setResponse(_ payload: Payload) {
        if let text = payload.text {
            response = text
            responseEncoding = "utf-8"
        } else {
            response = Data(payload.bytes).base64EncodedString()
            responseEncoding = "base64"
        }
        responseContentType = payload.contentType
    }
}

// MARK: - JSON

extension CallbackBody {
    /// Encodes the body as compact JSON with sorted keys and `null` for absent values.
    public func encoded() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(512 + (response?.utf8.count ?? 0) + (error?.utf8.count ?? 0))
        for (key, value) in zip(Self.encodedKeys, memberValues) {
            output.append(contentsOf: key)
            value.write(to: &output)
        }
        output.append(UInt8(ascii: "}"))
        return output
    }

    /// Decodes a body from JSON. Absent optional keys and `null` both decode as `nil`.
    ///
    /// - Throws: ``JSONParseError`` when the bytes are not JSON or a required key is missing or
    ///   has the wrong type.
    public static func decode(_ bytes: [UInt8]) throws -> CallbackBody {
        let data = Data(bytes)
        do {
            return try JSONDecoder().decode(CallbackBody.self, from: data)
        } catch {
            throw JSONParseError(input: bytes, reason: JSONParseError.reason(for: data, decodingError: error))
        }
    }

    /// Encodes the body as a JSON object with every key, as ``encoded()`` does.
    public func encode(to encoder: any Encoder) throws {
        try jsonValue.encode(to: encoder)
    }

    /// The body as a JSON object with every key; absent optional values are `null`.
    private var jsonValue: JSONValue {
        .object(Dictionary(uniqueKeysWithValues: zip(Self.memberKeys.map(\.rawValue), memberValues)))
    }

    /// Every key of the JSON object, in the order of their UTF-8 bytes, so that ``encoded()``
    /// writes the members as `JSONValue` writes an object, without sorting them.
    private static let memberKeys: [CodingKeys] = [
        .attempts, .callCID, .context, .error, .ok, .origCID, .requestTimestamp, .responseTimestamp, .response,
        .responseContentType, .responseEncoding, .retryRepeats, .retrySeconds, .source, .target,
    ]

    /// ``memberKeys`` as ``encoded()`` writes them: `{` or `,`, the quoted key and `:`. The keys
    /// contain no character that JSON escapes.
    private static let encodedKeys: [[UInt8]] = memberKeys.enumerated().map { index, key in
        Array((index == 0 ? "{" : ",").utf8) + Array("\"\(key.rawValue)\":".utf8)
    }

    /// The value of each key of ``memberKeys``, in the same order.
    private var memberValues: [JSONValue] {
        [
            .number(Double(attempts)),
            .string(callCID),
            context ?? .null,
            error.map(JSONValue.string) ?? .null,
            .bool(ok),
            .string(origCID),
            .string(requestTimestamp),
            .string(responseTimestamp),
            response.map(JSONValue.string) ?? .null,
            responseContentType.map(JSONValue.string) ?? .null,
            responseEncoding.map(JSONValue.string) ?? .null,
            .number(Double(retryRepeats)),
            .number(retrySeconds),
            .string(source),
            .string(target),
        ]
    }
}
