import AMQPRetry
import XCTest

final class WireFormatTests: XCTestCase {
    private let cid = try! CID(validating: "K04BAWB349PEBBYCPY6GQVSH4W0E")
    private let origCID = try! CID(validating: "K07MKN0TY2FRMCGHQA1HZR2JMBEM")

    private func asyncInvocation() throws -> Invocation {
        Invocation(
            cid: cid,
            mode: .async,
            target: "demo.fail",
            attempt: 2,
            options: try RetryOptions(repeats: 3, seconds: 1.5),
            callback: "demo.callback",
            source: "demo.caller",
            origCID: origCID,
            context: ["hi": "there", "n": 1],
            requestTimestamp: "2015-01-21T20:25:25.446454+00:00",
            lastError: "boom",
            payload: Payload(json: #"{"x":1}"#)
        )
    }

    /// Encodes the async fixture, applies `change` to its properties and decodes the result.
    private func decodeChanged(_ change: (inout MessageProperties) -> Void) throws -> Result<Invocation, ParkReason> {
        let invocation = try asyncInvocation()
        var properties = invocation.messageProperties()
        change(&properties)
        return Invocation.decode(properties: properties, body: invocation.payload.bytes, queueService: "demo.fail")
    }

    private func parkReason(_ result: Result<Invocation, ParkReason>, file: StaticString = #filePath, line: UInt = #line) -> ParkReason? {
        switch result {
        case .success(let invocation):
            XCTFail("decoded \(invocation) instead of parking", file: file, line: line)
            return nil
        case .failure(let reason):
            return reason
        }
    }

    // MARK: Encoding

    func testHeadersOfAsyncInvocation() throws {
        let headers = try asyncInvocation().headers()

        XCTAssertEqual(headers[WireHeader.version], .int64(1))
        XCTAssertEqual(headers[WireHeader.mode], .text("async"))
        XCTAssertEqual(headers[WireHeader.target], .text("demo.fail"))
        XCTAssertEqual(headers[WireHeader.attempt], .int64(2))
        XCTAssertEqual(headers[WireHeader.repeats], .int64(3))
        XCTAssertEqual(headers[WireHeader.intervalMilliseconds], .int64(1500))
        XCTAssertEqual(headers[WireHeader.callback], .text("demo.callback"))
        XCTAssertEqual(headers[WireHeader.source], .text("demo.caller"))
        XCTAssertEqual(headers[WireHeader.origCID], .text("K07MKN0TY2FRMCGHQA1HZR2JMBEM"))
        XCTAssertEqual(headers[WireHeader.context], .text(#"{"hi":"there","n":1}"#))
        XCTAssertEqual(headers[WireHeader.requestTimestamp], .text("2015-01-21T20:25:25.446454+00:00"))
        XCTAssertEqual(headers[WireHeader.lastError], .text("boom"))
        XCTAssertEqual(headers.count, 12)
    }

    func testHeadersLeaveOutAbsentValues() {
        let invocation = Invocation(mode: .sync, target: "demo.echo", requestTimestamp: nil)

        let headers = invocation.headers()

        XCTAssertEqual(Set(headers.keys), [WireHeader.version, WireHeader.mode, WireHeader.target, WireHeader.attempt, WireHeader.source])
        XCTAssertEqual(headers[WireHeader.attempt], .int64(1))
    }

    func testMessagePropertiesOfAsyncInvocation() throws {
        let invocation = try asyncInvocation()

        let properties = invocation.messageProperties(expirationMilliseconds: 1500)

        XCTAssertEqual(properties.contentType, "application/json")
        XCTAssertEqual(properties.deliveryMode, 2)
        XCTAssertEqual(properties.correlationID, "K04BAWB349PEBBYCPY6GQVSH4W0E")
        XCTAssertEqual(properties.expiration, "1500")
        XCTAssertNil(properties.replyTo)
        XCTAssertEqual(properties.headers, invocation.headers())
        XCTAssertNotNil(properties.timestamp)
    }

    func testDeliveryModeByInvocationMode() {
        let cases: [(InvocationMode, UInt8)] = [(.async, 2), (.callback, 2), (.sync, 1)]

        for (mode, deliveryMode) in cases {
            let properties = Invocation(mode: mode, target: "demo.echo").messageProperties()
            XCTAssertEqual(properties.deliveryMode, deliveryMode, "\(mode)")
        }
    }

    func testMessagePropertiesOfSyncRequest() {
        let invocation = Invocation(mode: .sync, target: "demo.echo")

        let properties = invocation.messageProperties(replyTo: TopologyNames.directReplyTo)

        XCTAssertEqual(properties.replyTo, "amq.rabbitmq.reply-to")
        XCTAssertNil(properties.expiration)
    }

    func testMessageIDsAreUnique() {
        let invocation = Invocation(mode: .async, target: "demo.echo")

        let ids = Set((0..<100).compactMap { _ in invocation.messageProperties().messageID })

        XCTAssertEqual(ids.count, 100)
    }

    func testNextAttemptAfterFailure() throws {
        let invocation = try asyncInvocation()

        let next = invocation.nextAttempt(after: "timeout\u{0}" + String(repeating: "x", count: 2000))

        XCTAssertEqual(next.attempt, 3)
        XCTAssertEqual(next.cid, invocation.cid)
        XCTAssertEqual(next.requestTimestamp, invocation.requestTimestamp)
        XCTAssertEqual(next.lastError?.utf8.count, 1024)
        XCTAssertTrue(next.lastError?.hasPrefix("timeout\u{FFFD}") == true)
    }

    // MARK: Decoding

    func testRoundTrip() throws {
        let invocation = try asyncInvocation()

        let decoded = Invocation.decode(
            properties: invocation.messageProperties(), body: invocation.payload.bytes, queueService: "demo.fail"
        )

        XCTAssertEqual(try decoded.get(), invocation)
    }

    func testRoundTripOfMinimalSyncRequest() throws {
        let invocation = Invocation(mode: .sync, target: "demo.echo", requestTimestamp: nil, payload: Payload(text: "hi"))

        let decoded = Invocation.decode(
            properties: invocation.messageProperties(), body: invocation.payload.bytes, queueService: "demo.echo"
        )

        XCTAssertEqual(try decoded.get(), invocation)
    }

    func testRoundTripOfEveryMode() throws {
        for mode in InvocationMode.allCases {
            let options = try RetryOptions(repeats: 1, intervalMilliseconds: 10)
            let invocation = Invocation(mode: mode, target: "svc", options: options)

            let decoded = Invocation.decode(properties: invocation.messageProperties(), body: [], queueService: "svc")

            XCTAssertEqual(try decoded.get(), invocation, "\(mode)")
        }
    }

    func testIntegersOfAnyWidthAccepted() throws {
        let widths: [FieldValue] = [.int8(3), .uint8(3), .int16(3), .uint16(3), .int32(3), .uint32(3), .int64(3), .uint64(3)]

        for width in widths {
            let result = try decodeChanged { $0.headers[WireHeader.repeats] = width }
            XCTAssertEqual(try result.get().options?.repeats, 3, "\(width)")
        }
    }

    func testTextAsByteArrayAccepted() throws {
        let result = try decodeChanged { $0.headers[WireHeader.callback] = .bytes(Array("other.callback".utf8)) }

        XCTAssertEqual(try result.get().callback, "other.callback")
    }

    func testMissingTargetDefaultsToQueueService() throws {
        let result = try decodeChanged { $0.headers[WireHeader.target] = nil }

        XCTAssertEqual(try result.get().target, "demo.fail")
    }

    func testMissingAttemptDefaultsToOne() throws {
        let result = try decodeChanged { $0.headers[WireHeader.attempt] = nil }

        XCTAssertEqual(try result.get().attempt, 1)
    }

    func testMissingContentTypeGivesOctetStream() throws {
        let result = try decodeChanged { $0.contentType = nil }

        XCTAssertEqual(try result.get().payload.contentType, "application/octet-stream")
    }

    func testMissingSourceGivesEmptyString() throws {
        let result = try decodeChanged { $0.headers[WireHeader.source] = nil }

        XCTAssertEqual(try result.get().source, "")
    }

    func testInvalidMessagesParkWithCode() throws {
        let longTarget = String(repeating: "t", count: 10_000)
        let cases: [(name: String, code: ParkReason.Code, change: (inout MessageProperties) -> Void)] = [
            ("version missing", .missingHeader, { $0.headers[WireHeader.version] = nil }),
            ("version 2", .unsupportedVersion, { $0.headers[WireHeader.version] = .int64(2) }),
            ("version 0", .unsupportedVersion, { $0.headers[WireHeader.version] = .int8(0) }),
            ("version text", .invalidHeader, { $0.headers[WireHeader.version] = .text("1") }),
            ("mode missing", .missingHeader, { $0.headers[WireHeader.mode] = nil }),
            ("mode unknown", .invalidHeader, { $0.headers[WireHeader.mode] = .text("later") }),
            ("mode integer", .invalidHeader, { $0.headers[WireHeader.mode] = .int64(1) }),
            ("correlation_id missing", .invalidCID, { $0.correlationID = nil }),
            ("correlation_id malformed", .invalidCID, { $0.correlationID = "K123" }),
            ("correlation_id lowercase", .invalidCID, { $0.correlationID = "k04bawb349pebbycpy6gqvsh4w0e" }),
            ("orig CID malformed", .invalidCID, { $0.headers[WireHeader.origCID] = .text("not-a-cid") }),
            ("repeats 0", .invalidHeader, { $0.headers[WireHeader.repeats] = .int64(0) }),
            ("repeats -1", .invalidHeader, { $0.headers[WireHeader.repeats] = .int32(-1) }),
            ("repeats abc", .invalidHeader, { $0.headers[WireHeader.repeats] = .text("abc") }),
            ("repeats too large", .invalidHeader, { $0.headers[WireHeader.repeats] = .int64(1_000_001) }),
            ("repeats UInt64 max", .invalidHeader, { $0.headers[WireHeader.repeats] = .uint64(.max) }),
            ("repeats missing", .missingHeader, { $0.headers[WireHeader.repeats] = nil }),
            ("interval missing", .missingHeader, { $0.headers[WireHeader.intervalMilliseconds] = nil }),
            ("interval negative", .invalidHeader, { $0.headers[WireHeader.intervalMilliseconds] = .int64(-5) }),
            ("interval zero", .invalidHeader, { $0.headers[WireHeader.intervalMilliseconds] = .int64(0) }),
            ("interval enormous", .invalidHeader, { $0.headers[WireHeader.intervalMilliseconds] = .int64(.max) }),
            ("interval double", .invalidHeader, { $0.headers[WireHeader.intervalMilliseconds] = .double(1.5) }),
            ("attempt 0", .invalidHeader, { $0.headers[WireHeader.attempt] = .int64(0) }),
            ("attempt beyond repeats", .invalidHeader, { $0.headers[WireHeader.attempt] = .int64(5) }),
            ("target 10,000 characters", .invalidHeader, { $0.headers[WireHeader.target] = .text(longTarget) }),
            ("target invalid UTF-8", .invalidHeader, { $0.headers[WireHeader.target] = .string([0x64, 0xFF, 0xFE]) }),
            ("target empty", .invalidHeader, { $0.headers[WireHeader.target] = .text("") }),
            ("target other service", .targetMismatch, { $0.headers[WireHeader.target] = .text("demo.other") }),
            ("callback reserved", .invalidHeader, { $0.headers[WireHeader.callback] = .text("amq.gen") }),
            ("callback control", .invalidHeader, { $0.headers[WireHeader.callback] = .text("cb\n") }),
            ("context not JSON", .invalidContext, { $0.headers[WireHeader.context] = .text("{hi") }),
            ("context array", .invalidContext, { $0.headers[WireHeader.context] = .text("[1,2]") }),
            ("context string", .invalidContext, { $0.headers[WireHeader.context] = .text("\"hi\"") }),
            ("context too long", .invalidHeader, { $0.headers[WireHeader.context] = .text("{\"a\":\"" + String(repeating: "x", count: 70_000) + "\"}") }),
            ("context table", .invalidHeader, { $0.headers[WireHeader.context] = .table(["hi": .text("there")]) }),
            ("last error too long", .invalidHeader, { $0.headers[WireHeader.lastError] = .text(String(repeating: "e", count: 5000)) }),
            ("request timestamp malformed", .invalidHeader, { $0.headers[WireHeader.requestTimestamp] = .text("yesterday") }),
            ("source invalid UTF-8", .invalidHeader, { $0.headers[WireHeader.source] = .bytes([0xC3]) }),
        ]

        for testCase in cases {
            let reason = parkReason(try decodeChanged(testCase.change))
            XCTAssertEqual(reason?.code, testCase.code, "\(testCase.name): \(reason?.description ?? "decoded")")
        }
    }

    func testAsyncWithoutOptionsParks() throws {
        let invocation = Invocation(mode: .async, target: "svc")

        let result = Invocation.decode(properties: invocation.messageProperties(), body: [], queueService: "svc")

        XCTAssertEqual(parkReason(result)?.description, "missing-header: header 'amqpretry-repeats' is missing")
    }

    func testLastAttemptAccepted() throws {
        let result = try decodeChanged { $0.headers[WireHeader.attempt] = .int64(4) }

        XCTAssertEqual(try result.get().attempt, 4)
    }

    func testSyncAttemptWithoutOptionsHasWideRange() throws {
        let invocation = Invocation(mode: .sync, target: "svc", attempt: 7)

        let result = Invocation.decode(properties: invocation.messageProperties(), body: [], queueService: "svc")

        XCTAssertEqual(try result.get().attempt, 7)
    }

    // MARK: Park reason details

    func testDetailNamesHeaderAndValue() throws {
        let cases: [(change: (inout MessageProperties) -> Void, description: String)] = [
            ({ $0.headers[WireHeader.repeats] = .int64(0) },
             "invalid-header: header 'amqpretry-repeats' is 0, expected a value that must be at least 1"),
            ({ $0.headers[WireHeader.repeats] = .text("abc") },
             "invalid-header: header 'amqpretry-repeats' is 'abc', expected an integer"),
            ({ $0.headers[WireHeader.version] = .int64(2) },
             "unsupported-version: header 'amqpretry-version' is 2, but this library reads version 1"),
            ({ $0.headers[WireHeader.attempt] = .int64(5) },
             "invalid-header: header 'amqpretry-attempt' is 5, expected an integer from 1 to 4"),
            ({ $0.headers[WireHeader.target] = .text("demo.other") },
             "target-mismatch: header 'amqpretry-target' is 'demo.other', but the message is in the queue of service 'demo.fail'"),
            ({ $0.headers[WireHeader.context] = .text("[1]") },
             "invalid-context: header 'amqpretry-context' is '[1]', expected a JSON object"),
            ({ $0.correlationID = nil },
             "invalid-cid: property 'correlation_id' is missing"),
            ({ $0.headers[WireHeader.intervalMilliseconds] = .bool(true) },
             "invalid-header: header 'amqpretry-interval-ms' is the boolean true, expected an integer"),
        ]

        for testCase in cases {
            XCTAssertEqual(parkReason(try decodeChanged(testCase.change))?.description, testCase.description)
        }
    }

    func testDetailCutsLongValue() throws {
        let target = String(repeating: "t", count: 10_000)

        let reason = parkReason(try decodeChanged { $0.headers[WireHeader.target] = .text(target) })

        let detail = reason?.detail ?? ""
        XCTAssertTrue(detail.contains("'" + String(repeating: "t", count: 200) + "…'"), detail)
        XCTAssertLessThan(detail.count, 400)
    }

    func testDetailEscapesInvalidUTF8() throws {
        let reason = parkReason(try decodeChanged { $0.headers[WireHeader.target] = .string([0x64, 0xFF, 0x0A]) })

        XCTAssertEqual(reason?.detail, "header 'amqpretry-target' is 'd\\xFF\\x0A', expected text in UTF-8")
    }

    func testDetailEscapesControlCharacters() throws {
        let reason = parkReason(try decodeChanged { $0.headers[WireHeader.mode] = .text("as\nync") })

        XCTAssertEqual(reason?.detail, "header 'amqpretry-mode' is 'as\\nync', expected one of 'async', 'sync' or 'callback'")
    }

    // MARK: Constants

    func testHeaderNames() {
        let names = [
            WireHeader.version, WireHeader.mode, WireHeader.target, WireHeader.attempt, WireHeader.repeats,
            WireHeader.intervalMilliseconds, WireHeader.callback, WireHeader.source, WireHeader.origCID,
            WireHeader.context, WireHeader.requestTimestamp, WireHeader.lastError, WireHeader.status,
            WireHeader.error, WireHeader.parkedReason, WireHeader.parkedQueue, WireHeader.parkedAt,
        ]

        XCTAssertEqual(Set(names).count, 17)
        XCTAssertTrue(names.allSatisfy { $0.hasPrefix("amqpretry-") })
        XCTAssertEqual(WireHeader.intervalMilliseconds, "amqpretry-interval-ms")
        XCTAssertEqual(WireHeader.requestTimestamp, "amqpretry-req-ts")
        XCTAssertEqual(WireHeader.currentVersion, 1)
    }
}
