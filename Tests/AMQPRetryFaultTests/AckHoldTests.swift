@testable import AMQPRetry
import Foundation
import XCTest

/// In-process workers against the private broker. The tests aim at the acks that the consumer
/// connection holds for up to 20 ms while lower tags wait for their publisher confirms. They
/// also aim at the read loop, which ends a turn when librabbitmq has nothing buffered.
///
/// Each test counts handler calls per CID in the test process, so that a duplicate call or a
/// lost invocation shows directly.
final class AckHoldTests: FaultTestCase {
    // MARK: Graceful stop

    /// A worker stopped with ``Worker/stop()`` in the middle of 1,000 invocations (a mix of
    /// callbacks, plain acks and 2 s handlers) leaves every invocation it called acked and every
    /// other one in the queue. A second worker then calls each remaining invocation once, so no
    /// CID is called twice and no callback arrives twice.
    func testGracefulStopRepeatsAndLosesNothing() async throws {
        let service = try await makeService("stop")
        let callback = try await makeCallbackService()
        let callbacks = try await collectQueue(of: callback)
        let calls = HandlerCalls()

        let invocations = try makeInvocations(service: service, count: 1000) { index in
            (slow: index % 20 == 7, callback: index % 5 == 0 ? nil : callback)
        }
        try await publish(invocations)
        let withCallback = invocations.filter { $0.callback != nil }.count

        let first = try await startHeldAckWorker(service: service, calls: calls, concurrency: 64)
        let started = await waitUntil(timeout: .seconds(30)) { calls.distinctCount >= 300 }
        XCTAssertTrue(started, "only \(calls.distinctCount) invocations were called within 30 s")
        let stopped = await first.stop(timeout: .seconds(40))
        XCTAssertTrue(stopped, "the first worker's run() did not return within 40 s of stop()")
        let calledByFirst = calls.distinctCount

        let queue = TopologyNames.serviceQueue(service)
        let counts = try await queueCounts(queue)
        XCTAssertEqual(counts.unacknowledged, 0, "\(counts.unacknowledged) messages are unacknowledged after stop")
        XCTAssertEqual(counts.ready + calledByFirst, invocations.count,
                       "after a graceful stop \(counts.ready) messages are ready and \(calledByFirst) were called: "
                           + "a called invocation was not acked, or an uncalled one was lost")

        let second = try await startHeldAckWorker(service: service, calls: calls, concurrency: 64)
        let finished = await waitUntil(timeout: .seconds(90)) {
            calls.distinctCount >= invocations.count && Set(callbacks.messages.compactMap(\.correlationID)).count >= withCallback
        }
        XCTAssertTrue(finished, "\(calls.distinctCount) of \(invocations.count) invocations were called within 90 s")
        try await Task.sleep(for: .seconds(2))
        _ = await second.stop(timeout: .seconds(40))

        let repeated = calls.counts.filter { $0.value > 1 }
        XCTAssertEqual(repeated.count, 0, "invocations called more than once after a graceful stop: "
            + "\(repeated.prefix(5))")
        let callbackCounts = Dictionary(grouping: callbacks.messages.compactMap(\.correlationID), by: { $0 })
            .mapValues(\.count)
        let repeatedCallbacks = callbackCounts.filter { $0.value > 1 }
        XCTAssertEqual(repeatedCallbacks.count, 0, "duplicate callbacks: \(repeatedCallbacks.prefix(5))")
        let lost = invocations.filter { calls.count(of: $0.cid.rawValue) == 0 }
        XCTAssertEqual(lost.count, 0, "invocations never called: \(lost.prefix(5).map(\.cid.rawValue))")
        let remaining = try await queueCounts(queue)
        XCTAssertEqual(remaining.ready + remaining.unacknowledged, 0, "messages left in \(queue): \(remaining)")
        print("graceful stop: first worker called \(calledByFirst), \(counts.ready) were left in the queue")
    }

    // MARK: Slow and fast handlers

