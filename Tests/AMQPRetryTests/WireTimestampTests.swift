@testable import AMQPRetry
import Foundation
import XCTest

final class WireTimestampTests: XCTestCase {
    func testFormatHasMicrosecondsAndUTCOffset() {
        let date = Date(timeIntervalSince1970: 1_421_871_925.446454)

        XCTAssertEqual(WireTimestamp.format(date), "2015-01-21T20:25:25.446454+00:00")
    }

    func testFormatOfKnownDates() {
        let cases: [(seconds: Double, expected: String)] = [
            (0, "1970-01-01T00:00:00.000000+00:00"),
            (951_782_400, "2000-02-29T00:00:00.000000+00:00"),
            (4_107_542_399.999999, "2100-02-28T23:59:59.999999+00:00"),
            (4_107_542_400, "2100-03-01T00:00:00.000000+00:00"),
            (-1, "1969-12-31T23:59:59.000000+00:00"),
            (-0.5, "1969-12-31T23:59:59.500000+00:00"),
        ]

        for testCase in cases {
            XCTAssertEqual(WireTimestamp.format(Date(timeIntervalSince1970: testCase.seconds)), testCase.expected)
        }
    }

    func testFormatAgreesWithISO8601DateFormatter() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]

        for seconds in stride(from: -2_000_000_000.0, through: 4_000_000_000.0, by: 86_399_937.0) {
            let date = Date(timeIntervalSince1970: seconds)
            let expected = formatter.string(from: date).replacingOccurrences(of: "Z", with: ".000000+00:00")

            XCTAssertEqual(WireTimestamp.format(date), expected)
        }
    }

    func testMillisecondFormatForLogs() {
        let date = Date(timeIntervalSince1970: 1_700_000_000.9996)

        XCTAssertEqual(WireTimestamp.format(date, fractionDigits: 3, utcDesignator: "Z"), "2023-11-14T22:13:21.000Z")
    }

    func testNowIsParsable() throws {
        let text = WireTimestamp.now()
        let parsed = try XCTUnwrap(WireTimestamp.parse(text))

        XCTAssertEqual(text.count, 32)
        XCTAssertTrue(text.hasSuffix("+00:00"))
        XCTAssertLessThan(abs(parsed.timeIntervalSinceNow), 5)
    }

    func testParseRoundTrip() throws {
        let text = "2015-01-21T20:25:25.446454+00:00"
        let date = try XCTUnwrap(WireTimestamp.parse(text))

        XCTAssertEqual(WireTimestamp.format(date), text)
    }

    func testParseAcceptsVariants() throws {
        let cases: [(text: String, seconds: Double)] = [
            ("1970-01-01T00:00:00Z", 0),
            ("1970-01-01T00:00:00.5Z", 0.5),
            ("1970-01-01T01:00:00+01:00", 0),
            ("1969-12-31T23:30:00-00:30", 0),
            ("2000-02-29T12:00:00.123456789+00:00", 951_825_600.123456789),
        ]

        for testCase in cases {
            let date = try XCTUnwrap(WireTimestamp.parse(testCase.text), testCase.text)
            XCTAssertEqual(date.timeIntervalSince1970, testCase.seconds, accuracy: 1e-6, testCase.text)
        }
    }

    func testParseRejectsInvalidTimestamps() {
        let invalid = [
            "",
            "yesterday",
            "2015-01-21 20:25:25+00:00",
            "2015-01-21T20:25:25",
            "2015-01-21T20:25:25.+00:00",
            "2015-01-21T20:25:25.1234567890+00:00",
            "2015-13-01T00:00:00Z",
            "2015-02-29T00:00:00Z",
            "2015-01-32T00:00:00Z",
            "2015-01-21T24:00:00Z",
            "2015-01-21T20:60:00Z",
            "2015-01-21T20:25:25+0000",
            "2015-01-21T20:25:25Z trailing",
        ]

        for text in invalid {
            XCTAssertNil(WireTimestamp.parse(text), text)
        }
    }

    func testFormatPadsYearsAndFractions() {
        let beforeYear1000 = Date(timeIntervalSince1970: -30_610_310_400)
        let afterYear9999 = Date(timeIntervalSince1970: 253_402_300_800.25)

        XCTAssertEqual(WireTimestamp.format(beforeYear1000), "0999-12-31T00:00:00.000000+00:00")
        XCTAssertEqual(WireTimestamp.format(afterYear9999, fractionDigits: 2, utcDesignator: "Z"),
                       "10000-01-01T00:00:00.25Z")
        XCTAssertEqual(WireTimestamp.format(Date(timeIntervalSince1970: 5), fractionDigits: 0, utcDesignator: "Z"),
                       "1970-01-01T00:00:05Z")
    }

    func testFormatOfImpossibleDatesReturnsText() {
        let nan = WireTimestamp.format(Date(timeIntervalSince1970: .nan))
        let infinite = WireTimestamp.format(Date(timeIntervalSince1970: .infinity))
        let negativeInfinite = WireTimestamp.format(Date(timeIntervalSince1970: -.infinity))

        XCTAssertEqual(nan, "1970-01-01T00:00:00.000000+00:00")
        XCTAssertEqual(infinite, "294247-01-10T04:00:54.774784+00:00")
        XCTAssertEqual(negativeInfinite, "-290308-12-21T19:59:05.225216+00:00")
    }
}

