/// The largest accepted context header in UTF-8 bytes (64 KiB).
private let maximumContextBytes = 64 * 1024

/// The largest accepted last-error header in UTF-8 bytes (4 KiB).
private let maximumLastErrorBytes = 4 * 1024

/// The largest accepted mode, source and request-timestamp headers in UTF-8 bytes.
private let maximumShortTextBytes = 255

extension Invocation {
    /// Decodes and validates the invocation carried by a delivered message.
    ///
    /// Required: the ``WireHeader/version`` header equal to ``WireHeader/currentVersion``, the
    /// ``WireHeader/mode`` header, a CID in the `correlation_id` property, and for
    /// ``InvocationMode/async`` both ``WireHeader/repeats`` and ``WireHeader/intervalMilliseconds``.
    /// A missing ``WireHeader/target`` defaults to `queueService` and a missing
    /// ``WireHeader/attempt`` to 1. The attempt must be at least 1 and, when retry options are
    /// present, at most `1 + repeats`. A message without `content_type` gets
    /// `application/octet-stream`.
    ///
    /// Integers may have any width. Text may be a long string or a byte array of valid UTF-8.
    ///
    /// - Parameters:
    ///   - properties: The basic properties of the message.
    ///   - body: The body of the message.
    ///   - queueService: The service whose queue the message came from, which the target must equal.
    /// - Returns: The invocation, or the reason to park the message.
    public static func decode(
        properties: MessageProperties,
        body: [UInt8],
        queueService: String
    ) -> Result<Invocation, ParkReason> {
        Result { () throws(ParkReason) -> Invocation in
            try decodeChecked(properties: properties, body: body, queueService: queueService)
        }
    }

    private static func decodeChecked(
        properties: MessageProperties,
        body: [UInt8],
        queueService: String
    ) throws(ParkReason) -> Invocation {
        let reader = HeaderReader(headers: properties.headerList)
        try reader.checkNesting()
        try reader.checkVersion()

        let cid = try decodeCID(properties.correlationID)
        let mode = try reader.mode()
        let target = try reader.target(queueService: queueService)
        let options = try reader.options(required: mode == .async)
        let attempt = try reader.attempt(options: options)
        let payload = Payload(bytes: body, contentType: properties.contentType ?? "application/octet-stream")

        return Invocation(
            cid: cid,
            mode: mode,
            target: target,
            attempt: attempt,
            options: options,
            callback: try reader.serviceName(WireHeader.callback),
            source: try reader.text(WireHeader.source, maxBytes: maximumShortTextBytes) ?? "",
            origCID: try reader.origCID(),
            context: try reader.context(),
            requestTimestamp: try reader.requestTimestamp(),
            lastError: try reader.text(WireHeader.lastError, maxBytes: maximumLastErrorBytes),
            payload: payload
        )
    }

    private static func decodeCID(_ correlationID: String?) throws(ParkReason) -> CID {
        guard let correlationID else {
            throw ParkReason(code: .invalidCID, detail: "property 'correlation_id' is missing")
        }
        do {
            return try CID(validating: correlationID)
        } catch {
            let detail = "property 'correlation_id' is \(DisplayText.quoted(correlationID)), expected \(CID.formatDescription)"
            throw ParkReason(code: .invalidCID, detail: detail)
        }
    }
}

/// Reads typed values from the headers of a message, turning each problem into a ``ParkReason``
/// that names the header and its value.
private struct HeaderReader {
    let headers: HeaderList

    /// Rejects a header with tables or arrays nested deeper than ``maximumNesting`` levels.
    ///
    /// librabbitmq's frames are decoded only to a fixed depth (deeper levels become `void`), so
    /// a message nested that deep could not be republished unchanged.
    func checkNesting() throws(ParkReason) {
        // Sorting only when some header is too deep names the same header on every delivery.
        guard headers.entries.contains(where: { Self.depth(of: $0.value) > Self.maximumNesting }) else { return }
        for entry in headers.entries.sorted(by: { $0.name < $1.name }) where Self.depth(of: entry.value) > Self.maximumNesting {
            let detail = "header \(DisplayText.quoted(entry.name)) nests tables or arrays more than "
                + "\(Self.maximumNesting) levels deep"
            throw ParkReason(code: .invalidHeader, detail: detail)
        }
    }

    /// The deepest nesting of tables and arrays a header may have.
    static let maximumNesting = 16

    private static func depth(of value: FieldValue) -> Int {
        switch value {
        case .table(let table): return 1 + table.values.reduce(0) { max($0, depth(of: $1)) }
        case .array(let values): return 1 + values.reduce(0) { max($0, depth(of: $1)) }
        default: return 0
        }
    }

    func checkVersion() throws(ParkReason) {
        guard let version = try integer(WireHeader.version) else {
            throw missing(WireHeader.version)
        }
        guard version == WireHeader.currentVersion else {
            let detail = "header '\(WireHeader.version)' is \(version), but this library reads version \(WireHeader.currentVersion)"
            throw ParkReason(code: .unsupportedVersion, detail: detail)
        }
    }

    func mode() throws(ParkReason) -> InvocationMode {
        guard let text = try text(WireHeader.mode, maxBytes: maximumShortTextBytes) else {
            throw missing(WireHeader.mode)
        }
        guard let mode = InvocationMode(rawValue: text) else {
            throw invalid(WireHeader.mode, expected: "one of 'async', 'sync' or 'callback'")
        }
        return mode
    }

    func target(queueService: String) throws(ParkReason) -> String {
        guard let target = try serviceName(WireHeader.target) else {
            return queueService
        }
        guard target == queueService else {
            let detail = "header '\(WireHeader.target)' is \(DisplayText.quoted(target)), "
                + "but the message is in the queue of service \(DisplayText.quoted(queueService))"
            throw ParkReason(code: .targetMismatch, detail: detail)
        }
        return target
    }

