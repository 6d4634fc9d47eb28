import AMQPRetry
import Foundation
import XCTest

final class ParkReasonTests: XCTestCase {
    func testDescriptionIsCodeAndDetail() {
        let reason = ParkReason(code: .missingHeader, detail: "header 'amqpretry-mode' is missing")

        XCTAssertEqual(reason.description, "missing-header: header 'amqpretry-mode' is missing")
    }

    func testCodeRawValues() {
        let rawValues = ParkReason.Code.allCases.map(\.rawValue)

        XCTAssertEqual(rawValues, [
            "unsupported-version", "missing-header", "invalid-header", "invalid-cid", "target-mismatch",
            "invalid-context", "retries-exhausted", "callback-failed", "undeliverable", "redelivery-limit",
        ])
    }

    func testHeadersRecordReasonQueueAndTime() {
        let reason = ParkReason(code: .undeliverable, detail: "no queue is bound")
        let date = Date(timeIntervalSince1970: 0)

        let headers = reason.headers(queue: "amqpretry.service.demo", date: date)

        XCTAssertEqual(headers[WireHeader.parkedReason], .text("undeliverable: no queue is bound"))
        XCTAssertEqual(headers[WireHeader.parkedQueue], .text("amqpretry.service.demo"))
        XCTAssertEqual(headers[WireHeader.parkedAt], .text("1970-01-01T00:00:00.000000+00:00"))
    }

    func testHeadersBoundLongReason() {
        let reason = ParkReason(code: .callbackFailed, detail: String(repeating: "d", count: 5000))

        let headers = reason.headers(queue: "q")

        XCTAssertEqual(headers[WireHeader.parkedReason]?.textValue?.utf8.count, 1024)
    }
}
