@testable import AMQPRetry
import CRabbitMQ
import XCTest

/// Headers that the application adds to an invocation go with it to its next attempt and to
/// the parking queue, while RabbitMQ's dead-lettering history and AMQPRetry's own headers of
/// the previous attempt are replaced. The retry tests take each retry from the delay queue
/// before the broker returns it to the service queue.
final class ApplicationHeaderTests: IntegrationTestCase {
    func testRetryKeepsApplicationHeaders() async throws {
        let failing = try await startFailingService("app-headers")
        let recorder = failing.recorder
        let service = failing.service
        let retries = try await readDelayQueue(milliseconds: failing.intervalMilliseconds)

        let invocation = try failing.invocation()
        var properties = invocation.messageProperties()
        let nested: FieldValue = .table(["inner": .array([.int64(1), .text("two")])])
        properties.headers["app-tenant"] = .text("tenant-1")
        properties.headers["\u{E9}tag"] = .int32(7)
        properties.headers["app-nested"] = nested
        properties.headers["x-death"] = .array([.table(["count": .int64(3)])])
        properties.headers["x-first-death-queue"] = .text("elsewhere")
        properties.headers["x-last-death-reason"] = .text("expired")
        properties.headers["amqpretry-custom"] = .text("AMQPRetry owns this prefix")
        try await broker.publish([OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(service),
                                                  mandatory: true, properties: properties,
                                                  body: invocation.payload.bytes)])

        let retry = try await firstRetry(of: invocation, in: retries)
        let headers = retry.delivery.properties.headers

