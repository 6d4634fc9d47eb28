@testable import AMQPRetry
import Foundation
import Synchronization
import XCTest

/// Error messages and caller input too large or too strange for AMQP headers: what reaches the
/// wire stays bounded and valid, and what cannot be sent is rejected before any frame goes out.
final class MessageSizeTests: FaultTestCase {
    /// An error message of 1 MB with NUL bytes, other control characters and the replacement
    /// character that invalid UTF-8 turns into.
    private static let hugeErrorMessage: String = {
        let invalid = String(decoding: [0x61, 0xC3, 0x28, 0xFF, 0xFE, 0x62] as [UInt8], as: UTF8.self)
        let chunk = "failure\u{0}with NUL\u{1}and \u{7F}controls \(invalid) é 😀 "
        return String(repeating: chunk, count: 1_048_576 / chunk.utf8.count + 1)
    }()

    /// The failure the test services throw.
    private struct HugeFailure: Error, CustomStringConvertible {
        var description: String { MessageSizeTests.hugeErrorMessage }
    }

    /// A failure with a 1 MB message containing NUL bytes and invalid UTF-8: the callback's
    /// `error`, the reply's `amqpretry-error` (seen as the sync caller's last failure), the
    /// retry's `amqpretry-last-error` and the parked copy's `amqpretry-parked-reason` are each
    /// at most 1024 bytes of valid UTF-8 without NUL, and no connection breaks on a frame.
    func testHugeErrorMessagesAreBounded() async throws {
        let service = try await makeService("huge-error")
        let callback = try await makeCallbackService()
        let interval = try await makeRetryInterval(300...399)
        let parked = try await collectParkedMessages()
        let callbacks = try await collectQueue(of: callback)
        let worker = try await startInProcessWorker([service: { _ in throw HugeFailure() }])
        let client = try await connectClient()
        let seconds = Double(interval) / 1000

        let withCallback = try await client.invokeRetry.invokeAsync(service, repeats: 1, seconds: seconds,
                                                                    callback: callback)
        let withoutCallback = try await client.invokeRetry.invokeAsync(service, repeats: 1, seconds: seconds)
        var syncFailure = ""
        do {
            _ = try await client.invokeRetry.invoke(service, repeats: 1, seconds: 0.3, timeout: .seconds(10))
            XCTFail("the sync invoke of a failing service succeeded")
        } catch InvokeRetryError.retriesExhausted(_, _, _, let lastFailure) {
            syncFailure = lastFailure
        }
        Self.assertBoundedText(syncFailure, "the sync caller's last failure (the reply's amqpretry-error)")

        let arrived = await eventually(timeout: .seconds(15)) {
            !callbacks.messages(correlationID: withCallback.rawValue).isEmpty
                && !parked.messages(correlationID: withoutCallback.rawValue).isEmpty
        }
        XCTAssertTrue(arrived, "the callback or the parked copy did not arrive within 15 s")
        let body = callbacks.messages(correlationID: withCallback.rawValue).first
            .flatMap { try? CallbackBody.decode($0.delivery.body) }
        XCTAssertEqual(body?.ok, false, "the callback of the failing service is not a failure")
        Self.assertBoundedText(body?.error ?? "", "the callback's error")

        let parkedCopy = parked.messages(correlationID: withoutCallback.rawValue).first
        for header in [WireHeader.lastError, WireHeader.parkedReason] {
            guard case .string(let bytes)? = parkedCopy?.delivery.properties.headers[header] else {
                XCTFail("the parked copy has no text header '\(header)'")
                continue
            }
            Self.assertBoundedBytes(bytes, "the parked copy's header '\(header)'")
        }

        await worker.stop()
        let lost = logs.records(withMessage: "connection to RabbitMQ lost")
        XCTAssertEqual(lost.count, 0, "a connection was lost: \(lost.map { "\($0.label) \($0.metadata)" })")
        try await assertEmpty([TopologyNames.serviceQueue(service), TopologyNames.delayQueue(milliseconds: interval),
                               TopologyNames.parkingQueue, callbacks.queue])
    }

    /// With `frame_max` 4096 on the worker, an invocation whose headers nearly fill a frame and
    /// whose handler fails with a 1 MB message cannot be retried, because the retry's headers
    /// would not fit one frame: it is parked as `undeliverable` and a failure callback goes out,
    /// and the worker's connection stays up.
    func testRetryTooLargeForFrameIsParked() async throws {
        let service = try await makeService("huge-error")
        let callback = try await makeCallbackService()
        let interval = try await makeRetryInterval(300...399)
        let parked = try await collectParkedMessages()
        let callbacks = try await collectQueue(of: callback)
        let worker = try await startInProcessWorker([service: { _ in throw HugeFailure() }],
                                                    parameters: [("frame_max", "4096")])

        let invocation = Invocation(mode: .async, target: service,
                                    options: try RetryOptions(repeats: 1, intervalMilliseconds: interval),
                                    callback: callback, origCID: .random(), payload: Payload(json: "{}"))
        var properties = invocation.messageProperties()
        properties.headers["x-padding"] = .text(String(repeating: "p", count: 3000))
        try await connection.publish([OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(service),
                                                      properties: properties, body: Array("{}".utf8))])

