@testable import AMQPRetry
import Foundation
import XCTest

/// Faults of the broker under running workers and callers: a restart, closed connections, a
/// stall, a memory alarm and a deleted queue.
final class BrokerFaultTests: FaultTestCase {
    /// Retries waiting in a delay queue survive `rabbitmqctl stop_app` and `start_app`, because
    /// the queue is durable and the messages persistent, and then fire. Workers and the client
    /// reconnect by themselves: the client publishes a second batch after the restart.
    func testBrokerRestartKeepsWaitingRetries() async throws {
        let callback = try await makeCallbackService()
        let interval = try await makeRetryInterval(3000...3099)
        let delayQueue = TopologyNames.delayQueue(milliseconds: interval)
        try await startWorker()
        try await startWorker()
        let callbacks = try await collectQueue(of: callback)
        let client = try await connectClient()
        let publisher = LoadPublisher()

        let first = LoadMix.make(count: 200, callback: callback, intervalMilliseconds: interval, tag: runID + "-1")
        await publisher.publish(first, via: client)
        let waiting = try await eventually(timeout: .seconds(10)) {
            try await connection.readyMessageCount(delayQueue) >= 40
        }
        XCTAssertTrue(waiting, "fewer than 40 retries waited in '\(delayQueue)' within 10 s")
        let beforeStop = try await connection.readyMessageCount(delayQueue)

        try await broker.stopApp()
        try await Task.sleep(for: .seconds(1))
        try await broker.startApp()
        let afterStart = try await broker.messageCounts()[delayQueue] ?? 0
        print("retries in '\(delayQueue)': \(beforeStop) before stop_app, \(afterStart) after start_app")

        let second = LoadMix.make(count: 40, callback: callback, intervalMilliseconds: interval, tag: runID + "-2")
        let unconfirmed = await publisher.publish(second, via: client)
        XCTAssertEqual(unconfirmed, [], "the client did not publish again after the restart")

        try await assertAtLeastOnce(first + second, callbacks: callbacks, publisher: publisher,
                                    extraQueues: [delayQueue])
        let reconnected = logs.records(withMessage: "reconnected to RabbitMQ").filter { $0.label == "client" }
        XCTAssertFalse(reconnected.isEmpty, "the client never logged a reconnect")
    }

