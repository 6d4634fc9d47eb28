import Foundation

/// Lists, replays and purges the messages in the parking queue `amqpretry.parked`.
///
/// ```swift
/// let parking = ParkingQueue(configuration: try .fromEnvironment())
/// let listing = try await parking.list(limit: 100)
/// let report = try await parking.replay(.cids([cid]))
/// ```
///
/// Each operation opens its own connection and reads the head of the queue with a consumer that
/// acknowledges nothing by itself. It reads at most the number of messages ready when it
/// started, so that messages parked again during a replay are not read twice. Closing the
/// connection at the end returns every message that was not acknowledged to the queue, and
/// RabbitMQ puts a returned message back at its former position where it can, so a listing
/// leaves the order and content of a classic queue unchanged. An operation reads only the
/// messages delivered to it: while another consumer reads the parking queue, some messages go
/// to that consumer instead, and the operation ends after ``idleTimeout`` without a delivery.
///
/// NOTE: Only a classic parking queue was tested. With `queue_type=quorum`, RabbitMQ counts each
/// listing in the message's `x-delivery-count`, and the order after a listing is unverified.
public final class ParkingQueue: Sendable {
    /// How long an operation waits for the next message before it ends with fewer messages than
    /// the queue had ready. The default is 2 seconds.
    public let idleTimeout: Duration

    private let configuration: ConnectionConfiguration
    private let name: String
    private let logger: Logger

    /// The parking queue as this process declares it, with the queue type of the configuration.
    private var parkingTopology: [TopologyItem] {
        Topology.parking(type: configuration.queueType)
    }

    /// How often an operation checks ``idleTimeout``.
    private static let idleCheckInterval: Duration = .milliseconds(100)

    /// Creates a parking queue client; each operation connects and disconnects by itself.
    /// - Parameters:
    ///   - configuration: The broker URL and connection settings.
    ///   - name: The connection name that the broker's management UI shows.
    ///   - logger: Receives connection events. By default nothing is logged.
    ///   - idleTimeout: How long an operation waits for the next message. The default is 2 seconds.
    public init(configuration: ConnectionConfiguration, name: String = "amqp-retry parked",
                logger: Logger = .disabled, idleTimeout: Duration = .seconds(2)) {
        self.configuration = configuration
        self.name = name
        self.logger = logger
        self.idleTimeout = idleTimeout
    }

    /// Reads parked messages without removing them.
    /// - Parameters:
    ///   - limit: The maximum number of messages read from the head of the queue.
    ///   - selection: The messages to return among those read.
    /// - Throws: ``AMQPError`` when the connection fails or is replaced during the operation.
    public func list(limit: Int, selection: ParkedSelection = .all) async throws(AMQPError) -> ParkedListing {
        try await withConnection { connection throws(AMQPError) in
            var messages: [ParkedMessage] = []
            let scan = try await self.scan(on: connection, limit: limit) { message, _ throws(AMQPError) in
                if selection.contains(message) {
                    messages.append(message)
                }
            }
            return ParkedListing(scan: scan, messages: messages)
        }
    }

    /// Moves parked messages back to the service queues they came from, as fresh invocations
    /// (see ``ParkedMessage/replayMessage()``).
    ///
    /// Each copy is published with publisher confirms, and the parked message is acknowledged
    /// only after the broker confirmed the copy, so an interruption loses no message. At worst,
    /// when the connection breaks between the confirm and the acknowledgement, the message is
    /// both replayed and still parked. Messages not selected, and messages whose copy failed,
    /// stay in the parking queue.
    /// - Parameters:
    ///   - selection: The messages to replay.
    ///   - limit: The maximum number of messages read from the head of the queue, or `nil`
    ///     for every message ready when the operation starts.
    ///   - progress: Called after each selected message, replayed or not.
    /// - Throws: ``AMQPError`` when the connection fails or is replaced during the operation.
    public func replay(
        _ selection: ParkedSelection,
        limit: Int? = nil,
        progress: (ParkedProgress) -> Void = { _ in }
    ) async throws(AMQPError) -> ParkedOperationReport {
        try await withConnection { connection throws(AMQPError) in
            var report = ParkedOperationReport()
            var read = 0
            // A replayed message that a worker parks again at once, because it is still
            // malformed, comes back with the replay's message_id. While another consumer takes
            // some of the first messages, such a copy can arrive within this operation's count,
            // and it must not be replayed twice.
            var replayedIDs: Set<String> = []
            report.scan = try await self.scan(on: connection, limit: limit) { message, reference throws(AMQPError) in
                read += 1
                let isReplayCopy = message.properties.messageID.map(replayedIDs.contains) ?? false
                guard selection.contains(message), !isReplayCopy else {
                    return
                }
                report.matchedCIDs.formUnion(message.cid.map { [$0] } ?? [])
                if let replayedID = try await self.replay(message, reference, on: connection, into: &report) {
                    replayedIDs.insert(replayedID)
                }
                progress(ParkedProgress(read: read, handled: report.completed + report.failures.count,
                                        completed: report.completed))
            }
            return report
        }
    }

