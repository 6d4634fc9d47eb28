/// The topology items one connection has declared, and those whose declaration is under way.
///
/// Many publishes to a new queue start at once, and each would otherwise send its own
/// `queue.declare` before the first declare-ok came back. Each of those is a synchronous
/// round trip on the I/O thread and a call into the queue's process on the broker. So the first
/// caller claims the items and declares them, and the others wait for its result.
struct DeclaredTopology {
    /// A caller's share of the items it needs: those it declares itself, and the first one that
    /// another caller is declaring, if any.
    struct Claim {
        /// Items this caller must declare and then pass to ``finish(_:declared:)``.
        var toDeclare: [TopologyItem] = []
        /// An item another caller is declaring; wait with ``wait(for:_:)``, then claim again
        /// unless the declaration failed.
        var pending: TopologyItem?
    }

    private var declared: Set<TopologyItem> = []
    /// Items being declared, with the callers waiting for each.
    private var inFlight: [TopologyItem: [Waiter]] = [:]

    /// A caller waiting for another caller's declaration, resumed with its error, or `nil`
    /// when it succeeded.
    typealias Waiter = CheckedContinuation<AMQPError?, Never>

    /// Claims the undeclared items of `items` up to the first one that someone else is
    /// declaring, and names that one.
    ///
    /// Items later in the list may depend on earlier ones (a binding on its exchange and queue),
    /// so none is claimed past an item whose declaration has not ended.
    mutating func claim(_ items: [TopologyItem]) -> Claim {
        var claim = Claim()
        for item in items where !declared.contains(item) {
            guard inFlight[item] == nil else {
                claim.pending = item
                return claim
            }
            inFlight[item] = []
            claim.toDeclare.append(item)
        }
        return claim
    }

    /// Registers `waiter` to resume when `item` is no longer being declared. Returns `false`,
    /// and keeps nothing, when that is already so.
    mutating func wait(for item: TopologyItem, _ waiter: Waiter) -> Bool {
        guard inFlight[item] != nil else { return false }
        inFlight[item]?.append(waiter)
        return true
    }

    /// Ends the declaration of `items`, records them as declared when it succeeded, and returns
    /// the callers to resume.
    ///
    /// After a failure the waiting callers get the same error rather than declaring again one
    /// after another. With the broker unreachable, each of those declarations would wait its
    /// whole timeout, and the last caller would wait one timeout per caller ahead of it.
    mutating func finish(_ items: [TopologyItem], declared succeeded: Bool) -> [Waiter] {
        if succeeded {
            declared.formUnion(items)
        }
        var waiters: [Waiter] = []
        for item in items {
            waiters += inFlight.removeValue(forKey: item) ?? []
        }
        return waiters
    }

    /// Forgets `items`, so that the next publish declares them again.
    mutating func forget(_ items: [TopologyItem]) {
        declared.subtract(items)
    }
}
