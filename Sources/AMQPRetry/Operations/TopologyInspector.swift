import Foundation

/// Reads the state of AMQPRetry's queues and checks their arguments over AMQP 0-9-1, without
/// RabbitMQ's management plugin.
///
/// ```swift
/// let inspector = TopologyInspector(configuration: try .fromEnvironment())
/// let snapshot = try await inspector.status(services: ["billing.charge"], delays: [5000])
/// await inspector.close()
/// ```
///
/// The broker rejects a passive `queue.declare` of a missing queue, and a `queue.declare` whose
/// arguments differ, by closing the channel, which ends this library's connection. The inspector
/// then opens a fresh connection for its next step, because waiting for the old one to reconnect
/// would add its reconnect backoff (100 ms or more) to each such step.
public actor TopologyInspector {
    private let configuration: ConnectionConfiguration
    private let name: String
    private let logger: Logger
    private var connection: AMQPConnection?

    /// Creates an inspector; nothing connects until the first step.
    /// - Parameters:
    ///   - configuration: The broker URL and connection settings.
    ///   - name: The connection name that the broker's management UI shows.
    ///   - logger: Receives connection events. The broker's rejections appear there as lost
    ///     connections at `warning` level. By default nothing is logged.
    public init(configuration: ConnectionConfiguration, name: String = "amqp-retry inspector",
                logger: Logger = .disabled) {
        self.configuration = configuration
        self.name = name
        self.logger = logger
    }

    /// Opens the connection now, so that an unreachable broker is reported before any step.
    /// - Throws: ``AMQPError`` when the broker cannot be reached or rejects the login.
    public func connect() async throws(AMQPError) {
        _ = try await liveConnection()
    }

    /// Closes the connection; a later step opens a new one.
    public func close() async {
        let current = connection
        connection = nil
        await current?.close()
    }

    /// Reads the counts of service queues, delay queues and the parking queue with passive
    /// `queue.declare`, which creates nothing.
    /// - Parameters:
    ///   - services: The services whose queues to read.
    ///   - delays: The retry intervals, in milliseconds, whose delay queues to read.
    /// - Throws: ``AMQPError`` when the connection fails, or when the broker rejects a read for
    ///   another reason than a missing queue.
    public func status(services: [String], delays: [Int64]) async throws(AMQPError) -> StatusSnapshot {
        let date = Date()
        var serviceStates: [StatusSnapshot.Service] = []
        for service in services {
            let queue = try await queueStatus(TopologyNames.serviceQueue(service))
            serviceStates.append(StatusSnapshot.Service(name: service, queue: queue))
        }

        var delayStates: [StatusSnapshot.Delay] = []
        for milliseconds in delays {
            let queue = try await queueStatus(TopologyNames.delayQueue(milliseconds: milliseconds))
            delayStates.append(StatusSnapshot.Delay(milliseconds: milliseconds, queue: queue))
        }

        let parking = try await queueStatus(TopologyNames.parkingQueue)
        return StatusSnapshot(date: date, services: serviceStates, delays: delayStates, parking: parking)
    }

    /// Reads the counts of one queue with a passive `queue.declare`.
    /// - Returns: The counts, or a status without counts when the queue does not exist.
    /// - Throws: ``AMQPError`` when the connection fails or the broker rejects the read for
    ///   another reason than `404 NOT_FOUND`.
    public func queueStatus(_ queue: String) async throws(AMQPError) -> QueueStatus {
        let passive = TopologyItem.queue(QueueDeclaration(name: queue, passive: true))
        do {
            let counts = try await declare(passive)
            return QueueStatus(name: queue, counts: counts)
        } catch where error.code == .channelClosed && error.replyCode == Self.notFound {
            return QueueStatus(name: queue, counts: nil)
        }
    }

    /// Declares the queues of services, the delay exchanges, queues and bindings of retry
    /// intervals, and the parking queue, exactly as workers and publishers declare them with the
    /// configuration's queue type, and reports each object whose existing arguments differ.
    ///
    /// A rejected declaration does not stop the others.
    /// - Parameters:
    ///   - services: The services whose queues to declare.
    ///   - delays: The retry intervals, in milliseconds, whose delay topology to declare.
    /// - Returns: One result per object, in declaration order: each service's queue, each
    ///   interval's exchange, queue and binding, then the parking queue.
    /// - Throws: ``AMQPError`` when the connection fails; rejections are results, not errors.
    public func declare(services: [String], delays: [Int64]) async throws(AMQPError) -> [DeclarationResult] {
        let type = configuration.queueType
        var plan: [(TopologyItem, TopologyRole)] = []
        for service in services {
            plan += Topology.service(service, type: type).map { ($0, .service) }
        }
        for milliseconds in delays {
            plan += Topology.delay(milliseconds: milliseconds, type: type).map { ($0, .delay) }
        }
        plan += Topology.parking(type: type).map { ($0, .parking) }

        var results: [DeclarationResult] = []
        for (item, role) in plan {
            results.append(DeclarationResult(item: item, role: role, outcome: try await check(item, role: role)))
        }
        return results
    }
}

// MARK: - Steps

extension TopologyInspector {
    /// RabbitMQ's reply code for a passive declare of a missing queue.
    static let notFound: UInt16 = 404

    /// RabbitMQ's reply code for a declare whose arguments differ from the existing object's.
    static let preconditionFailed: UInt16 = 406

    private func check(_ item: TopologyItem, role: TopologyRole) async throws(AMQPError) -> DeclarationOutcome {
        do {
            return .declared(try await declare(item))
        } catch where error.code == .channelClosed {
            guard error.replyCode == Self.preconditionFailed else {
                return .rejected(error)
            }
            return .differs(DeclarationDifference(replyText: error.replyText ?? "", role: role))
        }
    }

    /// Declares one item and returns a queue's counts. When the broker closes the channel, the
    /// connection is dropped so that the next step opens a fresh one.
    private func declare(_ item: TopologyItem) async throws(AMQPError) -> QueueCounts? {
        let current = try await liveConnection()
        do {
            return try await current.declare([item]).first ?? nil
        } catch {
            if error.code == .channelClosed || error.code == .connectionLost {
                await discard(current)
            }
            throw error
        }
    }

    private func liveConnection() async throws(AMQPError) -> AMQPConnection {
        if let connection {
            return connection
        }
        let opened = AMQPConnection(configuration: configuration, name: name, logger: logger)
        try await opened.start()
        connection = opened
        return opened
    }

    private func discard(_ dropped: AMQPConnection) async {
        if connection === dropped {
            connection = nil
        }
        await dropped.close()
    }
}
