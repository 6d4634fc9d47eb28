@testable import AMQPRetry
import Foundation
import XCTest

/// Tests of the batched socket writes (`OutboundFrames`) and of publishes written from the
/// caller's thread on an idle connection (`ConnectionLoop.publishIfIdle`).
final class OutboundWriteTests: FaultTestCase {
    /// A body larger than what the loopback socket buffers of both ends take in, so that a write
    /// to a broker that reads nothing blocks (`net.ipv4.tcp_wmem` max 4 MiB and
    /// `net.ipv4.tcp_rmem` max 32 MiB on the test machine).
    static let blockingBodySize = 48 << 20

    /// Makes one sync + sync call with a 1 s timeout and one repeat while `stall` keeps the
    /// broker from reading. The call must fail after its two attempts, not after the 10 s
    /// `operation_timeout` that a blocked socket write would take.
    private func assertLargeCallFailsOnTime(_ client: AMQPRetryClient, service: String, bytes: Int, label: String,
                                            stall: () async throws -> Void, resume: () async throws -> Void) async throws {
        let payload = Payload(bytes: Array(repeating: UInt8(ascii: "a"), count: bytes))

        try await stall()
        let start = ContinuousClock.now
        var failure: (any Error)?
        do {
            _ = try await client.invokeRetry.invoke(service, payload, repeats: 1, seconds: 0.1, timeout: .seconds(1))
        } catch {
            failure = error
        }
        let elapsed = ContinuousClock.now - start
        try await resume()

        print("\(label) sync invoke of \(bytes) bytes returned after \(elapsed): \(failure.map { "\($0)" } ?? "success")")
        XCTAssertNotNil(failure, "\(label): the sync invoke succeeded although the broker read nothing")
        XCTAssertLessThanOrEqual(elapsed, .seconds(4),
                                 "\(label): two attempts of 1 s took \(elapsed); the caller was blocked in the socket write")
    }

    private func assertNoConnectionLost(file: StaticString = #filePath, line: UInt = #line) {
        let lost = logs.records(withMessage: "connection to RabbitMQ lost")
        XCTAssertTrue(lost.isEmpty, "connections were lost: \(lost.map(\.metadata))", file: file, line: line)
    }

    func testStalledBrokerBoundsLargeSyncCall() async throws {
        let service = try await makeService("largesync")
        let client = try await connectClient([("operation_timeout", "10000"), ("heartbeat", "0")])
        let pid = try await broker.virtualMachinePID()
        defer { resumeBroker() }

        try await assertLargeCallFailsOnTime(client, service: service, bytes: Self.blockingBodySize, label: "TCP",
                                             stall: { stallBroker(pid) }, resume: { resumeBroker() })

        try await connection.purgeQueue(TopologyNames.serviceQueue(service))
    }

    /// A memory alarm makes the broker stop reading from a connection once it publishes.
    func testMemoryAlarmBoundsLargeSyncCall() async throws {
        let service = try await makeService("largealarm")
        let client = try await connectClient([("operation_timeout", "10000")])

        try await assertLargeCallFailsOnTime(client, service: service, bytes: 8 << 20, label: "memory alarm",
                                             stall: { try await raiseMemoryAlarm() }, resume: { try await clearMemoryAlarm() })

        _ = await eventually(timeout: .seconds(15)) { (try? await self.connection.readyMessageCount(TopologyNames.serviceQueue(service))) != nil }
        try await connection.purgeQueue(TopologyNames.serviceQueue(service))
    }