    /// With a concurrency of 64, 20 handlers that take 10 s hold 20 unacknowledged deliveries
    /// among 2,000 fast ones with callbacks. The fast ones' acks must not wait for the slow
    /// ones, so every fast invocation ends before the first slow one returns.
    func testSlowHandlersLeaveFastAcksFlowing() async throws {
        let service = try await makeService("mixed")
        let callback = try await makeCallbackService()
        let callbacks = try await collectQueue(of: callback)
        let calls = HandlerCalls()

        let invocations = try makeInvocations(service: service, count: 2000, slowSeconds: 10) { index in
            (slow: index % 100 == 3, callback: callback)
        }
        try await publish(invocations)
        let fast = invocations.filter { !($0.payload.text ?? "").hasPrefix("slow") }

        let start = ContinuousClock.now
        let worker = try await startHeldAckWorker(service: service, calls: calls, concurrency: 64)
        var unacknowledgedSamples: [Int] = []
        for _ in 0..<4 {
            let counts = try await queueCounts(TopologyNames.serviceQueue(service))
            unacknowledgedSamples.append(counts.unacknowledged)
            if fast.allSatisfy({ calls.count(of: $0.cid.rawValue) > 0 }) { break }
        }
        let fastDone = await waitUntil(timeout: .seconds(9)) {
            Set(callbacks.messages.compactMap(\.correlationID)).count >= fast.count
        }
        let elapsed = ContinuousClock.now - start
        XCTAssertTrue(fastDone, "only \(Set(callbacks.messages.compactMap(\.correlationID)).count) of "
            + "\(fast.count) fast invocations had a callback \(elapsed) after start, while 10 s handlers ran")
        print("slow and fast handlers: \(fast.count) fast callbacks after \(elapsed); "
            + "messages_unacknowledged samples \(unacknowledgedSamples)")

        let allDone = await waitUntil(timeout: .seconds(30)) {
            Set(callbacks.messages.compactMap(\.correlationID)).count >= invocations.count
        }
        XCTAssertTrue(allDone, "not every invocation had a callback within 30 s more")
        _ = await worker.stop(timeout: .seconds(40))
        let repeated = calls.counts.filter { $0.value > 1 }
        XCTAssertEqual(repeated.count, 0, "invocations called more than once: \(repeated.prefix(5))")
    }

    // MARK: Memory alarm

    /// A memory alarm for 4 s stalls the confirms of replacements while acks wait for them.
    /// During the alarm no invocation may be acked before its callback is confirmed, and after
    /// it every invocation ends with a callback and leaves nothing in its queue.
    func testMemoryAlarmWhileAcksWait() async throws {
        let parameters = [("operation_timeout", "3000")]
        let service = try await makeService("alarm")
        let callback = try await makeCallbackService()
        let callbacks = try await collectQueue(of: callback)
        let calls = HandlerCalls()

        let invocations = try makeInvocations(service: service, count: 3000) { _ in
            (slow: false, callback: callback)
        }
        try await publish(invocations)

        let worker = try await startHeldAckWorker(service: service, calls: calls, concurrency: 16,
                                                    parameters: parameters, fastMilliseconds: 20...40)
        let running = await waitUntil(timeout: .seconds(20)) { calls.distinctCount >= 300 }
        XCTAssertTrue(running, "only \(calls.distinctCount) invocations were called within 20 s")
        try await raiseMemoryAlarm()
        let queue = TopologyNames.serviceQueue(service)
        for _ in 0..<3 {
            let counts = try await queueCounts(queue)
            let finished = Set(callbacks.messages.compactMap(\.correlationID)).count
            let callbackQueue = try await queueCounts(callbacks.queue)
            let accounted = counts.ready + counts.unacknowledged + finished + callbackQueue.ready
                + callbackQueue.unacknowledged
            XCTAssertGreaterThanOrEqual(accounted, invocations.count, "during the alarm only \(accounted) of "
                + "\(invocations.count) invocations are in a queue or finished")
        }
        let callsDuringAlarm = calls.distinctCount
        let callbacksDuringAlarm = Set(callbacks.messages.compactMap(\.correlationID)).count
        XCTAssertLessThan(callbacksDuringAlarm, invocations.count, "every callback arrived before the alarm ended, "
            + "so the alarm hit nothing")
        let blocked = logs.records(withMessage: "RabbitMQ blocked publishing on this connection")
        XCTAssertFalse(blocked.isEmpty, "no connection logged that the broker blocked it")
        try await clearMemoryAlarm()

        let finished = await waitUntil(timeout: .seconds(90)) {
            Set(callbacks.messages.compactMap(\.correlationID)).count >= invocations.count
        }
        let received = Set(callbacks.messages.compactMap(\.correlationID))
        XCTAssertTrue(finished, "\(received.count) of \(invocations.count) invocations had a callback within 90 s")
        let remaining = try await waitUntilDrained(queue)
        XCTAssertEqual(remaining.ready + remaining.unacknowledged, 0, "messages left in \(queue): \(remaining)")
        _ = await worker.stop(timeout: .seconds(40))
        let repeatedCalls = calls.counts.filter { $0.value > 1 }.count
        print("memory alarm: \(callsDuringAlarm) called and \(callbacksDuringAlarm) callbacks when the alarm ended; "
            + "\(repeatedCalls) invocations were called more than once, "
            + "\(callbacks.messages.count - received.count) duplicate callbacks")
    }

