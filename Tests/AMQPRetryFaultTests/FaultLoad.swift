@testable import AMQPRetry
import Foundation
import XCTest

// MARK: - Planned invocations

/// A background invocation a test publishes, with what its callback must report.
struct PlannedInvocation: Sendable {
    let invocation: Invocation
    /// Whether the target succeeds in the end.
    let expectedOK: Bool
    /// The response on success, compared as JSON; `nil` to accept any response.
    let expectedResponse: JSONValue?
    /// The number of calls the callback reports: 1 + the failures before the success, or
    /// 1 + repeats for a target that always fails.
    let expectedAttempts: Int

    var cid: String {
        invocation.cid.rawValue
    }

    var repeats: Int {
        invocation.options?.repeats ?? 0
    }
}

/// Builds the mixed load of the fault tests: `demo.echo` (succeeds at once), `demo.flaky`
/// (fails once or twice, then succeeds), `demo.fail` (always fails) and, when asked,
/// `demo.slow` (sleeps, then succeeds), each with 2 or 3 repeats and a callback.
enum LoadMix {
    /// Returns `count` invocations in a fixed rotation of the services.
    /// - Parameters:
    ///   - slowSeconds: the sleeps of `demo.slow`; `nil` leaves `demo.slow` out.
    ///   - tag: a text every request carries, so that a test can tell its requests apart.
    static func make(count: Int, callback: String, intervalMilliseconds: Int64,
                     slowSeconds: ClosedRange<Double>? = nil, tag: String) -> [PlannedInvocation] {
        (0..<count).map { index in
            let repeats = 2 + index % 2
            let options = try! RetryOptions(repeats: repeats, intervalMilliseconds: intervalMilliseconds)
            let slot = index % 10
            if slot >= 8, let slowSeconds {
                let seconds = (Double.random(in: slowSeconds) * 10).rounded() / 10
                return planned("demo.slow", request: ["seconds": .number(seconds)], tag: tag, index: index,
                               options: options, callback: callback, ok: true,
                               response: .object(["slept": .number(seconds)]), attempts: 1)
            }
            switch slot {
            case 4, 5, 6:
                let failTimes = 1 + index % 2
                return planned("demo.flaky", request: ["fail_times": .number(Double(failTimes))], tag: tag,
                               index: index, options: options, callback: callback, ok: true,
                               response: .object(["attempt": .number(Double(failTimes + 1))]),
                               attempts: failTimes + 1)
            case 7:
                return planned("demo.fail", request: [:], tag: tag, index: index, options: options,
                               callback: callback, ok: false, response: nil, attempts: 1 + repeats)
            default:
                return planned("demo.echo", request: [:], tag: tag, index: index, options: options,
                               callback: callback, ok: true, response: .echo, attempts: 1)
            }
        }
    }

    private static func planned(_ service: String, request: [String: JSONValue], tag: String, index: Int,
                                options: RetryOptions, callback: String, ok: Bool, response: ExpectedResponse?,
                                attempts: Int) -> PlannedInvocation {
        var members = request
        members["tag"] = .string(tag)
        members["index"] = .number(Double(index))
        let body = JSONValue.object(members)
        let invocation = Invocation(mode: .async, target: service, options: options, callback: callback,
                                    origCID: .random(), payload: Payload(json: body.serialized()))
        let expected: JSONValue? = switch response {
        case .echo: body
        case .object(let members): .object(members)
        case nil: nil
        }
        return PlannedInvocation(invocation: invocation, expectedOK: ok, expectedResponse: expected,
                                 expectedAttempts: attempts)
    }

    private enum ExpectedResponse {
        case echo
        case object([String: JSONValue])
    }
}

// MARK: - Publishing

/// Publishes planned invocations through a client's connection and records every attempt.
///
/// A publish that fails (a lost connection, a timeout) is repeated with the same CID until it
/// is confirmed. A failed publish may still have reached the queue, so each attempt counts
/// as one more possible copy of the invocation.
final class LoadPublisher: Sendable {
    private struct State {
        var attempts: [String: Int] = [:]
        var failures: [String] = []
    }

    private let state = Locked(State())

    /// The number of publishes of each CID, failed ones included.
    var attempts: [String: Int] {
        state.withLock { $0.attempts }
    }

    /// The errors of failed publishes.
    var failures: [String] {
        state.withLock { $0.failures }
    }

