@testable import AMQPRetry
import Foundation
import XCTest

final class CIDTests: XCTestCase {
    private let alphabet = Set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")

    func testRandomCIDsHaveZatoFormat() throws {
        var seen: Set<CID> = []

        for _ in 0..<10_000 {
            let cid = CID.random()
            let characters = Array(cid.rawValue)

            XCTAssertEqual(characters.count, 28)
            XCTAssertEqual(characters[0], "K")
            // 27 digits carry 135 bits and the number has 128 with the top one set, so the
            // first digit is 0 and the second carries bits 125 to 129: 0b001xx, which is 4 to 7.
            XCTAssertEqual(characters[1], "0")
            XCTAssertTrue(("4"..."7").contains(characters[2]), cid.rawValue)
            XCTAssertTrue(characters.dropFirst().allSatisfy { alphabet.contains($0) }, cid.rawValue)
            XCTAssertNoThrow(try CID(validating: cid.rawValue))
            seen.insert(cid)
        }

        XCTAssertEqual(seen.count, 10_000)
    }

    func testRandomCIDsUseEveryDigitInLowPositions() {
        var lastDigits: Set<Character> = []

        for _ in 0..<2_000 {
            lastDigits.insert(CID.random().rawValue.last!)
        }

        XCTAssertEqual(lastDigits.count, 32)
    }

    func testEncodingOfKnownNumbers() {
        let cases: [(high: UInt64, low: UInt64, expected: String)] = [
            (1 << 63, 0, "K04" + String(repeating: "0", count: 25)),
            (.max, .max, "K07" + String(repeating: "Z", count: 25)),
            (0, 0, "K" + String(repeating: "0", count: 27)),
            (0, 31, "K" + String(repeating: "0", count: 26) + "Z"),
            (0, 32, "K" + String(repeating: "0", count: 25) + "10"),
            (0, 1 << 63 | 1, "K" + String(repeating: "0", count: 14) + "8000000000001"),
        ]

        for testCase in cases {
            XCTAssertEqual(CID(high: testCase.high, low: testCase.low).rawValue, testCase.expected)
        }
    }

    func testValidatingAcceptsZatoExamples() throws {
        for text in ["K04BAWB349PEBBYCPY6GQVSH4W0E", "K07MKN0TY2FRMCGHQA1HZR2JMBEM"] {
            XCTAssertEqual(try CID(validating: text).rawValue, text)
        }
    }

    func testValidatingRejectsOtherForms() {
        let invalid = [
            "",
            "K",
            "K04BAWB349PEBBYCPY6GQVSH4W0",        // 27 characters
            "K04BAWB349PEBBYCPY6GQVSH4W0EE",      // 29 characters
            "k04BAWB349PEBBYCPY6GQVSH4W0E",       // lowercase prefix
            "K04bawb349pebbycpy6gqvsh4w0e",       // lowercase digits
            "X04BAWB349PEBBYCPY6GQVSH4W0E",       // wrong prefix
            "K04BAWB349PEBBYCPY6GQVSH4W0I",       // I is not a Crockford digit
            "K04BAWB349PEBBYCPY6GQVSH4W0U",       // U is not a Crockford digit
            "K04BAWB349PEBBYCPY6GQVSH4W0-",
            "K04BAWB349PEBBYCPY6GQVSH4WÉ",        // 28 characters but 29 bytes
        ]

        for text in invalid {
            XCTAssertThrowsError(try CID(validating: text), text) { error in
                XCTAssertTrue(error is InvalidValueError, text)
            }
        }
    }

    func testErrorNamesValueAndFormat() {
        XCTAssertThrowsError(try CID(validating: "abc")) { error in
            let description = "\(error)"
            XCTAssertTrue(description.contains("'abc'"), description)
            XCTAssertTrue(description.contains("27 uppercase Crockford base32 digits"), description)
        }
    }

    func testCodableAsPlainString() throws {
        let cid = try CID(validating: "K04BAWB349PEBBYCPY6GQVSH4W0E")

        let data = try JSONEncoder().encode([cid])
        let decoded = try JSONDecoder().decode([CID].self, from: data)

        XCTAssertEqual(String(decoding: data, as: UTF8.self), "[\"K04BAWB349PEBBYCPY6GQVSH4W0E\"]")
        XCTAssertEqual(decoded, [cid])
    }

    func testDecodingRejectsInvalidString() {
        let data = Data("[\"K123\"]".utf8)

        XCTAssertThrowsError(try JSONDecoder().decode([CID].self, from: data))
    }

    func testDescriptionIsRawValue() throws {
        let cid = try CID(validating: "K07MKN0TY2FRMCGHQA1HZR2JMBEM")

        XCTAssertEqual("\(cid)", "K07MKN0TY2FRMCGHQA1HZR2JMBEM")
    }

    func testIsDigitMatchesAlphabet() {
        for byte in UInt8.min...UInt8.max {
            XCTAssertEqual(CID.isDigit(byte), CID.alphabet.contains(byte), "byte \(byte)")
        }
    }
}

/// Checks ``CID/init(high:low:)`` against the digits of the same number as a `UInt128`.
final class CIDDigitTests: XCTestCase {
    private static func expectedText(high: UInt64, low: UInt64) -> String {
        let number = UInt128(high) << 64 | UInt128(low)
        let digits = (0..<27).map { position in
            CID.alphabet[Int(number >> (5 * (26 - position)) & 0x1F)]
        }
        return "K" + String(decoding: digits, as: UTF8.self)
    }

    func testRandomNumbersMatchUInt128Digits() {
        var generator = SystemRandomNumberGenerator()

        for _ in 0..<5_000 {
            let high = generator.next() as UInt64
            let low = generator.next() as UInt64

            XCTAssertEqual(CID(high: high, low: low).rawValue, Self.expectedText(high: high, low: low))
        }
    }

    func testSingleBitsMatchUInt128Digits() {
        for bit in 0..<128 {
            let number = UInt128(1) << bit
            let high = UInt64(truncatingIfNeeded: number >> 64)
            let low = UInt64(truncatingIfNeeded: number)

            XCTAssertEqual(CID(high: high, low: low).rawValue, Self.expectedText(high: high, low: low), "bit \(bit)")
        }
    }
}