    /// Reads the repeats and the interval, which must be both present or both absent.
    func options(required: Bool) throws(ParkReason) -> RetryOptions? {
        let repeats = try integer(WireHeader.repeats)
        let interval = try integer(WireHeader.intervalMilliseconds)

        switch (repeats, interval) {
        case (let repeats?, let interval?):
            return try makeOptions(repeats: repeats, intervalMilliseconds: interval)
        case (nil, nil) where !required:
            return nil
        case (nil, _):
            throw missing(WireHeader.repeats)
        case (_, nil):
            throw missing(WireHeader.intervalMilliseconds)
        }
    }

    func attempt(options: RetryOptions?) throws(ParkReason) -> Int {
        guard let attempt = try integer(WireHeader.attempt) else {
            return 1
        }

        let maximum = options.map { Int64($0.repeats) + 1 } ?? Int64(RetryOptions.maximumRepeats) + 1
        guard (1...maximum).contains(attempt) else {
            throw invalid(WireHeader.attempt, expected: "an integer from 1 to \(maximum)")
        }
        return Int(attempt)
    }

    func serviceName(_ name: String) throws(ParkReason) -> String? {
        guard let value = try text(name, maxBytes: nil) else {
            return nil
        }
        if let violation = ServiceName.violation(of: value) {
            throw invalid(name, expected: "a service name that \(violation)")
        }
        return value
    }

    func origCID() throws(ParkReason) -> CID? {
        guard let text = try text(WireHeader.origCID, maxBytes: nil) else {
            return nil
        }
        guard let cid = try? CID(validating: text) else {
            let detail = "header '\(WireHeader.origCID)' is \(DisplayText.quoted(text)), expected \(CID.formatDescription)"
            throw ParkReason(code: .invalidCID, detail: detail)
        }
        return cid
    }

    func context() throws(ParkReason) -> JSONValue? {
        guard let text = try text(WireHeader.context, maxBytes: maximumContextBytes) else {
            return nil
        }

        let value: JSONValue
        do {
            value = try JSONValue(parsing: text)
        } catch {
            let detail = "header '\(WireHeader.context)' is not valid JSON (\(error.reason)): \(DisplayText.quoted(text))"
            throw ParkReason(code: .invalidContext, detail: detail)
        }
        guard value.objectValue != nil else {
            let detail = "header '\(WireHeader.context)' is \(DisplayText.quoted(text)), expected a JSON object"
            throw ParkReason(code: .invalidContext, detail: detail)
        }
        return value
    }

    func requestTimestamp() throws(ParkReason) -> String? {
        guard let text = try text(WireHeader.requestTimestamp, maxBytes: maximumShortTextBytes) else {
            return nil
        }
        guard WireTimestamp.parse(text) != nil else {
            throw invalid(WireHeader.requestTimestamp, expected: "an ISO 8601 time such as 2026-12-04T20:25:25.446454+00:00")
        }
        return text
    }

    // MARK: Typed values

    /// Reads an integer of any width, or `nil` when the header is absent.
    func integer(_ name: String) throws(ParkReason) -> Int64? {
        guard let value = headers[name] else {
            return nil
        }
        guard let integer = value.integerValue else {
            throw invalid(name, expected: "an integer")
        }
        return integer
    }

    /// Reads text of at most `maxBytes` bytes of UTF-8, or `nil` when the header is absent.
    func text(_ name: String, maxBytes: Int?) throws(ParkReason) -> String? {
        guard let value = headers[name] else {
            return nil
        }
        guard let text = value.textValue else {
            throw invalid(name, expected: "text in UTF-8")
        }
        if let maxBytes, text.utf8.count > maxBytes {
            throw invalid(name, expected: "at most \(maxBytes) bytes of text, not \(text.utf8.count)")
        }
        return text
    }

    // MARK: Errors

    private func makeOptions(repeats: Int64, intervalMilliseconds: Int64) throws(ParkReason) -> RetryOptions {
        do {
            return try RetryOptions(repeats: Int(clamping: repeats), intervalMilliseconds: intervalMilliseconds)
        } catch InvokeRetryError.invalidOption(let option, _, let reason) {
            let header = option == "repeats" ? WireHeader.repeats : WireHeader.intervalMilliseconds
            throw invalid(header, expected: "a value that \(reason)")
        } catch {
            throw invalid(WireHeader.repeats, expected: "\(error)")
        }
    }

    private func missing(_ name: String) -> ParkReason {
        ParkReason(code: .missingHeader, detail: "header '\(name)' is missing")
    }

    private func invalid(_ name: String, expected: String) -> ParkReason {
        let rendered = headers[name].map(Self.render) ?? "missing"
        return ParkReason(code: .invalidHeader, detail: "header '\(name)' is \(rendered), expected \(expected)")
    }

    /// Renders a header value for a park reason: integers as digits, text and bytes quoted and
    /// cut after 200 characters, other types by their name.
    private static func render(_ value: FieldValue) -> String {
        if let integer = value.integerValue {
            return String(integer)
        }

        switch value {
        case .string(let bytes), .bytes(let bytes): return DisplayText.quoted(bytes: bytes)
        case .bool(let flag): return "the boolean \(flag)"
        case .uint64(let large): return String(large)
        case .float(let number): return "the float \(number)"
        case .double(let number): return "the double \(number)"
        case .decimal: return "a decimal"
        case .timestamp(let seconds): return "the timestamp \(seconds)"
        case .table: return "a field table"
        case .array: return "a field array"
        case .void: return "void"
        default: return "a value of another type"
        }
    }
}