    // MARK: Heartbeats

    /// An idle worker and an idle client with `heartbeat=2` keep their connections for 15 s,
    /// then a stalled broker (SIGSTOP) is detected through the missed heartbeats, and after
    /// SIGCONT the worker reconnects and calls a new invocation.
    func testHeartbeatsOnIdleConnections() async throws {
        let parameters = [("heartbeat", "2")]
        let service = try await makeService("idle")
        let calls = HandlerCalls()
        let worker = try await startHeldAckWorker(service: service, calls: calls, concurrency: 8,
                                                    parameters: parameters)
        _ = try await connectClient(parameters)

        try await Task.sleep(for: .seconds(15))
        let lostWhileIdle = logs.records(withMessage: "connection to RabbitMQ lost")
        XCTAssertEqual(lostWhileIdle.count, 0, "idle connections were lost: \(lostWhileIdle.map(\.metadata))")
        let connectionNames = try await broker.run(["list_connections", "--quiet", "--no-table-headers", "name"])
        print("connections after 15 s idle:\n\(connectionNames)")

        let pid = try await broker.virtualMachinePID()
        stallBroker(pid)
        let stallStart = ContinuousClock.now
        let detected = await waitUntil(timeout: .seconds(15)) {
            !self.logs.records(withMessage: "connection to RabbitMQ lost").isEmpty
        }
        let detectedAfter = ContinuousClock.now - stallStart
        resumeBroker()
        XCTAssertTrue(detected, "no connection noticed the stalled broker within 15 s with heartbeat=2")
        print("stalled broker detected after \(detectedAfter)")

        let invocation = try makeInvocations(service: service, count: 1) { _ in (slow: false, callback: nil) }
        let published = await waitUntil(timeout: .seconds(30)) {
            (try? await self.publish(invocation)) != nil
        }
        XCTAssertTrue(published, "publishing after SIGCONT failed for 30 s")
        let called = await waitUntil(timeout: .seconds(30)) { calls.distinctCount >= 1 }
        XCTAssertTrue(called, "the worker did not call an invocation within 30 s after the broker resumed")
        _ = await worker.stop(timeout: .seconds(20))
    }

    // MARK: Quorum queues

