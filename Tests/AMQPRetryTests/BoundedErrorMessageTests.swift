import AMQPRetry
import XCTest

final class BoundedErrorMessageTests: XCTestCase {
    func testShortMessageUnchanged() {
        XCTAssertEqual(WireHeader.boundedErrorMessage("connection refused"), "connection refused")
    }

    func testTabAndNewlineKept() {
        XCTAssertEqual(WireHeader.boundedErrorMessage("line1\n\tline2"), "line1\n\tline2")
    }

    func testControlCharactersReplaced() {
        let message = "nul\u{0} cr\r esc\u{1B} del\u{7F} c1\u{85}"

        XCTAssertEqual(WireHeader.boundedErrorMessage(message), "nul\u{FFFD} cr\u{FFFD} esc\u{FFFD} del\u{FFFD} c1\u{FFFD}")
    }

    func testLongMessageCutWithEllipsis() {
        let message = String(repeating: "a", count: 5000)

        let bounded = WireHeader.boundedErrorMessage(message)

        XCTAssertEqual(bounded.utf8.count, 1024)
        XCTAssertTrue(bounded.hasSuffix("…"))
        XCTAssertEqual(bounded, String(repeating: "a", count: 1021) + "…")
    }

    func testExactlyMaxBytesNotCut() {
        let message = String(repeating: "b", count: 1024)

        XCTAssertEqual(WireHeader.boundedErrorMessage(message), message)
    }

    func testCutOnCharacterBoundary() {
        // Each "é" is 2 bytes and each emoji 4, so a byte cut would split characters.
        let cases = [String(repeating: "é", count: 100), String(repeating: "😀", count: 100), "a" + String(repeating: "👩‍👩‍👧", count: 20)]

        for message in cases {
            for maxBytes in [10, 11, 12, 13, 50] {
                let bounded = WireHeader.boundedErrorMessage(message, maxBytes: maxBytes)

                XCTAssertLessThanOrEqual(bounded.utf8.count, maxBytes)
                XCTAssertTrue(bounded.hasSuffix("…"))
                XCTAssertTrue(message.hasPrefix(String(bounded.dropLast())))
            }
        }
    }

    func testTinyLimitCutsWithoutEllipsis() {
        XCTAssertEqual(WireHeader.boundedErrorMessage("abcdef", maxBytes: 2), "ab")
        XCTAssertEqual(WireHeader.boundedErrorMessage("abcdef", maxBytes: 0), "")
        XCTAssertEqual(WireHeader.boundedErrorMessage("abcdef", maxBytes: 3), "…")
    }
}