    /// Publishes each invocation in order, repeating a failed publish every 200 ms until it is
    /// confirmed or `timeout` has passed since the first attempt. Returns the CIDs not confirmed.
    @discardableResult
    func publish(_ planned: [PlannedInvocation], via client: AMQPRetryClient,
                 timeout: Duration = .seconds(60)) async -> [String] {
        var unconfirmed: [String] = []
        for item in planned where !(await publish(item, via: client, timeout: timeout)) {
            unconfirmed.append(item.cid)
        }
        return unconfirmed
    }

    private func publish(_ item: PlannedInvocation, via client: AMQPRetryClient, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            state.withLock { $0.attempts[item.cid, default: 0] += 1 }
            do {
                try await client.engine.publish(item.invocation)
                return true
            } catch {
                state.withLock { $0.failures.append("\(item.cid): \(error)") }
            }
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }
}

// MARK: - The invariants

/// What a fault test allows beyond its planned outcomes.
struct FaultAllowance {
    /// Whether an invocation may end in a failure callback with reason `redelivery-limit`, as
    /// when more workers died holding it than the redelivery limit allows. That failure may
    /// follow a callback of another outcome, when a worker died after the broker confirmed that
    /// callback and before it acknowledged the invocation.
    var redeliveryLimit = false
    /// CIDs published by calls that failed, whose invocation may or may not run.
    var unknownCIDs: Set<String> = []
}

/// The numbers behind a check of the invariants, printed by each test.
struct AtLeastOnceSummary: CustomStringConvertible {
    var invocations = 0
    var callbacks = 0
    var duplicateCallbacks = 0
    var handlerCalls = 0
    var repeatedCalls = 0
    var redeliveries = 0
    var redeliveryLimitOutcomes = 0
    /// The services of the invocations that ended at the redelivery limit.
    var redeliveryLimitTargets: [String] = []
    /// The CIDs whose `redelivery-limit` failure followed a callback with another outcome.
    var outcomesBeforeRedeliveryLimit = 0
    var failedPublishes = 0

    var description: String {
        "\(invocations) invocations, \(callbacks) callbacks (\(duplicateCallbacks) duplicates), "
            + "\(handlerCalls) handler calls (\(repeatedCalls) repeats of an attempt already made), "
            + "\(redeliveries) redeliveries logged, \(redeliveryLimitOutcomes) ended at the redelivery limit "
            + "(\(redeliveryLimitTargets.sorted().joined(separator: ", ")); "
            + "\(outcomesBeforeRedeliveryLimit) after another outcome), "
            + "\(failedPublishes) failed publishes"
    }
}

extension FaultTestCase {
    /// The redelivery limit of `amqp-retry worker`, the default of ``Worker/Configuration``.
    static let redeliveryLimit = 3

    /// Waits until every planned invocation has a callback, or until `timeout` passes.
    func waitForCallbacks(_ planned: [PlannedInvocation], in callbacks: QueueCollector,
                          timeout: Duration) async -> Bool {
        let expected = Set(planned.map(\.cid))
        return await eventually(timeout: timeout, pollInterval: .milliseconds(250)) {
            let received = Set(callbacks.messages.compactMap(\.correlationID))
            return expected.isSubset(of: received)
        }
    }

    /// Checks the invariants every fault test ends with, then stops the workers.
    ///
    /// 1. Every planned CID got its final callback.
    /// 2. No CID got two different outcomes; a duplicate with the same outcome is allowed.
    /// 3. Each outcome is the planned one, or one the allowance permits.
    /// 4. The handler ran at most `1 + repeats` times per CID for every copy of the invocation:
    ///    each publish by the test and each redelivery a worker logged makes one more copy.
    /// 5. No worker process uses more than 10% of a core while the load is done, and each exits
    ///    with status 0 on SIGTERM.
    /// 6. The demo service queues, `extraQueues` and the callback queue hold no message once the
    ///    copies left by redeliveries are handled, which may take up to 30 s after the last callback.
    @discardableResult
    func assertAtLeastOnce(
        _ planned: [PlannedInvocation],
        callbacks: QueueCollector,
        publisher: LoadPublisher,
        extraQueues: [String] = [],
        allowance: FaultAllowance = FaultAllowance(),
        timeout: Duration = .seconds(90),
        file: StaticString = #filePath,
        line: UInt = #line
    ) async throws -> AtLeastOnceSummary {
        var summary = AtLeastOnceSummary(invocations: planned.count, failedPublishes: publisher.failures.count)
        let complete = await waitForCallbacks(planned, in: callbacks, timeout: timeout)
        let missing = planned.filter { callbacks.messages(correlationID: $0.cid).isEmpty }
        XCTAssertTrue(complete, "not every invocation got a callback within \(timeout)", file: file, line: line)
        XCTAssertTrue(missing.isEmpty,
                      "\(missing.count) of \(planned.count) invocations got no callback, such as "
                          + missing.prefix(5).map { "\($0.invocation.target) \($0.cid)" }.joined(separator: ", "),
                      file: file, line: line)

        // Copies left by redeliveries may still wait in the service queues after every CID has
        // its callback, or go round the delay queue that postpones redelivered invocations while
        // another one runs. A copy that a worker has not acknowledged counts in no queue, so the
        // queues must be empty in two polls in a row.
        let postponed = TopologyNames.delayQueue(milliseconds: WorkerSession.postponeMilliseconds)
        let queues = Self.demoServices.map(TopologyNames.serviceQueue) + extraQueues + [callbacks.queue, postponed]
        var emptyPolls = 0
        let drained = await eventually(timeout: .seconds(30), pollInterval: .milliseconds(300)) {
            emptyPolls = await self.readyMessageTotal(queues) == 0 ? emptyPolls + 1 : 0
            return emptyPolls >= 2
        }
        if !drained {
            print("the queues still held messages 30 s after the last callback")
        }
        let received = Dictionary(grouping: callbacks.messages) { $0.correlationID ?? "" }
        assertOutcomes(planned, received: received, allowance: allowance, summary: &summary, file: file, line: line)
        assertHandlerCalls(planned, publisher: publisher, allowance: allowance, summary: &summary,
                           file: file, line: line)
        await assertWorkersIdleAndStop(file: file, line: line)
        try await assertEmpty(queues, file: file, line: line)
        print("at-least-once check of \(name): \(summary)")
        return summary
    }