        let arrived = await eventually(timeout: .seconds(15)) {
            !parked.messages(correlationID: invocation.cid.rawValue).isEmpty
        }
        XCTAssertTrue(arrived, "the invocation was not parked within 15 s")
        let parkedCopy = parked.messages(correlationID: invocation.cid.rawValue).first
        let reason = parkedCopy?.header(WireHeader.parkedReason) ?? ""
        XCTAssertTrue(reason.hasPrefix(ParkReason.Code.undeliverable.rawValue + ":"),
                      "parked with reason '\(reason)', expected undeliverable")
        let called = await eventually(timeout: .seconds(5)) {
            !callbacks.messages(correlationID: invocation.cid.rawValue).isEmpty
        }
        XCTAssertTrue(called, "no failure callback went out for the invocation that could not be retried")

        await worker.stop()
        let lost = logs.records(withMessage: "connection to RabbitMQ lost")
        XCTAssertEqual(lost.count, 0, "a connection was lost: \(lost.map { "\($0.label) \($0.metadata)" })")
        try await assertEmpty([TopologyNames.serviceQueue(service), TopologyNames.delayQueue(milliseconds: interval),
                               TopologyNames.parkingQueue, callbacks.queue])
    }

    /// A context over 64 KiB, and with `frame_max` 4096 a context that fits that limit but not
    /// one frame, are rejected before anything is sent: the target's queue stays empty and the
    /// client's connection keeps working.
    func testOversizedCallerInputIsRejected() async throws {
        let service = try await makeService("target")
        let queue = TopologyNames.serviceQueue(service)
        let client = try await connectClient()
        let smallFrames = try await connectClient([("frame_max", "4096")])

        let huge = JSONValue.object(["data": .string(String(repeating: "x", count: 70_000))])
        do {
            _ = try await client.invokeRetry.invokeAsync(service, repeats: 1, seconds: 1, context: huge)
            XCTFail("a context of 70,000 bytes was accepted")
        } catch InvokeRetryError.invalidOption(let name, _, _) {
            XCTAssertEqual(name, "context", "the rejection names another option")
        }

        let mid = JSONValue.object(["data": .string(String(repeating: "x", count: 10_000))])
        do {
            _ = try await smallFrames.invokeRetry.invokeAsync(service, repeats: 1, seconds: 1, context: mid)
            XCTFail("a context of 10,000 bytes was sent with frame_max 4096")
        } catch let error as AMQPError {
            XCTAssertEqual(error.code, .invalidMessage, "the rejection is not invalidMessage: \(error)")
        }
        let empty = try await connection.readyMessageCount(queue)
        XCTAssertEqual(empty, 0, "a rejected invocation reached '\(queue)'")

        let megabyte = Payload(bytes: Array(repeating: 0x61, count: 1_000_000))
        for caller in [client, smallFrames] {
            _ = try await caller.invokeRetry.invokeAsync(service, megabyte, repeats: 1, seconds: 1)
        }
        let delivered = try await connection.readyMessageCount(queue)
        XCTAssertEqual(delivered, 2, "after the rejections, invocations with a 1 MB request did not both arrive")
        let lost = logs.records(withMessage: "connection to RabbitMQ lost")
        XCTAssertEqual(lost.count, 0, "a client connection was lost: \(lost.map { "\($0.label) \($0.metadata)" })")
    }

    // MARK: Helpers

    private static func assertBoundedText(_ text: String, _ what: String, file: StaticString = #filePath,
                                          line: UInt = #line) {
        assertBoundedBytes(Array(text.utf8), what, file: file, line: line)
        XCTAssertFalse(text.isEmpty, "\(what) is empty", file: file, line: line)
    }

    private static func assertBoundedBytes(_ bytes: [UInt8], _ what: String, file: StaticString = #filePath,
                                           line: UInt = #line) {
        XCTAssertLessThanOrEqual(bytes.count, 1024, "\(what) is \(bytes.count) bytes long", file: file, line: line)
        XCTAssertNotNil(String(validating: bytes, as: UTF8.self), "\(what) is not valid UTF-8", file: file, line: line)
        XCTAssertFalse(bytes.contains(0), "\(what) contains a NUL byte", file: file, line: line)
    }

    /// Runs a ``Worker`` in this process with `services`, logging into the test's capture.
    private func startInProcessWorker(_ services: [String: ServiceHandler],
                                      parameters: [(String, String)] = []) async throws -> InProcessWorker {
        let settings = Worker.Configuration(connection: try configuration(parameters), name: "amqpretry faults worker")
        let worker = Worker(configuration: settings, logger: logs.logger(label: "worker"))
        for (service, handler) in services {
            try worker.register(service, handler: handler)
        }
        return try await InProcessWorker.start(worker)
    }
}

/// A ``Worker`` running in a task of the test process.
final class InProcessWorker: Sendable {
    private let worker: Worker
    private let task: Task<Void, any Error>

    private init(worker: Worker, task: Task<Void, any Error>) {
        self.worker = worker
        self.task = task
    }

    /// Starts `worker` and returns once it consumes its queues.
    static func start(_ worker: Worker) async throws -> InProcessWorker {
        let consuming = AsyncStream<Void>.makeStream()
        let task = Task {
            defer { consuming.continuation.finish() }
            try await worker.run { consuming.continuation.yield() }
        }
        for await _ in consuming.stream {
            break
        }
        return InProcessWorker(worker: worker, task: task)
    }

    /// Stops the worker and waits for ``Worker/run(onConsuming:)`` to return.
    func stop() async {
        worker.stop()
        _ = await task.result
    }
}
