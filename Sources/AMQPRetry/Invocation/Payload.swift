/// The body of a request or response together with its MIME type.
public struct Payload: Sendable, Hashable {
    /// The body.
    public var bytes: [UInt8]

    /// The MIME type of the body, sent as the `content_type` property.
    public var contentType: String

    /// A payload with no bytes and the type `application/json`.
    public static let empty = Payload(bytes: [])

    /// Creates a payload from bytes.
    ///
    /// - Parameters:
    ///   - bytes: The body.
    ///   - contentType: The MIME type of the body. The default is `application/json`.
    public init(bytes: [UInt8], contentType: String = "application/json") {
        self.bytes = bytes
        self.contentType = contentType
    }

    /// Creates a JSON payload from JSON text, without checking that the text is valid JSON.
    public init(json text: String) {
        self.init(bytes: Array(text.utf8), contentType: "application/json")
    }

    /// Creates a text payload encoded as UTF-8.
    ///
    /// - Parameters:
    ///   - text: The body.
    ///   - contentType: The MIME type of the body. The default is `text/plain; charset=utf-8`.
    public init(text: String, contentType: String = "text/plain; charset=utf-8") {
        self.init(bytes: Array(text.utf8), contentType: contentType)
    }

    /// The body as text, or `nil` when it is not valid UTF-8.
    public var text: String? {
        String(validating: bytes, as: UTF8.self)
    }

    /// Parses the body as JSON, whatever its content type.
    ///
    /// - Throws: ``JSONParseError`` when the body is not valid JSON.
    public func json() throws -> JSONValue {
        try JSONValue(parsing: bytes)
    }
}
