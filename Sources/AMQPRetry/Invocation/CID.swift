/// A correlation ID in Zato's format: `K` followed by 27 digits of Crockford base32.
///
/// ``random()`` makes the digits from a 128-bit number whose top bit is set and whose lower
/// 127 bits are random, written most significant digit first and padded with zeros, as Zato's
/// `new_cid` does. Such a CID always starts with `K0` followed by a digit from `4` to `7`,
/// for example `K04BAWB349PEBBYCPY6GQVSH4W0E`. ``init(validating:)`` accepts any 27
/// Crockford digits after the `K`.
public struct CID: Sendable, Hashable, CustomStringConvertible, Codable {
    /// The Crockford base32 digits: `0`–`9` and `A`–`Z` without `I`, `L`, `O` and `U`.
    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// The number of characters in a CID, including the leading `K`.
    public static let length = 28

    /// The text of the CID, such as `K04BAWB349PEBBYCPY6GQVSH4W0E`.
    public let rawValue: String

    /// Creates a CID from its text after checking the format.
    ///
    /// - Parameter text: Exactly 28 characters: `K` followed by 27 uppercase Crockford base32
    ///   digits (`0`–`9` and `A`–`Z` without `I`, `L`, `O` and `U`).
    /// - Throws: ``InvalidValueError`` naming the text when it has another form.
    public init(validating text: String) throws {
        let utf8 = text.utf8
        let isValid = utf8.count == Self.length
            && (utf8.withContiguousStorageIfAvailable(Self.hasFormat) ?? Self.hasFormat(utf8))
        guard isValid else {
            throw InvalidValueError(value: text, expected: Self.formatDescription)
        }

        rawValue = text
    }

    /// Returns whether bytes start with `K` and continue with Crockford base32 digits only.
    private static func hasFormat(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.first == UInt8(ascii: "K") && bytes.dropFirst().allSatisfy(isDigit)
    }

    /// Returns whether a byte is one of the Crockford base32 digits of ``alphabet``.
    static func isDigit(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "H"),
             UInt8(ascii: "J"), UInt8(ascii: "K"), UInt8(ascii: "M"), UInt8(ascii: "N"),
             UInt8(ascii: "P")...UInt8(ascii: "T"), UInt8(ascii: "V")...UInt8(ascii: "Z"):
            return true
        default:
            return false
        }
    }

    /// Makes a new random CID with the system's secure random number generator.
    public static func random() -> CID {
        var generator = BufferedSystemRandom()
        return random(using: &generator)
    }

    /// Makes a new random CID with the given generator.
    static func random<Generator: RandomNumberGenerator>(using generator: inout Generator) -> CID {
        let high = generator.next() | (1 << 63)
        let low: UInt64 = generator.next()
        return CID(high: high, low: low)
    }

    /// Creates the CID that writes the 128-bit number `high << 64 | low` as 27 base32 digits.
    init(high: UInt64, low: UInt64) {
        var (high, low) = (high, low)
        rawValue = String(unsafeUninitializedCapacity: Self.length) { text in
            text[0] = UInt8(ascii: "K")
            Self.alphabet.withUnsafeBufferPointer { alphabet in
                // Take 5 bits at a time from the low end of the 128-bit number.
                for position in stride(from: Self.length - 1, through: 1, by: -1) {
                    text[position] = alphabet[Int(low & 0x1F)]
                    low = (low >> 5) | (high << 59)
                    high >>= 5
                }
            }
            return Self.length
        }
    }

    /// The text of the CID.
    public var description: String {
        rawValue
    }

    /// Decodes a CID from a single string, checking its format.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        try self.init(validating: container.decode(String.self))
    }

    /// Encodes the CID as a single string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    static let formatDescription =
        "a CID: 'K' followed by 27 uppercase Crockford base32 digits (0-9 and A-Z without I, L, O and U)"
}
