@testable import AMQPRetry
import Foundation

/// The cluster under test, read from the environment that `deploy/with-cluster.sh` sets:
/// `AMQP_URL`, the nodes' URLs with `?queue_type=quorum` on the first, and
/// `AMQPRETRY_CLUSTER_CTL`, the script that runs `rabbitmqctl` against one node.
///
/// The tests stop and start nodes, so they refuse to run against anything but a cluster on
/// loopback whose control script they are given.
struct ClusterEnvironment: Sendable {
    /// An error that stops a test before it starts, with what to do about it.
    struct SetupError: Error, CustomStringConvertible {
        let description: String
    }

    /// How to run the cluster tests, for the messages of setup errors.
    static let howToRun = "run `make cluster-test`, which starts a local three-node cluster for them "
        + "(deploy/with-cluster.sh swift test --filter AMQPRetryClusterTests)"

    /// The URL of each node in the order of `AMQP_URL`, the query of the first URL removed.
    let nodeURLs: [String]
    /// The query of the first URL of `AMQP_URL`, such as `queue_type=quorum`, without the `?`.
    let query: String
    /// The path of the script that runs `rabbitmqctl` against node N: `SCRIPT N ARG...`.
    let controlScript: String
    /// The `amqp-retry` executable built next to the test bundle.
    let workerExecutable: String

    /// Reads and checks the environment; throws ``SetupError`` naming what is missing or wrong.
    static func load() throws -> ClusterEnvironment {
        let environment = ProcessInfo.processInfo.environment
        guard let urlList = environment["AMQP_URL"], !urlList.isEmpty else {
            throw SetupError(description: "AMQP_URL is not set: \(howToRun)")
        }
        guard let controlScript = environment["AMQPRETRY_CLUSTER_CTL"], !controlScript.isEmpty else {
            throw SetupError(description: "AMQPRETRY_CLUSTER_CTL is not set, so the tests cannot stop and start "
                + "nodes: \(howToRun)")
        }
        guard FileManager.default.isExecutableFile(atPath: controlScript) else {
            throw SetupError(description: "AMQPRETRY_CLUSTER_CTL=\(controlScript) is not an executable file")
        }

        let configuration = try ConnectionConfiguration(url: urlList)
        guard configuration.addresses.count >= 3 else {
            throw SetupError(description: "AMQP_URL lists \(configuration.addresses.count) node(s), but the "
                + "cluster tests stop one node and need at least three: \(howToRun)")
        }
        for address in configuration.addresses where !["127.0.0.1", "localhost", "::1"].contains(address.host) {
            throw SetupError(description: "AMQP_URL lists \(address.host), but the cluster tests stop and start "
                + "nodes, so they only run against a local cluster on loopback: \(howToRun)")
        }
        guard configuration.queueType == .quorum else {
            throw SetupError(description: "the first URL of AMQP_URL lacks ?queue_type=quorum: \(howToRun)")
        }

        let (nodeURLs, query) = splitURLList(urlList)
        return ClusterEnvironment(nodeURLs: nodeURLs, query: query, controlScript: controlScript,
                                  workerExecutable: try workerExecutable())
    }

    /// Returns a URL list that starts at node `first` (1-based) and goes on with the next nodes in turn,
    /// with the query of `AMQP_URL` on its first URL.
    func urlList(startingAt first: Int) -> String {
        let count = nodeURLs.count
        let ordered = (0..<count).map { nodeURLs[(first - 1 + $0) % count] }
        let head = query.isEmpty ? ordered[0] : ordered[0] + "?" + query
        return ([head] + ordered.dropFirst()).joined(separator: ",")
    }

    /// Returns the connection settings of a URL list that starts at node `first`, with a
    /// connection timeout of 5 seconds so that a node that does not respond fails a test quickly.
    func configuration(startingAt first: Int) throws -> ConnectionConfiguration {
        var configuration = try ConnectionConfiguration(url: urlList(startingAt: first))
        configuration.connectionTimeout = .seconds(5)
        return configuration
    }

