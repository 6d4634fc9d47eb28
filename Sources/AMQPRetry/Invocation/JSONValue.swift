import Foundation

/// A JSON value, such as the `context` of an invocation.
///
/// Numbers are stored as `Double`, so integers beyond ±2^53 lose precision.
public enum JSONValue: Sendable, Hashable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number.
    case number(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object.
    case object([String: JSONValue])

    /// Parses JSON text encoded as UTF-8. Any value is accepted at the top level, not only
    /// objects and arrays.
    ///
    /// - Throws: ``JSONParseError`` with the reason and the start of the text.
    public init(parsing bytes: [UInt8]) throws(JSONParseError) {
        let data = Data(bytes)
        do {
            self = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw JSONParseError(input: bytes, reason: JSONParseError.reason(for: data, decodingError: error))
        }
    }

    /// Parses JSON text.
    ///
    /// - Throws: ``JSONParseError`` with the reason and the start of the text.
    public init(parsing text: String) throws(JSONParseError) {
        try self.init(parsing: Array(text.utf8))
    }

    /// The members of an object, or `nil` for other values.
    public var objectValue: [String: JSONValue]? {
        if case .object(let members) = self {
            return members
        }
        return nil
    }

    /// Writes the value as compact JSON with object keys sorted.
    ///
    /// An integral number within ±2^53 is written without a fraction (`3`, not `3.0`). JSON
    /// has no NaN or infinity, so a non-finite number is written as `null`.
    public func serialized() -> String {
        String(decoding: utf8Serialized(), as: UTF8.self)
    }

    /// Writes the value as ``serialized()`` does, as UTF-8 bytes.
    func utf8Serialized() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        write(to: &output)
        return output
    }
}

// MARK: - Writing

extension JSONValue {
    /// Appends the value as ``serialized()`` writes it.
    func write(to output: inout [UInt8]) {
        switch self {
        case .null:
            output += "null".utf8
        case .bool(let value):
            output += (value ? "true" : "false").utf8
        case .number(let value):
            output += Self.formatNumber(value).utf8
        case .string(let value):
            Self.writeString(value, to: &output)
        case .array(let elements):
            writeArray(elements, to: &output)
        case .object(let members):
            writeObject(members, to: &output)
        }
    }

    private func writeArray(_ elements: [JSONValue], to output: inout [UInt8]) {
        output.append(UInt8(ascii: "["))
        for (index, element) in elements.enumerated() {
            if index > 0 {
                output.append(UInt8(ascii: ","))
            }
            element.write(to: &output)
        }
        output.append(UInt8(ascii: "]"))
    }

    private func writeObject(_ members: [String: JSONValue], to output: inout [UInt8]) {
        output.append(UInt8(ascii: "{"))
        for (index, member) in members.sorted(by: { $0.key < $1.key }).enumerated() {
            if index > 0 {
                output.append(UInt8(ascii: ","))
            }
            Self.writeString(member.key, to: &output)
            output.append(UInt8(ascii: ":"))
            member.value.write(to: &output)
        }
        output.append(UInt8(ascii: "}"))
    }

    private static func formatNumber(_ value: Double) -> String {
        guard value.isFinite else {
            return "null"
        }

        // 2^53 is the largest magnitude below which every integer is exact in a Double.
        if value == value.rounded(), abs(value) <= 9_007_199_254_740_992 {
            return String(Int64(value))
        }
        return String(value)
    }

    /// Escapes on UTF-8 bytes: JSON escapes only ASCII characters, and no byte of a multi-byte
    /// UTF-8 sequence is ASCII, so every other byte is copied unchanged, in runs.
    static func writeString(_ value: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { bytes in
            var runStart = 0
            for index in bytes.indices where needsEscape(bytes[index]) {
                output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                writeEscape(bytes[index], to: &output)
                runStart = index + 1
            }
            output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...]))
        }
        output.append(UInt8(ascii: "\""))
    }

    /// Returns whether JSON requires an escape sequence for this byte of a string.
    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }

    /// Appends the escape sequence of a byte that ``needsEscape(_:)`` selects.
    private static func writeEscape(_ byte: UInt8, to output: inout [UInt8]) {
        switch byte {
        case UInt8(ascii: "\""): output += #"\""#.utf8
        case UInt8(ascii: "\\"): output += #"\\"#.utf8
        case UInt8(ascii: "\n"): output += #"\n"#.utf8
        case UInt8(ascii: "\r"): output += #"\r"#.utf8
        case UInt8(ascii: "\t"): output += #"\t"#.utf8
        default:
            output += #"\u00"#.utf8
            output.append(hexDigits[Int(byte >> 4)])
            output.append(hexDigits[Int(byte & 0xF)])
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
}

// MARK: - Codable

extension JSONValue: Codable {
    /// Decodes any JSON value.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else if let value = try? container.decode([String: JSONValue].self) {
            self = .object(value)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    /// Encodes the value; a non-finite number is encoded as `null`, as in ``serialized()``.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value) where !value.isFinite: try container.encodeNil()
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

// MARK: - Literals

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    /// Creates `null`.
    public init(nilLiteral: ()) {
        self = .null
    }

    /// Creates a boolean.
    public init(booleanLiteral value: Bool) {
        self = .bool(value)
    }

    /// Creates a number from an integer.
    public init(integerLiteral value: Int) {
        self = .number(Double(value))
    }

    /// Creates a number.
    public init(floatLiteral value: Double) {
        self = .number(value)
    }

    /// Creates a string.
    public init(stringLiteral value: String) {
        self = .string(value)
    }

    /// Creates an array.
    public init(arrayLiteral elements: JSONValue...) {
        self = .array(elements)
    }

    /// Creates an object; a repeated key keeps its last value.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements) { _, last in last })
    }
}
