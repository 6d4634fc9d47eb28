/// The delivery tags of one channel that the broker still counts as unacknowledged, and the
/// acks that are due for them, combined where AMQP allows.
///
/// A `basic.ack` with `multiple` set settles every unacknowledged tag up to its own, so it may
/// stand for a run of tags only when every lower tag that is still unsettled is due for an ack
/// too. ``takeAcks(now:holdLimit:)`` therefore combines the run of due tags at the front of the
/// queue into one ack. Every other due tag is acked on its own, unless each lower unsettled tag
/// is due or has its replacement published. Those lower tags become due as their confirms
/// arrive, in order and usually within a few milliseconds, and one combined ack then settles
/// them all. Such a hold lasts at most `holdLimit`. A lower tag without a published replacement,
/// such as one whose handler still runs, ends the hold, so a slow handler does not hold back
/// the others' acks. Rejected tags leave the queue before the next ack is taken, so that a
/// combined ack never covers them.
struct AcknowledgementQueue {
    /// One `basic.ack` to send.
    struct Ack: Equatable {
        /// The delivery tag the ack names.
        let deliveryTag: UInt64
        /// Whether the ack also settles every lower unsettled tag.
        let multiple: Bool
    }

    /// Unsettled tags in ascending order, from `head` on.
    private var unsettled: [UInt64] = []
    private var head = 0
    /// Unsettled tags whose ack is due.
    private var due: Set<UInt64> = []
    /// Unsettled tags whose replacement is published and waits for its confirm.
    private var replaced: Set<UInt64> = []
    /// When due tags started to wait for a lower tag, in monotonic nanoseconds, or `nil` when
    /// none waits.
    private(set) var heldSince: UInt64?

    /// Whether some ack is due.
    var hasDueAcks: Bool {
        !due.isEmpty
    }

    /// Records a delivery that waits for an ack or a reject.
    ///
    /// The broker numbers the deliveries of a channel in ascending order. A tag that is not above
    /// the last one is left out, so that its ack goes out on its own and no combined ack can
    /// rest on a wrong order.
    mutating func delivered(_ deliveryTag: UInt64) {
        guard unsettled.last.map({ $0 < deliveryTag }) ?? true else { return }
        unsettled.append(deliveryTag)
    }

    /// Marks a delivery's ack as due. Returns `false` when the tag is not unsettled here, and
    /// then the caller acks it on its own.
    mutating func ackDue(_ deliveryTag: UInt64) -> Bool {
        guard contains(deliveryTag) else { return false }
        due.insert(deliveryTag)
        return true
    }

    /// Records that the replacement of a delivery is published, so that its ack becomes due
    /// when the confirm arrives.
    mutating func replacementPublished(_ deliveryTag: UInt64) {
        guard contains(deliveryTag) else { return }
        replaced.insert(deliveryTag)
    }

    /// Returns whether the ack of `deliveryTag` is due but not taken yet.
    func isDue(_ deliveryTag: UInt64) -> Bool {
        due.contains(deliveryTag)
    }

    /// Removes a delivery that is being rejected, so that no combined ack covers it.
    mutating func rejected(_ deliveryTag: UInt64) {
        guard let index = unsettled[head...].firstIndex(of: deliveryTag) else { return }
        unsettled.remove(at: index)
        due.remove(deliveryTag)
        replaced.remove(deliveryTag)
        if due.isEmpty {
            heldSince = nil
        }
    }

    /// Returns the acks to send, in ascending order, and removes their tags: one for the run of
    /// due tags at the front, and one for each other due tag unless it may be held. Due tags
    /// are held while every lower unsettled tag is due or replaced, for at most `holdLimit` since
    /// the hold began, with `now` and `holdLimit` in monotonic nanoseconds. With a `holdLimit`
    /// of 0 every due tag is acked at once.
    mutating func takeAcks(now: UInt64 = 0, holdLimit: UInt64 = 0) -> [Ack] {
        guard !due.isEmpty else { return [] }
        var acks: [Ack] = []

        var run = 0
        while head < unsettled.count, due.remove(unsettled[head]) != nil {
            replaced.remove(unsettled[head])
            head += 1
            run += 1
        }
        if run > 0 {
            acks.append(Ack(deliveryTag: unsettled[head - 1], multiple: run > 1))
        }

        if due.isEmpty {
            heldSince = nil
        } else if holdLimit > 0, lowerTagsAwaitConfirms(), let since = heldSince ?? Optional(now),
                  now < since + holdLimit {
            heldSince = since
        } else {
            acks += takeAlone()
        }
        compact()
        return acks
    }

    /// Returns whether every unsettled tag below the highest due tag is due or replaced.
    private func lowerTagsAwaitConfirms() -> Bool {
        guard let highest = due.max() else { return true }
        for tag in unsettled[head...] {
            guard tag < highest else { return true }
            guard due.contains(tag) || replaced.contains(tag) else { return false }
        }
        return true
    }

    /// Acks every due tag on its own.
    private mutating func takeAlone() -> [Ack] {
        let alone = due.sorted()
        let settled = Set(alone)
        unsettled.removeAll { settled.contains($0) }
        head = min(head, unsettled.count)
        due.removeAll()
        replaced.subtract(alone)
        heldSince = nil
        return alone.map { Ack(deliveryTag: $0, multiple: false) }
    }

    /// Removes every tag, for a channel that was closed.
    mutating func removeAll() {
        unsettled.removeAll(keepingCapacity: true)
        head = 0
        due.removeAll()
        replaced.removeAll()
        heldSince = nil
    }

    private func contains(_ deliveryTag: UInt64) -> Bool {
        var low = head
        var high = unsettled.count
        while low < high {
            let middle = (low + high) / 2
            if unsettled[middle] < deliveryTag {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low < unsettled.count && unsettled[low] == deliveryTag
    }

    /// Drops settled tags from the front once they make up half of the storage.
    private mutating func compact() {
        guard head > 0, head * 2 >= unsettled.count else { return }
        unsettled.removeFirst(head)
        head = 0
    }
}