    /// Deletes parked messages.
    ///
    /// With ``ParkedSelection/all`` and no limit it sends `queue.purge`, which also deletes
    /// messages parked while it runs. Otherwise it acknowledges each selected message, and the
    /// others stay in the queue.
    /// - Parameters:
    ///   - selection: The messages to delete.
    ///   - limit: The maximum number of messages read from the head of the queue, or `nil`
    ///     for every message ready when the operation starts.
    /// - Throws: ``AMQPError`` when the connection fails or is replaced during the operation.
    public func purge(_ selection: ParkedSelection, limit: Int? = nil) async throws(AMQPError) -> ParkedOperationReport {
        try await withConnection { connection throws(AMQPError) in
            if selection == .all, limit == nil {
                return try await self.purgeAll(on: connection)
            }

            var report = ParkedOperationReport()
            report.scan = try await self.scan(on: connection, limit: limit) { message, reference throws(AMQPError) in
                guard selection.contains(message) else {
                    return
                }
                report.matchedCIDs.formUnion(message.cid.map { [$0] } ?? [])
                connection.ack(reference)
                report.completed += 1
            }

            // The declare-ok arrives only after the broker has handled the acknowledgements
            // sent before it on the same channel.
            _ = try await connection.declare(self.parkingTopology)
            return report
        }
    }
}

// MARK: - Reports

/// The counts of one pass over the head of the parking queue.
public struct ParkedScan: Sendable, Hashable {
    /// The ready messages in the parking queue when the operation started.
    public var readyAtStart = 0

    /// The consumers of the parking queue when the operation started; each of them receives
    /// some of the messages instead of the operation.
    public var consumersAtStart = 0

    /// The messages the operation meant to read: ``readyAtStart``, or the limit when smaller.
    public var expected = 0

    /// The messages read.
    public var examined = 0

    /// Whether the operation ended after its idle timeout before it read ``expected`` messages.
    public var endedEarly: Bool {
        examined < expected
    }

    /// Creates an empty scan.
    public init() {}
}

/// The parked messages that ``ParkingQueue/list(limit:selection:)`` read.
public struct ParkedListing: Sendable, Hashable {
    /// The counts of the pass that read the messages.
    public let scan: ParkedScan

    /// The selected messages, in queue order.
    public let messages: [ParkedMessage]
}

/// The outcome of a replay or purge.
public struct ParkedOperationReport: Sendable, Hashable {
    /// The counts of the pass that read the messages.
    public var scan = ParkedScan()

    /// The messages replayed or deleted.
    public var completed = 0

    /// The CIDs of the selected messages that the operation read, whether or not it completed them.
    public var matchedCIDs: Set<CID> = []

    /// The selected messages that could not be replayed and stay parked.
    public var failures: [ParkedFailure] = []

    /// Creates an empty report.
    public init() {}

    /// Returns the CIDs of `selection` that the operation did not find among the messages it read.
    public func missingCIDs(of selection: ParkedSelection) -> Set<CID> {
        guard case .cids(let cids) = selection else {
            return []
        }
        return cids.subtracting(matchedCIDs)
    }
}

/// A selected parked message that an operation could not complete.
public struct ParkedFailure: Sendable, Hashable {
    /// The message, which stays in the parking queue.
    public let message: ParkedMessage

    /// The error message.
    public let error: String
}

/// The progress of a replay, reported after each selected message.
public struct ParkedProgress: Sendable, Hashable {
    /// The messages read so far, selected or not.
    public let read: Int

    /// The selected messages handled so far, replayed or failed.
    public let handled: Int

    /// The messages replayed so far.
    public let completed: Int
}

// MARK: - Scanning

extension ParkingQueue {
    private enum ScanEvent: Sendable {
        case delivery(Delivery, AMQPConnection.DeliveryReference)
        case idleCheck
    }