    /// Splits a comma-separated URL list into URLs without query, and the first URL's query.
    private static func splitURLList(_ list: String) -> ([String], String) {
        var urls = list.split(separator: ",").map(String.init)
        var query = ""
        if let mark = urls[0].firstIndex(of: "?") {
            query = String(urls[0][urls[0].index(after: mark)...])
            urls[0] = String(urls[0][..<mark])
        }
        return (urls, query)
    }

    /// Finds the `amqp-retry` executable: `AMQPRETRY_BIN` when set, else the one built next to
    /// the test bundle, in `.build/debug` or under the `--scratch-path` of the build.
    private static func workerExecutable() throws -> String {
        if let path = ProcessInfo.processInfo.environment["AMQPRETRY_BIN"], !path.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw SetupError(description: "AMQPRETRY_BIN=\(path) is not an executable file")
            }
            return path
        }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [
            bundle.deletingLastPathComponent().appendingPathComponent("amqp-retry").path,
            Bundle.main.bundleURL.appendingPathComponent("amqp-retry").path,
        ]
        guard let found = candidates.first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw SetupError(description: "amqp-retry not found at \(candidates.joined(separator: " or ")): "
                + "build it with `swift build --build-tests` (with the same --scratch-path as the tests)")
        }
        return found
    }
}

// MARK: - Controlling nodes

extension ClusterEnvironment {
    /// Runs `rabbitmqctl` against node `node` (1-based) through the control script and returns
    /// its standard output.
    /// - Throws: ``SetupError`` when the command fails or runs longer than `timeout`.
    @discardableResult
    func control(_ node: Int, _ arguments: [String], timeout: Duration = .seconds(90)) async throws -> String {
        let directory = FileManager.default.temporaryDirectory.path
        let name = "amqpretry-cluster-ctl-\(UUID().uuidString)"
        let process = try ChildProcess(
            executable: controlScript, arguments: [String(node)] + arguments,
            standardOutputPath: "\(directory)/\(name).out", standardErrorPath: "\(directory)/\(name).err"
        )
        defer { process.removeOutputFiles() }

        let command = "\(controlScript) \(node) \(arguments.joined(separator: " "))"
        guard let status = await process.waitForExit(timeout: timeout) else {
            process.send(SIGKILL)
            _ = await process.waitForExit(timeout: .seconds(5))
            throw SetupError(description: "`\(command)` did not finish within \(timeout)")
        }
        guard status == 0 else {
            throw SetupError(description: "`\(command)` failed with status \(status): \(process.standardError())")
        }
        return process.standardOutput()
    }

    /// Stops the RabbitMQ application of node `node` (`rabbitmqctl stop_app`), which closes its
    /// client connections and takes its queue replicas offline; the Erlang VM keeps running.
    func stopApplication(onNode node: Int) async throws {
        try await control(node, ["stop_app"])
    }

    /// Starts the RabbitMQ application of node `node` again (`rabbitmqctl start_app`).
    func startApplication(onNode node: Int) async throws {
        try await control(node, ["start_app"], timeout: .seconds(180))
    }

    /// Waits up to `timeout` until node 1 reports every node as running, and returns whether it
    /// did.
    func waitForAllNodesRunning(timeout: Duration = .seconds(60)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let status = try? await control(1, ["--quiet", "cluster_status", "--formatter", "json"],
                                            timeout: .seconds(30))
            if let status, runningNodeCount(clusterStatus: status) == nodeURLs.count {
                return true
            }
            try? await Task.sleep(for: .seconds(1))
        }
        return false
    }

    /// Counts the nodes in `running_nodes` of `rabbitmqctl cluster_status --formatter json`.
    private func runningNodeCount(clusterStatus: String) -> Int? {
        guard let json = try? JSONValue(parsing: Array(clusterStatus.utf8)),
              case .array(let nodes)? = json.objectValue?["running_nodes"] else {
            return nil
        }
        return nodes.count
    }
}
