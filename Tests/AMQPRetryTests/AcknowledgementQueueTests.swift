import XCTest

@testable import AMQPRetry

final class AcknowledgementQueueTests: XCTestCase {
    private typealias Ack = AcknowledgementQueue.Ack

    private func queue(delivered tags: ClosedRange<UInt64>) -> AcknowledgementQueue {
        var queue = AcknowledgementQueue()
        for tag in tags {
            queue.delivered(tag)
        }
        return queue
    }

    func testRunFromFrontIsOneMultipleAck() {
        var queue = queue(delivered: 1...5)
        for tag: UInt64 in [3, 1, 2] {
            XCTAssertTrue(queue.ackDue(tag))
        }

        XCTAssertEqual(queue.takeAcks(), [Ack(deliveryTag: 3, multiple: true)])
        XCTAssertFalse(queue.hasDueAcks)
    }

    func testSingleDueTagIsNotMultiple() {
        var queue = queue(delivered: 1...3)
        XCTAssertTrue(queue.ackDue(1))

        XCTAssertEqual(queue.takeAcks(), [Ack(deliveryTag: 1, multiple: false)])
    }

    func testPendingLowerTagBlocksMultiple() {
        var queue = queue(delivered: 1...5)
        XCTAssertTrue(queue.ackDue(2))
        XCTAssertTrue(queue.ackDue(3))
        XCTAssertTrue(queue.ackDue(5))

        let acks = queue.takeAcks()

        XCTAssertEqual(acks, [
            Ack(deliveryTag: 2, multiple: false), Ack(deliveryTag: 3, multiple: false),
            Ack(deliveryTag: 5, multiple: false),
        ])
    }

    func testSettledTagsLeaveTheFront() {
        var queue = queue(delivered: 1...6)
        XCTAssertTrue(queue.ackDue(2))
        XCTAssertEqual(queue.takeAcks(), [Ack(deliveryTag: 2, multiple: false)])

        XCTAssertTrue(queue.ackDue(1))
        XCTAssertTrue(queue.ackDue(3))
        XCTAssertTrue(queue.ackDue(4))

        XCTAssertEqual(queue.takeAcks(), [Ack(deliveryTag: 4, multiple: true)])
    }

    func testRejectedTagIsNeverAcked() {
        var queue = queue(delivered: 1...4)
        XCTAssertTrue(queue.ackDue(2))
        queue.rejected(2)
        XCTAssertTrue(queue.ackDue(1))
        XCTAssertTrue(queue.ackDue(3))

        XCTAssertEqual(queue.takeAcks(), [Ack(deliveryTag: 3, multiple: true)])
        XCTAssertFalse(queue.ackDue(2))
    }

    func testRejectedFrontTagLetsRunStart() {
        var queue = queue(delivered: 1...3)
        queue.rejected(1)
        XCTAssertTrue(queue.ackDue(2))
        XCTAssertTrue(queue.ackDue(3))

        XCTAssertEqual(queue.takeAcks(), [Ack(deliveryTag: 3, multiple: true)])
    }

    func testUnknownTagIsNotQueued() {
        var queue = queue(delivered: 5...6)

        XCTAssertFalse(queue.ackDue(4))
        XCTAssertFalse(queue.ackDue(7))
        XCTAssertFalse(queue.hasDueAcks)
    }

    func testAckedTagCannotBeDueAgain() {
        var queue = queue(delivered: 1...2)
        XCTAssertTrue(queue.ackDue(1))
        _ = queue.takeAcks()

        XCTAssertFalse(queue.ackDue(1))
    }

    func testDescendingTagIsLeftOut() {
        var queue = queue(delivered: 3...4)
        queue.delivered(2)

        XCTAssertFalse(queue.ackDue(2))
    }

    func testRemoveAllForgetsEveryTag() {
        var queue = queue(delivered: 1...3)
        XCTAssertTrue(queue.ackDue(1))
        queue.removeAll()

        XCTAssertFalse(queue.hasDueAcks)
        XCTAssertEqual(queue.takeAcks(), [])
        XCTAssertFalse(queue.ackDue(2))
    }

    func testLongRunKeepsOrderAcrossCompaction() {
        var queue = queue(delivered: 1...1000)
        for tag: UInt64 in 1...600 {
            XCTAssertTrue(queue.ackDue(tag))
        }
        XCTAssertEqual(queue.takeAcks(), [Ack(deliveryTag: 600, multiple: true)])
        queue.delivered(1001)
        for tag: UInt64 in 601...1001 {
            XCTAssertTrue(queue.ackDue(tag))
        }

        XCTAssertEqual(queue.takeAcks(), [Ack(deliveryTag: 1001, multiple: true)])
        XCTAssertFalse(queue.ackDue(1000))
    }

    func testHeldTagJoinsLaterMultipleAck() {
        var queue = queue(delivered: 1...3)
        queue.replacementPublished(1)
        XCTAssertTrue(queue.ackDue(2))

        XCTAssertEqual(queue.takeAcks(now: 100, holdLimit: 50), [])
        XCTAssertEqual(queue.heldSince, 100)
        XCTAssertTrue(queue.isDue(2))

        XCTAssertTrue(queue.ackDue(1))
        XCTAssertEqual(queue.takeAcks(now: 120, holdLimit: 50), [Ack(deliveryTag: 2, multiple: true)])
        XCTAssertNil(queue.heldSince)
        XCTAssertFalse(queue.isDue(2))
    }

    func testHeldTagAckedAloneAfterLimit() {
        var queue = queue(delivered: 1...3)
        queue.replacementPublished(1)
        XCTAssertTrue(queue.ackDue(2))
        XCTAssertEqual(queue.takeAcks(now: 100, holdLimit: 50), [])

        XCTAssertEqual(queue.takeAcks(now: 149, holdLimit: 50), [])
        XCTAssertEqual(queue.takeAcks(now: 150, holdLimit: 50), [Ack(deliveryTag: 2, multiple: false)])
        XCTAssertNil(queue.heldSince)
    }

    func testHoldLimitCountsFromFirstHeldTag() {
        var queue = queue(delivered: 1...4)
        queue.replacementPublished(1)
        queue.replacementPublished(3)
        XCTAssertTrue(queue.ackDue(2))
        XCTAssertEqual(queue.takeAcks(now: 100, holdLimit: 50), [])
        XCTAssertTrue(queue.ackDue(4))
        XCTAssertEqual(queue.takeAcks(now: 140, holdLimit: 50), [])

        let acks = queue.takeAcks(now: 150, holdLimit: 50)

        XCTAssertEqual(acks, [Ack(deliveryTag: 2, multiple: false), Ack(deliveryTag: 4, multiple: false)])
    }

    func testFrontRunGoesOutWhileOthersAreHeld() {
        var queue = queue(delivered: 1...4)
        queue.replacementPublished(3)
        for tag: UInt64 in [1, 2, 4] {
            XCTAssertTrue(queue.ackDue(tag))
        }

        XCTAssertEqual(queue.takeAcks(now: 100, holdLimit: 50), [Ack(deliveryTag: 2, multiple: true)])
        XCTAssertEqual(queue.heldSince, 100)
        XCTAssertTrue(queue.isDue(4))
    }

    func testTagStillInHandlerIsNotWaitedFor() {
        var queue = queue(delivered: 1...3)
        queue.replacementPublished(1)
        XCTAssertTrue(queue.ackDue(3))

        let acks = queue.takeAcks(now: 100, holdLimit: 50)

        XCTAssertEqual(acks, [Ack(deliveryTag: 3, multiple: false)])
        XCTAssertNil(queue.heldSince)
    }
}
