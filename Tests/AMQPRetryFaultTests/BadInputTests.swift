@testable import AMQPRetry
import Foundation
import XCTest

/// Invocations a worker cannot carry out, published raw to a service queue. Each is parked with
/// a specific reason, and a failure callback goes out when the CID and the callback can be read.
/// The worker process survives and handles valid invocations afterwards.
final class BadInputTests: FaultTestCase {
    /// One malformed invocation.
    private struct BadInput {
        let label: String
        /// The service whose queue receives it.
        var service = "demo.echo"
        var correlationID: String?
        var headers: FieldTable
        var body: [UInt8] = []
        let code: ParkReason.Code
        /// Whether the CID and the callback can be read, so that a failure callback must go out.
        let callbackExpected: Bool
    }

    func testBadInputIsParked() async throws {
        let callback = try await makeCallbackService()
        let interval = try await makeRetryInterval(300...399)
        let parked = try await collectParkedMessages()
        let worker = try await startWorker()
        let callbacks = try await collectQueue(of: callback)
        let client = try await connectClient()

        let inputs = try makeBadInputs(callback: callback, interval: interval)
        for input in inputs {
            let properties = MessageProperties(contentType: "application/json", headers: input.headers, deliveryMode: 2,
                                               correlationID: input.correlationID, messageID: UUID().uuidString)
            let message = OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(input.service),
                                          properties: properties, body: input.body)
            do {
                try await connection.publish([message])
            } catch {
                XCTFail("\(input.label): publishing failed: \(error)")
            }
        }

        let allParked = await eventually(timeout: .seconds(20)) {
            inputs.allSatisfy { input in parked.messages.contains { $0.delivery.body == input.body } }
        }
        XCTAssertTrue(allParked, "not every bad input was parked within 20 s")
        let expectedCallbacks = inputs.filter(\.callbackExpected)
        _ = await eventually(timeout: .seconds(5)) {
            expectedCallbacks.allSatisfy { !callbacks.messages(correlationID: $0.correlationID ?? "").isEmpty }
        }

        var wrongParking: [String] = []
        var missingCallbacks: [String] = []
        var wrongCallbacks: [String] = []
        for input in inputs {
            let copies = parked.messages.filter { $0.delivery.body == input.body }
            let reason = copies.first?.header(WireHeader.parkedReason) ?? "none"
            if copies.count != 1 || !reason.hasPrefix(input.code.rawValue + ":") {
                wrongParking.append("\(input.label): parked \(copies.count) times with reason '\(reason.prefix(160))', "
                    + "expected once with '\(input.code.rawValue)'")
            }
            guard input.callbackExpected, let cid = input.correlationID else { continue }
            guard let message = callbacks.messages(correlationID: cid).first else {
                missingCallbacks.append(input.label)
                continue
            }
            let body = try? CallbackBody.decode(message.delivery.body)
            if body?.ok != false || body?.error?.contains(input.code.rawValue) != true {
                let ok = body.map { String($0.ok) } ?? "unreadable"
                wrongCallbacks.append("\(input.label): ok \(ok), error \(body?.error ?? "none")")
            }
        }
        XCTAssertEqual(wrongParking, [], "bad inputs parked wrongly")
        XCTAssertEqual(missingCallbacks, [], "bad inputs with a readable CID and callback got no failure callback")
        XCTAssertEqual(wrongCallbacks, [], "failure callbacks of bad inputs do not name the park reason")

