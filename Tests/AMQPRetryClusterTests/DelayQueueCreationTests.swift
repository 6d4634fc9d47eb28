@testable import AMQPRetry
import Foundation
import XCTest

/// The first retries of an interval, published by several processes at once, while the delay
/// queue of that interval is being created.
///
/// Every worker and producer declares the delay queue right before it publishes to it. When
/// processes on different nodes do so at the same moment, one of them creates the quorum queue
/// and the others find it already declared and publish at once. RabbitMQ 3.10 to 4.0 apply a
/// new quorum queue's `x-message-ttl` a few milliseconds after creating it, so such a message
/// can get no expiry and then, at the head of the queue, keeps every later retry from expiring.
///
/// Retries into quorum delay queues therefore carry the interval as a per-message `expiration`
/// too, which RabbitMQ applies even in that window (`Topology.retryExpiration`).
final class DelayQueueCreationTests: XCTestCase {
    /// Publishers per node, each on its own connection.
    static let publishersPerNode = 3
    /// The intervals tried, each a new delay queue. They differ from those of the other tests
    /// so that every queue is created by this test.
    static let intervalsMilliseconds: [Int64] = Array(601...612)

    func testConcurrentFirstRetriesAllExpire() async throws {
        let environment = try ClusterEnvironment.load()
        let runID = String(UUID().uuidString.prefix(8)).lowercased()
        let target = "clustertest.target.\(runID)"
        let control = try await ControlConnection.open(environment.configuration(startingAt: 1), name: "control")
        _ = try await control.declare(Topology.service(target, type: .quorum))

        var clients: [AMQPRetryClient] = []
        for node in 1...environment.nodeURLs.count {
            for _ in 1...Self.publishersPerNode {
                clients.append(try await AMQPRetryClient.connect(configuration: environment.configuration(startingAt: node)))
            }
        }

        var failures: [String] = []
        for interval in Self.intervalsMilliseconds {
            failures += await Self.publishAtOnce(with: clients, target: target, delayMilliseconds: interval)
        }
        for client in clients {
            await client.close()
        }
        XCTAssertEqual(failures, [], "publishing some retries failed")

        let expected = clients.count * Self.intervalsMilliseconds.count - failures.count
        let serviceQueue = TopologyNames.serviceQueue(target)
        let arrived = await eventually(timeout: .seconds(10)) {
            (try? await control.readyMessageCount(serviceQueue)) == expected
        }
        for interval in Self.intervalsMilliseconds {
            let queue = TopologyNames.delayQueue(milliseconds: interval)
            let left = try await control.readyMessageCount(queue) ?? 0
            XCTAssertEqual(left, 0, "delay queue '\(queue)' still holds \(left) of the retries published while "
                + "several processes created it, 10 s after their \(interval) ms interval")
        }
        let delivered = (try? await control.readyMessageCount(serviceQueue)) ?? nil
        XCTAssertTrue(arrived, "the service queue holds \(delivered.map(String.init) ?? "no count") of the "
            + "\(expected) retries 10 s after their intervals")

        try await control.deleteQueue(serviceQueue)
        for interval in Self.intervalsMilliseconds {
            try await control.deleteQueue(TopologyNames.delayQueue(milliseconds: interval))
            try await control.deleteExchange(TopologyNames.delayExchange(milliseconds: interval))
        }
        await control.close()
    }

    /// Publishes one retry through each client at the same moment, as the fallback of a
    /// sync + async call does, and returns the errors of those that failed.
    private static func publishAtOnce(
        with clients: [AMQPRetryClient], target: String, delayMilliseconds: Int64
    ) async -> [String] {
        await withTaskGroup(of: String?.self) { group in
            for client in clients {
                group.addTask {
                    do {
                        let options = try RetryOptions(repeats: 1, intervalMilliseconds: delayMilliseconds)
                        let invocation = Invocation(
                            cid: CID.random(), mode: .async, target: target, attempt: 2, options: options,
                            callback: nil, source: "", origCID: CID.random(), context: nil,
                            requestTimestamp: WireTimestamp.now(), lastError: "the first call failed",
                            payload: Payload(json: "{}"))
                        try await client.engine.publish(invocation, delayMilliseconds: delayMilliseconds)
                        return nil
                    } catch {
                        return "\(delayMilliseconds) ms: \(error)"
                    }
                }
            }
            var failures: [String] = []
            for await failure in group {
                if let failure { failures.append(failure) }
            }
            return failures
        }
    }
}
