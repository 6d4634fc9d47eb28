extension AMQPConnection {
    /// Declares the items this connection has not declared yet.
    ///
    /// Callers that need an item another caller is declaring wait for that declaration instead
    /// of sending their own, and throw its error when it fails.
    func ensureDeclared(_ items: [TopologyItem]) async throws(AMQPError) {
        // Each pass returns, or declares items, or waits for one item that another caller is
        // declaring. An item leaves the in-flight set when its declaration ends, so the loop ends.
        while true {
            let claim = declaredTopology.withLock { $0.claim(items) }
            if !claim.toDeclare.isEmpty {
                try await declareClaimed(claim.toDeclare)
            }

            guard let pending = claim.pending else { return }
            if let error = await waitForDeclaration(of: pending) {
                throw error
            }
        }
    }

    private func declareClaimed(_ items: [TopologyItem]) async throws(AMQPError) {
        do {
            _ = try await declare(items)
        } catch {
            resume(declaredTopology.withLock { $0.finish(items, declared: false) }, with: error)
            throw error
        }
        resume(declaredTopology.withLock { $0.finish(items, declared: true) }, with: nil)
    }

    /// Waits until another caller's declaration of `item` ends, and returns its error.
    ///
    /// NOTE: the wait does not end when the caller's task is cancelled. It ends with the
    /// declaration it waits for, within one `operation_timeout`.
    private func waitForDeclaration(of item: TopologyItem) async -> AMQPError? {
        await withCheckedContinuation { (continuation: DeclaredTopology.Waiter) in
            let waiting = declaredTopology.withLock { $0.wait(for: item, continuation) }
            if !waiting {
                continuation.resume(returning: nil)
            }
        }
    }

    private func resume(_ waiters: [DeclaredTopology.Waiter], with error: AMQPError?) {
        for waiter in waiters {
            waiter.resume(returning: error)
        }
    }

    /// Declares `topology` where needed, publishes the messages and waits for their confirms,
    /// then acknowledges `delivery`.
    ///
    /// A message returned as unroutable means that someone deleted a queue after it was declared
    /// here. A publish to an exchange someone deleted is not returned: the broker closes the
    /// channel with 404 NOT_FOUND. In both cases the topology is declared again and the messages
    /// published once more.
    func publish(
        _ messages: [OutgoingMessage],
        declaring topology: [TopologyItem],
        thenAcknowledge delivery: DeliveryReference? = nil
    ) async throws(AMQPError) {
        try await ensureDeclared(topology)
        do {
            try await publish(messages, thenAcknowledge: delivery)
        } catch where Self.showsMissingTopology(error, topology: topology) {
            declaredTopology.withLock { $0.forget(topology) }
            try await ensureDeclared(topology)
            try await publish(messages, thenAcknowledge: delivery)
        }
    }

    /// Returns whether a failed publish means that a queue or exchange declared here no longer
    /// exists.
    private static func showsMissingTopology(_ error: AMQPError, topology: [TopologyItem]) -> Bool {
        error.code == .unroutable || (error.replyCode == 404 && !topology.isEmpty)
    }
}