/// Checks ``WireTimestamp/format(_:fractionDigits:utcDesignator:)`` against `String(format:)`,
/// whose `%0*lld` pads a negative year as the wire format does, such as `-001` for 2 BC.
final class WireTimestampPaddingTests: XCTestCase {
    /// Formats with printf's conversions, from the same calendar fields.
    private static func printfFormat(_ date: Date, fractionDigits: Int, utcDesignator: String) -> String {
        let scale = (0..<fractionDigits).reduce(Int64(1)) { value, _ in value * 10 }
        let ticks = Int64((date.timeIntervalSince1970 * Double(scale)).rounded())
        var seconds = ticks / scale
        var fraction = ticks % scale
        if fraction < 0 {
            seconds -= 1
            fraction += scale
        }
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 {
            days -= 1
            secondOfDay += 86_400
        }
        let (year, month, day) = civilDate(daysSince1970: days)

        var text = String(format: "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld", year, month, day,
                          secondOfDay / 3600, secondOfDay / 60 % 60, secondOfDay % 60)
        if fractionDigits > 0 {
            text += String(format: ".%0*lld", Int32(fractionDigits), fraction)
        }
        return text + utcDesignator
    }

    private static func date(year: Int64, month: Int64 = 1, day: Int64 = 1, seconds: Double = 0) -> Date {
        Date(timeIntervalSince1970: Double(daysSince1970(year: year, month: month, day: day) * 86_400) + seconds)
    }

    func testYearsBeforeOneAndAfter9999() {
        let cases: [(date: Date, expected: String)] = [
            (Self.date(year: 0), "0000-01-01T00:00:00.000000+00:00"),
            (Self.date(year: -1, month: 12, day: 31, seconds: 86_399.5), "-001-12-31T23:59:59.500000+00:00"),
            (Self.date(year: -42, month: 3, day: 1), "-042-03-01T00:00:00.000000+00:00"),
            (Self.date(year: -999), "-999-01-01T00:00:00.000000+00:00"),
            (Self.date(year: -1000), "-1000-01-01T00:00:00.000000+00:00"),
            (Self.date(year: -10_000), "-10000-01-01T00:00:00.000000+00:00"),
            (Self.date(year: 7), "0007-01-01T00:00:00.000000+00:00"),
            (Self.date(year: 99, month: 2, day: 28), "0099-02-28T00:00:00.000000+00:00"),
            (Self.date(year: 200_000, month: 6, day: 15), "200000-06-15T00:00:00.000000+00:00"),
        ]

        for testCase in cases {
            XCTAssertEqual(WireTimestamp.format(testCase.date), testCase.expected)
        }
    }

    func testEveryFractionWidthMatchesPrintf() {
        // Nine digits count nanoseconds in an Int64, which reaches only about 292 years from 1970.
        let dates: [(date: Date, maximumDigits: Int)] = [
            (Date(timeIntervalSince1970: 0), 9),
            (Date(timeIntervalSince1970: -0.000_001), 9),
            (Date(timeIntervalSince1970: 1_421_871_925.446454), 9),
            (Date(timeIntervalSince1970: -2_208_988_800.5), 9),
            (Date(timeIntervalSince1970: -62_135_596_800.5), 6),
            (Self.date(year: -1, seconds: 0.123_456), 6),
        ]

        for (date, maximumDigits) in dates {
            for digits in 0...maximumDigits {
                XCTAssertEqual(WireTimestamp.format(date, fractionDigits: digits, utcDesignator: "Z"),
                               Self.printfFormat(date, fractionDigits: digits, utcDesignator: "Z"),
                               "\(date.timeIntervalSince1970) with \(digits) fraction digits")
            }
        }
    }

    func testRandomDatesMatchPrintf() {
        var generator = SystemRandomNumberGenerator()

        // Within 6e11 seconds, about 19,000 years, either side of 1970.
        for _ in 0..<2_000 {
            let seconds = Double.random(in: -6e11...6e11, using: &generator)
            let digits = Int.random(in: 0...6, using: &generator)
            let date = Date(timeIntervalSince1970: seconds)

            XCTAssertEqual(WireTimestamp.format(date, fractionDigits: digits, utcDesignator: "+00:00"),
                           Self.printfFormat(date, fractionDigits: digits, utcDesignator: "+00:00"),
                           "\(seconds) with \(digits) fraction digits")
        }
    }
}
