import Foundation
import XCTest

import AMQPRetry

final class LockedTests: XCTestCase {
    private enum ProbeError: Error, Equatable {
        case rejected(Int)
    }

    private struct Resource: ~Copyable {
        var uses = 0
    }

    private final class Probe: Sendable {}

    /// Seconds a test waits for its threads before it fails.
    private let threadTimeout: TimeInterval = 60

    /// Runs `body` on `count` new threads and returns whether all finished within `timeout`.
    private func runThreads(count: Int, timeout: TimeInterval,
                            _ body: @escaping @Sendable () -> Void) -> Bool {
        let group = DispatchGroup()
        for _ in 0..<count {
            group.enter()
            Thread {
                body()
                group.leave()
            }.start()
        }
        return group.wait(timeout: .now() + timeout) == .success
    }

    func testConcurrentIncrementsAreExact() {
        let threadCount = 4
        let incrementsPerThread = 50_000
        let counter = Locked(0)

        // Reading and writing in two steps widens the window in which an unguarded
        // increment would lose another thread's update.
        let finished = runThreads(count: threadCount, timeout: threadTimeout) {
            for _ in 0..<incrementsPerThread {
                counter.withLock { value in
                    let current = value
                    value = current + 1
                }
            }
        }

        XCTAssertTrue(finished, "threads did not finish within \(threadTimeout) s")
        XCTAssertEqual(counter.withLock { $0 }, threadCount * incrementsPerThread)
    }

    func testOneThreadInsideAtATime() {
        struct Occupancy {
            var inside = 0
            var maxInside = 0
        }
        let occupancy = Locked(Occupancy())

        let finished = runThreads(count: 4, timeout: threadTimeout) {
            for _ in 0..<2_000 {
                occupancy.withLock { state in
                    state.inside += 1
                    state.maxInside = max(state.maxInside, state.inside)
                    sched_yield()
                    state.inside -= 1
                }
            }
        }

        XCTAssertTrue(finished, "threads did not finish within \(threadTimeout) s")
        XCTAssertEqual(occupancy.withLock { $0.maxInside }, 1)
        XCTAssertEqual(occupancy.withLock { $0.inside }, 0)
    }

    func testWithLockReturnsBodyResult() {
        let names = Locked(["a"])

        let count = names.withLock { names -> Int in
            names.append("b")
            return names.count
        }

        XCTAssertEqual(count, 2)
        XCTAssertEqual(names.withLock { $0 }, ["a", "b"])
    }

    func testWithLockRethrowsTypedError() {
        let counter = Locked(0)

        do throws(ProbeError) {
            try counter.withLock { (value: inout Int) throws(ProbeError) -> Void in
                value += 1
                throw ProbeError.rejected(value)
            }
            XCTFail("withLock returned instead of throwing")
        } catch {
            // `error` has the static type ProbeError, so the typed error came through unchanged.
            XCTAssertEqual(error, .rejected(1))
        }

        XCTAssertEqual(counter.withLock { $0 }, 1, "a change made before the throw was lost")
    }

    func testLockReleasedAfterThrow() {
        let counter = Locked(0)
        XCTAssertThrowsError(try counter.withLock { (_: inout Int) throws(ProbeError) -> Void in
            throw ProbeError.rejected(0)
        })

        // Another thread, because the same thread locking twice stops the process.
        let finished = runThreads(count: 1, timeout: 10) {
            counter.withLock { $0 += 1 }
        }

        XCTAssertTrue(finished, "the lock was still held after the body threw")
        XCTAssertEqual(counter.withLock { $0 }, 1)
    }

    func testGuardsNoncopyableValue() {
        let resource = Locked(Resource())

        let uses = resource.withLock { resource -> Int in
            resource.uses += 1
            return resource.uses
        }
        let previous = resource.withLock { resource -> Resource in
            let old = consume resource
            resource = Resource(uses: 10)
            return old
        }

        XCTAssertEqual(uses, 1)
        XCTAssertEqual(previous.uses, 1)
        XCTAssertEqual(resource.withLock { $0.uses }, 10)
    }

    func testDeinitReleasesValue() {
        weak var weakProbe: Probe?

        do {
            let locked = Locked(Probe())
            weakProbe = locked.withLock { $0 }
            XCTAssertNotNil(weakProbe)
        }

        XCTAssertNil(weakProbe, "the guarded value outlived its lock")
    }

    func testWithLockIfAvailableRunsWhenFree() {
        let counter = Locked(1)

        let result = counter.withLockIfAvailable { value -> Int in
            value += 1
            return value
        }

        XCTAssertEqual(result, 2)
        XCTAssertEqual(counter.withLock { $0 }, 2)
    }

    func testWithLockIfAvailableSkipsWhenHeld() {
        let counter = Locked(0)

        let nested = counter.withLock { _ in
            counter.withLockIfAvailable { value -> Int in
                value += 1
                return value
            }
        }
        let entered = Locked(false)
        let release = DispatchSemaphore(value: 0)
        let holderStarted = DispatchSemaphore(value: 0)
        Thread {
            counter.withLock { _ in
                holderStarted.signal()
                _ = release.wait(timeout: .now() + 60)
            }
        }.start()
        XCTAssertEqual(holderStarted.wait(timeout: .now() + threadTimeout), .success)
        let fromOtherThread = counter.withLockIfAvailable { _ in entered.withLock { $0 = true } }
        release.signal()

        XCTAssertNil(nested)
        XCTAssertNil(fromOtherThread)
        XCTAssertFalse(entered.withLock { $0 })
        XCTAssertEqual(counter.withLock { $0 }, 0)
    }
}
