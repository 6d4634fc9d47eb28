import AMQPRetry
import XCTest

final class ServiceNameTests: XCTestCase {
    func testValidNames() {
        let valid = [
            "demo.echo",
            "my.retry.target",
            "a",
            "ünïcode.service",
            String(repeating: "x", count: 200),
            String(repeating: "é", count: 100), // 200 bytes
            "amq-like.but.not.reserved",
            "no\u{A0}break.space",
            "latin\u{C2}.letter",
            "\u{7E}tilde",
        ]

        for name in valid {
            XCTAssertNoThrow(try ServiceName.validate(name, option: "target"), name)
        }
    }

    func testInvalidNames() {
        let cases: [(name: String, reason: String)] = [
            ("", "must not be empty"),
            (String(repeating: "x", count: 201), "must be at most 200 bytes of UTF-8, but has 201"),
            (String(repeating: "é", count: 101), "must be at most 200 bytes of UTF-8, but has 202"),
            ("bad\nname", "must not contain control characters"),
            ("nul\u{0}", "must not contain control characters"),
            ("del\u{7F}", "must not contain control characters"),
            ("next line\u{85}", "must not contain control characters"),
            ("\u{9F}application", "must not contain control characters"),
            ("a.service.name.longer.than.fifteen.bytes\u{85}", "must not contain control characters"),
            ("é\u{80}", "must not contain control characters"),
            ("amq.gen-123", "must not start with 'amq.', which RabbitMQ reserves"),
        ]

        for testCase in cases {
            XCTAssertThrowsError(try ServiceName.validate(testCase.name, option: "callback")) { error in
                guard case InvokeRetryError.invalidOption(let option, _, let reason)? = error as? InvokeRetryError else {
                    return XCTFail("unexpected error \(error)")
                }
                XCTAssertEqual(option, "callback")
                XCTAssertEqual(reason, testCase.reason)
            }
        }
    }

    func testLongNameIsCutInError() {
        let name = String(repeating: "x", count: 10_000)

        XCTAssertThrowsError(try ServiceName.validate(name, option: "target")) { error in
            let description = "\(error)"
            XCTAssertLessThan(description.count, 400, description)
            XCTAssertTrue(description.contains("x…'"), description)
        }
    }

    func testControlCharactersEscapedInError() {
        XCTAssertThrowsError(try ServiceName.validate("bad\nname", option: "target")) { error in
            XCTAssertEqual("\(error)", "invalid value 'bad\\nname' for option 'target': must not contain control characters")
        }
    }
}
