import AMQPRetry
import Foundation
import XCTest

final class JSONValueTests: XCTestCase {
    func testParsingEveryKindOfValue() throws {
        let value = try JSONValue(parsing: #"{"a":[1,2.5,true,false,null,"x"],"b":{"c":"d"}}"#)

        let expected: JSONValue = ["a": [1, 2.5, true, false, nil, "x"], "b": ["c": "d"]]
        XCTAssertEqual(value, expected)
    }

    func testParsingKeepsBooleansApartFromNumbers() throws {
        XCTAssertEqual(try JSONValue(parsing: "true"), .bool(true))
        XCTAssertEqual(try JSONValue(parsing: "1"), .number(1))
        XCTAssertEqual(try JSONValue(parsing: "0"), .number(0))
        XCTAssertEqual(try JSONValue(parsing: "false"), .bool(false))
    }

    func testParsingTopLevelScalars() throws {
        XCTAssertEqual(try JSONValue(parsing: "\"text\""), .string("text"))
        XCTAssertEqual(try JSONValue(parsing: "null"), .null)
        XCTAssertEqual(try JSONValue(parsing: "-1.5e3"), .number(-1500))
    }

    func testParsingBytes() throws {
        let value = try JSONValue(parsing: Array(#"{"name":"Zoë"}"#.utf8))

        XCTAssertEqual(value, ["name": "Zoë"])
    }

    func testInvalidJSONThrowsWithReasonAndInput() {
        let invalid = ["{abc", "[1,", "", "{\"a\":}", "nul", "1e400"]

        for text in invalid {
            XCTAssertThrowsError(try JSONValue(parsing: text), text) { error in
                guard let error = error as? JSONParseError else {
                    return XCTFail("unexpected error type \(type(of: error)) for \(text)")
                }
                XCTAssertFalse(error.reason.isEmpty, text)
                XCTAssertTrue(error.description.hasPrefix("invalid JSON '"), error.description)
            }
        }
    }

    func testSyntaxErrorGivesPosition() {
        XCTAssertThrowsError(try JSONValue(parsing: "{abc")) { error in
            let reason = (error as? JSONParseError)?.reason ?? ""
            XCTAssertTrue(reason.contains("character 1"), reason)
        }
    }

    func testInvalidUTF8ThrowsWithEscapedInput() {
        XCTAssertThrowsError(try JSONValue(parsing: [0x22, 0xFF, 0x22])) { error in
            let description = "\(error)"
            XCTAssertTrue(description.contains("\\xFF"), description)
        }
    }

    func testDeepNestingThrowsInsteadOfCrashing() {
        let text = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)

        XCTAssertThrowsError(try JSONValue(parsing: text))
    }

    func testSerializedIsCompactWithSortedKeys() {
        let value: JSONValue = ["zeta": 1, "alpha": ["b": true, "a": nil], "mid": [1, "two", 3.5]]

        XCTAssertEqual(value.serialized(), #"{"alpha":{"a":null,"b":true},"mid":[1,"two",3.5],"zeta":1}"#)
    }

    func testSerializedNumbers() {
        let cases: [(Double, String)] = [
            (0, "0"),
            (-0.0, "0"),
            (3, "3"),
            (-42, "-42"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (9_007_199_254_740_992, "9007199254740992"),
            (-9_007_199_254_740_992, "-9007199254740992"),
            (1e20, "1e+20"),
            (1e-7, "1e-07"),
            (.nan, "null"),
            (.infinity, "null"),
        ]

        for (number, expected) in cases {
            XCTAssertEqual(JSONValue.number(number).serialized(), expected, "\(number)")
        }
    }

    func testSerializedNumbersParseBack() throws {
        for number in [0.1, 1e20, 1e-7, 123.456, -2.5e-300, 9_007_199_254_740_994, .greatestFiniteMagnitude, .leastNonzeroMagnitude] {
            let text = JSONValue.number(number).serialized()

            XCTAssertEqual(try JSONValue(parsing: text), .number(number), text)
        }
    }

    func testSerializedStringEscapes() {
        let value = JSONValue.string("quote\" backslash\\ newline\n tab\t nul\u{0} bell\u{7} é /")

        let expected = #""quote\" backslash\\ newline\n tab\t nul\u0000 bell\u0007 é /""#
        XCTAssertEqual(value.serialized(), expected)
    }

    func testRoundTripThroughSerialized() throws {
        let value: JSONValue = [
            "text": "multi\nline \"quoted\" ünïcode 😀",
            "numbers": [0, -1, 2.25, 1e300],
            "nested": ["empty": [:], "list": []],
            "flags": [true, false, nil],
        ]

        XCTAssertEqual(try JSONValue(parsing: value.serialized()), value)
    }

    func testCodableRoundTrip() throws {
        let value: JSONValue = ["a": [1, "b", nil, true]]

        let data = try JSONEncoder().encode(value)
        let decoded = try JSONDecoder().decode(JSONValue.self, from: data)

        XCTAssertEqual(decoded, value)
    }

    func testObjectValue() {
        let object: JSONValue = ["k": "v"]
        let array: JSONValue = ["k"]

        XCTAssertEqual(object.objectValue, ["k": "v"])
        XCTAssertNil(array.objectValue)
    }
}
