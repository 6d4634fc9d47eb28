@testable import AMQPRetry
import Foundation
import XCTest

/// Many publishes that need the same undeclared topology at once, while its declaration fails,
/// the broker is down, or another connection deletes what was declared.
final class ConcurrentDeclarationTests: FaultTestCase {
    /// The end of one concurrent call: how long it took and what it threw.
    struct CallResult: Sendable {
        let seconds: Double
        let error: (any Error)?

        var amqpError: AMQPError? { error as? AMQPError }
    }

    /// Starts `count` calls of `body` at once and waits up to `limit` for them to end.
    ///
    /// Returns one entry per call, `nil` for a call still running at `limit`. Such a call keeps
    /// running after the test, because the library ignores task cancellation while it waits.
    func runConcurrently(
        _ count: Int, limit: Duration, _ body: @escaping @Sendable (Int) async throws -> Void
    ) async -> [CallResult?] {
        let results = Locked<[CallResult?]>(Array(repeating: nil, count: count))
        let start = ContinuousClock.now
        for index in 0..<count {
            Task {
                var thrown: (any Error)?
                do {
                    try await body(index)
                } catch {
                    thrown = error
                }
                let seconds = (ContinuousClock.now - start).inSeconds
                results.withLock { $0[index] = CallResult(seconds: seconds, error: thrown) }
            }
        }
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if results.withLock({ !$0.contains { $0 == nil } }) {
                break
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return results.withLock { $0 }
    }

    /// Invokes `service` in the background until a call succeeds, at most 40 times over about
    /// 20 s, and returns whether one did.
    func invokeUntilAccepted(_ client: AMQPRetryClient, _ service: String) async -> Bool {
        for _ in 0..<40 {
            if (try? await client.invokeRetry.invokeAsync(service, .empty, repeats: 1, seconds: 1)) != nil {
                return true
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
        return false
    }

    private func summary(_ results: [CallResult?]) -> String {
        let finished = results.compactMap { $0 }
        let times = finished.map(\.seconds).sorted()
        let failed = finished.filter { $0.error != nil }.count
        let firstError = finished.compactMap(\.error).first.map { "\($0)" } ?? "none"
        return "\(finished.count) of \(results.count) ended, \(failed) failed, "
            + "first at \(times.first ?? -1) s, last at \(times.last ?? -1) s; first error: \(firstError)"
    }

    /// Makes one call so that the client is connected, then stops the broker's application and
    /// lets the I/O thread see the connection close before the test's calls start.
    private func stopBrokerAfterWarmUp(_ client: AMQPRetryClient) async throws {
        let warmUp = try await makeService("warmup")
        _ = try await client.invokeRetry.invokeAsync(warmUp, .empty, repeats: 1, seconds: 1)

        try await broker.stopApp()
        try await Task.sleep(for: .milliseconds(500))
    }

    /// Starts the broker's application again and checks that `client` can invoke `service`.
    private func startBrokerAndExpectRecovery(_ client: AMQPRetryClient, _ service: String) async throws {
        try await broker.startApp()
        let recovered = await invokeUntilAccepted(client, service)
        XCTAssertTrue(recovered, "no invokeAsync succeeded within 20 s after start_app")
    }

    // MARK: - Failed declarations

    /// With the broker's application stopped every declaration times out after
    /// `operation_timeout`. The callers that wait for the first declaration must get its error,
    /// not declare one after another, which would make the last one wait once per caller.
    func testStoppedBrokerFailsWaitersWithinTimeout() async throws {
        let client = try await connectClient([("operation_timeout", "1000")])
        try await stopBrokerAfterWarmUp(client)

        let service = "faults.\(runID).stopped"
        deleteAtEnd(queue: TopologyNames.serviceQueue(service))
        let callCount = 16
        let results = await runConcurrently(callCount, limit: .seconds(60)) { _ in
            _ = try await client.invokeRetry.invokeAsync(service, .empty, repeats: 1, seconds: 1)
        }
        print("stopped broker, \(callCount) callers: \(summary(results))")

        XCTAssertEqual(results.compactMap { $0 }.count, callCount, "calls still waiting after 60 s")
        let finished = results.compactMap { $0 }
        XCTAssertEqual(finished.filter { $0.error == nil }.count, 0, "calls succeeded with the broker's application stopped")
        // One operation_timeout for the caller's own declaration, plus slack for the poll and
        // deadline scan intervals of the I/O thread.
        let late = finished.filter { $0.seconds >= 3.0 }
        XCTAssertEqual(late.count, 0, "calls ended after \(late.map(\.seconds).sorted()) s, with operation_timeout 1 s")

        try await startBrokerAndExpectRecovery(client, service)
    }

    /// A service queue that exists with other arguments makes every `queue.declare` fail with
    /// 406 PRECONDITION_FAILED, which closes the topology channel. Each caller must get that
    /// error, within a bounded time, and the connection must stay usable.
    func testPreconditionFailedReachesEveryCaller() async throws {
        let client = try await connectClient()
        let service = "faults.\(runID).mismatch"
        let queue = TopologyNames.serviceQueue(service)
        _ = try await connection.declare([.queue(QueueDeclaration(name: queue, arguments: ["x-max-length": .int64(5)]))])
        deleteAtEnd(queue: queue)

        let callCount = 300
        let results = await runConcurrently(callCount, limit: .seconds(60)) { _ in
            _ = try await client.invokeRetry.invokeAsync(service, .empty, repeats: 1, seconds: 1)
        }
        print("PRECONDITION_FAILED, \(callCount) callers: \(summary(results))")

        XCTAssertEqual(results.compactMap { $0 }.count, callCount, "calls still waiting after 60 s")
        let other406 = results.compactMap { $0 }.filter { $0.amqpError?.replyCode != 406 }
        XCTAssertEqual(other406.count, 0, "calls ended without 406, the first with \(String(describing: other406.first?.error))")
        let readyCount = try await connection.readyMessageCount(queue)
        XCTAssertEqual(readyCount, 0)

        let other = try await makeService("after-mismatch")
        let cid = try? await client.invokeRetry.invokeAsync(other, .empty, repeats: 1, seconds: 1)
        XCTAssertNotNil(cid, "invokeAsync to a valid service failed after the refused declarations")
        XCTAssertEqual(logs.records(withMessage: "connection to RabbitMQ lost").count, 0)
    }

    /// A user without configure permission gets 403 ACCESS_REFUSED for every `queue.declare`.
    func testAccessRefusedReachesEveryCaller() async throws {
        let user = "amqpretry-\(runID)"
        let password = "p\(runID)"
        try await broker.run(["add_user", user, password])
        try await broker.run(["set_permissions", "-p", "/", user, "^$", ".*", ".*"])
        let restrictedURL = try brokerURL.replacingOccurrences(of: "guest:guest@", with: "\(user):\(password)@")
        XCTAssertNotEqual(restrictedURL, try brokerURL, "the broker URL has no guest:guest credentials to replace")
        let client = try await AMQPRetryClient.connect(configuration: try ConnectionConfiguration(url: restrictedURL),
                                                       name: "amqpretry faults \(runID) restricted",
                                                       logger: logs.logger(label: "restricted"))

        let service = "faults.\(runID).refused"
        let callCount = 300
        let results = await runConcurrently(callCount, limit: .seconds(60)) { _ in
            _ = try await client.invokeRetry.invokeAsync(service, .empty, repeats: 1, seconds: 1)
        }
        print("ACCESS_REFUSED, \(callCount) callers: \(summary(results))")
        await client.close()
        try await broker.run(["delete_user", user])

        XCTAssertEqual(results.compactMap { $0 }.count, callCount, "calls still waiting after 60 s")
        let other403 = results.compactMap { $0 }.filter { $0.amqpError?.replyCode != 403 }
        XCTAssertEqual(other403.count, 0, "calls ended without 403, the first with \(String(describing: other403.first?.error))")
    }

    /// A caller whose task is cancelled while it waits for another caller's declaration. The
    /// library does not end the wait on cancellation, so the caller ends with the first caller's
    /// declaration.
    func testCancelledWaiterEndsWithinTimeout() async throws {
        let client = try await connectClient([("operation_timeout", "2000")])
        try await stopBrokerAfterWarmUp(client)

        let service = "faults.\(runID).cancelled"
        deleteAtEnd(queue: TopologyNames.serviceQueue(service))
        let start = ContinuousClock.now
        let first = Task { try await client.invokeRetry.invokeAsync(service, .empty, repeats: 1, seconds: 1) }
        try await Task.sleep(for: .milliseconds(100))
        let waiter = Task { try await client.invokeRetry.invokeAsync(service, .empty, repeats: 1, seconds: 1) }
        try await Task.sleep(for: .milliseconds(100))
        waiter.cancel()

        let waiterResult = await waiter.result
        let waiterSeconds = (ContinuousClock.now - start).inSeconds
        let firstResult = await first.result
        print("cancelled waiter ended after \(waiterSeconds) s with \(waiterResult); first caller: \(firstResult)")

        XCTAssertThrowsError(try waiterResult.get())
        XCTAssertThrowsError(try firstResult.get())
        // The first declaration times out after 2 s. A waiter that declared itself after it
        // would take 2 s more.
        XCTAssertLessThan(waiterSeconds, 2.5, "the cancelled caller ended \(waiterSeconds) s after it started")

        try await startBrokerAndExpectRecovery(client, service)
    }

    // MARK: - Deleted topology

    /// Another connection deletes the service queue while hundreds of publishes run. Each
    /// publish that comes back unroutable declares the queue again and republishes.
    func testQueueDeletedDuringConcurrentPublishes() async throws {
        let client = try await connectClient()
        let service = "faults.\(runID).deleted"
        let queue = TopologyNames.serviceQueue(service)
        deleteAtEnd(queue: queue)
        _ = try await client.invokeRetry.invokeAsync(service, .empty, repeats: 1, seconds: 1)

        let setupConnection = try connection
        for round in 0..<5 {
            let deleter = Task {
                try await Task.sleep(for: .milliseconds(2))
                try await setupConnection.deleteQueue(queue)
            }
            let results = await runConcurrently(500, limit: .seconds(60)) { _ in
                _ = try await client.invokeRetry.invokeAsync(service, .empty, repeats: 1, seconds: 1)
            }
            try await deleter.value
            print("queue deleted in round \(round): \(summary(results))")

            XCTAssertEqual(results.compactMap { $0 }.count, 500, "round \(round): calls still waiting after 60 s")
            let failed = results.compactMap { $0 }.filter { $0.error != nil }
            XCTAssertEqual(failed.count, 0, "round \(round): the first failed call threw \(String(describing: failed.first?.error))")
            // The delete may have come after the last publish, so one more publish must find the
            // queue gone, declare it again and succeed.
            let cid = try? await client.invokeRetry.invokeAsync(service, .empty, repeats: 1, seconds: 1)
            XCTAssertNotNil(cid, "round \(round): invokeAsync after the delete failed")
        }
    }

    /// Connects a client and publishes one retry of a new service with an interval of its own,
    /// so that the delay exchange and queue of that interval exist. Both are deleted at the end.
    private func publishFirstRetry() async throws -> (client: AMQPRetryClient, service: String, interval: Int64) {
        let client = try await connectClient()
        let service = try await makeService("delayed")
        let interval = Int64.random(in: 600_000...700_000)
        deleteAtEnd(queue: TopologyNames.delayQueue(milliseconds: interval))
        deleteAtEnd(exchange: TopologyNames.delayExchange(milliseconds: interval))

        try await Self.publishRetry(client, service: service, interval: interval)
        return (client, service, interval)
    }

    /// Another connection deletes the delay queue of an interval. The fanout exchange then
    /// routes a retry nowhere, so it comes back unroutable, and the publish declares again.
    func testDelayQueueDeletedIsDeclaredAgain() async throws {
        let (client, service, interval) = try await publishFirstRetry()
        try await connection.deleteQueue(TopologyNames.delayQueue(milliseconds: interval))
        try await Self.publishRetry(client, service: service, interval: interval)

        let delayedCount = try await connection.readyMessageCount(TopologyNames.delayQueue(milliseconds: interval))
        XCTAssertEqual(delayedCount, 1)
    }

    /// Another connection deletes the delay exchange of an interval. A publish to a missing
    /// exchange is not returned: the broker closes the channel with 404 NOT_FOUND.
    func testDelayExchangeDeletedIsDeclaredAgain() async throws {
        let (client, service, interval) = try await publishFirstRetry()
        try await connection.deleteExchange(TopologyNames.delayExchange(milliseconds: interval))

        var errors: [String] = []
        var succeeded = false
        for _ in 0..<5 {
            do {
                try await Self.publishRetry(client, service: service, interval: interval)
                succeeded = true
                break
            } catch {
                errors.append("\(error)")
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        print("publishes after exchange.delete: \(errors.count) failed: \(errors)")
        XCTAssertTrue(succeeded, "5 publishes to the deleted delay exchange failed: \(errors.last ?? "")")
    }

    /// Hundreds of retries with the same new interval, to many services, at once: each needs
    /// the delay exchange, queue and binding, and no binding may be declared before its exchange.
    func testConcurrentRetriesDeclareDelayTopology() async throws {
        let client = try await connectClient()
        var services: [String] = []
        for number in 0..<10 {
            services.append(try await makeService("delay\(number)"))
        }
        for round in 0..<3 {
            let interval = Int64.random(in: 600_000...700_000)
            deleteAtEnd(queue: TopologyNames.delayQueue(milliseconds: interval))
            deleteAtEnd(exchange: TopologyNames.delayExchange(milliseconds: interval))
            let chosen = services
            let results = await runConcurrently(300, limit: .seconds(60)) { index in
                try await Self.publishRetry(client, service: chosen[index % chosen.count], interval: interval)
            }
            print("delay topology round \(round): \(summary(results))")

            XCTAssertEqual(results.compactMap { $0 }.count, 300, "round \(round): calls still waiting after 60 s")
            let failed = results.compactMap { $0 }.filter { $0.error != nil }
            XCTAssertEqual(failed.count, 0, "round \(round): the first failed call threw \(String(describing: failed.first?.error))")
            let delayedCount = try await connection.readyMessageCount(TopologyNames.delayQueue(milliseconds: interval))
            XCTAssertEqual(delayedCount, 300)
        }
    }

    /// Publishes an invocation of `service` to the delay queue of `interval`, as a retry.
    private static func publishRetry(_ client: AMQPRetryClient, service: String, interval: Int64) async throws {
        let options = try RetryOptions(repeats: 1, intervalMilliseconds: interval)
        let invocation = Invocation(mode: .async, target: service, attempt: 2, options: options)
        try await client.engine.publish(invocation, delayMilliseconds: interval)
    }
}
