import Foundation

/// One log event as a ``Logger`` passes it to its handler.
public struct LogRecord: Sendable {
    /// The severity of the event.
    public var level: Logger.Level

    /// The label of the logger that made the record.
    public var label: String

    /// A constant text that describes the event.
    public var message: String

    /// The logger's metadata merged with the metadata of the call.
    public var metadata: Logger.Metadata

    /// The time the record was made.
    public var date: Date

    /// Creates a record.
    public init(level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, date: Date) {
        self.level = level
        self.label = label
        self.message = message
        self.metadata = metadata
        self.date = date
    }
}

extension LogRecord {
    /// Formats the record as one line without a line break, as ``Logger/standardError(label:logLevel:)`` writes it.
    func formattedLine() -> String {
        let time = WireTimestamp.format(date, fractionDigits: 3, utcDesignator: "Z")
        var line = "\(time) \(level) \(label): \(Self.escapingControlCharacters(message))"

        for key in metadata.keys.sorted() {
            line += " \(Self.escapingControlCharacters(key))=\(Self.quotedIfNeeded(metadata[key] ?? ""))"
        }
        return line
    }

    /// Quotes a metadata value that is empty or contains a space, a quote, `=`, a backslash
    /// or a control character, escaping the quote, the backslash and the control characters.
    private static func quotedIfNeeded(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.unicodeScalars.contains { scalar in
            scalar == " " || scalar == "\"" || scalar == "=" || scalar == "\\" || isControl(scalar)
        }
        guard needsQuotes else {
            return value
        }

        return "\"" + escapingControlCharacters(value, escapingQuotes: true) + "\""
    }

    /// Replaces line breaks, tabs and other control characters with escapes such as `\n`,
    /// and also backslashes and double quotes when `escapingQuotes` is true.
    private static func escapingControlCharacters(_ text: String, escapingQuotes: Bool = false) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\"" where escapingQuotes: result += "\\\""
            case "\\" where escapingQuotes: result += "\\\\"
            case _ where isControl(scalar): result += "\\u{\(String(scalar.value, radix: 16))}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .control
    }
}
