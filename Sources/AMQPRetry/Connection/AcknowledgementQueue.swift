/// The delivery tags of one channel that the broker still counts as unacknowledged, and the
/// acks that are due for them, combined where AMQP allows.
///
/// A `basic.ack` with `multiple` set settles every unacknowledged tag up to its own, so it may
/// stand for a run of tags only when every lower tag that is still unsettled is due for an ack
/// too. ``takeAcks()`` therefore combines the run of due tags at the front of the queue into one
/// ack and acks every other due tag on its own, so that no due ack waits for a slower
/// delivery. Rejected tags leave the queue before the next ack is taken, so that a combined ack
/// never covers them.
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

    /// Removes a delivery that is being rejected, so that no combined ack covers it.
    mutating func rejected(_ deliveryTag: UInt64) {
        guard let index = unsettled[head...].firstIndex(of: deliveryTag) else { return }
        unsettled.remove(at: index)
        due.remove(deliveryTag)
    }

    /// Returns the acks to send for every due tag, in ascending order, and removes those tags.
    mutating func takeAcks() -> [Ack] {
        guard !due.isEmpty else { return [] }
        var acks: [Ack] = []

        var run = 0
        while head < unsettled.count, due.remove(unsettled[head]) != nil {
            head += 1
            run += 1
        }
        if run > 0 {
            acks.append(Ack(deliveryTag: unsettled[head - 1], multiple: run > 1))
        }

        if !due.isEmpty {
            let alone = due.sorted()
            for tag in alone {
                acks.append(Ack(deliveryTag: tag, multiple: false))
            }
            let settled = Set(alone)
            unsettled.removeAll { settled.contains($0) }
            head = min(head, unsettled.count)
            due.removeAll()
        }
        compact()
        return acks
    }

    /// Removes every tag, for a channel that was closed.
    mutating func removeAll() {
        unsettled.removeAll(keepingCapacity: true)
        head = 0
        due.removeAll()
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
