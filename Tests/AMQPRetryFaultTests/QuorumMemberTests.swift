@testable import AMQPRetry
import Foundation
import XCTest

/// Consumers and workers of a quorum queue whose member on the connected node is not running,
/// as on a cluster node just after another node declared the queue.
///
/// RabbitMQ 3.10 accepts `queue.declare` for such a queue but closes the connection with 541
/// INTERNAL_ERROR on `basic.consume`. The tests stop the queue's only member
/// with `ra:stop_server` through `rabbitmqctl eval` and start it again with
/// `ra:restart_server`.
final class QuorumMemberTests: FaultTestCase {
    /// A consumer subscribes again on each new connection and consumes once the member runs.
    func testConsumerSubscribesOnceMemberRuns() async throws {
        let queue = try await declareQuorumService("member")
        let subscribing = try await subscribeWhileMemberStopped(queue)
        try await setMember(of: queue, running: true)

        let collector = try await subscribing.value
        try await connection.publish([OutgoingMessage(exchange: "", routingKey: queue, mandatory: true,
                                                      properties: MessageProperties(), body: Array("m".utf8))])
        let delivered = await eventually(timeout: .seconds(10)) { collector.messages.count == 1 }
        await collector.close()
        XCTAssertTrue(delivered, "the consumer got \(collector.messages.count) messages instead of 1")
    }

    /// A consumer keeps subscribing for its `operation_timeout`, not only for its first few
    /// reconnects, so it consumes from a member that needs seconds to start.
    func testConsumerWaitsForSlowMember() async throws {
        let queue = try await declareQuorumService("slow-member")
        let subscribing = try await subscribeWhileMemberStopped(queue)
        try await Task.sleep(for: .seconds(3))
        try await setMember(of: queue, running: true)

        let collector = try await subscribing.value
        await collector.close()
        let attempts = logs.records(withMessage: "subscribing again on the next connection").count
        XCTAssertLessThan(attempts, AMQPConnection.maximumSubscribeAttempts,
                          "the consumer subscribed again \(attempts) times within about 4 s")
    }

    /// A consumer whose `basic.consume` still fails when its `operation_timeout` passes throws
    /// the broker's 541 reply instead of waiting longer.
    func testConsumerGivesUpAfterOperationTimeout() async throws {
        let queue = try await declareQuorumService("gives-up")
        try await setMember(of: queue, running: false)

        let start = ContinuousClock.now
        do {
            let collector = try await QueueCollector.start(
                queue: queue, topology: [], configuration: try configuration([("operation_timeout", "2000")]),
                logger: logs.logger(label: "reader"))
            await collector.close()
            XCTFail("basic.consume succeeded while the quorum member was stopped")
        } catch let error as AMQPError {
            XCTAssertEqual(error.replyCode, 541, "unexpected error: \(error)")
        }
        let elapsed = ContinuousClock.now - start
        XCTAssertLessThan(elapsed, .seconds(10), "giving up took \(elapsed)")

        try await setMember(of: queue, running: true)
        let collector = try await QueueCollector.start(queue: queue, topology: [], configuration: try configuration(),
                                                       logger: logs.logger(label: "reader"))
        await collector.close()
    }

    /// `Worker.stop()` ends a worker that is still subscribing again after 541 replies, without
    /// waiting for the remaining attempts and without an error.
    func testWorkerStopsWhileSubscribing() async throws {
        let service = "faults.\(runID).stopping"
        let queue = try await declareQuorumService("stopping")
        try await useQuorumParkingQueue()
        try await setMember(of: queue, running: false)
        let worker = Worker(configuration: .init(connection: try configuration([("queue_type", "quorum")])),
                            logger: logs.logger(label: "worker"))
        try worker.register(service) { _ in .empty }
        let running = Task { () -> (any Error)? in
            do {
                try await worker.run()
                return nil
            } catch {
                return error
            }
        }
        let retried = await eventually(timeout: .seconds(10)) {
            !self.logs.records(withMessage: "subscribing again on the next connection").isEmpty
        }
        XCTAssertTrue(retried, "basic.consume did not fail while the quorum member was stopped")

        let clock = ContinuousClock()
        let stoppedAt = clock.now
        worker.stop()
        let error = await running.value
        let elapsed = clock.now - stoppedAt
        XCTAssertLessThan(elapsed, .seconds(3), "run() returned \(elapsed) after stop()")
        XCTAssertNil(error, "run() threw after stop(): \(String(describing: error))")
    }

    // MARK: Support

    /// Stops the member of `queue`, starts a consumer of it in a task, and waits until that
    /// consumer's first `basic.consume` has failed.
    private func subscribeWhileMemberStopped(_ queue: String) async throws -> Task<QueueCollector, any Error> {
        try await setMember(of: queue, running: false)

        let configuration = try configuration()
        let logger = logs.logger(label: "reader")
        let subscribing = Task {
            try await QueueCollector.start(queue: queue, topology: [], configuration: configuration, logger: logger)
        }
        let retried = await eventually(timeout: .seconds(10)) {
            !self.logs.records(withMessage: "subscribing again on the next connection").isEmpty
        }
        XCTAssertTrue(retried, "basic.consume did not fail while the quorum member was stopped")
        return subscribing
    }

    /// Deletes the classic parking queue that the fault tests share, so that a worker with
    /// `queue_type=quorum` can declare it as a quorum queue, and deletes that one at the end.
    private func useQuorumParkingQueue() async throws {
        try await connection.deleteQueue(TopologyNames.parkingQueue)
        let connection = try connection
        addTeardownBlock { try? await connection.deleteQueue(TopologyNames.parkingQueue) }
    }

    /// Declares a quorum service queue unique to this test, which the end of the test deletes.
    ///
    /// A test ends with a consumer subscribed, so the member runs and leads. A test that ended
    /// early gets its member started 2 s before the deletion. RabbitMQ 3.10 can delete a queue
    /// whose member has just started before the member's dead-letter worker looks the queue up.
    /// That worker then crashes and briefly takes down the dead-letter supervisor of every
    /// quorum queue, as seen in the broker's log.
    private func declareQuorumService(_ suffix: String) async throws -> String {
        let service = "faults.\(runID).\(suffix)"
        let queue = TopologyNames.serviceQueue(service)
        _ = try await connection.declare(Topology.service(service, type: .quorum))
        deleteAtEnd(queue: queue)
        let broker = try broker
        addTeardownBlock {
            let output = try? await broker.run(["eval", Self.memberExpression(queue, function: "restart_server")])
            if output?.trimmingCharacters(in: .whitespacesAndNewlines) == "ok" {
                try? await Task.sleep(for: .seconds(2))
            }
        }
        return queue
    }

    /// Stops or starts the Ra member of `queue` on the broker's node.
    private func setMember(of queue: String, running: Bool) async throws {
        let function = running ? "restart_server" : "stop_server"
        let output = try await broker.run(["eval", Self.memberExpression(queue, function: function)])
        XCTAssertEqual(output.trimmingCharacters(in: .whitespacesAndNewlines), "ok",
                       "ra:\(function) for \(queue) returned \(output)")
    }

    /// Returns an Erlang expression that calls `ra:<function>` with the local member of `queue`.
    private static func memberExpression(_ queue: String, function: String) -> String {
        "{ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<\"/\">>, queue, <<\"\(queue)\">>)), "
            + "{Name, _} = amqqueue:get_pid(Q), ra:\(function)(quorum_queues, {Name, node()})."
    }
}
