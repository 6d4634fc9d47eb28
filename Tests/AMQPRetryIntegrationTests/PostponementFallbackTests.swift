@testable import AMQPRetry
import XCTest

/// Redelivered invocations postponed in their service queue, because the broker rejects the
/// declaration of the 200 ms delay queue, under load, with slow handlers and across a stop.
final class PostponementFallbackTests: IntegrationTestCase {
    func testUnpostponableBurstAtConcurrency1() async throws {
        try await assertBurstRunsOnce(concurrency: 1, count: 6)
    }

    func testUnpostponableBurstAtConcurrency2() async throws {
        try await assertBurstRunsOnce(concurrency: 2, count: 8)
    }

    func testUnpostponableBurstAtConcurrency8() async throws {
        try await assertBurstRunsOnce(concurrency: 8, count: 12)
    }

    /// Publishes `count` redelivered invocations with callbacks and checks that each handler
    /// runs once, alone, and that each invocation gets one successful callback.
    private func assertBurstRunsOnce(concurrency: Int, count: Int) async throws {
        let service = try await makeService("burst")
        let callback = try await makeService("callbacks")
        try await replacePostponementQueue()
        let tracker = OverlapTracker()
        try await startWorker([service: { request in
            tracker.enter(request.cid)
            try? await Task.sleep(for: .milliseconds(200))
            tracker.leave(request.cid)
            return Payload(text: "ok")
        }], configure: { $0.concurrency = concurrency })
        let callbacks = try await readQueue(of: callback)

        let options = try RetryOptions(repeats: 1, intervalMilliseconds: 1000)
        let invocations = (0..<count).map { _ in
            Invocation(mode: .async, target: service, options: options, callback: callback, payload: Payload(text: "work"))
        }
        let start = ContinuousClock.now
        try await broker.publish(invocations.map { Self.redeliveredMessage($0) })

        let arrived = await eventually(timeout: .seconds(40)) { callbacks.messages.count >= count }
        let elapsed = (ContinuousClock.now - start).inSeconds
        let fallbackLines = logs.records(withMessage: Self.fallbackMessage).count
        print("burst concurrency=\(concurrency) count=\(count): \(callbacks.messages.count) callbacks in "
              + "\(elapsed) s, \(tracker.finishedCount) handler calls, \(fallbackLines) fallback log lines")
        XCTAssertTrue(arrived, "\(callbacks.messages.count) of \(count) callbacks arrived within 40 s, "
                      + "\(tracker.finishedCount) handler calls finished")
        try? await Task.sleep(for: .milliseconds(500))
        XCTAssertEqual(callbacks.messages.count, count, "an invocation got more than one callback")
        let bodies = callbacks.messages.compactMap { try? CallbackBody.decode($0.delivery.body) }
        XCTAssertEqual(bodies.filter(\.ok).count, count, "callbacks: \(bodies.map { $0.error ?? "ok" })")
        for invocation in invocations {
            XCTAssertEqual(tracker.calls(of: invocation.cid.rawValue), 1, "\(invocation.cid) ran other than once")
        }
        XCTAssertEqual(tracker.maximumRunning, 1, "redelivered invocations ran at the same time")
    }

