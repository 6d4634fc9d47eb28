import AMQPRetry
import XCTest

final class RetryOptionsTests: XCTestCase {
    func testValidSecondsAndMinutes() throws {
        let cases: [(repeats: Int, seconds: Double?, minutes: Double?, milliseconds: Int64)] = [
            (3, 1, nil, 1000),
            (1, 0.25, nil, 250),
            (1, nil, 0.5, 30_000),
            (2, nil, 1, 60_000),
            (1, 0.0014, nil, 1),
            (1, 0.0005, nil, 1),
            (1, 0.0015, nil, 2),
            (1, 1.2344, nil, 1234),
            (1_000_000, 2_147_483.647, nil, 2_147_483_647),
        ]

        for testCase in cases {
            let options = try RetryOptions(repeats: testCase.repeats, seconds: testCase.seconds, minutes: testCase.minutes)

            XCTAssertEqual(options.repeats, testCase.repeats)
            XCTAssertEqual(options.intervalMilliseconds, testCase.milliseconds, "\(testCase)")
        }
    }

    func testIntervalSeconds() throws {
        let options = try RetryOptions(repeats: 1, minutes: 0.5)

        XCTAssertEqual(options.intervalSeconds, 30)
    }

    func testInvalidRepeats() {
        let cases: [(repeats: Int, reason: String)] = [
            (0, "must be at least 1"),
            (-1, "must be at least 1"),
            (Int.min, "must be at least 1"),
            (1_000_001, "must be at most 1000000"),
        ]

        for testCase in cases {
            assertInvalidOption(
                try RetryOptions(repeats: testCase.repeats, seconds: 1),
                name: "repeats", value: String(testCase.repeats), reason: testCase.reason
            )
        }
    }

    func testInvalidSeconds() {
        let cases: [(seconds: Double, value: String, reason: String)] = [
            (0, "0.0", "must be a finite number greater than 0"),
            (-1, "-1.0", "must be a finite number greater than 0"),
            (.nan, "nan", "must be a finite number greater than 0"),
            (.infinity, "inf", "must be a finite number greater than 0"),
            (-.infinity, "-inf", "must be a finite number greater than 0"),
            (0.0004, "0.0004", "must be at least 0.0005, which rounds to 1 millisecond"),
            (2_147_483.648, "2147483.648", "must be at most 2147483.647 (about 24.8 days)"),
            (1e300, "1e+300", "must be at most 2147483.647 (about 24.8 days)"),
        ]

        for testCase in cases {
            assertInvalidOption(
                try RetryOptions(repeats: 1, seconds: testCase.seconds),
                name: "seconds", value: testCase.value, reason: testCase.reason
            )
        }
    }

    func testInvalidMinutes() {
        let cases: [(minutes: Double, reason: String)] = [
            (0, "must be a finite number greater than 0"),
            (-0.5, "must be a finite number greater than 0"),
            (.nan, "must be a finite number greater than 0"),
            (0.000001, "which rounds to 1 millisecond"),
            (40_000, "must be at most"),
        ]

        for testCase in cases {
            assertInvalidOption(
                try RetryOptions(repeats: 1, minutes: testCase.minutes),
                name: "minutes", value: "\(testCase.minutes)", reasonContains: testCase.reason
            )
        }
    }

    func testBothSecondsAndMinutes() {
        assertInvalidOption(
            try RetryOptions(repeats: 1, seconds: 1, minutes: 1),
            name: "minutes", value: "1.0", reason: "give exactly one of seconds or minutes, not both"
        )
    }

    func testNeitherSecondsNorMinutes() {
        assertInvalidOption(
            try RetryOptions(repeats: 1),
            name: "seconds", value: "nil", reasonContains: "give seconds or minutes"
        )
    }

    func testRepeatsCheckedBeforeInterval() {
        assertInvalidOption(try RetryOptions(repeats: 0), name: "repeats", value: "0", reason: "must be at least 1")
    }

    func testMillisecondInitializer() throws {
        let options = try RetryOptions(repeats: 5, intervalMilliseconds: 1500)

        XCTAssertEqual(options.repeats, 5)
        XCTAssertEqual(options.intervalMilliseconds, 1500)
        XCTAssertEqual(options.intervalSeconds, 1.5)
    }

    func testMillisecondInitializerLimits() throws {
        XCTAssertEqual(try RetryOptions(repeats: 1, intervalMilliseconds: 1).intervalMilliseconds, 1)
        XCTAssertEqual(
            try RetryOptions(repeats: 1, intervalMilliseconds: RetryOptions.maximumIntervalMilliseconds).intervalMilliseconds,
            2_147_483_647
        )

        let invalid: [Int64] = [0, -1, 2_147_483_648, .max]
        for milliseconds in invalid {
            assertInvalidOption(
                try RetryOptions(repeats: 1, intervalMilliseconds: milliseconds),
                name: "intervalMilliseconds", value: String(milliseconds), reasonContains: "must be at"
            )
        }
        assertInvalidOption(
            try RetryOptions(repeats: 0, intervalMilliseconds: 1000),
            name: "repeats", value: "0", reason: "must be at least 1"
        )
    }

    func testEqualOptionsFromSecondsAndMinutes() throws {
        XCTAssertEqual(try RetryOptions(repeats: 2, seconds: 90), try RetryOptions(repeats: 2, minutes: 1.5))
    }

    func testValidateTimeout() {
        XCTAssertNoThrow(try RetryOptions.validateTimeout(.milliseconds(1)))
        XCTAssertNoThrow(try RetryOptions.validateTimeout(.seconds(3600)))
        assertInvalidOption(
            try RetryOptions.validateTimeout(.milliseconds(-1500)),
            name: "timeout", value: "-1.5 seconds", reason: "must be greater than 0"
        )
        assertInvalidOption(
            try RetryOptions.validateTimeout(.seconds(3600) + .nanoseconds(1)),
            name: "timeout", value: "3600.000000001 seconds", reason: "must be at most 3600 seconds (1 hour)"
        )

        assertInvalidOption(try RetryOptions.validateTimeout(.zero), name: "timeout", value: "0 seconds", reason: "must be greater than 0")
        assertInvalidOption(try RetryOptions.validateTimeout(.seconds(-1)), name: "timeout", value: "-1 seconds", reason: "must be greater than 0")
        assertInvalidOption(
            try RetryOptions.validateTimeout(.seconds(3601)),
            name: "timeout", value: "3601 seconds", reason: "must be at most 3600 seconds (1 hour)"
        )
    }

    func testErrorDescription() {
        XCTAssertThrowsError(try RetryOptions(repeats: 0, seconds: 1)) { error in
            XCTAssertEqual("\(error)", "invalid value '0' for option 'repeats': must be at least 1")
        }
    }

    // MARK: Helpers

    private func assertInvalidOption(
        _ expression: @autoclosure () throws -> some Any,
        name: String,
        value: String,
        reason: String? = nil,
        reasonContains: String? = nil,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            guard case InvokeRetryError.invalidOption(let actualName, let actualValue, let actualReason)? = error as? InvokeRetryError else {
                return XCTFail("unexpected error \(error)", file: file, line: line)
            }
            XCTAssertEqual(actualName, name, file: file, line: line)
            XCTAssertEqual(actualValue, value, file: file, line: line)
            if let reason {
                XCTAssertEqual(actualReason, reason, file: file, line: line)
            }
            if let reasonContains {
                XCTAssertTrue(actualReason.contains(reasonContains), actualReason, file: file, line: line)
            }
        }
    }
}