    private func assertOutcomes(_ planned: [PlannedInvocation], received: [String: [QueueCollector.Message]],
                                allowance: FaultAllowance, summary: inout AtLeastOnceSummary,
                                file: StaticString, line: UInt) {
        let plannedCIDs = Set(planned.map(\.cid))
        let strangers = received.keys.filter { !plannedCIDs.contains($0) && !allowance.unknownCIDs.contains($0) }
        XCTAssertTrue(strangers.isEmpty, "callbacks arrived for CIDs the test never published: "
            + strangers.prefix(5).joined(separator: ", "), file: file, line: line)

        var conflicts: [String] = []
        var unexpected: [String] = []
        for item in planned {
            let messages = received[item.cid] ?? []
            summary.callbacks += messages.count
            summary.duplicateCallbacks += max(0, messages.count - 1)
            let bodies = messages.compactMap { try? CallbackBody.decode($0.delivery.body) }
            XCTAssertEqual(bodies.count, messages.count, "a callback of \(item.cid) is not a callback body",
                           file: file, line: line)

            let limited = bodies.filter(Self.endedAtRedeliveryLimit)
            let compared = allowance.redeliveryLimit ? bodies.filter { !Self.endedAtRedeliveryLimit($0) } : bodies
            if allowance.redeliveryLimit && !limited.isEmpty && !compared.isEmpty {
                summary.outcomesBeforeRedeliveryLimit += 1
            }
            let outcomes = Set(compared.map(Self.outcomeKey))
            if outcomes.count > 1 {
                conflicts.append("\(item.invocation.target) \(item.cid): \(outcomes.sorted().joined(separator: " / "))")
            }
            for body in bodies {
                if Self.endedAtRedeliveryLimit(body) {
                    summary.redeliveryLimitOutcomes += 1
                    summary.redeliveryLimitTargets.append(item.invocation.target)
                    if allowance.redeliveryLimit { continue }
                }
                if let problem = Self.mismatch(body, item) {
                    unexpected.append("\(item.invocation.target) \(item.cid): \(problem)")
                }
            }
        }
        XCTAssertTrue(conflicts.isEmpty, "\(conflicts.count) CIDs got callbacks with different outcomes, such as "
            + conflicts.prefix(3).joined(separator: "; "), file: file, line: line)
        XCTAssertTrue(unexpected.isEmpty, "\(unexpected.count) callbacks differ from the planned outcome, such as "
            + unexpected.prefix(3).joined(separator: "; "), file: file, line: line)
    }

    /// Whether a callback is the failure of an invocation parked at the redelivery limit.
    static func endedAtRedeliveryLimit(_ body: CallbackBody) -> Bool {
        !body.ok && body.error?.hasPrefix(ParkReason.Code.redeliveryLimit.rawValue) == true
    }

    /// The outcome of a callback for comparing duplicates: success with its response, or failure.
    static func outcomeKey(_ body: CallbackBody) -> String {
        body.ok ? "ok \(body.response ?? "")" : "failed"
    }

