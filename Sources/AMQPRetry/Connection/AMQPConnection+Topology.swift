extension AMQPConnection {
    /// Declares the items this connection has not declared yet.
    ///
    /// Callers that need an item another caller is declaring wait for that declaration instead
    /// of sending their own.
    func ensureDeclared(_ items: [TopologyItem]) async throws(AMQPError) {
        // Each pass returns, or declares items, or waits for one item that another caller is
        // declaring. An item leaves the in-flight set when its declaration ends, so the loop ends.
        while true {
            let claim = declaredTopology.withLock { $0.claim(items) }
            if !claim.toDeclare.isEmpty {
                try await declareClaimed(claim.toDeclare)
            }

            guard let pending = claim.pending else { return }
            await waitForDeclaration(of: pending)
        }
    }

    private func declareClaimed(_ items: [TopologyItem]) async throws(AMQPError) {
        do {
            _ = try await declare(items)
        } catch {
            resume(declaredTopology.withLock { $0.finish(items, declared: false) })
            throw error
        }
        resume(declaredTopology.withLock { $0.finish(items, declared: true) })
    }

    private func waitForDeclaration(of item: TopologyItem) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waiting = declaredTopology.withLock { $0.wait(for: item, continuation) }
            if !waiting {
                continuation.resume()
            }
        }
    }

    private func resume(_ waiters: [CheckedContinuation<Void, Never>]) {
        for waiter in waiters {
            waiter.resume()
        }
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
            declaredTopology.withLock { $0.forget(topology) }
            try await ensureDeclared(topology)
            try await publish(messages, thenAcknowledge: delivery)
        }
    }
}