        XCTAssertTrue(worker.process.isRunning, "the worker exited on bad input with status "
            + "\(worker.process.status.map(String.init) ?? "?")")
        let publisher = LoadPublisher()
        let valid = LoadMix.make(count: 30, callback: callback, intervalMilliseconds: interval, tag: runID)
        await publisher.publish(valid, via: client)
        let unknown = Set(inputs.compactMap(\.correlationID))
        try await assertAtLeastOnce(valid, callbacks: callbacks, publisher: publisher,
                                    extraQueues: [TopologyNames.delayQueue(milliseconds: interval),
                                                  TopologyNames.parkingQueue],
                                    allowance: FaultAllowance(unknownCIDs: unknown))
        XCTAssertEqual(workers.count, 1, "the worker was restarted during the test")
    }

    private func makeBadInputs(callback: String, interval: Int64) throws -> [BadInput] {
        let valid: FieldTable = [
            WireHeader.version: .int64(1),
            WireHeader.mode: .text("async"),
            WireHeader.target: .text("demo.echo"),
            WireHeader.attempt: .int64(1),
            WireHeader.repeats: .int64(1),
            WireHeader.intervalMilliseconds: .int64(interval),
            WireHeader.callback: .text(callback),
        ]
        func with(_ name: String, _ value: FieldValue?) -> FieldTable {
            var headers = valid
            headers[name] = value
            return headers
        }
        var deep = FieldValue.text("the bottom")
        for level in 0..<100 {
            deep = .table(["level \(level)": deep])
        }

        var inputs: [BadInput] = [
            BadInput(label: "no correlation_id", correlationID: nil, headers: valid, code: .invalidCID,
                     callbackExpected: false),
            BadInput(label: "malformed correlation_id", correlationID: "not-a-cid", headers: valid, code: .invalidCID,
                     callbackExpected: false),
            BadInput(label: "repeats 0", headers: with(WireHeader.repeats, .int64(0)), code: .invalidHeader,
                     callbackExpected: true),
            BadInput(label: "repeats -1", headers: with(WireHeader.repeats, .int64(-1)), code: .invalidHeader,
                     callbackExpected: true),
            BadInput(label: "repeats 'abc'", headers: with(WireHeader.repeats, .text("abc")), code: .invalidHeader,
                     callbackExpected: true),
            BadInput(label: "interval -5", headers: with(WireHeader.intervalMilliseconds, .int64(-5)),
                     code: .invalidHeader, callbackExpected: true),
            BadInput(label: "interval 2^62", headers: with(WireHeader.intervalMilliseconds, .int64(1 << 62)),
                     code: .invalidHeader, callbackExpected: true),
            BadInput(label: "repeats without interval", headers: with(WireHeader.intervalMilliseconds, nil),
                     code: .missingHeader, callbackExpected: true),
            BadInput(label: "attempt 0", headers: with(WireHeader.attempt, .int64(0)), code: .invalidHeader,
                     callbackExpected: true),
            BadInput(label: "version 2", headers: with(WireHeader.version, .int64(2)), code: .unsupportedVersion,
                     callbackExpected: false),
            BadInput(label: "no version", headers: with(WireHeader.version, nil), code: .missingHeader,
                     callbackExpected: false),
            BadInput(label: "no mode", headers: with(WireHeader.mode, nil), code: .missingHeader,
                     callbackExpected: true),
            BadInput(label: "unknown mode", headers: with(WireHeader.mode, .text("later")), code: .invalidHeader,
                     callbackExpected: true),
            BadInput(label: "10,000-character target",
                     headers: with(WireHeader.target, .text(String(repeating: "t", count: 10_000))),
                     code: .invalidHeader, callbackExpected: true),
            BadInput(label: "target of another service", headers: with(WireHeader.target, .text("demo.flaky")),
                     code: .targetMismatch, callbackExpected: true),
            BadInput(label: "invalid UTF-8 in amqpretry-source",
                     headers: with(WireHeader.source, .string([0x66, 0xC3, 0x28, 0xFF])), code: .invalidHeader,
                     callbackExpected: true),
            BadInput(label: "invalid UTF-8 in amqpretry-callback",
                     headers: with(WireHeader.callback, .string([0x63, 0xC3, 0x28, 0xFF])), code: .invalidHeader,
                     callbackExpected: false),
            BadInput(label: "malformed orig-cid", headers: with(WireHeader.origCID, .text("K123")), code: .invalidCID,
                     callbackExpected: true),
            BadInput(label: "context that is not an object", headers: with(WireHeader.context, .text("[1, 2]")),
                     code: .invalidContext, callbackExpected: true),
            BadInput(label: "headers nested 100 levels deep", headers: with("x-nested", deep), code: .invalidHeader,
                     callbackExpected: true),
        ]
        inputs.append(try hugeHeaderInput(valid: valid, callback: callback))

        for index in inputs.indices {
            if inputs[index].label != "no correlation_id" && inputs[index].label != "malformed correlation_id" {
                inputs[index].correlationID = CID.random().rawValue
            }
            if inputs[index].body.isEmpty {
                inputs[index].body = Array(#"{"bad input": "\#(inputs[index].label)", "tag": "\#(runID)"}"#.utf8)
            }
        }
        return inputs
    }

    /// A `demo.flaky` invocation whose headers fill the content header frame up to 40 bytes
    /// below `frame_max`: the broker takes it and the handler fails it, but its retry, which adds
    /// `amqpretry-last-error`, cannot be sent, so it is parked as `undeliverable`.
    private func hugeHeaderInput(valid: FieldTable, callback: String) throws -> BadInput {
        var headers = valid
        headers[WireHeader.target] = .text("demo.flaky")
        let body = Array(#"{"fail_times": 1, "bad input": "huge header", "tag": "\#(runID)"}"#.utf8)
        let frameMax = try configuration().frameMax
        var properties = MessageProperties(contentType: "application/json", headers: headers, deliveryMode: 2,
                                           correlationID: CID.random().rawValue, messageID: UUID().uuidString)
        properties.headers["x-padding"] = .text("")
        let free = frameMax - FrameSize.frameOverhead - FrameSize.contentHeaderSize(properties) - 40
        headers["x-padding"] = .text(String(repeating: "p", count: free))
        return BadInput(label: "huge header close to frame_max", service: "demo.flaky", headers: headers, body: body,
                        code: .undeliverable, callbackExpected: true)
    }
}
