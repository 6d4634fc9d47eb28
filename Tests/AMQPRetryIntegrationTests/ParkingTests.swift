@testable import AMQPRetry
import XCTest

/// Messages a worker cannot handle go to the parking queue `amqpretry.parked` with the reason
/// in their headers, and the worker goes on with the next message.
///
/// The parking queue is shared, so each test keeps only the messages parked from its own
/// service queue and returns the others.
final class ParkingTests: IntegrationTestCase {
    func testMalformedMessagesAreParked() async throws {
        let service = try await makeService("strict")
        let queue = TopologyNames.serviceQueue(service)
        let recorder = CallRecorder()
        try await startWorker([service: TestHandlers.failing(0, thenReturning: Payload(text: "ok"), recorder: recorder)])
        let parked = try await readParkedMessages(of: service)
        let client = try await connectClient()

        let valid: FieldTable = [
            WireHeader.version: .int64(1),
            WireHeader.mode: .text("async"),
            WireHeader.target: .text(service),
            WireHeader.attempt: .int64(1),
            WireHeader.repeats: .int64(1),
            WireHeader.intervalMilliseconds: .int64(500),
        ]
        var textRepeats = valid
        textRepeats[WireHeader.repeats] = .text("abc")
        var version2 = valid
        version2[WireHeader.version] = .int64(2)
        let cases: [(label: String, headers: FieldTable, code: ParkReason.Code, cid: CID)] = [
            ("no headers", [:], .missingHeader, .random()),
            ("repeats 'abc'", textRepeats, .invalidHeader, .random()),
            ("version 2", version2, .unsupportedVersion, .random()),
        ]

        for malformed in cases {
            let properties = MessageProperties(contentType: "text/plain", headers: malformed.headers, deliveryMode: 2,
                                               correlationID: malformed.cid.rawValue)
            let message = OutgoingMessage(exchange: "", routingKey: queue, properties: properties,
                                          body: Array("malformed: \(malformed.label)".utf8))
            try await broker.publish([message])
        }

        let allParked = await eventually { parked.messages.count >= cases.count }
        XCTAssertTrue(allParked, "\(parked.messages.count) of \(cases.count) malformed messages were parked within 10 s")
        for malformed in cases {
            let found = parked.messages(correlationID: malformed.cid.rawValue)
            XCTAssertEqual(found.count, 1, "\(malformed.label): parked \(found.count) times, expected once")
            guard let message = found.first else { continue }
            let reason = message.header(WireHeader.parkedReason) ?? ""
            XCTAssertTrue(reason.hasPrefix(malformed.code.rawValue + ":"),
                          "\(malformed.label): parked with reason '\(reason)', expected code '\(malformed.code.rawValue)'")
            XCTAssertEqual(message.header(WireHeader.parkedQueue), queue, "\(malformed.label): parked-queue header")
            XCTAssertNotNil(message.header(WireHeader.parkedAt).flatMap(WireTimestamp.parse),
                            "\(malformed.label): parked-at header is not a timestamp")
            XCTAssertEqual(message.delivery.body, Array("malformed: \(malformed.label)".utf8),
                           "\(malformed.label): the parked body differs from the published one")
        }
        XCTAssertEqual(recorder.count, 0, "the handler was called for a malformed message")

        let response = try await client.invokeRetry.invoke(service, Payload(text: "valid"), repeats: 1, seconds: 0.5,
                                                           timeout: .seconds(5))

        XCTAssertEqual(response.text, "ok", "a valid call after the malformed messages failed")
        XCTAssertEqual(recorder.count, 1, "the handler was not called once for the valid call")
    }

    func testExhaustedWithoutCallbackIsParked() async throws {
        let target = try await makeService("broken")
        let seconds = try await makeRetryInterval()
        let recorder = CallRecorder()
        try await startWorker([target: TestHandlers.alwaysFailing(recorder: recorder)])
        let parked = try await readParkedMessages(of: target)
        let client = try await connectClient()

        let cid = try await client.invokeRetry.invokeAsync(target, Payload(text: "charge"), repeats: 1, seconds: seconds)

        await assertCalledExactly(2, recorder, service: target)
        let arrived = await eventually { !parked.messages(correlationID: cid.rawValue).isEmpty }
        XCTAssertTrue(arrived, "the exhausted invocation was not parked within 10 s")
        let found = parked.messages(correlationID: cid.rawValue)
        XCTAssertEqual(found.count, 1, "the exhausted invocation was parked \(found.count) times, expected once")
        let reason = found.first?.header(WireHeader.parkedReason) ?? ""
        XCTAssertTrue(reason.hasPrefix(ParkReason.Code.retriesExhausted.rawValue + ":"),
                      "parked with reason '\(reason)', expected code 'retries-exhausted'")
        XCTAssertTrue(reason.contains(TestHandlers.failureMessage(call: 2)), "the reason '\(reason)' lacks the last error")
        XCTAssertEqual(found.first?.delivery.properties.headers[WireHeader.attempt]?.integerValue, 2,
                       "the parked message is not the last attempt")
        XCTAssertEqual(found.first?.delivery.body, Array("charge".utf8), "the parked body is not the request")
    }

    func testFailedCallbackIsParked() async throws {
        let target = try await makeService("echo")
        let callback = try await makeService("callback")
        let targetCalls = CallRecorder()
        let callbackCalls = CallRecorder()
        try await startWorker([
            target: TestHandlers.failing(0, thenReturning: Payload(text: "done"), recorder: targetCalls),
            callback: TestHandlers.alwaysFailing(recorder: callbackCalls),
        ])
        let parked = try await readParkedMessages(of: callback)
        let client = try await connectClient()

        let cid = try await client.invokeRetry.invokeAsync(target, repeats: 1, seconds: 0.5, callback: callback)

        await assertCalledExactly(1, callbackCalls, service: callback)
        let arrived = await eventually { !parked.messages(correlationID: cid.rawValue).isEmpty }
        XCTAssertTrue(arrived, "the failed callback was not parked within 10 s")
        let found = parked.messages(correlationID: cid.rawValue)
        XCTAssertEqual(found.count, 1, "the failed callback was parked \(found.count) times, expected once")
        let reason = found.first?.header(WireHeader.parkedReason) ?? ""
        XCTAssertTrue(reason.hasPrefix(ParkReason.Code.callbackFailed.rawValue + ":"),
                      "parked with reason '\(reason)', expected code 'callback-failed'")
        XCTAssertEqual(callbackCalls.all.first?.request.mode, .callback, "the callback service was called in another mode")
    }
}
