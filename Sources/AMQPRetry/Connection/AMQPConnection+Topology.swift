extension AMQPConnection {
    /// Declares the items this connection has not declared yet.
    func ensureDeclared(_ items: [TopologyItem]) async throws(AMQPError) {
        let missing = declaredTopology.withLock { declared in items.filter { !declared.contains($0) } }
        guard !missing.isEmpty else { return }
        _ = try await declare(missing)
        declaredTopology.withLock { $0.formUnion(missing) }
    }

    /// Declares `topology` where needed, publishes the messages and waits for their confirms,
    /// then acknowledges `delivery`.
    ///
    /// A message returned as unroutable means that someone deleted a queue or exchange after it
    /// was declared here, so the topology is declared again and the messages published once more.
    func publish(
        _ messages: [OutgoingMessage],
        declaring topology: [TopologyItem],
        thenAcknowledge delivery: DeliveryReference? = nil
    ) async throws(AMQPError) {
        try await ensureDeclared(topology)
        do {
            try await publish(messages, thenAcknowledge: delivery)
        } catch where error.code == .unroutable {
            declaredTopology.withLock { $0.subtract(topology) }
            try await ensureDeclared(topology)
            try await publish(messages, thenAcknowledge: delivery)
        }
    }
}
