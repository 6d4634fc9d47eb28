import XCTest

@testable import AMQPRetry

final class DeclaredTopologyTests: XCTestCase {
    private let first = TopologyItem.queue(QueueDeclaration(name: "amqpretry.service.first"))
    private let second = TopologyItem.queue(QueueDeclaration(name: "amqpretry.service.second"))
    private let third = TopologyItem.exchange(name: "amqpretry.delay.100ms", type: "fanout", durable: true)

    func testFirstCallerDeclaresOthersWait() {
        var topology = DeclaredTopology()

        let claim = topology.claim([first, second])
        XCTAssertEqual(claim.toDeclare, [first, second])
        XCTAssertNil(claim.pending)

        let waiting = topology.claim([second])
        XCTAssertEqual(waiting.toDeclare, [])
        XCTAssertEqual(waiting.pending, second)

        let mixed = topology.claim([third, first])
        XCTAssertEqual(mixed.toDeclare, [third])
        XCTAssertEqual(mixed.pending, first)
    }

    func testNoClaimPastPendingItem() {
        var topology = DeclaredTopology()
        _ = topology.claim([second])

        let claim = topology.claim([first, second, third])

        XCTAssertEqual(claim.toDeclare, [first])
        XCTAssertEqual(claim.pending, second)
        XCTAssertEqual(topology.claim([third]).toDeclare, [third])
    }

    func testDeclaredItemsAreNotClaimedAgain() {
        var topology = DeclaredTopology()
        _ = topology.claim([first, second])

        XCTAssertEqual(topology.finish([first, second], declared: true).count, 0)

        let claim = topology.claim([first, second])
        XCTAssertEqual(claim.toDeclare, [])
        XCTAssertNil(claim.pending)
    }

    func testFailedDeclarationIsClaimedAgain() {
        var topology = DeclaredTopology()
        _ = topology.claim([first])

        _ = topology.finish([first], declared: false)

        XCTAssertEqual(topology.claim([first]).toDeclare, [first])
    }

    func testForgottenItemIsDeclaredAgain() {
        var topology = DeclaredTopology()
        _ = topology.claim([first, second])
        _ = topology.finish([first, second], declared: true)

        topology.forget([second])

        XCTAssertEqual(topology.claim([first, second]).toDeclare, [second])
    }

    func testWaitRefusedWithoutDeclaration() async {
        var topology = DeclaredTopology()

        await withCheckedContinuation { (waiter: DeclaredTopology.Waiter) in
            XCTAssertFalse(topology.wait(for: first, waiter))
            waiter.resume(returning: nil)
        }
    }

    func testWaitersResumeAfterDeclaration() async {
        let topology = Locked(DeclaredTopology())
        _ = topology.withLock { $0.claim([first]) }
        let item = first
        let registered = expectation(description: "the waiter is registered")

        let waiter = Task {
            await withCheckedContinuation { (continuation: DeclaredTopology.Waiter) in
                XCTAssertTrue(topology.withLock { $0.wait(for: item, continuation) })
                registered.fulfill()
            }
            return topology.withLock { $0.claim([item]) }
        }
        await fulfillment(of: [registered], timeout: 10)

        let waiters = topology.withLock { $0.finish([item], declared: true) }
        XCTAssertEqual(waiters.count, 1)
        for continuation in waiters {
            continuation.resume(returning: nil)
        }

        let claimAfterWait = await waiter.value
        XCTAssertEqual(claimAfterWait.toDeclare, [])
        XCTAssertNil(claimAfterWait.pending)
    }
}
