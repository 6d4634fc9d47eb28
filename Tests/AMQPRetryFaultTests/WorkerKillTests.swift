@testable import AMQPRetry
import Foundation
import XCTest

/// Worker processes that die: killed with SIGKILL while handlers run, killed in rapid
/// succession under load, and ended by their own handler.
final class WorkerKillTests: FaultTestCase {
    /// Three waves of load, each hit by one SIGKILL of a worker whose handlers are running
    /// (`demo.slow` keeps some in flight), and a restart of that worker.
    ///
    /// Three kills never exceed the redelivery limit of 3, so every invocation must end with its
    /// planned outcome.
    func testKilledWhileHandlersRun() async throws {
        let callback = try await makeCallbackService()
        let interval = try await makeRetryInterval(300...399)
        var running = [try await startWorker(), try await startWorker()]
        let callbacks = try await collectQueue(of: callback)
        let client = try await connectClient()
        let publisher = LoadPublisher()

        let planned = LoadMix.make(count: 240, callback: callback, intervalMilliseconds: interval,
                                   slowSeconds: 0.5...2.0, tag: runID)
        for wave in 0..<3 {
            await publisher.publish(Array(planned[(wave * 80)..<((wave + 1) * 80)]), via: client)
            try await Task.sleep(for: .milliseconds(700))

            let victim = running[wave % 2]
            await kill(victim)
            try await Task.sleep(for: .milliseconds(300))
            running[wave % 2] = try await startWorker()
            try await Task.sleep(for: .seconds(1))
        }

        let summary = try await assertAtLeastOnce(planned, callbacks: callbacks, publisher: publisher,
                                                  extraQueues: [TopologyNames.delayQueue(milliseconds: interval)])
        XCTAssertGreaterThan(summary.redeliveries, 0, "no invocation was redelivered, so no kill hit a running "
            + "handler and this test proves nothing")
    }

    /// Fifteen SIGKILLs at random 0.25–0.5 s intervals while 300 invocations are published at
    /// about 60 a second and handled, each kill followed by a restart.
    ///
    /// The kill that matters lands after a worker's retry, reply or callback was confirmed and
    /// before its `basic.ack` reached the broker. The broker then redelivers the invocation and
    /// a worker republishes it, so one call is made twice and two copies continue. No test
    /// can aim a signal at that window from outside, so this one fires many and counts what
    /// they hit: repeated calls of one attempt and duplicate callbacks show that a kill landed
    /// after a call had finished. It proves that whatever a kill hits, every invocation still
    /// ends with one outcome and duplicates agree. It does not prove that every window was hit.
    ///
    /// Fifteen kills can hit one message more often than the redelivery limit of 3 allows, so an
    /// invocation may end with a `redelivery-limit` failure callback, even after a copy of it
    /// ended with its own callback.
    func testRapidKillsUnderLoad() async throws {
        let callback = try await makeCallbackService()
        let interval = try await makeRetryInterval(200...299)
        var running = [try await startWorker(), try await startWorker()]
        let callbacks = try await collectQueue(of: callback)
        let client = try await connectClient()
        let publisher = LoadPublisher()

        let planned = LoadMix.make(count: 300, callback: callback, intervalMilliseconds: interval,
                                   slowSeconds: 0.2...0.6, tag: runID)
        let publishing = Task {
            var unconfirmed: [String] = []
            for batch in stride(from: 0, to: planned.count, by: 6) {
                let slice = Array(planned[batch..<min(batch + 6, planned.count)])
                unconfirmed += await publisher.publish(slice, via: client)
                try? await Task.sleep(for: .milliseconds(100))
            }
            return unconfirmed
        }
        for kill in 0..<15 {
            try await Task.sleep(for: .milliseconds(Int.random(in: 250...500)))
            let slot = kill % 2
            await self.kill(running[slot])
            running[slot] = try await startWorker()
        }
        let unconfirmed = await publishing.value
        XCTAssertEqual(unconfirmed, [], "publishing failed for good, although no fault touched the broker")

        let summary = try await assertAtLeastOnce(planned, callbacks: callbacks, publisher: publisher,
                                                  extraQueues: [TopologyNames.delayQueue(milliseconds: interval)],
                                                  allowance: FaultAllowance(redeliveryLimit: true))
        XCTAssertGreaterThan(summary.redeliveries, 0, "no kill hit an invocation in flight")
    }

