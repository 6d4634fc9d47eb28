import AMQPRetry
import XCTest

final class ParkedMessageTests: XCTestCase {
    private let cid = CID.random()

    private func parked(headers extra: FieldTable = [:], correlationID: String? = nil) -> ParkedMessage {
        var headers: FieldTable = [
            WireHeader.version: .int64(1),
            WireHeader.mode: .text("async"),
            WireHeader.target: .text("billing.charge"),
            WireHeader.attempt: .int64(4),
            WireHeader.repeats: .int64(3),
            WireHeader.intervalMilliseconds: .int64(500),
            WireHeader.lastError: .text("card declined"),
            WireHeader.redeliveries: .int64(2),
            WireHeader.parkedReason: .text("retries-exhausted: every attempt failed"),
            WireHeader.parkedQueue: .text("amqpretry.service.billing.charge"),
            WireHeader.parkedAt: .text("2026-12-04T20:25:25.446454+00:00"),
            "x-death": .array([.table(["count": .int64(1)])]),
            "x-first-death-queue": .text("amqpretry.delay.500ms"),
            "x-last-death-reason": .text("expired"),
            "app-trace": .text("abc"),
        ]
        headers.merge(extra) { _, new in new }
        let properties = MessageProperties(contentType: "application/json", headers: headers, deliveryMode: 2,
                                           correlationID: correlationID ?? cid.rawValue, messageID: "old-id")
        return ParkedMessage(properties: properties, body: Array(#"{"amount": 10}"#.utf8))
    }

    func testReadsParkedHeaders() {
        let message = parked()

        XCTAssertEqual(message.cid, cid)
        XCTAssertEqual(message.reasonCode, .retriesExhausted)
        XCTAssertEqual(message.reason, "retries-exhausted: every attempt failed")
        XCTAssertEqual(message.sourceQueue, "amqpretry.service.billing.charge")
        XCTAssertEqual(message.service, "billing.charge")
        XCTAssertEqual(message.parkedAt, "2026-12-04T20:25:25.446454+00:00")
        XCTAssertEqual(message.size, 14)
    }

    func testUnknownReasonCodeIsNil() {
        let message = parked(headers: [WireHeader.parkedReason: .text("future-code: something new")])

        XCTAssertNil(message.reasonCode)
        XCTAssertEqual(message.reason, "future-code: something new")
    }

    func testInvalidCorrelationIDHasNoCID() {
        let message = parked(correlationID: "not-a-cid")

        XCTAssertNil(message.cid)
        XCTAssertEqual(message.correlationID, "not-a-cid")
    }

    func testReplayStartsAgainAtFirstAttempt() throws {
        let copy = try parked().replayMessage()
        let headers = copy.properties.headers

        XCTAssertEqual(headers[WireHeader.attempt], .int64(1))
        XCTAssertEqual(copy.properties.correlationID, cid.rawValue, "the replay must keep the CID")
        XCTAssertEqual(headers[WireHeader.repeats], .int64(3))
        XCTAssertEqual(headers[WireHeader.intervalMilliseconds], .int64(500))
        XCTAssertEqual(headers[WireHeader.target], .text("billing.charge"))
        XCTAssertEqual(headers["app-trace"], .text("abc"), "application headers must pass through")
    }

    func testReplayRemovesParkingAndRetryHistory() throws {
        let headers = try parked().replayMessage().properties.headers

        for removed in [WireHeader.parkedReason, WireHeader.parkedQueue, WireHeader.parkedAt, WireHeader.lastError,
                        WireHeader.redeliveries, "x-death", "x-first-death-queue", "x-last-death-reason"] {
            XCTAssertNil(headers[removed], "the replay keeps header '\(removed)'")
        }
    }

    func testReplayGoesToSourceServiceQueue() throws {
        let copy = try parked().replayMessage()

        XCTAssertEqual(copy.exchange, "")
        XCTAssertEqual(copy.routingKey, "amqpretry.service.billing.charge")
        XCTAssertTrue(copy.mandatory)
        XCTAssertEqual(copy.body, Array(#"{"amount": 10}"#.utf8))
        XCTAssertEqual(copy.properties.contentType, "application/json")
        XCTAssertNotEqual(copy.properties.messageID, "old-id", "the replay must have a new message_id")
    }

    func testReplayNeedsServiceQueue() {
        let cases: [(label: String, message: ParkedMessage, mentions: String)] = [
            ("no source queue", ParkedMessage(properties: MessageProperties(correlationID: cid.rawValue), body: []),
             WireHeader.parkedQueue),
            ("other queue", parked(headers: [WireHeader.parkedQueue: .text("orders")]), "'orders'"),
            ("reserved service", parked(headers: [WireHeader.parkedQueue: .text("amqpretry.service.amq.x")]),
             "'amqpretry.service.amq.x'"),
        ]

        for invalid in cases {
            XCTAssertThrowsError(try invalid.message.replayMessage(), invalid.label) { error in
                XCTAssertTrue(String(describing: error).contains(invalid.mentions), "\(invalid.label): \(error)")
            }
        }
    }

    func testSelectionMatchesByCID() {
        let other = CID.random()

        XCTAssertTrue(ParkedSelection.all.contains(parked()))
        XCTAssertTrue(ParkedSelection.all.contains(parked(correlationID: "not-a-cid")))
        XCTAssertTrue(ParkedSelection.cids([cid, other]).contains(parked()))
        XCTAssertFalse(ParkedSelection.cids([other]).contains(parked()))
        XCTAssertFalse(ParkedSelection.cids([other]).contains(parked(correlationID: "not-a-cid")))
    }

    func testReportNamesMissingCIDs() {
        let found = CID.random()
        let missing = CID.random()
        var report = ParkedOperationReport()
        report.matchedCIDs = [found]

        XCTAssertEqual(report.missingCIDs(of: .cids([found, missing])), [missing])
        XCTAssertEqual(report.missingCIDs(of: .all), [])
    }
}
