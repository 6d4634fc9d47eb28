import Foundation

/// A message in the parking queue `amqpretry.parked`, with the headers a worker added when it
/// parked the message.
public struct ParkedMessage: Sendable, Hashable {
    /// The properties, including the parked headers.
    public let properties: MessageProperties

    /// The body, unchanged from the message that was parked.
    public let body: [UInt8]

    /// Creates a parked message from the properties and body of a delivery.
    public init(properties: MessageProperties, body: [UInt8]) {
        self.properties = properties
        self.body = body
    }

    /// The `correlation_id` property, which is the CID for every message except those parked
    /// with reason `invalid-cid`.
    public var correlationID: String? {
        properties.correlationID
    }

    /// The CID, or `nil` when `correlation_id` is missing or not a CID.
    public var cid: CID? {
        correlationID.flatMap { try? CID(validating: $0) }
    }

    /// The `amqpretry-parked-reason` header: `<code>: <detail>`.
    public var reason: String? {
        properties.headerList[WireHeader.parkedReason]?.textValue
    }

    /// The code at the start of ``reason``, or `nil` when it is missing or unknown to this version.
    public var reasonCode: ParkReason.Code? {
        guard let reason, let colon = reason.firstIndex(of: ":") else {
            return nil
        }
        return ParkReason.Code(rawValue: String(reason[..<colon]))
    }

    /// The `amqpretry-parked-queue` header: the queue the message was parked from.
    public var sourceQueue: String? {
        properties.headerList[WireHeader.parkedQueue]?.textValue
    }

    /// The service whose queue the message was parked from, or `nil` when ``sourceQueue`` is
    /// not a service queue.
    public var service: String? {
        guard let sourceQueue, sourceQueue.hasPrefix(TopologyNames.servicePrefix) else {
            return nil
        }
        let name = String(sourceQueue.dropFirst(TopologyNames.servicePrefix.count))
        return ServiceName.violation(of: name) == nil ? name : nil
    }

    /// The `amqpretry-parked-at` header: when the message was parked, as ISO 8601 in UTC.
    public var parkedAt: String? {
        properties.headerList[WireHeader.parkedAt]?.textValue
    }

    /// The size of the body in bytes.
    public var size: Int {
        body.count
    }
}

// MARK: - Replay

extension ParkedMessage {
    /// The headers a replay removes: the parked headers, the previous attempt's error, the
    /// redelivery count, and RabbitMQ's dead-lettering history.
    static let headersRemovedOnReplay: Set<String> = [
        WireHeader.parkedReason, WireHeader.parkedQueue, WireHeader.parkedAt,
        WireHeader.lastError, WireHeader.redeliveries,
    ]

    /// Makes the message that returns this one to its service queue as a fresh invocation.
    ///
    /// The copy keeps the CID, the body and every property and header except these: the parked
    /// headers, `amqpretry-last-error`, `amqpretry-redeliveries`, `x-death`, `x-first-death-*`
    /// and `x-last-death-*` are removed, `amqpretry-attempt` becomes 1, and `message_id` is
    /// new. The worker then calls the service with the full number of retries again, and a
    /// callback still carries the original CID.
    /// - Returns: A mandatory message to the default exchange, routed to the service queue.
    /// - Throws: ``ReplayError`` when the message does not name a service queue it came from.
    public func replayMessage() throws(ReplayError) -> OutgoingMessage {
        guard service != nil, let sourceQueue else {
            throw ReplayError(reason: sourceQueue.map { "its source queue '\($0)' is not a service queue" }
                ?? "it has no '\(WireHeader.parkedQueue)' header naming its source queue")
        }

        var replayed = properties
        replayed.headers = Self.replayHeaders(properties.headers)
        replayed.messageID = UUID().uuidString.lowercased()
        return OutgoingMessage(exchange: "", routingKey: sourceQueue, mandatory: true, properties: replayed, body: body)
    }

    private static func replayHeaders(_ parkedHeaders: FieldTable) -> FieldTable {
        var headers = parkedHeaders.filter { key, _ in
            !headersRemovedOnReplay.contains(key) && key != "x-death"
                && !key.hasPrefix("x-first-death-") && !key.hasPrefix("x-last-death-")
        }
        headers[WireHeader.attempt] = .int64(1)
        return headers
    }

    /// The reason a parked message cannot be replayed.
    public struct ReplayError: Error, Sendable, Hashable, CustomStringConvertible {
        /// The reason the message cannot go back to a service queue.
        public let reason: String

        /// A sentence with the reason.
        public var description: String {
            "the message cannot be replayed because \(reason)"
        }
    }
}

/// The parked messages an operation acts on.
public enum ParkedSelection: Sendable, Hashable {
    /// Every message the operation reads.
    case all
    /// The messages whose `correlation_id` is one of these CIDs.
    case cids(Set<CID>)

    /// Returns whether the selection contains a message.
    public func contains(_ message: ParkedMessage) -> Bool {
        switch self {
        case .all:
            return true
        case .cids(let cids):
            return message.cid.map(cids.contains) ?? false
        }
    }
}