    /// An invocation whose handler ends the worker process is parked with reason
    /// `redelivery-limit` and ends with a failure callback after the first delivery and 3
    /// redeliveries crashed a worker, while the 40 invocations published behind it all succeed.
    ///
    /// The worker runs with its default concurrency of 8, so the invocations behind the crashing
    /// one are delivered with it and die with the worker too. They are counted for that first
    /// crash only, because a redelivered invocation runs only while its worker has no other
    /// redelivered one unacknowledged, so none of them may be parked.
    func testCrashingHandlerIsParked() async throws {
        let callback = try await makeCallbackService()
        let interval = try await makeRetryInterval(300...399)
        let parked = try await collectParkedMessages()
        var worker = try await startWorker(crashService: true)
        let callbacks = try await collectQueue(of: callback)
        let client = try await connectClient()
        let publisher = LoadPublisher()

        let options = try RetryOptions(repeats: 2, intervalMilliseconds: interval)
        let crash = Invocation(mode: .async, target: FaultServiceNames.crash, options: options, callback: callback,
                               origCID: .random(), payload: Payload(json: #"{"crash": true}"#))
        let behind = (0..<40).map { index in
            let target = index % 2 == 0 ? FaultServiceNames.crash : "demo.echo"
            let body = JSONValue.object(["index": .number(Double(index)), "tag": .string(runID)])
            let invocation = Invocation(mode: .async, target: target, options: options, callback: callback,
                                        origCID: .random(), payload: Payload(json: body.serialized()))
            return PlannedInvocation(invocation: invocation, expectedOK: true, expectedResponse: body,
                                     expectedAttempts: 1)
        }
        let crashPlan = PlannedInvocation(invocation: crash, expectedOK: false, expectedResponse: nil,
                                          expectedAttempts: 1)
        await publisher.publish([crashPlan] + behind, via: client)

        // Each crash is followed by a restart, until the failure callback arrives or a worker
        // survives 10 s. A worker that keeps crashing ends the loop after 2 more crashes.
        var crashes = 0
        while crashes <= Self.redeliveryLimit + 2 {
            let current = worker
            let crashed = await eventually(timeout: .seconds(10)) {
                !current.process.isRunning || !callbacks.messages(correlationID: crash.cid.rawValue).isEmpty
            }
            guard crashed, !current.process.isRunning else {
                break
            }
            crashes += 1
            XCTAssertEqual(worker.process.status, 1, "the worker ended with another status than the crash's")
            worker = try await startWorker(crashService: true)
        }

        let crashCalls = workers.flatMap { $0.handlerCalls() }.filter { $0.cid == crash.cid.rawValue }
        XCTAssertEqual(crashes, Self.redeliveryLimit + 1,
                       "the worker crashed \(crashes) times; expected the first delivery and \(Self.redeliveryLimit) "
                           + "redeliveries to crash it, and no more")
        XCTAssertEqual(crashCalls.count, Self.redeliveryLimit + 1, "the crashing handler ran \(crashCalls.count) times")

        let arrived = await waitForCallbacks([crashPlan], in: callbacks, timeout: .seconds(20))
        XCTAssertTrue(arrived, "the crashing invocation got no failure callback")
        let body = callbacks.messages(correlationID: crash.cid.rawValue).first
            .flatMap { try? CallbackBody.decode($0.delivery.body) }
        XCTAssertEqual(body?.ok, false, "the crashing invocation's callback is not a failure")
        XCTAssertTrue(body?.error?.hasPrefix(ParkReason.Code.redeliveryLimit.rawValue) == true,
                      "the failure callback's error is '\(body?.error ?? "none")', expected reason redelivery-limit")

        let parkedCrash = await eventually(timeout: .seconds(10)) {
            !parked.messages(correlationID: crash.cid.rawValue).isEmpty
        }
        XCTAssertTrue(parkedCrash, "the crashing invocation was not parked")
        let reason = parked.messages(correlationID: crash.cid.rawValue).first?.header(WireHeader.parkedReason) ?? ""
        XCTAssertTrue(reason.hasPrefix(ParkReason.Code.redeliveryLimit.rawValue + ":"),
                      "parked with reason '\(reason)', expected redelivery-limit")
        let innocent = parked.messages.filter { $0.correlationID != crash.cid.rawValue }
        XCTAssertEqual(innocent.count, 0, "\(innocent.count) invocations that never crashed a worker were parked too, "
            + "with reasons such as '\(innocent.first?.header(WireHeader.parkedReason) ?? "")'")

        try await assertAtLeastOnce(behind, callbacks: callbacks, publisher: publisher,
                                    extraQueues: [TopologyNames.serviceQueue(FaultServiceNames.crash),
                                                  TopologyNames.parkingQueue],
                                    allowance: FaultAllowance(unknownCIDs: [crash.cid.rawValue]))
    }
}