    /// While one redelivered handler runs for 3 s, 4 other redelivered invocations wait in the
    /// worker and the service queue, and each runs once after it.
    func testSlowRedeliveredHandlerLetsOthersRun() async throws {
        let service = try await makeService("slow")
        let callback = try await makeService("callbacks")
        try await replacePostponementQueue()
        let tracker = OverlapTracker()
        try await startWorker([service: { request in
            tracker.enter(request.cid)
            let slow = request.payload.text == "slow"
            try? await Task.sleep(for: .milliseconds(slow ? 3000 : 100))
            tracker.leave(request.cid)
            return Payload(text: "ok")
        }], configure: { $0.concurrency = 8 })
        let callbacks = try await readQueue(of: callback)

        let options = try RetryOptions(repeats: 1, intervalMilliseconds: 1000)
        let slow = Invocation(mode: .async, target: service, options: options, callback: callback,
                              payload: Payload(text: "slow"))
        let quick = (0..<4).map { _ in
            Invocation(mode: .async, target: service, options: options, callback: callback, payload: Payload(text: "quick"))
        }
        let start = ContinuousClock.now
        try await broker.publish([Self.redeliveredMessage(slow)])
        let slowStarted = await eventually(timeout: .seconds(5)) { tracker.calls(of: slow.cid.rawValue) == 1 }
        XCTAssertTrue(slowStarted, "the slow invocation did not start within 5 s")
        try await broker.publish(quick.map { Self.redeliveredMessage($0) })

        let arrived = await eventually(timeout: .seconds(30)) { callbacks.messages.count >= 5 }
        let elapsed = (ContinuousClock.now - start).inSeconds
        XCTAssertTrue(arrived, "\(callbacks.messages.count) of 5 callbacks arrived within 30 s")
        for invocation in [slow] + quick {
            XCTAssertEqual(tracker.calls(of: invocation.cid.rawValue), 1, "\(invocation.cid) ran other than once")
        }
        XCTAssertEqual(tracker.maximumRunning, 1, "redelivered invocations ran at the same time")
        // One rejected declaration, and one error line, per 5 s of postponements.
        let fallbackLines = logs.records(withMessage: Self.fallbackMessage).count
        XCTAssertLessThanOrEqual(fallbackLines, 2, "\(fallbackLines) fallback errors in \(elapsed) s")
        print("slow handler: all 5 callbacks in \(elapsed) s, \(fallbackLines) fallback errors")
    }

    /// `Worker.stop()` while an invocation waits for its postponement in the service queue
    /// leaves exactly one copy of it in the broker, with its redelivery count and without the
    /// dead-lettering headers.
    func testStopDuringPostponementKeepsOneCopy() async throws {
        let service = try await makeService("stopping")
        let callback = try await makeService("callbacks")
        try await replacePostponementQueue()
        let tracker = OverlapTracker()
        let handler: ServiceHandler = { request in
            tracker.enter(request.cid)
            try? await Task.sleep(for: .milliseconds(request.payload.text == "slow" ? 1500 : 50))
            tracker.leave(request.cid)
            return Payload(text: "ok")
        }
        let first = try await startWorker([service: handler], configure: { $0.concurrency = 2 })
        let callbacks = try await readQueue(of: callback)

        let options = try RetryOptions(repeats: 1, intervalMilliseconds: 1000)
        let slow = Invocation(mode: .async, target: service, options: options, callback: callback,
                              payload: Payload(text: "slow"))
        let waiting = Invocation(mode: .async, target: service, options: options, callback: callback,
                                 payload: Payload(text: "waiting"))
        try await broker.publish([Self.redeliveredMessage(slow)])
        let slowStarted = await eventually(timeout: .seconds(5)) { tracker.calls(of: slow.cid.rawValue) == 1 }
        XCTAssertTrue(slowStarted, "the slow invocation did not start within 5 s")

        var message = Self.redeliveredMessage(waiting, redeliveries: 2)
        message.properties.headers["x-death"] = .array([.table(["queue": .text("amqpretry.delay.200ms"),
                                                                "reason": .text("expired"), "count": .int64(1)])])
        message.properties.headers["x-first-death-queue"] = .text("amqpretry.delay.200ms")
        message.properties.headers["x-last-death-reason"] = .text("expired")
        message.properties.headers["app-header"] = .text("kept")
        try await broker.publish([message])
        let postponed = await eventually(timeout: .seconds(5)) {
            !self.logs.records(withMessage: Self.fallbackMessage).isEmpty
        }
        XCTAssertTrue(postponed, "no invocation was postponed in its service queue within 5 s")
        await stopWorker(first)

        XCTAssertEqual(tracker.calls(of: waiting.cid.rawValue), 0, "the waiting invocation ran before the stop")
        let serviceQueue = TopologyNames.serviceQueue(service)
        let ready = try await broker.readyMessageCount(serviceQueue)
        XCTAssertEqual(ready, 1, "the service queue holds \(ready) messages after the stop, expected the waiting one")

        let reader = try await readQueue(of: service)
        let read = await eventually(timeout: .seconds(5)) { !reader.messages.isEmpty }
        XCTAssertTrue(read, "the waiting invocation is not in its service queue")
        if let copy = reader.messages.first?.delivery.properties {
            XCTAssertEqual(copy.correlationID, waiting.cid.rawValue)
            XCTAssertEqual(copy.headers[WireHeader.redeliveries]?.integerValue, 2, "the redelivery count changed")
            XCTAssertNil(copy.headers["x-death"], "x-death was kept")
            XCTAssertNil(copy.headers["x-first-death-queue"], "x-first-death-queue was kept")
            XCTAssertNil(copy.headers["x-last-death-reason"], "x-last-death-reason was kept")
            XCTAssertEqual(copy.headers["app-header"]?.textValue, "kept", "an application header was lost")
            XCTAssertNil(copy.expiration, "the copy has an expiration")
            XCTAssertEqual(copy.deliveryMode, 2, "the copy is not persistent")
        }
        XCTAssertEqual(reader.messages.count, 1, "the service queue held more than one copy")

        let arrived = await eventually(timeout: .seconds(10)) { callbacks.messages.count >= 1 }
        XCTAssertTrue(arrived, "the slow invocation got no callback")
        XCTAssertEqual(callbacks.messages.map(\.correlationID), [slow.cid.rawValue])
    }

