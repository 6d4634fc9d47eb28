/// Renders values from outside the program for error messages and park reasons.
///
/// The output stays on one line and short, whatever the input: control characters become
/// escapes such as `\n`, invalid UTF-8 bytes become `\xFF`, and anything longer than
/// ``maximumCharacters`` is cut and ends with `…`.
enum DisplayText {
    /// The number of characters kept from a value before it is cut.
    static let maximumCharacters = 200

    /// Renders text between single quotes.
    static func quoted(_ text: String) -> String {
        "'" + escaped(text) + "'"
    }

    /// Renders bytes between single quotes: as text when they are valid UTF-8, with `\xHH`
    /// escapes for every byte that is not printable ASCII otherwise.
    static func quoted(bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self) {
            return quoted(text)
        }

        var rendered = ""
        for byte in bytes.prefix(maximumCharacters) {
            if (0x20..<0x7F).contains(byte) && byte != UInt8(ascii: "\\") {
                rendered.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                rendered += "\\x" + hexByte(byte)
            }
        }
        return "'" + rendered + (bytes.count > maximumCharacters ? "…" : "") + "'"
    }

    /// Escapes control characters and cuts the text after ``maximumCharacters`` characters.
    static func escaped(_ text: String) -> String {
        var rendered = ""
        for scalar in text.unicodeScalars.prefix(maximumCharacters) {
            switch scalar {
            case "\n": rendered += "\\n"
            case "\r": rendered += "\\r"
            case "\t": rendered += "\\t"
            case _ where scalar.properties.generalCategory == .control:
                rendered += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: rendered.unicodeScalars.append(scalar)
            }
        }
        return text.unicodeScalars.count > maximumCharacters ? rendered + "…" : rendered
    }

    /// Renders a duration in seconds with up to nanosecond precision, such as `1.5 seconds`.
    ///
    /// `Duration`'s own description goes through `Double` and can show `3600.9999999999995 seconds`.
    static func duration(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let isNegative = seconds < 0 || attoseconds < 0
        let nanoseconds = attoseconds.magnitude / 1_000_000_000

        var text = (isNegative ? "-" : "") + String(seconds.magnitude)
        if nanoseconds > 0 {
            let fraction = String(nanoseconds)
            let padded = String(repeating: "0", count: 9 - fraction.count) + fraction
            text += "." + padded.replacing(/0+$/, with: "")
        }
        return text + (text == "1" ? " second" : " seconds")
    }

    private static func hexByte(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16, uppercase: true)
        return digits.count == 1 ? "0" + digits : digits
    }
}
