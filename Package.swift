// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "AMQPRetry",
    products: [
        .library(name: "AMQPRetry", targets: ["AMQPRetry"]),
        .executable(name: "amqp-retry", targets: ["AMQPRetryCLI"]),
        .executable(name: "amqp-retry-bench", targets: ["AMQPRetryBench"]),
    ],
    targets: [
        // The system librabbitmq (rabbitmq-c 0.11, Debian's librabbitmq-dev) and the shims Swift needs.
        .target(
            name: "CRabbitMQ",
            linkerSettings: [.linkedLibrary("rabbitmq")]
        ),
        .target(
            name: "AMQPRetry",
            dependencies: ["CRabbitMQ"]
        ),
        .executableTarget(
            name: "AMQPRetryCLI",
            dependencies: ["AMQPRetry"]
        ),
        // `make bench`: each workload through AMQPRetry's public API and through a librabbitmq
        // baseline in C (Benchmarks/baseline), compared in docs/benchmarks.md.
        .executableTarget(
            name: "AMQPRetryBench",
            dependencies: ["AMQPRetry"]
        ),
        .testTarget(
            name: "AMQPRetryTests",
            dependencies: ["AMQPRetry", "CRabbitMQ"]
        ),
        .testTarget(
            name: "AMQPRetryIntegrationTests",
            dependencies: ["AMQPRetry", "CRabbitMQ"]
        ),
        // Failures injected on a private broker: worker kills, broker restarts and stalls,
        // alarms and bad input. `make faults` runs them.
        .testTarget(
            name: "AMQPRetryFaultTests",
            dependencies: ["AMQPRetry", "CRabbitMQ"]
        ),
        // A three-node cluster with quorum queues, with a node stopped and restarted under load.
        // `make cluster-test` starts the cluster (deploy/with-cluster.sh) and runs them.
        .testTarget(
            name: "AMQPRetryClusterTests",
            dependencies: ["AMQPRetry", "CRabbitMQ"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
