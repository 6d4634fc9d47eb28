import Foundation

/// Text that is not valid JSON, or JSON that does not have the expected structure.
public struct JSONParseError: Error, Sendable, CustomStringConvertible {
    /// The start of the input as text, on one line and cut after 200 characters.
    public let input: String

    /// The reason the input was rejected, such as `Invalid value around character 1.`
    public let reason: String

    /// Creates an error for the given input bytes and reason.
    public init(input: [UInt8], reason: String) {
        self.input = DisplayText.quoted(bytes: Array(input.prefix(DisplayText.maximumCharacters * 4)))
        self.reason = reason
    }

    /// A message with the reason and the start of the input.
    public var description: String {
        "invalid JSON \(input): \(reason)"
    }

    /// Explains why `JSONDecoder` rejected `data`.
    ///
    /// `JSONDecoder` reports every syntax error as "not valid JSON", so for those this parses the
    /// data again with `JSONSerialization`, whose message gives the position.
    static func reason(for data: Data, decodingError: any Error) -> String {
        guard let error = decodingError as? DecodingError else {
            return "\(decodingError)"
        }

        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return syntaxErrorReason(for: data) ?? context.debugDescription
        case .dataCorrupted(let context), .typeMismatch(_, let context), .valueNotFound(_, let context):
            return describe(context)
        case .keyNotFound(let key, let context):
            let parent = location(of: context.codingPath)
            return "key '\(key.stringValue)' is missing" + (parent.isEmpty ? "" : " in \(parent)")
        @unknown default:
            return "\(error)"
        }
    }

    private static func syntaxErrorReason(for data: Data) -> String? {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            return nil
        } catch {
            return (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
        }
    }

    private static func describe(_ context: DecodingError.Context) -> String {
        let location = location(of: context.codingPath)
        return location.isEmpty ? context.debugDescription : "\(location): \(context.debugDescription)"
    }

    /// Renders a coding path such as `items[0].name` as `key path 'items[0].name'`.
    private static func location(of codingPath: [any CodingKey]) -> String {
        guard !codingPath.isEmpty else {
            return ""
        }

        var path = ""
        for key in codingPath {
            if let index = key.intValue {
                path += "[\(index)]"
            } else {
                path += (path.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return "key path '\(path)'"
    }
}