        XCTAssertEqual(headers["app-tenant"], .text("tenant-1"))
        XCTAssertEqual(headers["e\u{301}tag"], .int32(7), "the non-ASCII name, looked up in its decomposed form")
        XCTAssertEqual(headers["app-nested"], nested)
        for removed in ["x-death", "x-first-death-queue", "x-last-death-reason", "amqpretry-custom"] {
            XCTAssertNil(headers[removed], "the retry still has the header \(removed)")
        }
        XCTAssertEqual(headers[WireHeader.attempt]?.integerValue, 2)
        XCTAssertEqual(headers[WireHeader.lastError]?.textValue, TestHandlers.failureMessage(call: 1))
        XCTAssertEqual(headers[WireHeader.target]?.textValue, service)
        XCTAssertEqual(recorder.count, 1)
    }

    /// Sends header names that differ as bytes but decode to one string. These are invalid
    /// UTF-8, which decodes to U+FFFD, and the two forms of "é". The worker keeps one header
    /// for each.
    func testRetryMergesNamesThatDecodeAlike() async throws {
        let failing = try await startFailingService("raw-names")
        let recorder = failing.recorder
        let service = failing.service
        let retries = try await readDelayQueue(milliseconds: failing.intervalMilliseconds)

        let invocation = try failing.invocation()
        let rawHeaders: [(name: [UInt8], value: Int64)] = [
            ([0xFF], 5), ([0xFE], 5), (Array("\u{E9}".utf8), 6), (Array("e\u{301}".utf8), 6),
        ]
        try Self.publishRaw(invocation, addingHeaders: rawHeaders, to: TopologyNames.serviceQueue(service),
                            configuration: configuration)

        let retry = try await firstRetry(of: invocation, in: retries)
        let headers = retry.delivery.properties.headerList

        XCTAssertEqual(headers["\u{FFFD}"], .int64(5))
        XCTAssertEqual(headers["\u{E9}"], .int64(6))
        XCTAssertEqual(headers.count, invocation.headerList().count + 2 + 1, "expected the invocation's headers, "
            + "the two merged names and amqpretry-last-error: \(headers.entries.map(\.name))")
        XCTAssertEqual(headers[WireHeader.attempt]?.integerValue, 2)
        XCTAssertEqual(recorder.count, 1)
    }

    func testParkedCopyKeepsApplicationHeaders() async throws {
        let service = try await makeService("parked-headers")
        let recorder = CallRecorder()
        try await startWorker([service: TestHandlers.alwaysFailing(recorder: recorder)])
        let parked = try await readParkedMessages(of: service)

        // No amqpretry-version header, so the worker parks the message.
        let cid = CID.random()
        let properties = MessageProperties(contentType: "text/plain", headers: [
            WireHeader.mode: .text("async"),
            WireHeader.parkedReason: .text("stale reason set by the application"),
            "app-tenant": .text("tenant-2"),
            "\u{E9}tag": .int32(8),
        ], deliveryMode: 2, correlationID: cid.rawValue)
        try await broker.publish([OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(service),
                                                  mandatory: true, properties: properties, body: Array("x".utf8))])

        let arrived = await eventually { !parked.messages(correlationID: cid.rawValue).isEmpty }
        XCTAssertTrue(arrived, "the message was not parked within 10 s")
        let message = try XCTUnwrap(parked.messages(correlationID: cid.rawValue).first)
        let headers = message.delivery.properties.headers

        let reason = headers[WireHeader.parkedReason]?.textValue ?? ""
        XCTAssertTrue(reason.hasPrefix(ParkReason.Code.missingHeader.rawValue + ":"), "parked with reason '\(reason)'")
        XCTAssertEqual(headers["app-tenant"], .text("tenant-2"))
        XCTAssertEqual(headers["\u{E9}tag"], .int32(8))
        XCTAssertEqual(headers[WireHeader.mode], .text("async"))
        XCTAssertEqual(recorder.count, 0)
    }

    func testLongNameInArrayIsRejected() async throws {
        let service = try await makeService("long-name")
        let queue = TopologyNames.serviceQueue(service)
        let reader = try await readQueue(of: service)
        let longName = String(repeating: "n", count: 300)
        let invalid = MessageProperties(headers: ["list": .array([.table([longName: .int8(1)])])])
        let valid = MessageProperties(headers: ["list": .array([.table(["short": .int8(1)])])])

        do {
            try await broker.publish([OutgoingMessage(exchange: "", routingKey: queue, mandatory: true,
                                                      properties: invalid, body: Array("invalid".utf8))])
            XCTFail("a header name of 300 bytes inside an array was published")
        } catch let error as AMQPError {
            XCTAssertEqual(error.code, .invalidMessage, "\(error)")
        }
        try await broker.publish([OutgoingMessage(exchange: "", routingKey: queue, mandatory: true,
                                                  properties: valid, body: Array("valid".utf8))])

        let arrived = await eventually { !reader.messages.isEmpty }
        XCTAssertTrue(arrived, "the valid message did not arrive within 10 s")
        try? await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(reader.messages.map { String(decoding: $0.delivery.body, as: UTF8.self) }, ["valid"])
    }

    /// Sends a header whose name, 100 bytes of 0xFF, decodes to 300 bytes of U+FFFD, inside a
    /// table in an array. The retry cannot carry that name, so the worker parks the message
    /// without its headers instead of sending a frame that RabbitMQ cannot parse.
    func testRepairedLongNameInArrayParks() async throws {
        let failing = try await startFailingService("repaired-name")
        let recorder = failing.recorder
        let service = failing.service
        let parked = try await readParkedMessages(of: failing.service)

        let invocation = try failing.invocation()
        let arena = CArena()
        let innerEntry = UnsafeMutablePointer<amqp_table_entry_t>.allocate(capacity: 1)
        defer { innerEntry.deallocate() }
        innerEntry.initialize(to: amqp_table_entry_t(key: arena.bytes([UInt8](repeating: 0xFF, count: 100)),
                                                     value: Self.integer(1)))
        let element = UnsafeMutablePointer<amqp_field_value_t>.allocate(capacity: 1)
        defer { element.deallocate() }
        var table = amqp_field_value_t()
        table.kind = UInt8(AMQP_FIELD_KIND_TABLE.rawValue)
        table.value.table = amqp_table_t(num_entries: 1, entries: innerEntry)
        element.initialize(to: table)
        var list = amqp_field_value_t()
        list.kind = UInt8(AMQP_FIELD_KIND_ARRAY.rawValue)
        list.value.array = amqp_array_t(num_entries: 1, entries: element)
        try Self.publishRaw(invocation, addingHeaders: [(Array("list".utf8), list)],
                            to: TopologyNames.serviceQueue(service), configuration: configuration)

        let arrived = await eventually { !parked.messages(correlationID: invocation.cid.rawValue).isEmpty }
        XCTAssertTrue(arrived, "the message was not parked within 10 s")
        try? await Task.sleep(for: .milliseconds(300))
        let copies = parked.messages(correlationID: invocation.cid.rawValue)
        XCTAssertEqual(copies.count, 1)
        let reason = copies.first?.header(WireHeader.parkedReason) ?? ""
        XCTAssertTrue(reason.hasPrefix(ParkReason.Code.undeliverable.rawValue + ":"), "parked with reason '\(reason)'")
        XCTAssertNil(copies.first?.delivery.properties.headers["list"])
        XCTAssertEqual(recorder.count, 1)
    }

    /// A service whose handler always fails, run by a worker, and the retry interval of the
    /// invocations that the tests send it.
    private struct FailingService {
        let service: String
        let intervalMilliseconds: Int64
        let recorder: CallRecorder

        /// Makes a background invocation of the service with 2 repeats at the interval.
        func invocation() throws -> Invocation {
            Invocation(mode: .async, target: service,
                       options: try RetryOptions(repeats: 2, intervalMilliseconds: intervalMilliseconds),
                       payload: Payload(text: "work"))
        }
    }

    /// Waits up to 10 s for the first retry of `invocation` to reach the delay queue.
    private func firstRetry(of invocation: Invocation, in retries: QueueReader) async throws -> QueueReader.Message {
        let arrived = await eventually { !retries.messages(correlationID: invocation.cid.rawValue).isEmpty }
        XCTAssertTrue(arrived, "no retry reached the delay queue within 10 s")
        return try XCTUnwrap(retries.messages(correlationID: invocation.cid.rawValue).first)
    }

    private func startFailingService(_ name: String) async throws -> FailingService {
        let service = try await makeService(name)
        let milliseconds = Int64((try await makeRetryInterval() * 1000).rounded())
        let recorder = CallRecorder()
        try await startWorker([service: TestHandlers.alwaysFailing(recorder: recorder)])
        return FailingService(service: service, intervalMilliseconds: milliseconds, recorder: recorder)
    }

    private static func integer(_ number: Int64) -> amqp_field_value_t {
        var value = amqp_field_value_t()
        value.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue)
        value.value.i64 = number
        return value
    }

    /// Publishes an invocation through librabbitmq directly, with extra headers whose names
    /// are raw bytes, which a Swift `String` cannot carry.
    private static func publishRaw(_ invocation: Invocation, addingHeaders extra: [(name: [UInt8], value: Int64)],
                                   to queue: String, configuration: ConnectionConfiguration) throws {
        try publishRaw(invocation, addingHeaders: extra.map { ($0.name, integer($0.value)) }, to: queue,
                       configuration: configuration)
    }

    /// Publishes an invocation through librabbitmq directly, with extra headers whose names
    /// are raw bytes and whose values are librabbitmq field values.
    private static func publishRaw(_ invocation: Invocation,
                                   addingHeaders extra: [(name: [UInt8], value: amqp_field_value_t)],
                                   to queue: String, configuration: ConnectionConfiguration) throws {
        let arena = CArena()
        var properties = invocation.messageProperties().cProperties(in: arena)
        var entries = (0..<Int(properties.headers.num_entries)).map { properties.headers.entries[$0] }
        for header in extra {
            entries.append(amqp_table_entry_t(key: arena.bytes(header.name), value: header.value))
        }

        let handle = try ConnectionHandle(configuration: configuration, connectionName: "amqpretry itest raw publisher")
        defer { handle.close() }
        let status = entries.withUnsafeMutableBufferPointer { buffer in
            properties.headers = amqp_table_t(num_entries: Int32(buffer.count), entries: buffer.baseAddress)
            return invocation.payload.bytes.withUnsafeBytes { body in
                amqp_basic_publish(handle.state, ConnectionHandle.channel, arena.bytes(""), arena.bytes(queue), 1, 0,
                                   &properties, amqp_bytes_t(len: body.count,
                                                             bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
            }
        }
        XCTAssertEqual(status, AMQP_STATUS_OK.rawValue, "amqp_basic_publish failed")
    }
}
