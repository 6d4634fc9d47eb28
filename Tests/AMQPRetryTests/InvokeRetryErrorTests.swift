import AMQPRetry
import XCTest

final class InvokeRetryErrorTests: XCTestCase {
    func testInvalidOptionDescription() {
        let error = InvokeRetryError.invalidOption(name: "repeats", value: "0", reason: "must be at least 1")

        XCTAssertEqual(error.description, "invalid value '0' for option 'repeats': must be at least 1")
    }

    func testRetriesExhaustedDescription() throws {
        let cid = try CID(validating: "K04BAWB349PEBBYCPY6GQVSH4W0E")
        let error = InvokeRetryError.retriesExhausted(cid: cid, target: "demo.fail", attempts: 3, lastFailure: "boom")

        XCTAssertEqual(error.description, "invoking 'demo.fail' failed after 3 attempts (CID K04BAWB349PEBBYCPY6GQVSH4W0E): boom")
    }

    func testRetriesExhaustedSingularAttempt() throws {
        let cid = try CID(validating: "K04BAWB349PEBBYCPY6GQVSH4W0E")
        let error = InvokeRetryError.retriesExhausted(cid: cid, target: "demo.fail", attempts: 1, lastFailure: "boom")

        XCTAssertTrue(error.description.contains("after 1 attempt ("), error.description)
    }

    func testInvalidValueErrorDescription() {
        let error = InvalidValueError(value: "K12", expected: "a CID")

        XCTAssertEqual(error.description, "invalid value 'K12': expected a CID")
    }
}
