@testable import AMQPRetry
import XCTest

/// The memory of a rejected postponement delay queue, and which publish failures count as
/// permanent for a failure callback.
final class PostponementRejectionTests: XCTestCase {
    func testNothingSkippedBeforeARejection() {
        var rejection = WorkerSession.DelayQueueRejection()

        XCTAssertFalse(rejection.skips(at: .now))
        XCTAssertEqual(rejection.skipped, 0)
    }

    func testSkipsWithinMemoryAndCountsThem() {
        var rejection = WorkerSession.DelayQueueRejection()
        let start = ContinuousClock.now

        XCTAssertEqual(rejection.rejected(at: start), 0)
        XCTAssertTrue(rejection.skips(at: start + .seconds(1)))
        XCTAssertTrue(rejection.skips(at: start + .milliseconds(4_999)))
        XCTAssertEqual(rejection.skipped, 2)
    }

    func testMemoryEndsAfterFiveSeconds() {
        var rejection = WorkerSession.DelayQueueRejection()
        let start = ContinuousClock.now
        _ = rejection.rejected(at: start)

        XCTAssertFalse(rejection.skips(at: start + WorkerSession.rejectedDelayQueueMemory))
        XCTAssertEqual(rejection.skipped, 0)
    }

    func testNextRejectionReturnsAndResetsCount() {
        var rejection = WorkerSession.DelayQueueRejection()
        let start = ContinuousClock.now
        _ = rejection.rejected(at: start)
        _ = rejection.skips(at: start + .seconds(1))
        _ = rejection.skips(at: start + .seconds(2))

        XCTAssertEqual(rejection.rejected(at: start + .seconds(6)), 2)
        XCTAssertEqual(rejection.skipped, 0)
        XCTAssertTrue(rejection.skips(at: start + .seconds(7)))
    }

    func testRejectionWhileRememberedIsNotRecordedAgain() {
        var rejection = WorkerSession.DelayQueueRejection()
        let start = ContinuousClock.now

        XCTAssertEqual(rejection.rejected(at: start), 0)
        XCTAssertNil(rejection.rejected(at: start + .milliseconds(10)))
        XCTAssertEqual(rejection.rejectedAt, start)
    }

    func testPermanentRejectionCodes() {
        let cases: [(AMQPError, Bool)] = [
            (AMQPError(.channelClosed, operation: "queue.declare", replyCode: 406, replyText: "PRECONDITION_FAILED"), true),
            (AMQPError(.channelClosed, operation: "queue.declare", replyCode: 403, replyText: "ACCESS_REFUSED"), true),
            (AMQPError(.channelClosed, operation: "queue.declare", replyCode: 404, replyText: "NOT_FOUND"), false),
            (AMQPError(.channelClosed, operation: "queue.declare", replyCode: 405, replyText: "RESOURCE_LOCKED"), false),
            (AMQPError(.invalidMessage, operation: "basic.publish"), true),
            (AMQPError(.connectionLost, operation: "basic.publish", replyCode: 406, replyText: "x"), false),
            (AMQPError(.timeout, operation: "basic.publish"), false),
        ]
        for (error, permanent) in cases {
            XCTAssertEqual(WorkerSession.isPermanentRejection(error), permanent, "\(error)")
        }
    }
}
