/// The purpose of a broker object in AMQPRetry's topology.
public enum TopologyRole: String, Sendable, Hashable, CaseIterable {
    /// The queue of a service.
    case service
    /// The delay exchange, queue or binding of one retry interval.
    case delay
    /// The parking queue.
    case parking
}

/// The outcome of declaring one broker object as AMQPRetry declares it.
public struct DeclarationResult: Sendable, Hashable {
    /// The object declared.
    public let item: TopologyItem

    /// The purpose of the object.
    public let role: TopologyRole

    /// Whether the broker accepted the declaration.
    public let outcome: DeclarationOutcome

    /// Creates a result.
    public init(item: TopologyItem, role: TopologyRole, outcome: DeclarationOutcome) {
        self.item = item
        self.role = role
        self.outcome = outcome
    }

    /// The kind and name of the object, such as `queue 'amqpretry.parked'`.
    public var objectDescription: String {
        switch item {
        case .queue(let queue):
            return "queue '\(queue.name)'"
        case .exchange(let name, _, _):
            return "exchange '\(name)'"
        case .binding(let queue, let exchange, _):
            return "binding of queue '\(queue)' to exchange '\(exchange)'"
        }
    }
}

/// Whether the broker accepted a declaration.
public enum DeclarationOutcome: Sendable, Hashable {
    /// The object now exists with the arguments AMQPRetry uses: it was created, or it already
    /// had them. A queue comes with its counts.
    case declared(QueueCounts?)

    /// The object exists with other arguments, so RabbitMQ rejected the declaration with
    /// `406 PRECONDITION_FAILED`.
    case differs(DeclarationDifference)

    /// The broker rejected the declaration for another reason, such as missing permissions
    /// (`403 ACCESS_REFUSED`) or a queue exclusive to another connection (`405 RESOURCE_LOCKED`).
    case rejected(AMQPError)
}

/// The difference between an existing object and AMQPRetry's declaration of it, read from
/// RabbitMQ's `406 PRECONDITION_FAILED` reply.
///
/// RabbitMQ names only the first argument it finds different, so an object can differ in more
/// arguments than the one reported.
public struct DeclarationDifference: Sendable, Hashable {
    /// The broker's reply text, such as `PRECONDITION_FAILED - inequivalent arg 'x-message-ttl'
    /// for queue 'amqpretry.delay.500ms' in vhost '/': received the value '500' of type 'long'
    /// but current is none`.
    public let replyText: String

    /// The argument the reply names, such as `x-message-ttl` or `durable`, or `nil` when the
    /// reply has another form.
    public let argument: String?

    /// Whether the existing object lacks the argument that AMQPRetry declares (`current is none`).
    public let isMissingOnBroker: Bool

    /// Whether the existing object has an argument that AMQPRetry does not declare (`received none`).
    public let isExtraOnBroker: Bool

    /// The effect of the difference on the messages in the object, or `nil` when none is known
    /// beyond the failed declaration.
    public let consequence: String?

    /// Reads the difference from a reply text of RabbitMQ 3.x.
    /// - Parameters:
    ///   - replyText: The reply text of the `channel.close` that rejected the declaration.
    ///   - role: The purpose of the object, which decides the consequence.
    public init(replyText: String, role: TopologyRole) {
        self.replyText = replyText
        argument = Self.argument(in: replyText)
        isMissingOnBroker = replyText.hasSuffix("current is none")
        isExtraOnBroker = replyText.contains("received none")
        let missing = replyText.hasSuffix("current is none")
        consequence = argument.flatMap { Self.explainConsequence(of: $0, role: role, isMissingOnBroker: missing) }
    }

    /// A sentence saying that every worker and publisher that declares a differing object fails.
    public static let declarationFailureNote = "Every AMQPRetry worker and publisher that declares it gets the "
        + "same error, which closes its channel; delete the object and declare it again to fix this."

    /// Returns the name between the quotes of `inequivalent arg '…'`.
    private static func argument(in replyText: String) -> String? {
        guard let match = replyText.firstMatch(of: /inequivalent arg '([^']+)'/) else {
            return nil
        }
        return String(match.output.1)
    }
}

// MARK: - Consequences

extension DeclarationDifference {
    private static func explainConsequence(of argument: String, role: TopologyRole, isMissingOnBroker: Bool) -> String? {
        switch (role, argument) {
        case (.delay, "x-message-ttl"):
            return isMissingOnBroker
                ? "The delay queue has no x-message-ttl, so its retries never expire back to their "
                    + "service queue: they stay in the delay queue and are never retried."
                : "The delay queue has another x-message-ttl, so its retries wait that long instead of the interval "
                    + "its name gives."
        case (.delay, "x-dead-letter-exchange"):
            return isMissingOnBroker
                ? "The delay queue has no x-dead-letter-exchange, so RabbitMQ drops each retry when its TTL "
                    + "expires: the retries are lost silently."
                : "The delay queue dead-letters to another exchange than the default one, so expired retries "
                    + "do not return to their service queue."
        case (.delay, "type"):
            return "The delay exchange is not a fanout exchange, so retries, whose routing key is their service "
                + "queue's name, do not reach the delay queue."
        case (_, "durable"):
            return "The object's durability differs; a queue that is not durable loses its messages when the broker restarts."
        case (_, "x-message-ttl"):
            return "The queue has an x-message-ttl, so RabbitMQ drops messages that wait longer than that."
        case (_, "x-expires"):
            return "The queue has an x-expires, so RabbitMQ deletes it, with its messages, once it stays unused that long."
        case (_, "x-max-length"), (_, "x-max-length-bytes"), (_, "x-overflow"):
            return "The queue has a length limit, so RabbitMQ drops or rejects messages beyond it."
        case (_, "x-queue-type"):
            return "The queue has another type than the queue_type of this process's URL (classic by default)."
        default:
            return nil
        }
    }
}