    /// Runs `body` on a new connection and closes it afterwards. Closing returns every delivery
    /// that was not acknowledged to the queue.
    private func withConnection<T>(
        _ body: (AMQPConnection) async throws(AMQPError) -> T
    ) async throws(AMQPError) -> T {
        let connection = AMQPConnection(configuration: configuration, name: name, logger: logger)
        try await connection.start()
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Reads messages from the head of the parking queue, up to `limit` and to the number ready
    /// at the start, and passes each to `visit`, which may acknowledge it.
    private func scan(
        on connection: AMQPConnection,
        limit: Int?,
        visit: (ParkedMessage, AMQPConnection.DeliveryReference) async throws(AMQPError) -> Void
    ) async throws(AMQPError) -> ParkedScan {
        let counts = try await connection.declare(self.parkingTopology).first ?? nil
        var scan = ParkedScan()
        scan.readyAtStart = counts?.messageCount ?? 0
        scan.consumersAtStart = counts?.consumerCount ?? 0
        scan.expected = limit.map { min($0, scan.readyAtStart) } ?? scan.readyAtStart
        guard scan.expected > 0 else {
            return scan
        }

        let events = try await startConsuming(on: connection, expected: scan.expected)
        defer { events.stop() }

        var generation: UInt64?
        var lastActivity = ContinuousClock.now
        for await event in events.stream {
            guard case .delivery(let delivery, let reference) = event else {
                if ContinuousClock.now - lastActivity >= idleTimeout {
                    break
                }
                continue
            }

            // After a reconnect the broker has returned the earlier deliveries to the queue,
            // and the consumer would read them a second time.
            generation = generation ?? reference.generation
            guard reference.generation == generation else {
                throw AMQPError(.connectionLost, operation: "reading '\(TopologyNames.parkingQueue)'",
                                replyText: "the connection was replaced during the operation; the messages it "
                                    + "had not finished are back in the queue, so run it again")
            }

            scan.examined += 1
            try await visit(ParkedMessage(properties: delivery.properties, body: delivery.body), reference)
            lastActivity = .now
            if scan.examined == scan.expected {
                break
            }
        }
        return scan
    }

    /// The deliveries of a scan's consumer and its idle checks, in one stream.
    private struct ScanEvents {
        let stream: AsyncStream<ScanEvent>
        let continuation: AsyncStream<ScanEvent>.Continuation
        let idleChecks: Task<Void, Never>

        /// Ends the stream; later deliveries stay unacknowledged until the connection closes.
        func stop() {
            idleChecks.cancel()
            continuation.finish()
        }
    }

    private func startConsuming(on connection: AMQPConnection, expected: Int) async throws(AMQPError) -> ScanEvents {
        // A prefetch of `expected` lets every message arrive although none is acknowledged;
        // 0 means no limit, for more messages than the 16-bit prefetch count can hold.
        try await connection.setPrefetch(expected <= Int(UInt16.max) ? UInt16(expected) : 0)

        let (stream, continuation) = AsyncStream<ScanEvent>.makeStream()
        let consumer = AMQPConnection.Consumer(
            queue: TopologyNames.parkingQueue, noAck: false, topology: parkingTopology
        ) { delivery, reference in
            continuation.yield(.delivery(delivery, reference))
        }
        _ = try await connection.addConsumer(consumer)

        let idleChecks = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.idleCheckInterval)
                continuation.yield(.idleCheck)
            }
        }
        return ScanEvents(stream: stream, continuation: continuation, idleChecks: idleChecks)
    }
}

// MARK: - Replaying and purging

extension ParkingQueue {
    /// Publishes the replay copy of one message and acknowledges the parked one once the copy
    /// is confirmed. A failure other than a lost connection is recorded, and the message stays.
    /// - Returns: The `message_id` of the copy once it is confirmed, or `nil` when it failed.
    private func replay(
        _ message: ParkedMessage,
        _ reference: AMQPConnection.DeliveryReference,
        on connection: AMQPConnection,
        into report: inout ParkedOperationReport
    ) async throws(AMQPError) -> String? {
        let copy: OutgoingMessage
        do {
            copy = try message.replayMessage()
        } catch {
            report.failures.append(ParkedFailure(message: message, error: error.description))
            return nil
        }

        do {
            let topology = message.service.map { Topology.service($0, type: configuration.queueType) } ?? []
            try await connection.publish([copy], declaring: topology, thenAcknowledge: reference)
            report.completed += 1
            return copy.properties.messageID
        } catch where error.code == .connectionLost {
            throw error
        } catch {
            logger.warning("replaying a parked message failed", metadata: [
                LogKey.cid: message.correlationID ?? "", LogKey.queue: copy.routingKey, LogKey.error: error.description,
            ])
            report.failures.append(ParkedFailure(message: message, error: error.description))
            return nil
        }
    }

    /// Deletes every ready message with `queue.purge`.
    private func purgeAll(on connection: AMQPConnection) async throws(AMQPError) -> ParkedOperationReport {
        let counts = try await connection.declare(self.parkingTopology).first ?? nil
        let purged = try await connection.perform("queue.purge") { (handle) throws(AMQPError) in
            try handle.purgeQueue(TopologyNames.parkingQueue)
        }

        var report = ParkedOperationReport()
        report.scan.readyAtStart = counts?.messageCount ?? 0
        report.scan.consumersAtStart = counts?.consumerCount ?? 0
        report.scan.expected = purged
        report.scan.examined = purged
        report.completed = purged
        return report
    }
}
