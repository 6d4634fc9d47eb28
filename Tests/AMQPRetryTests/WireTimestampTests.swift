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
}