    /// With `queue_type=quorum`, closing every connection twice while 2,000 invocations with
    /// callbacks run makes the broker redeliver what was unacked. Every invocation still ends
    /// with a callback, and nothing stays in the service queue.
    func testQuorumQueueRedeliveries() async throws {
        let parameters = [("queue_type", "quorum")]
        let service = "faults.\(runID).quorum"
        let callback = "faults.\(runID).quorumcallbacks"
        // The fault tests keep a classic parking queue, and earlier tests may leave a classic
        // 200 ms delay queue from postponed redeliveries. A quorum worker cannot declare either,
        // and would park the invocations it postpones instead.
        try await connection.deleteQueue(TopologyNames.parkingQueue)
        try await connection.deleteQueue(TopologyNames.delayQueue(milliseconds: WorkerSession.postponeMilliseconds))
        _ = try await connection.declare(Topology.service(service, type: .quorum)
            + Topology.service(callback, type: .quorum))
        deleteAtEnd(queue: TopologyNames.serviceQueue(service))
        deleteAtEnd(queue: TopologyNames.serviceQueue(callback))
        let callbacks = try await QueueCollector.start(
            queue: TopologyNames.serviceQueue(callback), topology: Topology.service(callback, type: .quorum),
            configuration: try configuration(parameters), logger: logs.logger(label: "quorum callbacks"))
        let calls = HandlerCalls()

        let invocations = try makeInvocations(service: service, count: 2000) { _ in (slow: false, callback: callback) }
        try await publish(invocations)
        let worker = try await startHeldAckWorker(service: service, calls: calls, concurrency: 64,
                                                    parameters: parameters, fastMilliseconds: 50...150)
        for round in 1...2 {
            _ = await waitUntil(timeout: .seconds(10)) { calls.distinctCount >= 400 * round }
            try await broker.closeAllConnections("test closes every connection")
            try await Task.sleep(for: .milliseconds(700))
        }

        let finished = await waitUntil(timeout: .seconds(90)) {
            Set(callbacks.messages.compactMap(\.correlationID)).count >= invocations.count
        }
        let received = Set(callbacks.messages.compactMap(\.correlationID))
        XCTAssertTrue(finished, "\(received.count) of \(invocations.count) quorum invocations had a callback "
            + "within 90 s")
        let remaining = try await waitUntilDrained(TopologyNames.serviceQueue(service))
        XCTAssertEqual(remaining.ready + remaining.unacknowledged, 0, "messages left in the quorum queue: \(remaining)")
        _ = await worker.stop(timeout: .seconds(40))
        await callbacks.close()
        let repeatedCalls = calls.counts.filter { $0.value > 1 }.count
        let redelivered = logs.records(withMessage: "an invocation was redelivered; requeueing it with its count")
        XCTAssertFalse(redelivered.isEmpty, "no invocation was redelivered, so the closed connections hit nothing")
        print("quorum: \(redelivered.count) redeliveries, \(repeatedCalls) invocations called more than once, "
            + "\(callbacks.messages.count - received.count) duplicate callbacks")
        // A postponed redelivery declared the 200 ms delay queue as a quorum queue, which
        // workers of classic queues in later tests could not declare.
        try await connection.deleteQueue(TopologyNames.delayQueue(milliseconds: WorkerSession.postponeMilliseconds))
        try await connection.deleteQueue(TopologyNames.parkingQueue)
    }

    // MARK: Helpers

    private func makeInvocations(
        service: String, count: Int, slowSeconds: Double = 2,
        _ shape: (Int) -> (slow: Bool, callback: String?)
    ) throws -> [Invocation] {
        let options = try RetryOptions(repeats: 1, intervalMilliseconds: 1000)
        return (0..<count).map { index in
            let (slow, callback) = shape(index)
            let text = slow ? "slow \(slowSeconds)" : "fast \(index)"
            return Invocation(mode: .async, target: service, options: options, callback: callback,
                              payload: Payload(text: text))
        }
    }

