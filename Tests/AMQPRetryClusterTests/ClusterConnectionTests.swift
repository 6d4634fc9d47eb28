@testable import AMQPRetry
import Foundation
import XCTest

/// Connecting to a cluster whose first node in the URL list is down.
final class ClusterConnectionTests: XCTestCase {
    func testFirstNodeDownConnectsToNextNode() async throws {
        let environment = try ClusterEnvironment.load()
        let runID = String(UUID().uuidString.prefix(8)).lowercased()
        let service = "clustertest.echo.\(runID)"
        addTeardownBlock { [environment] in
            try? await environment.startApplication(onNode: 2)
            _ = await environment.waitForAllNodesRunning()
        }
        try await environment.stopApplication(onNode: 2)

        let logs = ConnectionLogs()
        let configuration = try environment.configuration(startingAt: 2)
        let worker = Worker(configuration: .init(connection: configuration, concurrency: 2, drainTimeout: .seconds(5)),
                            logger: logs.logger(label: "worker"))
        try worker.register(service) { request in request.payload }
        let consuming = ConsumingSignal()
        let run = Task { try await worker.run { consuming.fire() } }
        let started = await consuming.wait(timeout: .seconds(30))
        XCTAssertTrue(started, "the worker whose first node is down did not consume within 30 s")

        let client = try await AMQPRetryClient.connect(configuration: configuration, logger: logs.logger(label: "client"))
        let response = try await client.invokeRetry.invoke(service, Payload(json: #"{"hello": "cluster"}"#),
                                                           repeats: 1, seconds: 1, timeout: .seconds(10))
        XCTAssertEqual(response.text, #"{"hello": "cluster"}"#, "the response of a call through the next node")
        await client.close()
        worker.stop()
        try await run.value

        let stopped = environment.nodeAddress(2)
        let next = environment.nodeAddress(3)
        XCTAssertEqual(logs.connectedBrokers.filter { $0 == stopped }, [], "a connection reached the stopped node")
        XCTAssertEqual(Set(logs.connectedBrokers), [next], "the worker and the client did not connect to the next node")

        let control = try await ControlConnection.open(environment.configuration(startingAt: 1), name: "control")
        try await control.deleteQueue(TopologyNames.serviceQueue(service))
        await control.close()
    }

    func testOnlyNodeDownFailsToConnect() async throws {
        let environment = try ClusterEnvironment.load()
        addTeardownBlock { [environment] in
            try? await environment.startApplication(onNode: 2)
            _ = await environment.waitForAllNodesRunning()
        }
        try await environment.stopApplication(onNode: 2)

        var configuration = try ConnectionConfiguration(url: environment.nodeURLs[1] + "?" + environment.query)
        configuration.connectionTimeout = .seconds(5)
        do {
            let client = try await AMQPRetryClient.connect(configuration: configuration)
            await client.close()
            XCTFail("connecting to a list whose only node is down succeeded")
        } catch let error as AMQPError {
            XCTAssertEqual(error.code, .connectionFailed, "connecting to a stopped node failed with \(error)")
            XCTAssertTrue(error.description.contains(environment.nodeAddress(2)),
                          "the error does not name the stopped node \(environment.nodeAddress(2)): \(error)")
        }
    }
}

extension ClusterEnvironment {
    /// Returns the `host:port` of node `node` (1-based), as the log metadata `amqpretry.broker` shows it.
    func nodeAddress(_ node: Int) -> String {
        let configuration = try? ConnectionConfiguration(url: nodeURLs[node - 1])
        return configuration?.brokerAddress ?? nodeURLs[node - 1]
    }
}

/// The brokers that connections reported connecting to, from their debug log records.
final class ConnectionLogs: Sendable {
    private let brokers = Locked<[String]>([])

    /// The `host:port` of every connection made so far, in order.
    var connectedBrokers: [String] {
        brokers.withLock { $0 }
    }

    /// Makes a logger that records every "connected to RabbitMQ" record.
    func logger(label: String) -> Logger {
        Logger(label: label, logLevel: .debug) { record in
            guard record.message == "connected to RabbitMQ", let broker = record.metadata[LogKey.broker] else { return }
            self.brokers.withLock { $0.append(broker) }
        }
    }
}

/// A one-time signal that a task can wait for with a deadline.
final class ConsumingSignal: Sendable {
    private let fired = Locked(false)

    /// Fires the signal.
    func fire() {
        fired.withLock { $0 = true }
    }

    /// Waits up to `timeout` for the signal and returns whether it fired.
    func wait(timeout: Duration) async -> Bool {
        await eventually(timeout: timeout, pollInterval: .milliseconds(50)) { fired.withLock { $0 } }
    }
}