    /// Over TLS the idle path is not taken, and the I/O thread writes the request.
    func testStalledBrokerBoundsLargeTLSSyncCall() async throws {
        let service = try await makeService("largetls")
        var configuration = try SecurityEnvironment.configuration("AMQPRETRY_TLS_URL")
        configuration.operationTimeout = .seconds(10)
        configuration.heartbeat = .zero
        let client = try await AMQPRetryClient.connect(configuration: configuration, name: "amqpretry faults \(runID) tls",
                                                       logger: logs.logger(label: "tls client"))
        let pid = try await broker.virtualMachinePID()
        defer { resumeBroker() }

        try await assertLargeCallFailsOnTime(client, service: service, bytes: Self.blockingBodySize, label: "TLS",
                                             stall: { stallBroker(pid) }, resume: { resumeBroker() })

        await client.close()
        try await connection.purgeQueue(TopologyNames.serviceQueue(service))
    }

    /// Publishes that wait for a broker that reads nothing must suspend their tasks, not block
    /// the threads of Swift's cooperative pool, so that other tasks of the process keep running.
    func testStalledBrokerKeepsOtherTasksRunning() async throws {
        let service = try await makeService("starve")
        let parameters = [("operation_timeout", "8000"), ("heartbeat", "0")]
        let clients = [try await connectClient(parameters), try await connectClient(parameters)]
        // Declares the topology on both clients first, so that the stalled publishes are the
        // first step of each call.
        for client in clients {
            _ = try await client.invokeRetry.invokeAsync(service, Payload(json: "{}"), repeats: 1, seconds: 0.1)
        }
        let payload = Payload(bytes: Array(repeating: UInt8(ascii: "b"), count: Self.blockingBodySize))
        let pid = try await broker.virtualMachinePID()

        stallBroker(pid)
        defer { resumeBroker() }
        let publishes = clients.map { client in
            Task.detached { () -> Duration in
                let start = ContinuousClock.now
                _ = try? await client.invokeRetry.invokeAsync(service, payload, repeats: 1, seconds: 0.1)
                return ContinuousClock.now - start
            }
        }
        // A task that wakes every 50 ms for 4 s and records the longest gap between wake-ups.
        let ticker = Task.detached { () -> Duration in
            var longestGap = Duration.zero
            var last = ContinuousClock.now
            for _ in 0..<80 {
                try? await Task.sleep(for: .milliseconds(50))
                let now = ContinuousClock.now
                longestGap = max(longestGap, now - last)
                last = now
            }
            return longestGap
        }
        let longestGap = await ticker.value
        var publishTimes: [Duration] = []
        for publish in publishes {
            publishTimes.append(await publish.value)
        }
        resumeBroker()

        print("longest gap between 50 ms ticks: \(longestGap); large publishes returned after \(publishTimes)")
        XCTAssertLessThan(longestGap, .seconds(1),
                          "a task sleeping 50 ms at a time was held up \(longestGap) while two publishes waited for the broker")
        try await connection.purgeQueue(TopologyNames.serviceQueue(service))
    }

    /// Bodies around the frame boundaries of frame_max 4096 and of the default 131072 arrive
    /// unchanged and in order, and the connection stays up.
    func testBodiesAroundFrameBoundariesArrive() async throws {
        for frameMax in [4096, 131_072] {
            let payloadMax = frameMax - FrameSize.frameOverhead
            let sizes = [0, 1, payloadMax - 1, payloadMax, payloadMax + 1, 2 * payloadMax, 2 * payloadMax + 1,
                         3 * payloadMax + 5, 1_000_003, 9_000_001]
            let service = try await makeService("frames\(frameMax)")
            let queue = TopologyNames.serviceQueue(service)
            let collector = try await collectQueue(of: service)
            let publisher = AMQPConnection(configuration: try configuration([("frame_max", String(frameMax))]),
                                           name: "amqpretry faults \(runID) frames", logger: logs.logger(label: "frames"))
            try await publisher.start()

            for (index, size) in sizes.enumerated() {
                let body = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
                let message = OutgoingMessage(exchange: "", routingKey: queue,
                                              properties: MessageProperties(correlationID: "size-\(size)"), body: body)
                try await publisher.publish([message])
            }
            await publisher.close()

            let arrived = await eventually(timeout: .seconds(30)) { collector.messages.count >= sizes.count }
            XCTAssertTrue(arrived, "frame_max \(frameMax): \(collector.messages.count) of \(sizes.count) messages arrived")
            for (index, size) in sizes.enumerated() {
                let received = collector.messages(correlationID: "size-\(size)")
                XCTAssertEqual(received.count, 1, "frame_max \(frameMax): body of \(size) bytes arrived \(received.count) times")
                guard let body = received.first?.delivery.body else { continue }
                let expected = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
                XCTAssertTrue(body == expected, "frame_max \(frameMax): body of \(size) bytes arrived changed (\(body.count) bytes)")
            }
            XCTAssertEqual(collector.messages.map(\.correlationID), sizes.map { "size-\($0)" },
                           "frame_max \(frameMax): messages arrived out of order")
            await collector.close()
        }
        assertNoConnectionLost()
    }

