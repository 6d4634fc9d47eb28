@testable import AMQPRetry
import Foundation
import Synchronization
import XCTest

/// Background invocations with retries on a three-node cluster with quorum queues, carried out
/// by several `amqp-retry worker` processes while one node is down and after it came back.
///
/// Lateness is how much later than its interval a retry ran: the time between the first
/// finished call of attempt N and the first of attempt N + 1, from the workers' call lines,
/// minus the interval. Measured from the first call of attempt N, it includes the time a call
/// took to run again when the broker redelivered it after its worker lost its connection.
final class ClusterFailoverTests: XCTestCase {
    static let invocationCount = 2_000
    static let workerCount = 3
    /// The `--concurrency` of each worker.
    static let concurrency = 8
    /// The invocations are published evenly over this time, so that retries are pending when
    /// the node stops and when it comes back.
    static let publishDuration: Duration = .seconds(40)
    /// When node 2 stops, after publishing started.
    static let outageStart: Duration = .seconds(10)
    /// How long node 2 stays down before `start_app`.
    static let outageLength: Duration = .seconds(10)
    /// After `start_app` returned, how long retries still count as affected by the outage,
    /// because the restarted node's queue replicas catch up with their leaders.
    static let recoveryTime: Duration = .seconds(5)
    static let intervalsMilliseconds: [Int64] = [200, 300, 400, 500]

    /// The maximum lateness of a retry whose wait overlaps the outage.
    ///
    /// Stopping a node closes its client connections, and the broker redelivers the calls those
    /// workers held. The quorum queues whose leader was on the node elect a new leader and
    /// accept no publish, delivery or expiry until then. On a two-core machine shared with other
    /// jobs, where the three nodes and the workers compete for the cores, the worst lateness
    /// seen was 0.4 s at this test's publish rate, and 1.6 s at 1.7 times that rate.
    static let outageLatenessBound: Duration = .seconds(2)

    /// The maximum lateness of any other retry, which covers the publish of the retry, its
    /// expiry from the delay queue and the delivery to a worker. On the same machine the worst
    /// seen was 0.11 s at this test's publish rate, and 1.2 s at 1.7 times that rate.
    static let steadyLatenessBound: Duration = .seconds(1)

    private var workers: [WorkerProcess] = []

    func testWorkersFinishEveryCallWhileNodeIsDown() async throws {
        let environment = try ClusterEnvironment.load()
        let runID = String(UUID().uuidString.prefix(8)).lowercased()
        let callbackService = "clustertest.callbacks.\(runID)"
        let outputDirectory = try Self.makeOutputDirectory(runID: runID)
        addTeardownBlock { [environment] in
            // Restarts node 2 when the test failed while it was down. A running node is unchanged.
            try? await environment.startApplication(onNode: 2)
        }

        let control = try await ControlConnection.open(environment.configuration(startingAt: 1), name: "control")
        // Declared before the workers start, as docs/operations.md advises, because a delay queue
        // that RabbitMQ 3.10 creates while other workers publish to it can stop expiring
        // (DelayQueueCreationTests). This test checks the outage alone.
        _ = try await control.declare(Self.topology)
        let collector = try await CallbackCollector.start(service: callbackService,
                                                          configuration: environment.configuration(startingAt: 1))
        try await startWorkers(environment, outputDirectory: outputDirectory)
        try await waitForConsumers(on: control)

        let client = try await AMQPRetryClient.connect(configuration: environment.configuration(startingAt: 1))
        async let outage = Self.stopAndRestartNode2(environment, after: Self.outageStart)
        let published = await Self.publishAll(with: client, callback: callbackService)
        let window = try await outage
        await client.close()
        XCTAssertEqual(published.failures, [], "publishing some invocations failed")

        let allArrived = await eventually(timeout: .seconds(120)) { collector.distinctCount >= published.calls.count }
        XCTAssertTrue(allArrived, "callbacks of \(collector.distinctCount) of \(published.calls.count) invocations "
            + "arrived within 120 s; worker output is in \(outputDirectory)")
        let drained = await eventually(timeout: .seconds(60)) { await Self.pendingMessages(on: control) == 0 }
        XCTAssertTrue(drained, "the service and delay queues still hold messages 60 s after the last callback")

        await stopWorkers()
        await collector.close()
        checkCallbacks(collector, published: published)
        checkCalls(published: published, outage: window)
        checkWorkersFailedOver()
        await checkQueuesAreEmpty(on: control, callbackService: callbackService)
        await deleteQueues(on: control, callbackService: callbackService)
        await control.close()

        if testRun?.hasSucceeded == true {
            try? FileManager.default.removeItem(atPath: outputDirectory)
        }
    }
}

