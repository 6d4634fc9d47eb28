@testable import AMQPRetry
import Foundation
import XCTest

/// Protocol errors: the broker closes a channel with a reply code, the library drops that
/// connection and makes a new one, and work goes on.
final class ProtocolErrorTests: FaultTestCase {
    /// A declare with other arguments (406 PRECONDITION_FAILED) and a publish to a missing
    /// exchange (404 NOT_FOUND) on the client's connection: each call fails with the reply code
    /// within the operation timeout. The declare closes only the topology channel, which is
    /// reopened; the publish closes the publishing channel, so the client reconnects. Invocations
    /// made through it before, between and after complete.
    func testClientRecoversFromClosedChannel() async throws {
        let callback = try await makeCallbackService()
        let interval = try await makeRetryInterval(300...399)
        try await startWorker()
        let callbacks = try await collectQueue(of: callback)
        let client = try await connectClient([("operation_timeout", "5000")])
        let publisher = LoadPublisher()
        let planned = LoadMix.make(count: 180, callback: callback, intervalMilliseconds: interval, tag: runID)

        await publisher.publish(Array(planned[0..<60]), via: client)
        do {
            let conflicting = QueueDeclaration(name: TopologyNames.serviceQueue("demo.echo"),
                                               arguments: ["x-message-ttl": .int64(1000)])
            _ = try await client.engine.connection.declare([.queue(conflicting)])
            XCTFail("declaring demo.echo's queue with other arguments succeeded")
        } catch {
            XCTAssertEqual(error.replyCode, 406, "the conflicting declare failed with \(error), expected 406")
        }
        // A refused declare closes only the topology channel, which is opened anew; the
        // connection and the deliveries and confirms on its other channel carry on.
        let lostAfterDeclare = logs.records(withMessage: "connection to RabbitMQ lost").filter { $0.label == "client" }.count
        XCTAssertEqual(lostAfterDeclare, 0, "a refused declare dropped the client's connection")

        await publisher.publish(Array(planned[60..<120]), via: client)
        let start = ContinuousClock.now
        do {
            let message = OutgoingMessage(exchange: "faults.\(runID).missing", routingKey: "nowhere",
                                          properties: MessageProperties(), body: [])
            try await client.engine.connection.publish([message])
            XCTFail("publishing to a missing exchange succeeded")
        } catch {
            XCTAssertEqual(error.replyCode, 404, "the publish to a missing exchange failed with \(error), expected 404")
        }
        let elapsed = ContinuousClock.now - start
        XCTAssertLessThanOrEqual(elapsed, .seconds(6), "the failed publish returned after \(elapsed)")
        await assertReconnects(count: 1)

        await publisher.publish(Array(planned[120...]), via: client)
        let response = try await client.invokeRetry.invoke("demo.echo", Payload(json: #"{"after": "errors"}"#),
                                                           repeats: 1, seconds: 0.5, timeout: .seconds(10))
        XCTAssertEqual(try? response.json(), .object(["after": .string("errors")]), "the sync invoke's reply")
        try await assertAtLeastOnce(planned, callbacks: callbacks, publisher: publisher,
                                    extraQueues: [TopologyNames.delayQueue(milliseconds: interval)])
    }

    /// A delay queue that an operator declared with another `x-message-ttl` makes the worker's
    /// declare fail with 406 on every retry of that interval. Those invocations must end with a
    /// failure callback that names the 406, and the invocations with another interval, handled by
    /// the same worker at the same time, must not be disturbed: none is redelivered, and each
    /// ends with its planned outcome.
    func testConflictingDelayQueueHarmsOnlyItsInvocations() async throws {
        let callback = try await makeCallbackService()
        let interval = try await makeRetryInterval(300...399)
        let broken = Int64.random(in: 400...499)
        let brokenQueue = TopologyNames.delayQueue(milliseconds: broken)
        _ = try await connection.declare([
            .queue(QueueDeclaration(name: brokenQueue, arguments: ["x-message-ttl": .int64(broken + 1)])),
        ])
        deleteAtEnd(queue: brokenQueue)
        deleteAtEnd(exchange: TopologyNames.delayExchange(milliseconds: broken))
        try await startWorker()
        let callbacks = try await collectQueue(of: callback)
        let client = try await connectClient()
        let publisher = LoadPublisher()

        let planned = LoadMix.make(count: 200, callback: callback, intervalMilliseconds: interval, tag: runID)
        let options = try RetryOptions(repeats: 2, intervalMilliseconds: broken)
        let doomed = (0..<5).map { index in
            PlannedInvocation(
                invocation: Invocation(mode: .async, target: "demo.fail", options: options, callback: callback,
                                       origCID: .random(), payload: Payload(json: #"{"doomed": \#(index)}"#)),
                expectedOK: false, expectedResponse: nil, expectedAttempts: 1)
        }
        // The doomed invocations go in among the others, so that they share the worker's
        // connection with handlers in flight.
        await publisher.publish(Array(planned.prefix(100)) + doomed + Array(planned.dropFirst(100)), via: client)

        let doomedDone = await waitForCallbacks(doomed, in: callbacks, timeout: .seconds(60))
        XCTAssertTrue(doomedDone, "invocations whose retry cannot be published got no failure callback within 60 s")
        for item in doomed {
            let body = callbacks.messages(correlationID: item.cid).first
                .flatMap { try? CallbackBody.decode($0.delivery.body) }
            XCTAssertEqual(body?.ok, false, "invocation \(item.cid) with a broken delay queue did not fail")
            let error = body?.error ?? ""
            XCTAssertTrue(error.contains("406") || error.contains("PRECONDITION_FAILED"),
                          "the failure callback of \(item.cid) does not name the 406 of '\(brokenQueue)': \(error)")
        }
        let plannedCIDs = Set(planned.map(\.cid))
        let disturbed = Set(workers.flatMap { $0.redeliveredCIDs() }.filter(plannedCIDs.contains))
        XCTAssertEqual(disturbed.count, 0, "\(disturbed.count) invocations with a working delay queue were "
            + "redelivered, because the 406 of another invocation's declare closed the connection they were on")
        try await assertAtLeastOnce(planned, callbacks: callbacks, publisher: publisher,
                                    extraQueues: [TopologyNames.delayQueue(milliseconds: interval)],
                                    allowance: FaultAllowance(unknownCIDs: Set(doomed.map(\.cid))))
    }

    /// Waits until the client logged `count` lost and `count` restored connections.
    private func assertReconnects(count: Int, file: StaticString = #filePath, line: UInt = #line) async {
        let restored = await eventually(timeout: .seconds(10)) {
            self.logs.records(withMessage: "reconnected to RabbitMQ").filter { $0.label == "client" }.count >= count
        }
        let lost = logs.records(withMessage: "connection to RabbitMQ lost").filter { $0.label == "client" }.count
        XCTAssertTrue(restored, "the client did not reconnect within 10 s after the channel was closed",
                      file: file, line: line)
        XCTAssertEqual(lost, count, "the client lost its connection \(lost) times, expected \(count)",
                       file: file, line: line)
    }
}
