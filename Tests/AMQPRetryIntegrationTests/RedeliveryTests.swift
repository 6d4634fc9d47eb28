@testable import AMQPRetry
import XCTest

/// A worker runs the invocations that carry a redelivery count one at a time, and keeps none of
/// them unacknowledged while another runs, so that a crash during one handler cannot count
/// against the others.
final class RedeliveryTests: IntegrationTestCase {
    func testRedeliveredInvocationsRunOneAtATime() async throws {
        let service = try await makeService("redelivered")
        let tracker = OverlapTracker()
        try await startWorker([service: { request in
            tracker.enter(request.cid)
            try? await Task.sleep(for: .milliseconds(100))
            tracker.leave(request.cid)
            return Payload(text: "ok")
        }], configure: { $0.concurrency = 4 })

        // The handler never fails, so the retry options only make the messages valid.
        let options = try RetryOptions(repeats: 1, intervalMilliseconds: 1000)
        let invocations = (0..<16).map { _ in
            Invocation(mode: .async, target: service, options: options, payload: Payload(text: "work"))
        }
        // Adjacent, so that the prefetch of 4 delivers them together.
        let redelivered = Set(invocations[4..<8].map(\.cid.rawValue))
        tracker.markRedelivered(redelivered)
        let messages = invocations.map { invocation in
            var properties = invocation.messageProperties()
            // At the default limit of 3, so that one more redelivery by the broker would park it.
            if redelivered.contains(invocation.cid.rawValue) {
                properties.headers[WireHeader.redeliveries] = .int64(3)
            }
            return OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(service), mandatory: true,
                                   properties: properties, body: invocation.payload.bytes)
        }
        try await broker.publish(messages)