// MARK: - The invocations

extension ClusterFailoverTests {
    /// One planned background invocation and the outcome its callback must report.
    struct PlannedCall: Sendable {
        let service: String
        let request: Payload
        let repeats: Int
        let intervalMilliseconds: Int64
        let expectedOK: Bool
        let expectedAttempts: Int
    }

    /// Returns invocation `index` of the plan. The plan has a quarter each of `demo.echo` (succeeds at once), `demo.flaky` with
    /// `fail_times` 1 and 2 (succeeds on the second or third call) and `demo.fail` (fails every
    /// call), with repeats 2 or 3 and every interval.
    static func plannedCall(_ index: Int) -> PlannedCall {
        let interval = intervalsMilliseconds[(index / 4) % intervalsMilliseconds.count]
        let repeats = 2 + (index / 16) % 2
        switch index % 4 {
        case 0:
            return PlannedCall(service: DemoService.echo, request: Payload(json: #"{"n": \#(index)}"#),
                               repeats: repeats, intervalMilliseconds: interval, expectedOK: true, expectedAttempts: 1)
        case 1, 2:
            let failTimes = index % 4
            return PlannedCall(service: DemoService.flaky, request: Payload(json: #"{"fail_times": \#(failTimes)}"#),
                               repeats: repeats, intervalMilliseconds: interval, expectedOK: true,
                               expectedAttempts: failTimes + 1)
        default:
            return PlannedCall(service: DemoService.fail, request: .empty, repeats: repeats,
                               intervalMilliseconds: interval, expectedOK: false, expectedAttempts: repeats + 1)
        }
    }

    /// The published invocations by CID, and the errors of those that could not be published.
    struct Published: Sendable {
        var calls: [String: PlannedCall] = [:]
        var failures: [String] = []
    }

    /// Publishes every planned invocation, spread evenly over ``publishDuration``, without
    /// waiting for one confirm before the next publish.
    static func publishAll(with client: AMQPRetryClient, callback: String) async -> Published {
        let start = ContinuousClock.now
        let spacing = publishDuration / invocationCount
        return await withTaskGroup(of: (PlannedCall, Result<CID, any Error>).self) { group in
            for index in 0..<invocationCount {
                try? await Task.sleep(until: start + spacing * index)
                let call = plannedCall(index)
                group.addTask {
                    do {
                        let cid = try await client.invokeRetry.invokeAsync(
                            call.service, call.request, repeats: call.repeats,
                            seconds: Double(call.intervalMilliseconds) / 1000, callback: callback)
                        return (call, .success(cid))
                    } catch {
                        return (call, .failure(error))
                    }
                }
            }
            var published = Published()
            for await (call, result) in group {
                switch result {
                case .success(let cid): published.calls[cid.rawValue] = call
                case .failure(let error): published.failures.append("\(call.service): \(error)")
                }
            }
            return published
        }
    }
}

// MARK: - Workers and the outage

extension ClusterFailoverTests {
    /// The wall-clock times of the outage of node 2, to compare with the workers' call lines.
    struct OutageWindow: Sendable {
        /// When `stop_app` was sent.
        let stopping: Date
        /// When `start_app` returned.
        let restarted: Date

        /// Returns whether the time from `start` to `end` overlaps the outage or the recovery after it.
        func overlaps(from start: Date, to end: Date) -> Bool {
            start <= restarted.addingTimeInterval(ClusterFailoverTests.recoveryTime.inSeconds) && end >= stopping
        }
    }

    /// Stops the RabbitMQ application on node 2 after `delay`, and starts it again
    /// ``outageLength`` later.
    static func stopAndRestartNode2(_ environment: ClusterEnvironment, after delay: Duration) async throws
        -> OutageWindow {
        try await Task.sleep(for: delay)
        let stopping = Date()
        try await environment.stopApplication(onNode: 2)
        try await Task.sleep(for: outageLength)
        try await environment.startApplication(onNode: 2)
        return OutageWindow(stopping: stopping, restarted: Date())
    }

    /// Starts ``workerCount`` workers, worker N with node N first in its URL list, so that
    /// their connections spread over the nodes.
    private func startWorkers(_ environment: ClusterEnvironment, outputDirectory: String) async throws {
        for number in 1...Self.workerCount {
            let worker = try WorkerProcess.start(
                executable: environment.workerExecutable, urlList: environment.urlList(startingAt: number),
                concurrency: Self.concurrency, directory: outputDirectory, name: String(number))
            workers.append(worker)
        }
        addTeardownBlock { [workers] in
            for worker in workers {
                _ = await worker.process.terminate(timeout: .seconds(45))
            }
        }
    }

    /// Waits until every worker consumes every service queue of the test.
    private func waitForConsumers(on control: AMQPConnection) async throws {
        let arguments = Topology.serviceQueueArguments(type: .quorum)
        let consuming = try await eventually(timeout: .seconds(60)) {
            for service in DemoService.all {
                let count = try await control.consumerCount(TopologyNames.serviceQueue(service), arguments: arguments)
                if count < Self.workerCount { return false }
            }
            return true
        }
        XCTAssertTrue(consuming, "the \(Self.workerCount) workers did not all consume within 60 s")
    }

    /// Stops every worker with SIGTERM, which lets running calls finish, and checks that each
    /// exits with status 0.
    private func stopWorkers() async {
        for (index, worker) in workers.enumerated() {
            let status = await worker.process.terminate(timeout: .seconds(45))
            XCTAssertEqual(status, 0, "worker \(index + 1) did not exit with status 0 within 45 s of SIGTERM; "
                + "its log: \(worker.process.standardErrorPath)")
        }
    }
}

// MARK: - Checks

extension ClusterFailoverTests {
    /// Checks that every invocation has its callback, with the expected outcome, and that every
    /// duplicate agrees with the first.
    private func checkCallbacks(_ collector: CallbackCollector, published: Published) {
        let callbacks = collector.callbacks
        XCTAssertEqual(collector.undecodable, [], "the callback queue held messages that are not callbacks")
        var duplicates = 0
        for (cid, call) in published.calls {
            guard let bodies = callbacks[cid] else {
                XCTFail("no callback for \(call.service) invocation \(cid)")
                continue
            }
            duplicates += bodies.count - 1
            for body in bodies {
                XCTAssertEqual(body.ok, call.expectedOK, "callback 'ok' of \(call.service) invocation \(cid)")
                XCTAssertEqual(body.attempts, call.expectedAttempts, "callback 'attempts' of \(call.service) invocation \(cid)")
                XCTAssertEqual(body.target, call.service, "callback 'target' of invocation \(cid)")
                XCTAssertEqual(body.retryRepeats, call.repeats, "callback 'retry_repeats' of invocation \(cid)")
            }
        }
        let unknown = Set(callbacks.keys).subtracting(published.calls.keys)
        XCTAssertEqual(unknown, [], "callbacks arrived for CIDs that this test did not publish")
        print("cluster failover: \(published.calls.count) invocations, \(duplicates) duplicate callbacks")
    }

    /// Checks from the workers' call lines that every attempt of every invocation ran, none ran
    /// beyond the expected number, and no retry ran early or later than the bounds allow.
    private func checkCalls(published: Published, outage: OutageWindow) {
        var firstCall: [String: [Int: Date]] = [:]
        for line in workers.flatMap({ $0.calls() }) where published.calls[line.cid] != nil {
            let earliest = firstCall[line.cid]?[line.attempt]
            if earliest == nil || line.time < earliest! {
                firstCall[line.cid, default: [:]][line.attempt] = line.time
            }
        }

        var steadyLateness: [Double] = []
        var outageLateness: [Double] = []
        for (cid, call) in published.calls {
            let attempts = firstCall[cid] ?? [:]
            XCTAssertEqual(attempts.keys.sorted(), Array(1...call.expectedAttempts),
                           "the attempts of \(call.service) invocation \(cid) that the workers ran")
            let interval = Double(call.intervalMilliseconds) / 1000
            for attempt in 1..<call.expectedAttempts {
                guard let start = attempts[attempt], let next = attempts[attempt + 1] else { continue }
                let lateness = next.timeIntervalSince(start) - interval
                // The lines have millisecond precision.
                XCTAssertGreaterThanOrEqual(lateness, -0.002, "attempt \(attempt + 1) of \(cid) ran "
                    + "\(-lateness) s before its interval of \(interval) s had passed")
                if outage.overlaps(from: start, to: next) {
                    outageLateness.append(lateness)
                } else {
                    steadyLateness.append(lateness)
                }
            }
        }
        assertLateness(steadyLateness, atMost: Self.steadyLatenessBound, "outside the outage")
        assertLateness(outageLateness, atMost: Self.outageLatenessBound, "during the outage")
        XCTAssertFalse(outageLateness.isEmpty, "no retry was pending during the outage, so the test checked nothing")
    }

    private func assertLateness(_ lateness: [Double], atMost bound: Duration, _ when: String) {
        let sorted = lateness.sorted()
        guard let maximum = sorted.last else { return }
        let p99 = sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
        print(String(format: "cluster failover: %d retries %@: lateness p99 %.3f s, max %.3f s",
                     sorted.count, when, p99, maximum))
        XCTAssertLessThanOrEqual(maximum, bound.inSeconds, "a retry \(when) ran \(maximum) s after its interval, "
            + "more than the bound of \(bound)")
    }

    /// Checks that every worker ran calls and that the worker whose first node was stopped
    /// reconnected to another node.
    private func checkWorkersFailedOver() {
        for (index, worker) in workers.enumerated() {
            XCTAssertFalse(worker.calls().isEmpty, "worker \(index + 1) ran no call, so the connections did not spread")
        }
        let log = workers[1].process.standardError()
        XCTAssertTrue(log.contains("reconnected to RabbitMQ"),
                      "worker 2, whose first node was stopped, logged no reconnect: \(workers[1].process.standardErrorPath)")
    }

    /// Counts the ready messages in the service and delay queues of the test, which contain the
    /// pending calls and retries. Returns -1 when a queue could not be counted.
    private static func pendingMessages(on control: AMQPConnection) async -> Int {
        var total = 0
        for queue in DemoService.all.map(TopologyNames.serviceQueue) + delayQueues {
            guard let count = try? await control.readyMessageCount(queue) else { return -1 }
            total += count
        }
        return total
    }

    /// The service queues and the delay queues and exchanges of the test.
    private static var topology: [TopologyItem] {
        DemoService.all.flatMap { Topology.service($0, type: .quorum) }
            + intervalsMilliseconds.flatMap { Topology.delay(milliseconds: $0, type: .quorum) }
    }

    private static var delayQueues: [String] {
        intervalsMilliseconds.map { TopologyNames.delayQueue(milliseconds: $0) }
    }

    /// Checks with passive declares that the service, delay and callback queues exist and are
    /// empty, and that nothing was parked.
    private func checkQueuesAreEmpty(on control: AMQPConnection, callbackService: String) async {
        let queues = DemoService.all.map(TopologyNames.serviceQueue) + Self.delayQueues
            + [TopologyNames.serviceQueue(callbackService)]
        for queue in queues {
            do {
                let count = try await control.readyMessageCount(queue)
                XCTAssertEqual(count, 0, "queue '\(queue)' holds \(count.map(String.init) ?? "no queue") messages "
                    + "after the test, expected an empty queue")
            } catch {
                XCTFail("counting the messages of queue '\(queue)' failed: \(error)")
            }
        }
        do {
            let parked = try await control.readyMessageCount(TopologyNames.parkingQueue) ?? 0
            XCTAssertEqual(parked, 0, "the workers parked \(parked) messages")
        } catch {
            XCTFail("counting the messages of the parking queue failed: \(error)")
        }
    }

    /// Deletes the queues and delay exchanges of the test, so that a later test on the same
    /// cluster starts without them.
    private func deleteQueues(on control: AMQPConnection, callbackService: String) async {
        let queues = DemoService.all.map(TopologyNames.serviceQueue) + Self.delayQueues
            + [TopologyNames.serviceQueue(callbackService)]
        for queue in queues {
            do {
                try await control.deleteQueue(queue)
            } catch {
                XCTFail("deleting queue '\(queue)' failed: \(error)")
            }
        }
        for milliseconds in Self.intervalsMilliseconds {
            try? await control.deleteExchange(TopologyNames.delayExchange(milliseconds: milliseconds))
        }
    }

    private static func makeOutputDirectory(runID: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("amqpretry-cluster-test-\(runID)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// The names of the demo services that `amqp-retry worker` hosts and the tests invoke.
enum DemoService {
    static let echo = "demo.echo"
    static let flaky = "demo.flaky"
    static let fail = "demo.fail"
    static let all = [echo, flaky, fail]
}

/// The connection a test uses to declare, count and delete queues.
enum ControlConnection {
    /// Opens a connection named `amqpretry cluster test <name>`.
    static func open(_ configuration: ConnectionConfiguration, name: String) async throws -> AMQPConnection {
        let connection = AMQPConnection(configuration: configuration, name: "amqpretry cluster test \(name)",
                                        logger: .disabled)
        try await connection.start()
        return connection
    }
}