    private func publish(_ invocations: [Invocation]) async throws {
        let messages = invocations.map { invocation in
            OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(invocation.target), mandatory: true,
                            properties: invocation.messageProperties(), body: invocation.payload.bytes)
        }
        for start in stride(from: 0, to: messages.count, by: 100) {
            try await connection.publish(Array(messages[start..<min(start + 100, messages.count)]))
        }
    }

    private func startHeldAckWorker(service: String, calls: HandlerCalls, concurrency: Int,
                                      parameters: [(String, String)] = [],
                                      fastMilliseconds: ClosedRange<Int> = 0...5) async throws -> HeldAckWorker {
        var configuration = Worker.Configuration(connection: try configuration(parameters), concurrency: concurrency,
                                                 name: "amqpretry faults \(runID) worker")
        configuration.drainTimeout = .seconds(30)
        let worker = Worker(configuration: configuration, logger: logs.logger(label: "worker"))
        try worker.register(service) { request in
            calls.record(request.cid.rawValue)
            let text = request.payload.text ?? ""
            if text.hasPrefix("slow "), let seconds = Double(text.dropFirst(5)) {
                try? await Task.sleep(for: .seconds(seconds))
            } else {
                try? await Task.sleep(for: .milliseconds(Int.random(in: fastMilliseconds)))
            }
            return Payload(text: "ok")
        }
        let running = HeldAckWorker(worker)
        let consuming = await running.waitUntilConsuming(timeout: .seconds(20))
        guard consuming else {
            throw FaultEnvironment.SetupError(description: "the in-process worker did not consume within 20 s")
        }
        return running
    }

    private func queueCounts(_ queue: String) async throws -> (ready: Int, unacknowledged: Int) {
        let output = try await broker.run(["list_queues", "--quiet", "--no-table-headers", "name", "messages_ready",
                                           "messages_unacknowledged"])
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: "\t")
            if fields.count == 3, fields[0] == queue, let ready = Int(fields[1]), let unacked = Int(fields[2]) {
                return (ready, unacked)
            }
        }
        throw FaultEnvironment.SetupError(description: "queue \(queue) not found in list_queues: \(output)")
    }

    /// Checks `condition` every 100 ms, at most 1,000 times and until `timeout` passes.
    /// Waits up to 30 s for `queue` to hold no ready or unacknowledged message, and returns its
    /// last counts. Copies republished for redeliveries may still be in flight after the last
    /// callback: each runs alone, and one that arrives while another runs goes through the
    /// 200 ms delay queue first.
    private func waitUntilDrained(_ queue: String) async throws -> (ready: Int, unacknowledged: Int) {
        let start = ContinuousClock.now
        var remaining = try await queueCounts(queue)
        _ = await waitUntil(timeout: .seconds(30)) {
            remaining = (try? await queueCounts(queue)) ?? remaining
            return remaining.ready + remaining.unacknowledged == 0
        }
        print("\(queue) drained after \(ContinuousClock.now - start), left: \(remaining)")
        return remaining
    }

    private func waitUntil(timeout: Duration, _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        for _ in 0..<1000 {
            if await condition() { return true }
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return await condition()
    }
}

/// Handler calls per CID.
private final class HandlerCalls: Sendable {
    private let calls = Locked<[String: Int]>([:])

    func record(_ cid: String) {
        calls.withLock { $0[cid, default: 0] += 1 }
    }

    func count(of cid: String) -> Int {
        calls.withLock { $0[cid] ?? 0 }
    }

    var counts: [String: Int] {
        calls.withLock { $0 }
    }

    var distinctCount: Int {
        calls.withLock { $0.count }
    }
}

/// A ``Worker`` whose `run()` runs in a task of the test process.
private final class HeldAckWorker: Sendable {
    let worker: Worker
    private let state = Locked<(consuming: Bool, ended: Bool)>((false, false))

    init(_ worker: Worker) {
        self.worker = worker
        Task { [state] in
            try? await worker.run(onConsuming: { state.withLock { $0.consuming = true } })
            state.withLock { $0.ended = true }
        }
    }

    func waitUntilConsuming(timeout: Duration) async -> Bool {
        await poll(timeout: timeout) { $0.consuming }
    }

    /// Calls ``Worker/stop()`` and waits up to `timeout` for `run()` to return.
    func stop(timeout: Duration) async -> Bool {
        worker.stop()
        return await poll(timeout: timeout) { $0.ended }
    }

    private func poll(timeout: Duration, _ condition: @Sendable ((consuming: Bool, ended: Bool)) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        for _ in 0..<10_000 {
            if condition(state.withLock { $0 }) { return true }
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
}