        let finished = await eventually(timeout: .seconds(20)) { tracker.finishedCount >= invocations.count }
        XCTAssertTrue(finished, "\(tracker.finishedCount) of \(invocations.count) handler calls finished within 20 s")
        for cid in redelivered {
            XCTAssertEqual(tracker.calls(of: cid), 1, "the redelivered invocation \(cid) ran other than once")
        }
        XCTAssertEqual(tracker.maximumRedeliveredRunning, 1, "redelivered invocations ran at the same time")
        XCTAssertGreaterThan(tracker.maximumRunning, 1, "no handlers ever ran at the same time")
        try? await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(tracker.finishedCount, invocations.count, "a handler ran more often than once per invocation")
    }

    func testRedeliveredHandlerInvokesOwnWorker() async throws {
        let inner = try await makeService("inner")
        let outer = try await makeService("outer")
        let callback = try await makeService("callbacks")
        let interval = try await makeRetryInterval()
        let innerCalls = CallRecorder()
        try await startWorker([
            inner: { request in
                innerCalls.record(request)
                return Payload(text: "inner ok")
            },
            outer: { request in
                try await request.patterns.invokeRetry.invoke(inner, .empty, repeats: 1, seconds: 0.5,
                                                              timeout: .seconds(3))
            },
        ])
        let callbacks = try await readQueue(of: callback)

        let options = try RetryOptions(repeats: 1, intervalMilliseconds: Int64(interval * 1000))
        let invocation = Invocation(mode: .async, target: outer, options: options, callback: callback,
                                    payload: Payload(text: "outer"))
        var properties = invocation.messageProperties()
        properties.headers[WireHeader.redeliveries] = .int64(1)
        try await broker.publish([OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(outer),
                                                  mandatory: true, properties: properties,
                                                  body: invocation.payload.bytes)])

        let arrived = await eventually { !callbacks.messages(correlationID: invocation.cid.rawValue).isEmpty }
        XCTAssertTrue(arrived, "the redelivered invocation got no callback within 10 s")
        let body = callbacks.messages(correlationID: invocation.cid.rawValue).first
            .flatMap { try? CallbackBody.decode($0.delivery.body) }
        XCTAssertEqual(body?.ok, true, "the callback is not a success (error: \(body?.error ?? "none"))")
        XCTAssertEqual(body?.attempts, 1, "the redelivered invocation needed more than one attempt")
        XCTAssertEqual(innerCalls.count, 1, "the inner service ran other than once")
    }

    /// A redelivered invocation that arrives while another runs, when the 200 ms delay queue
    /// exists with other arguments, goes back to the end of its service queue and runs later.
    func testUnpostponableInvocationRunsLater() async throws {
        let service = try await makeService("unpostponable")
        let callback = try await makeService("callbacks")
        try await replacePostponementQueue()
        let tracker = OverlapTracker()
        try await startWorker([service: { request in
            tracker.enter(request.cid)
            try? await Task.sleep(for: .milliseconds(500))
            tracker.leave(request.cid)
            return Payload(text: "ok")
        }], configure: { $0.concurrency = 2 })
        let callbacks = try await readQueue(of: callback)

        let options = try RetryOptions(repeats: 1, intervalMilliseconds: 1000)
        let invocations = (0..<2).map { _ in
            Invocation(mode: .async, target: service, options: options, callback: callback, payload: Payload(text: "work"))
        }
        try await broker.publish(invocations.map { Self.redeliveredMessage($0) })

        let arrived = await eventually(timeout: .seconds(10)) { callbacks.messages.count >= 2 }
        XCTAssertTrue(arrived, "\(callbacks.messages.count) of 2 callbacks arrived within 10 s")
        let bodies = callbacks.messages.compactMap { try? CallbackBody.decode($0.delivery.body) }
        XCTAssertEqual(bodies.filter(\.ok).count, 2, "callbacks: \(bodies.map { $0.error ?? "ok" })")
        for invocation in invocations {
            XCTAssertEqual(tracker.calls(of: invocation.cid.rawValue), 1, "\(invocation.cid) ran other than once")
        }
        XCTAssertEqual(tracker.maximumRunning, 1, "the two redelivered invocations ran at the same time")
        let postponed = logs.records(withMessage: "declaring the delay queue for a postponement failed; "
            + "postponing in the service queue")
        XCTAssertFalse(postponed.isEmpty, "no invocation was postponed in its service queue")
    }

    /// An invocation whose failure callback the broker rejects, because the callback queue
    /// exists with other arguments, is parked once with a reason that names the callback.
    func testRejectedCallbackQueueParksInvocation() async throws {
        let service = try await makeService("refused-callback")
        let callback = "itest.\(runID).refused"
        let callbackQueue = TopologyNames.serviceQueue(callback)
        _ = try await broker.declare([.queue(QueueDeclaration(name: callbackQueue, arguments: ["x-max-length": .int64(5)]))])
        let broker = try broker
        addTeardownBlock { try? await broker.deleteQueue(callbackQueue) }
        let calls = CallRecorder()
        try await startWorker([service: { request in
            calls.record(request)
            throw HandlerFailure(description: "fails")
        }])
        let parked = try await readParkedMessages(of: service)

        let interval = try await makeRetryInterval()
        let options = try RetryOptions(repeats: 1, intervalMilliseconds: Int64(interval * 1000))
        let invocation = Invocation(mode: .async, target: service, options: options, callback: callback,
                                    payload: Payload(text: "work"))
        try await broker.publish([OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(service),
                                                  mandatory: true, properties: invocation.messageProperties(),
                                                  body: invocation.payload.bytes)])

        let arrived = await eventually(timeout: .seconds(10)) { !parked.messages.isEmpty }
        XCTAssertTrue(arrived, "the invocation was not parked within 10 s; handler calls: \(calls.count)")
        let reason = parked.messages.first?.header(WireHeader.parkedReason) ?? ""
        XCTAssertTrue(reason.contains("failure callback to '\(callback)' failed"), "parked reason: \(reason)")
        try? await Task.sleep(for: .seconds(1))
        XCTAssertEqual(parked.messages.count, 1, "the invocation was parked more than once")
    }
}

/// Records how many handler calls, and how many calls of redelivered invocations, ran at once.
final class OverlapTracker: Sendable {
    private struct State {
        var redelivered: Set<String> = []
        var running: Set<String> = []
        var callCounts: [String: Int] = [:]
        var finished = 0
        var maximumRunning = 0
        var maximumRedeliveredRunning = 0
    }

    private let state = Locked(State())

    func markRedelivered(_ cids: Set<String>) {
        state.withLock { $0.redelivered = cids }
    }

    func enter(_ cid: CID) {
        state.withLock { state in
            state.running.insert(cid.rawValue)
            state.callCounts[cid.rawValue, default: 0] += 1
            state.maximumRunning = max(state.maximumRunning, state.running.count)
            let redeliveredRunning = state.running.intersection(state.redelivered).count
            state.maximumRedeliveredRunning = max(state.maximumRedeliveredRunning, redeliveredRunning)
        }
    }

    func leave(_ cid: CID) {
        state.withLock { state in
            state.running.remove(cid.rawValue)
            state.finished += 1
        }
    }

    func calls(of cid: String) -> Int {
        state.withLock { $0.callCounts[cid] ?? 0 }
    }

    var finishedCount: Int {
        state.withLock { $0.finished }
    }

    var maximumRunning: Int {
        state.withLock { $0.maximumRunning }
    }

    var maximumRedeliveredRunning: Int {
        state.withLock { $0.maximumRedeliveredRunning }
    }
}