    /// `rabbitmqctl close_all_connections`, twice under load: workers, the client and the
    /// callback reader reconnect with backoff and carry on, and a caller blocked in a sync
    /// `invoke` gets its reply or an error within its bound, never a hang.
    func testClosedConnectionsReconnect() async throws {
        let callback = try await makeCallbackService()
        let interval = try await makeRetryInterval(300...399)
        try await startWorker()
        try await startWorker()
        let callbacks = try await collectQueue(of: callback)
        let client = try await connectClient()
        let publisher = LoadPublisher()

        let planned = LoadMix.make(count: 240, callback: callback, intervalMilliseconds: interval,
                                   slowSeconds: 0.5...1.5, tag: runID)
        let publishing = Task { await publisher.publish(planned, via: client) }

        // The call's handler sleeps 5 s, and rabbitmqctl takes 1–3 s to start, so the first close
        // lands while the call waits. Its bound: two attempts of at most the timeout each, the
        // interval between them, and 3 s for the reconnect.
        let timeout = Duration.seconds(8)
        let bound = timeout * 2 + .milliseconds(500) + .seconds(3)
        let start = ContinuousClock.now
        let blocking = Task { () -> (ContinuousClock.Instant, Result<Payload, any Error>) in
            do {
                let response = try await client.invokeRetry.invoke(
                    "demo.slow", Payload(json: #"{"seconds": 5}"#), repeats: 1, seconds: 0.5, timeout: timeout)
                return (ContinuousClock.now, .success(response))
            } catch {
                return (ContinuousClock.now, .failure(error))
            }
        }
        try await Task.sleep(for: .milliseconds(500))
        try await broker.closeAllConnections("test")
        let firstClose = ContinuousClock.now
        try await Task.sleep(for: .seconds(3))
        try await broker.closeAllConnections("test")

        let (returned, result) = await blocking.value
        let elapsed = returned - start
        XCTAssertLessThan(firstClose, returned, "the sync invoke returned before its connection was closed, so this "
            + "test proves nothing about calls in flight")
        XCTAssertLessThanOrEqual(elapsed, bound,
                                 "the blocked sync invoke returned after \(elapsed), more than \(bound)")
        switch result {
        case .success(let response):
            XCTAssertEqual(try? response.json(), .object(["slept": .number(5)]), "the sync invoke's reply")
        case .failure(let error):
            guard case InvokeRetryError.retriesExhausted = error else {
                XCTFail("the blocked sync invoke failed with \(error), expected its reply or retriesExhausted")
                break
            }
        }
        let outcome = (try? result.get()).map { "reply \($0.text ?? "")" } ?? "error"
        print("the blocked sync invoke returned after \(elapsed), \(returned - firstClose) after the first close: "
            + "\(outcome)")

        let unconfirmed = await publishing.value
        XCTAssertEqual(unconfirmed, [], "the client did not publish again after its connection was closed")
        try await assertAtLeastOnce(planned, callbacks: callbacks, publisher: publisher,
                                    extraQueues: [TopologyNames.delayQueue(milliseconds: interval)])
        let lost = logs.records(withMessage: "connection to RabbitMQ lost").filter { $0.label == "client" }
        XCTAssertFalse(lost.isEmpty, "the client never noticed that its connection was closed")
    }

    /// A broker whose VM is stopped with SIGSTOP for 12 s, longer than two heartbeat intervals
    /// of 2 s: each blocking call gives up within its deadline, the connections notice the
    /// missed heartbeats, and work resumes after SIGCONT.
    ///
    /// The calls are timed at three points of the stall: at once (the confirm never comes), and
    /// 5 s in, when the client has dropped the connection and waits in a new handshake.
    func testStalledBrokerBoundsBlockingCalls() async throws {
        let operationTimeout = Duration.seconds(2)
        let margin = Duration.milliseconds(1500)
        let parameters = [("heartbeat", "2"), ("operation_timeout", "2000"), ("connection_timeout", "6000")]
        let callback = try await makeCallbackService()
        let interval = try await makeRetryInterval(300...399)
        try await startWorker(url: try url(parameters))
        try await startWorker(url: try url(parameters))
        let callbacks = try await collectQueue(of: callback)
        let client = try await connectClient(parameters)
        let publisher = LoadPublisher()

        let planned = LoadMix.make(count: 200, callback: callback, intervalMilliseconds: interval,
                                   slowSeconds: 0.5...1.5, tag: runID)
        await publisher.publish(Array(planned.prefix(150)), via: client)
        let pid = try await broker.virtualMachinePID()

        stallBroker(pid)
        defer { resumeBroker() }
        let stallStart = ContinuousClock.now
        let syncTimeout = Duration.seconds(2)
        let syncCall = Task { () -> (Duration, (any Error)?) in
            let start = ContinuousClock.now
            do {
                _ = try await client.invokeRetry.invoke("demo.echo", Payload(json: "{}"), repeats: 1, seconds: 0.5,
                                                        timeout: syncTimeout)
                return (ContinuousClock.now - start, nil)
            } catch {
                return (ContinuousClock.now - start, error)
            }
        }
        let early = await timedInvokeAsync(client)
        try await Task.sleep(until: stallStart + .seconds(5))
        let late = await timedInvokeAsync(client)
        let (syncElapsed, syncError) = await syncCall.value
        try await Task.sleep(until: stallStart + .seconds(12))
        resumeBroker()

        let syncBound = syncTimeout * 2 + .milliseconds(500) + margin
        XCTAssertLessThanOrEqual(syncElapsed, syncBound,
                                 "the sync invoke returned after \(syncElapsed), more than \(syncBound)")
        XCTAssertNotNil(syncError, "the sync invoke succeeded although the broker was stopped")
        for (label, (elapsed, error)) in [("at once", early), ("5 s into the stall", late)] {
            XCTAssertLessThanOrEqual(elapsed, operationTimeout + margin, "invokeAsync \(label) returned after "
                + "\(elapsed), more than operation_timeout \(operationTimeout) + \(margin)")
            XCTAssertNotNil(error, "invokeAsync \(label) succeeded although the broker was stopped")
            print("invokeAsync \(label) returned after \(elapsed): \(error.map { "\($0)" } ?? "success")")
        }
        print("sync invoke during the stall returned after \(syncElapsed): \(syncError.map { "\($0)" } ?? "success")")

        let unconfirmed = await publisher.publish(Array(planned.dropFirst(150)), via: client)
        XCTAssertEqual(unconfirmed, [], "the client did not publish again after the stall")
        try await assertAtLeastOnce(planned, callbacks: callbacks, publisher: publisher,
                                    extraQueues: [TopologyNames.delayQueue(milliseconds: interval)])
        let lost = logs.records(withMessage: "connection to RabbitMQ lost").filter { $0.label == "client" }
        XCTAssertFalse(lost.isEmpty, "the client never noticed the missed heartbeats")
    }

    /// Calls `invokeAsync` without a callback, so that an invocation the broker takes late makes
    /// no callback, and returns how long the call took and its error.
    private func timedInvokeAsync(_ client: AMQPRetryClient) async -> (Duration, (any Error)?) {
        let start = ContinuousClock.now
        do {
            _ = try await client.invokeRetry.invokeAsync("demo.echo", Payload(json: "{}"), repeats: 1, seconds: 0.5)
            return (ContinuousClock.now - start, nil)
        } catch {
            return (ContinuousClock.now - start, error)
        }
    }

    /// A memory alarm blocks every publishing connection. A worker whose handlers finish during
    /// the alarm cannot publish their retries and callbacks, so it acknowledges nothing and every
    /// invocation stays in the broker. A client's publish times out with a clear error, a worker
    /// started during the alarm still starts, and work resumes when the alarm clears.
    ///
    /// The alarm goes off while `demo.slow` handlers (2.5–3.5 s) run and retries wait in a delay
    /// queue of 2 s, whose messages reach the worker during the alarm.
    func testMemoryAlarmAcknowledgesNothingEarly() async throws {
        let operationTimeout = Duration.seconds(3)
        let parameters = [("operation_timeout", "3000")]
        let callback = try await makeCallbackService()
        let interval = try await makeRetryInterval(2000...2099)
        let delayQueue = TopologyNames.delayQueue(milliseconds: interval)
        try await startWorker(url: try url(parameters))
        let callbacks = try await collectQueue(of: callback)
        let client = try await connectClient(parameters)
        let publisher = LoadPublisher()

        let planned = LoadMix.make(count: 100, callback: callback, intervalMilliseconds: interval,
                                   slowSeconds: 2.5...3.5, tag: runID)
        await publisher.publish(planned, via: client)
        let callsBefore = workers.flatMap { $0.handlerCalls() }.count

        try await raiseMemoryAlarm()
        let start = ContinuousClock.now
        var blockedError: (any Error)?
        do {
            _ = try await client.invokeRetry.invokeAsync("demo.echo", Payload(json: "{}"), repeats: 1, seconds: 0.5)
        } catch {
            blockedError = error
        }
        let elapsed = ContinuousClock.now - start
        XCTAssertLessThanOrEqual(elapsed, operationTimeout + .milliseconds(1500),
                                 "a publish during the alarm returned after \(elapsed)")
        XCTAssertEqual((blockedError as? AMQPError)?.code, .timeout,
                       "a publish during the alarm ended with \(blockedError.map { "\($0)" } ?? "success"), "
                           + "expected a timeout")
        print("publish during the memory alarm: \(blockedError.map { "\($0)" } ?? "success") after \(elapsed)")

        do {
            try await startWorker(url: try url(parameters))
        } catch {
            XCTFail("a worker started during the memory alarm did not start: \(error)")
        }
        let serviceQueues = Self.demoServices.map(TopologyNames.serviceQueue)
        for _ in 0..<3 {
            let counts = try await broker.messageCounts()
            let accounted = serviceQueues.reduce(0) { $0 + counts[$1, default: 0] }
                + counts[delayQueue, default: 0] + counts[callbacks.queue, default: 0]
                + Set(callbacks.messages.compactMap(\.correlationID)).count
            XCTAssertGreaterThanOrEqual(accounted, planned.count, "during the alarm only \(accounted) of "
                + "\(planned.count) invocations are still in a queue or finished: an invocation was acknowledged "
                + "before its replacement was confirmed")
            try await Task.sleep(for: .seconds(1))
        }
        let callsDuring = workers.flatMap { $0.handlerCalls() }.count - callsBefore
        XCTAssertGreaterThan(callsDuring, 0, "no handler finished during the alarm, so this test proves nothing")
        let blocked = workers.filter { $0.process.standardError().contains("RabbitMQ blocked publishing") }
        XCTAssertFalse(blocked.isEmpty, "no worker logged that the broker blocked its publishing")

        try await clearMemoryAlarm()
        try await assertAtLeastOnce(planned, callbacks: callbacks, publisher: publisher, extraQueues: [delayQueue])
    }

    /// Queues deleted under a running worker with `rabbitmqctl delete_queue` (two service queues,
    /// the delay queue and the callback queue) come back. The worker gets `basic.cancel`, declares
    /// the queue again and resubscribes, publishers declare again after a `basic.return`, and new
    /// invocations are handled.
    func testDeletedQueuesComeBack() async throws {
        let callback = try await makeCallbackService()
        let interval = try await makeRetryInterval(300...399)
        let delayQueue = TopologyNames.delayQueue(milliseconds: interval)
        let worker = try await startWorker()
        let callbacks = try await collectQueue(of: callback)
        let client = try await connectClient()
        let publisher = LoadPublisher()

        let first = LoadMix.make(count: 100, callback: callback, intervalMilliseconds: interval, tag: runID + "-1")
        await publisher.publish(first, via: client)
        let firstDone = await waitForCallbacks(first, in: callbacks, timeout: .seconds(60))
        XCTAssertTrue(firstDone, "the first batch did not finish before the queues were deleted")

        let deleted = ["demo.echo", "demo.flaky"].map(TopologyNames.serviceQueue) + [delayQueue, callbacks.queue]
        for queue in deleted {
            try await broker.deleteQueue(queue)
        }
        let second = LoadMix.make(count: 100, callback: callback, intervalMilliseconds: interval, tag: runID + "-2")
        let unconfirmed = await publisher.publish(second, via: client)
        XCTAssertEqual(unconfirmed, [], "publishing to the deleted service queues failed")

        let resubscribed = await eventually(timeout: .seconds(10)) {
            worker.process.standardError().contains("RabbitMQ cancelled a consumer; resubscribing")
        }
        XCTAssertTrue(resubscribed, "the worker did not log the cancellation of its consumers")
        XCTAssertTrue(worker.process.isRunning, "the worker exited after its queues were deleted")
        try await assertAtLeastOnce(first + second, callbacks: callbacks, publisher: publisher,
                                    extraQueues: [delayQueue])
    }
}