    /// A callback queue that the broker rejects parks each of many invocations exactly once,
    /// and leaves sync calls and callback-mode invocations of the same worker unaffected.
    func testRejectedCallbackQueueParksEachOnce() async throws {
        let service = try await makeService("refused")
        let receiver = try await makeService("receiver")
        let callback = "itest.\(runID).refused-callbacks"
        let callbackQueue = TopologyNames.serviceQueue(callback)
        _ = try await broker.declare([.queue(QueueDeclaration(name: callbackQueue,
                                                              arguments: ["x-max-length": .int64(5)]))])
        let broker = try broker
        addTeardownBlock { try? await broker.deleteQueue(callbackQueue) }
        let tracker = OverlapTracker()
        let received = CallRecorder()
        try await startWorker([
            service: { request in
                tracker.enter(request.cid)
                tracker.leave(request.cid)
                if request.payload.text == "fail" {
                    throw HandlerFailure(description: "fails")
                }
                return Payload(text: "ok")
            },
            receiver: { request in
                received.record(request)
                return Payload(text: "received")
            },
        ], configure: { $0.concurrency = 8 })
        let parked = try await readParkedMessages(of: service)

        let interval = try await makeRetryInterval()
        let options = try RetryOptions(repeats: 1, intervalMilliseconds: Int64(interval * 1000))
        let invocations = (0..<12).map { index in
            Invocation(mode: .async, target: service, options: options, callback: callback,
                       payload: Payload(text: index.isMultiple(of: 2) ? "fail" : "succeed"))
        }
        try await broker.publish(invocations.map { invocation in
            OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(service), mandatory: true,
                            properties: invocation.messageProperties(), body: invocation.payload.bytes)
        })
        let client = try await connectClient()
        let response = try await client.invokeRetry.invoke(service, Payload(text: "sync"), repeats: 1, seconds: 0.5,
                                                           timeout: .seconds(5))
        XCTAssertEqual(response.text, "ok", "the sync call failed")
        let callbackMode = Invocation(mode: .callback, target: receiver, payload: Payload(text: "{}"))
        try await broker.publish([OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(receiver),
                                                  mandatory: true, properties: callbackMode.messageProperties(),
                                                  body: callbackMode.payload.bytes)])

        let allParked = await eventually(timeout: .seconds(15)) { parked.messages.count >= invocations.count }
        XCTAssertTrue(allParked, "\(parked.messages.count) of \(invocations.count) invocations were parked")
        try? await Task.sleep(for: .seconds(1))
        XCTAssertEqual(parked.messages.count, invocations.count, "an invocation was parked more than once")
        for invocation in invocations {
            let copies = parked.messages(correlationID: invocation.cid.rawValue)
            XCTAssertEqual(copies.count, 1, "\(invocation.cid) was parked \(copies.count) times")
            let reason = copies.first?.header(WireHeader.parkedReason) ?? ""
            XCTAssertTrue(reason.contains("failure callback to '\(callback)' failed"), "parked reason: \(reason)")
            let expectedCalls = invocation.payload.text == "fail" ? 2 : 1
            XCTAssertEqual(tracker.calls(of: invocation.cid.rawValue), expectedCalls,
                           "\(invocation.cid) ran other than \(expectedCalls) times")
        }
        XCTAssertEqual(received.count, 1, "the callback-mode invocation ran other than once")
    }

    private static let fallbackMessage = "declaring the delay queue for a postponement failed; postponing in the service queue"
}