    /// Describes how a callback differs from the planned outcome, or returns `nil`.
    static func mismatch(_ body: CallbackBody, _ item: PlannedInvocation) -> String? {
        if body.ok != item.expectedOK {
            return "ok is \(body.ok), expected \(item.expectedOK) (error: \(body.error ?? "none"))"
        }
        if body.attempts != item.expectedAttempts {
            return "attempts is \(body.attempts), expected \(item.expectedAttempts) (error: \(body.error ?? "none"))"
        }
        if let expected = item.expectedResponse {
            let response = body.response.flatMap { try? JSONValue(parsing: $0) }
            if response != expected {
                return "response is \(body.response ?? "null"), expected \(expected.serialized())"
            }
        }
        if !item.expectedOK, let error = body.error, error.utf8.count > 1024 {
            return "error is \(error.utf8.count) bytes long, more than 1024"
        }
        return nil
    }

    private func assertHandlerCalls(_ planned: [PlannedInvocation], publisher: LoadPublisher,
                                    allowance: FaultAllowance, summary: inout AtLeastOnceSummary,
                                    file: StaticString, line: UInt) {
        let calls = workers.flatMap { $0.handlerCalls() }
        let callsByCID = Dictionary(grouping: calls, by: \.cid)
        let redeliveries = Dictionary(grouping: workers.flatMap { $0.redeliveredCIDs() }) { $0 }.mapValues(\.count)
        let publishes = publisher.attempts
        summary.redeliveries = redeliveries.values.reduce(0, +)

        var excess: [String] = []
        for item in planned {
            let own = callsByCID[item.cid] ?? []
            summary.handlerCalls += own.count
            summary.repeatedCalls += own.count - Set(own.map(\.attempt)).count
            let copies = publishes[item.cid, default: 1] + redeliveries[item.cid, default: 0]
            let bound = (1 + item.repeats) * copies
            let highest = own.map(\.attempt).max() ?? 0
            if own.count > bound || highest > 1 + item.repeats {
                excess.append("\(item.invocation.target) \(item.cid): \(own.count) calls, highest attempt \(highest), "
                    + "repeats \(item.repeats), \(copies) copies")
            }
        }
        XCTAssertTrue(excess.isEmpty, "\(excess.count) CIDs had more handler calls than 1 + repeats per copy, such as "
            + excess.prefix(3).joined(separator: "; "), file: file, line: line)
    }

    /// Checks that no running worker burns CPU, then stops each with SIGTERM and checks that it
    /// exits with status 0 within 30 s.
    func assertWorkersIdleAndStop(file: StaticString = #filePath, line: UInt = #line) async {
        let running = workers.filter(\.process.isRunning)
        let before = running.map { $0.process.cpuSeconds() ?? 0 }
        try? await Task.sleep(for: .seconds(2))
        for (worker, start) in zip(running, before) {
            guard let now = worker.process.cpuSeconds() else { continue }
            XCTAssertLessThan(now - start, 0.2, "worker \(worker.number) used \(now - start) s of CPU in 2 s "
                + "with no work to do", file: file, line: line)
        }
        for worker in running {
            worker.process.send(SIGTERM)
        }
        for worker in running {
            let status = await worker.process.waitForExit(timeout: .seconds(30))
            XCTAssertEqual(status, 0, "worker \(worker.number) did not exit with status 0 within 30 s of SIGTERM",
                           file: file, line: line)
        }
    }

    /// Returns the number of ready messages in `queues`, or -1 when one cannot be read. A queue
    /// that does not exist counts as empty.
    func readyMessageTotal(_ queues: [String]) async -> Int {
        var total = 0
        for queue in queues {
            guard let count = await readyMessageCountIfDeclared(queue) else { return -1 }
            total += count
        }
        return total
    }

    /// Returns the number of ready messages in a queue, 0 when the queue does not exist, or
    /// `nil` when it cannot be read.
    func readyMessageCountIfDeclared(_ queue: String) async -> Int? {
        do {
            return try await connection.readyMessageCount(queue)
        } catch let error as AMQPError where error.replyCode == 404 {
            return 0
        } catch {
            return nil
        }
    }

    /// Checks with passive declares that each queue contains no ready message. Run it after the
    /// workers stopped, when unacknowledged messages are back in their queues.
    func assertEmpty(_ queues: [String], file: StaticString = #filePath, line: UInt = #line) async throws {
        for queue in queues {
            let count = await readyMessageCountIfDeclared(queue)
            XCTAssertEqual(count, 0, "queue '\(queue)' holds \(count.map(String.init) ?? "an unknown number of") "
                + "messages at the end, expected none", file: file, line: line)
        }
    }
}
