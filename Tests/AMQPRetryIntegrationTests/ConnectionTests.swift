@testable import AMQPRetry
import XCTest

/// The worker's connections: heartbeats during a long handler, and a graceful stop.
final class ConnectionTests: IntegrationTestCase {
    /// The log messages of a lost and a restored connection.
    private static let reconnectMessages: Set<String> = ["connection to RabbitMQ lost", "reconnected to RabbitMQ"]

    func testHandlerOutlastsHeartbeats() async throws {
        var heartbeatConfiguration = try configuration
        heartbeatConfiguration.heartbeat = .seconds(1)
        let probe = try await IntegrationEnvironment.connect(heartbeatConfiguration, name: "amqpretry itest \(runID) heartbeat")
        let negotiated = try await probe.negotiatedHeartbeatSeconds()
        await probe.close()
        XCTAssertEqual(negotiated, 1, "the broker did not agree to a 1-second heartbeat, so this test proves nothing")

        let service = try await makeService("slow")
        let recorder = CallRecorder()
        // The first call outlasts three heartbeat intervals, and later calls return at once.
        try await startWorker([service: { request in
            let number = recorder.record(request)
            if number == 1 {
                try await Task.sleep(for: .milliseconds(3500))
            }
            return Payload(text: "reply of call \(number)")
        }], configure: { $0.connection = heartbeatConfiguration })
        let client = try await connectClient(configuration: heartbeatConfiguration)

        let slow = try await client.invokeRetry.invoke(service, repeats: 1, seconds: 0.5, timeout: .seconds(10))
        let fast = try await client.invokeRetry.invoke(service, repeats: 1, seconds: 0.5, timeout: .seconds(5))

        XCTAssertEqual(slow.text, "reply of call 1", "the slow call was retried or failed")
        XCTAssertEqual(fast.text, "reply of call 2", "the call after the slow one was retried or failed")
        let reconnects = logs.records.filter { Self.reconnectMessages.contains($0.message) }
        XCTAssertEqual(reconnects.count, 0, "connections were lost during the slow handler: "
            + reconnects.map { "\($0.label): \($0.message) \($0.metadata)" }.joined(separator: "; "))
    }

    func testStopWaitsForRunningHandler() async throws {
        let service = try await makeService("slow")
        let callback = try await makeService("callback")
        let started = CallRecorder()
        let finished = CallRecorder()
        let worker = try await startWorker([service: { request in
            started.record(request)
            try await Task.sleep(for: .seconds(2))
            finished.record(request)
            return Payload(text: "finished")
        }], configure: { $0.drainTimeout = .seconds(10) })
        let callbacks = try await readQueue(of: callback)
        let client = try await connectClient()

        let cid = try await client.invokeRetry.invokeAsync(service, repeats: 1, seconds: 0.5, callback: callback)
        let running = await eventually { started.count == 1 }
        XCTAssertTrue(running, "the handler did not start within 10 s")
        XCTAssertEqual(finished.count, 0, "the handler finished before the worker was asked to stop")

        await stopWorker(worker)
        let returned = ContinuousClock.now

        XCTAssertEqual(finished.count, 1, "run() returned before the running handler finished")
        if let finishTime = finished.all.first?.time {
            XCTAssertLessThanOrEqual(finishTime, returned, "run() returned before the running handler finished")
        }
        let queue = TopologyNames.serviceQueue(service)
        let left = try await broker.readyMessageCount(queue)
        XCTAssertEqual(left, 0, "the invocation is back in '\(queue)' after the stop, so it was not acknowledged")

        await assertReceivesExactly(1, from: callbacks)
        guard let message = callbacks.messages(correlationID: cid.rawValue).first else {
            XCTFail("no callback has correlation_id \(cid)")
            return
        }
        assertCallback(message, matches: ExpectedCallback(
            cid: cid, ok: true, target: service, attempts: 1, repeats: 1, seconds: 0.5, context: nil,
            response: "finished", responseContentType: "text/plain; charset=utf-8"
        ))
    }

    func testIdleConnectionPublishesFromCaller() async throws {
        let service = try await makeService("idle")
        let queue = TopologyNames.serviceQueue(service)
        let connection = try await IntegrationEnvironment.connect(try configuration, name: "amqpretry itest \(runID) idle")
        let count = 20

        // Each publish waits for the confirm of the one before, so the connection is idle when
        // the next one starts, unless its I/O thread is still finishing the turn that read it.
        for index in 0..<count {
            let message = OutgoingMessage(exchange: "", routingKey: queue, properties: MessageProperties(deliveryMode: 2),
                                          body: Array("message \(index)".utf8))
            try await connection.publish([message])
        }
        let callerPublishes = connection.callerPublishCount
        await connection.close()

        XCTAssertGreaterThan(callerPublishes, 0, "no publish of \(count) went out from the caller's thread")
        XCTAssertLessThanOrEqual(callerPublishes, count)
        let ready = try await broker.readyMessageCount(queue)
        XCTAssertEqual(ready, count, "the queue has \(ready) of the \(count) confirmed messages")
        _ = try await broker.perform("queue.purge") { (handle) throws(AMQPError) in try handle.purgeQueue(queue) }
    }
}
