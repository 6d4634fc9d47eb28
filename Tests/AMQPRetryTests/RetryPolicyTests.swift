import AMQPRetry
import XCTest

final class RetryPolicyTests: XCTestCase {
    private func invocation(
        mode: InvocationMode,
        attempt: Int = 1,
        repeats: Int? = 3,
        callback: String? = nil
    ) throws -> Invocation {
        let options = try repeats.map { try RetryOptions(repeats: $0, intervalMilliseconds: 1500) }
        return Invocation(mode: mode, target: "demo.fail", attempt: attempt, options: options, callback: callback)
    }

    func testSyncAlwaysReplies() throws {
        for outcome in [CallOutcome.success(.empty), .failure("boom")] {
            for attempt in 1...4 {
                let action = RetryPolicy.decide(invocation: try invocation(mode: .sync, attempt: attempt), outcome: outcome)
                XCTAssertEqual(action, .reply)
            }
        }
    }

    func testCallbackSuccessFinishes() throws {
        let action = RetryPolicy.decide(invocation: try invocation(mode: .callback), outcome: .success(.empty))

        XCTAssertEqual(action, .finish(ok: true))
    }

    func testCallbackFailureParks() throws {
        let action = RetryPolicy.decide(invocation: try invocation(mode: .callback), outcome: .failure("handler threw"))

        guard case .park(let reason) = action else {
            return XCTFail("expected park, got \(action)")
        }
        XCTAssertEqual(reason.code, .callbackFailed)
        XCTAssertEqual(reason.detail, "callback service 'demo.fail' failed: handler threw")
    }

    func testAsyncSuccessFinishesOnAnyAttempt() throws {
        for attempt in 1...4 {
            let action = RetryPolicy.decide(invocation: try invocation(mode: .async, attempt: attempt), outcome: .success(.empty))
            XCTAssertEqual(action, .finish(ok: true))
        }
    }

    func testAsyncFailureRetriesUntilLastAttempt() throws {
        let expected: [RetryAction] = [
            .retry(nextAttempt: 2, delayMilliseconds: 1500),
            .retry(nextAttempt: 3, delayMilliseconds: 1500),
            .retry(nextAttempt: 4, delayMilliseconds: 1500),
            .finish(ok: false),
        ]

        for (index, action) in expected.enumerated() {
            let invocation = try invocation(mode: .async, attempt: index + 1, callback: "demo.callback")
            XCTAssertEqual(RetryPolicy.decide(invocation: invocation, outcome: .failure("boom")), action, "attempt \(index + 1)")
        }
    }

    func testAsyncLastFailureWithoutCallbackParks() throws {
        let action = RetryPolicy.decide(invocation: try invocation(mode: .async, attempt: 4), outcome: .failure("boom"))

        guard case .park(let reason) = action else {
            return XCTFail("expected park, got \(action)")
        }
        XCTAssertEqual(reason.code, .retriesExhausted)
        XCTAssertEqual(reason.detail, "invoking 'demo.fail' failed after 4 attempts and no callback is set: boom")
    }

    func testSingleRepeatMakesTwoAttempts() throws {
        let first = RetryPolicy.decide(invocation: try invocation(mode: .async, attempt: 1, repeats: 1), outcome: .failure("x"))
        let second = RetryPolicy.decide(
            invocation: try invocation(mode: .async, attempt: 2, repeats: 1, callback: "cb"), outcome: .failure("x")
        )

        XCTAssertEqual(first, .retry(nextAttempt: 2, delayMilliseconds: 1500))
        XCTAssertEqual(second, .finish(ok: false))
    }

    func testAsyncWithoutOptionsDoesNotRetry() throws {
        let withCallback = try invocation(mode: .async, repeats: nil, callback: "cb")
        let withoutCallback = try invocation(mode: .async, repeats: nil)

        XCTAssertEqual(RetryPolicy.decide(invocation: withCallback, outcome: .failure("x")), .finish(ok: false))
        guard case .park(let reason) = RetryPolicy.decide(invocation: withoutCallback, outcome: .failure("x")) else {
            return XCTFail("expected park")
        }
        XCTAssertEqual(reason.code, .retriesExhausted)
    }

    func testParkDetailBoundsFailureMessage() throws {
        let action = RetryPolicy.decide(
            invocation: try invocation(mode: .async, attempt: 4), outcome: .failure(String(repeating: "e", count: 10_000))
        )

        guard case .park(let reason) = action else {
            return XCTFail("expected park, got \(action)")
        }
        XCTAssertLessThan(reason.detail.utf8.count, 1200)
        XCTAssertTrue(reason.detail.hasSuffix("…"))
    }
}