    /// A content header that fills a frame exactly is accepted, and the connection stays up.
    func testContentHeaderFillingFrameIsAccepted() async throws {
        let frameMax = 4096
        let service = try await makeService("header")
        let queue = TopologyNames.serviceQueue(service)
        let collector = try await collectQueue(of: service)
        let publisher = AMQPConnection(configuration: try configuration([("frame_max", String(frameMax))]),
                                       name: "amqpretry faults \(runID) header", logger: logs.logger(label: "header"))
        try await publisher.start()

        var properties = MessageProperties(correlationID: "header-full", messageID: "m1")
        properties.headers = ["pad": .string([])]
        let missing = frameMax - FrameSize.frameOverhead - FrameSize.contentHeaderSize(properties)
        properties.headers = ["pad": .string(Array(repeating: UInt8(ascii: "x"), count: missing))]
        XCTAssertEqual(FrameSize.contentHeaderSize(properties), frameMax - FrameSize.frameOverhead)
        try await publisher.publish([OutgoingMessage(exchange: "", routingKey: queue, properties: properties, body: [1, 2, 3])])

        var tooLarge = properties
        tooLarge.headers = ["pad": .string(Array(repeating: UInt8(ascii: "x"), count: missing + 1))]
        var rejection: AMQPError?
        do {
            try await publisher.publish([OutgoingMessage(exchange: "", routingKey: queue, properties: tooLarge, body: [])])
        } catch {
            rejection = error
        }
        XCTAssertEqual(rejection?.code, .invalidMessage)
        try await publisher.publish([OutgoingMessage(exchange: "", routingKey: queue,
                                                     properties: MessageProperties(correlationID: "after"), body: [4])])
        await publisher.close()

        let arrived = await eventually(timeout: .seconds(10)) { collector.messages.count >= 2 }
        XCTAssertTrue(arrived, "\(collector.messages.count) of 2 messages arrived")
        XCTAssertEqual(collector.messages.map(\.correlationID), ["header-full", "after"])
        await collector.close()
        assertNoConnectionLost()
    }

