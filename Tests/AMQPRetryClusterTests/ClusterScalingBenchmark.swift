@testable import AMQPRetry
import Foundation
import XCTest

/// Throughput of `amqp-retry worker` processes on the local cluster, for
/// `Benchmarks/cluster-scaling.sh`, which runs it once per number of workers.
///
/// The test publishes a batch of `demo.echo` background invocations with callbacks while no
/// worker runs, then starts the workers. It measures from the first call a worker finished to
/// the last callback the test received, so neither publishing nor starting the workers counts.
/// It prints one line, `cluster scaling: workers=N … rate=R/s`, which the script reads.
///
/// Settings come from the environment:
/// - `AMQPRETRY_SCALING_WORKERS`: worker processes, each with a different first node (default 1);
/// - `AMQPRETRY_SCALING_INVOCATIONS`: the batch (default 5,000);
/// - `AMQPRETRY_SCALING_CONCURRENCY`: the `--concurrency` of each worker (default 8).
///
/// `make cluster-test` skips it because it checks no behaviour.
final class ClusterScalingBenchmark: XCTestCase {
    func testWorkerThroughput() async throws {
        let environment = try ClusterEnvironment.load()
        let workerCount = try Self.setting("AMQPRETRY_SCALING_WORKERS", default: 1)
        let invocationCount = try Self.setting("AMQPRETRY_SCALING_INVOCATIONS", default: 5_000)
        let concurrency = try Self.setting("AMQPRETRY_SCALING_CONCURRENCY", default: 8)
        let runID = String(UUID().uuidString.prefix(8)).lowercased()
        let callbackService = "clusterbench.callbacks.\(runID)"
        let outputDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("amqpretry-cluster-bench-\(runID)").path
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)

        let control = try await ControlConnection.open(environment.configuration(startingAt: 1), name: "control")
        let echoQueue = TopologyNames.serviceQueue(DemoService.echo)
        _ = try await control.declare(Topology.service(DemoService.echo, type: .quorum))
        let leftover = try await control.readyMessageCount(echoQueue) ?? 0
        XCTAssertEqual(leftover, 0, "queue '\(echoQueue)' holds messages from an earlier run")
        let collector = try await CallbackCollector.start(service: callbackService,
                                                          configuration: environment.configuration(startingAt: 1))
        try await Self.publish(invocationCount, callback: callbackService, environment: environment)

        var workers: [WorkerProcess] = []
        for number in 1...workerCount {
            let first = (number - 1) % environment.nodeURLs.count + 1
            workers.append(try WorkerProcess.start(
                executable: environment.workerExecutable, urlList: environment.urlList(startingAt: first),
                concurrency: concurrency, directory: outputDirectory, name: String(number)))
        }
        let finished = await eventually(timeout: .seconds(600), pollInterval: .milliseconds(20)) {
            collector.distinctCount >= invocationCount
        }
        let lastCallback = Date()
        for worker in workers {
            _ = await worker.process.terminate(timeout: .seconds(45))
        }
        await collector.close()
        XCTAssertTrue(finished, "callbacks of \(collector.distinctCount) of \(invocationCount) invocations arrived within 600 s")

        let firstCall = workers.flatMap { $0.calls() }.map(\.time).min()
        if finished, let firstCall {
            let seconds = lastCallback.timeIntervalSince(firstCall)
            print(String(format: "cluster scaling: workers=%d concurrency=%d invocations=%d seconds=%.2f rate=%.0f/s",
                         workerCount, concurrency, invocationCount, seconds, Double(invocationCount) / seconds))
        }

        try await control.deleteQueue(echoQueue)
        try await control.deleteQueue(TopologyNames.serviceQueue(callbackService))
        await control.close()
        try? FileManager.default.removeItem(atPath: outputDirectory)
    }

    /// Publishes `count` background invocations of `demo.echo` over a few connections, up to
    /// 256 awaiting their publisher confirm at a time.
    private static func publish(_ count: Int, callback: String, environment: ClusterEnvironment) async throws {
        var clients: [AMQPRetryClient] = []
        for node in 1...environment.nodeURLs.count {
            clients.append(try await AMQPRetryClient.connect(configuration: environment.configuration(startingAt: node)))
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                if index >= 256 {
                    try await group.next()
                }
                let client = clients[index % clients.count]
                group.addTask {
                    _ = try await client.invokeRetry.invokeAsync(
                        DemoService.echo, Payload(json: #"{"n": \#(index)}"#), repeats: 1, seconds: 1, callback: callback)
                }
            }
            try await group.waitForAll()
        }
        for client in clients {
            await client.close()
        }
    }

    /// Reads a positive whole number from the environment variable `name`.
    private static func setting(_ name: String, default value: Int) throws -> Int {
        guard let text = ProcessInfo.processInfo.environment[name], !text.isEmpty else {
            return value
        }
        guard let number = Int(text), number >= 1 else {
            throw ClusterEnvironment.SetupError(description: "\(name)=\(text) is invalid; use a whole number of at least 1")
        }
        return number
    }
}