    /// Many tasks publishing on one connection, some while it is idle and some while it is
    /// busy, get every message to the queue once, with its body unchanged.
    func testMixedIdleAndBusyPublishers() async throws {
        let service = try await makeService("mixed")
        let queue = TopologyNames.serviceQueue(service)
        let collector = try await collectQueue(of: service)
        let publisher = AMQPConnection(configuration: try configuration([("frame_max", "4096")]),
                                       name: "amqpretry faults \(runID) mixed", logger: logs.logger(label: "mixed"))
        try await publisher.start()
        let taskCount = 8
        let perTask = 150

        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<taskCount {
                group.addTask {
                    for index in 0..<perTask {
                        let size = (task * 7919 + index * 104_729) % 20_000
                        let body = (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ task &+ index) }
                        let message = OutgoingMessage(exchange: "", routingKey: queue,
                                                      properties: MessageProperties(correlationID: "\(task)-\(index)-\(size)"),
                                                      body: body)
                        if index % 3 == 0 {
                            try await Task.sleep(for: .milliseconds(Int.random(in: 0...3)))
                        }
                        try await publisher.publish([message])
                    }
                }
            }
            try await group.waitForAll()
        }
        let callerPublishes = publisher.callerPublishCount
        await publisher.close()

        let total = taskCount * perTask
        let arrived = await eventually(timeout: .seconds(60)) { collector.messages.count >= total }
        XCTAssertTrue(arrived, "\(collector.messages.count) of \(total) messages arrived")
        var seen = Set<String>()
        for message in collector.messages {
            guard let id = message.correlationID else {
                XCTFail("a message without correlation_id arrived")
                continue
            }
            XCTAssertTrue(seen.insert(id).inserted, "message \(id) arrived twice")
            let parts = id.split(separator: "-").compactMap { Int($0) }
            guard parts.count == 3 else { continue }
            let expected = (0..<parts[2]).map { UInt8(truncatingIfNeeded: $0 &+ parts[0] &+ parts[1]) }
            XCTAssertTrue(message.delivery.body == expected, "message \(id) arrived with a changed body")
        }
        print("\(callerPublishes) of \(total) publishes went out from callers' threads")
        XCTAssertGreaterThan(callerPublishes, 0)
        await collector.close()
        assertNoConnectionLost()
    }

    /// Large publishes held by a memory alarm fail, none is confirmed, and the connection
    /// publishes again once the alarm clears.
    ///
    /// NOTE: when the held publishes fill the socket buffers, the I/O thread waits in its write
    /// and reads the broker's `connection.close` only after `operation_timeout`, so the bound
    /// checked here is that timeout, not the moment of the close.
    func testAlarmHeldWritesFailAfterClose() async throws {
        let service = try await makeService("alarmclose")
        let queue = TopologyNames.serviceQueue(service)
        let operationTimeout = Duration.seconds(5)
        let publisher = AMQPConnection(configuration: try configuration([("operation_timeout", "5000")]),
                                       name: "amqpretry faults \(runID) alarmclose", logger: logs.logger(label: "alarmclose"))
        try await publisher.start()
        let body = Array(repeating: UInt8(ascii: "d"), count: 8 << 20)

        try await raiseMemoryAlarm()
        let start = ContinuousClock.now
        let outcomes = Task.detached { () -> [(String, Duration)] in
            await withTaskGroup(of: (String, Duration).self) { group in
                for index in 0..<6 {
                    group.addTask {
                        let message = OutgoingMessage(exchange: "", routingKey: queue,
                                                      properties: MessageProperties(correlationID: "d\(index)"), body: body)
                        do {
                            try await publisher.publish([message])
                            return ("ok", ContinuousClock.now - start)
                        } catch {
                            return ((error as? AMQPError).map { "\($0.code)" } ?? "\(error)", ContinuousClock.now - start)
                        }
                    }
                }
                var results: [(String, Duration)] = []
                for await result in group {
                    results.append(result)
                }
                return results
            }
        }
        try await Task.sleep(for: .seconds(2))
        try await broker.closeAllConnections("fault test: close while an alarm holds writes")
        let closedAt = ContinuousClock.now - start
        let results = await outcomes.value
        try await clearMemoryAlarm()
        print("close_all_connections after \(closedAt); outcomes: \(results)")
        for (outcome, elapsed) in results {
            XCTAssertNotEqual(outcome, "ok", "a publish was confirmed during the alarm")
            XCTAssertLessThan(elapsed, closedAt + operationTimeout + .seconds(3),
                              "a publish held by the alarm failed \(elapsed - closedAt) after the connection was closed")
        }

        var republished = false
        for _ in 0..<30 {
            do {
                try await publisher.publish([OutgoingMessage(exchange: "", routingKey: queue,
                                                             properties: MessageProperties(), body: [1])])
                republished = true
                break
            } catch {
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        XCTAssertTrue(republished, "the connection did not publish again within 15 s after the alarm cleared")
        await publisher.close()
        try await connection.purgeQueue(queue)
    }
}
