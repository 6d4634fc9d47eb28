@testable import AMQPRetry
import Foundation
import XCTest

/// `amqp-retry parked`: listing without changing the shared parking queue, replaying and
/// purging by CID.
///
/// Other tests and workers may park messages at the same time, so every check looks only at
/// the CIDs this test parked, and the end of the test deletes whatever of them is left.
final class CLIParkedTests: CLITestCase {
    /// The maximum number of messages a test reads from the shared parking queue to find its own.
    private static let readLimit = 100_000

    /// The CIDs this test parked, which the end of the test purges.
    private var parkedCIDs: Set<CID> = []

    override func tearDown() async throws {
        if !parkedCIDs.isEmpty, let configuration = try? configuration {
            _ = try? await ParkingQueue(configuration: configuration).purge(.cids(parkedCIDs))
        }
        try await super.tearDown()
    }

    func testListShowsReasonsAndKeepsQueue() async throws {
        let service = try await makeService("strict")
        try await startWorker([service: { _ in .empty }])
        let malformed = try await parkMalformed(3, in: service)
        let arguments = ["parked", "list", "--json"] + malformed.flatMap { ["--cid", $0.rawValue] }

        let first = try await runCLI(arguments)
        let second = try await runCLI(arguments)

        assertExit(first, 0, arguments)
        let messages = Self.messages(inListing: first.outputText)
        XCTAssertEqual(messages.compactMap { $0["cid"] }, malformed.map { .string($0.rawValue) },
                       "the listing does not show the parked messages in queue order: \(first.outputText)")
        for message in messages {
            XCTAssertEqual(message["reason_code"], .string(ParkReason.Code.missingHeader.rawValue))
            XCTAssertTrue(Self.text(message["reason"])?.contains(WireHeader.version) == true, "reason: \(message)")
            XCTAssertEqual(message["source_queue"], .string(TopologyNames.serviceQueue(service)))
            XCTAssertEqual(message["service"], .string(service))
            XCTAssertNotNil(Self.text(message["parked_at"]).flatMap(WireTimestamp.parse), "parked_at: \(message)")
            XCTAssertEqual(message["size"], .number(Double("malformed".utf8.count)))
        }
        assertExit(second, 0, arguments)
        XCTAssertEqual(Self.messages(inListing: second.outputText), messages,
                       "a second listing differs, so the first changed the queue")
    }

    func testTableListsParkedMessage() async throws {
        let service = try await makeService("table")
        try await startWorker([service: { _ in .empty }])
        let cid = try await parkMalformed(1, in: service)[0]

        let arguments = ["parked", "list", "--cid", cid.rawValue]
        let result = try await runCLI(arguments)

        assertExit(result, 0, arguments)
        XCTAssertEqual(result.outputLines.count, 2, "expected a heading and one row: \(result.outputText)")
        XCTAssertTrue(result.outputLines.first?.hasPrefix("PARKED-AT") == true, result.outputText)
        let row = result.outputLines.last ?? ""
        for text in [cid.rawValue, TopologyNames.serviceQueue(service), "missing-header:", "9"] {
            XCTAssertTrue(row.contains(text), "the row lacks '\(text)': \(row)")
        }
    }

    func testReplayMovesOnlySelectedMessage() async throws {
        let service = try await makeService("recovering")
        let seconds = try await makeRetryInterval()
        let healthy = Locked(false)
        let recorder = CallRecorder()
        try await startWorker([service: { request in
            recorder.record(request)
            guard healthy.withLock({ $0 }) else {
                throw HandlerFailure(description: "still broken")
            }
            return Payload(text: "recovered")
        }])
        let client = try await connectClient()
        let replayed = try await client.invokeRetry.invokeAsync(service, Payload(text: "first"), repeats: 1, seconds: seconds)
        let remaining = try await client.invokeRetry.invokeAsync(service, Payload(text: "second"), repeats: 1,
                                                                 seconds: seconds)
        parkedCIDs.formUnion([replayed, remaining])
        try await waitUntilParked([replayed, remaining])
        healthy.withLock { $0 = true }
        let callsBefore = recorder.count

        let arguments = ["parked", "replay", "--cid", replayed.rawValue]
        let result = try await runCLI(arguments)

        assertExit(result, 0, arguments)
        XCTAssertTrue(result.outputText.hasPrefix("Replayed 1 message;"), result.outputText)
        let called = await eventually { recorder.count > callsBefore }
        XCTAssertTrue(called, "the replayed invocation did not reach the service")
        try? await Task.sleep(for: .milliseconds(500))
        let calls = recorder.all.dropFirst(callsBefore)
        XCTAssertEqual(calls.map(\.request.cid), [replayed], "the service got other calls than the replayed one")
        XCTAssertEqual(calls.first?.request.attempt, 1, "the replay did not start again at attempt 1")
        XCTAssertEqual(calls.first?.request.payload.text, "first", "the replay changed the request")

        let left = try await listedCIDs([replayed, remaining])
        XCTAssertEqual(left, [remaining], "the parking queue does not contain exactly the message not replayed")
    }

    func testPurgeNeedsYesAndRemovesOnlySelected() async throws {
        let service = try await makeService("purged")
        try await startWorker([service: { _ in .empty }])
        let cids = try await parkMalformed(2, in: service)
        let (purged, remaining) = (cids[0], cids[1])

        let unconfirmed = ["parked", "purge", "--cid", purged.rawValue]
        let rejected = try await runCLI(unconfirmed)
        assertExit(rejected, 64, stderrContains: ["--yes"], unconfirmed)
        let afterRejection = try await listedCIDs(Set(cids))
        XCTAssertEqual(afterRejection, Set(cids), "purge without --yes removed messages")

        let confirmed = ["parked", "purge", "--cid", purged.rawValue, "--yes"]
        let result = try await runCLI(confirmed)

        assertExit(result, 0, confirmed)
        XCTAssertTrue(result.outputText.hasPrefix("Purged 1 message;"), result.outputText)
        let left = try await listedCIDs(Set(cids))
        XCTAssertEqual(left, [remaining], "purge did not remove exactly the selected message")
    }

    func testLongReplayReportsProgressAndEnds() async throws {
        let service = try await makeService("bulk")
        try await startWorker([service: { _ in .empty }])
        let cids = try await parkMalformed(150, in: service, waitingForEach: false)

        // The worker parks every replayed message again, because it is still malformed, so the
        // command must stop after the messages that were parked when it started.
        let arguments = ["parked", "replay"] + cids.flatMap { ["--cid", $0.rawValue] }
        let result = try await runCLI(arguments, timeout: .seconds(60))

        assertExit(result, 0, stderrContains: ["replayed 100 of 100 selected messages so far"], arguments)
        XCTAssertTrue(result.outputText.hasPrefix("Replayed 150 messages;"), result.outputText)
        try await waitUntilParked(Set(cids))
        let listing = try await ParkingQueue(configuration: try configuration, idleTimeout: .milliseconds(500))
            .list(limit: Self.readLimit, selection: .cids(Set(cids)))
        XCTAssertEqual(listing.messages.count, 150, "the replayed messages were not each parked once again")
    }

    func testUnknownCIDFailsWithoutChanges() async throws {
        let absent = CID.random()

        let arguments = ["parked", "replay", "--cid", absent.rawValue]
        let result = try await runCLI(arguments)

        assertExit(result, 1, stderrContains: [absent.rawValue], arguments)
    }

    func testInvalidArgumentsAreUsageErrors() async throws {
        let cases: [(arguments: [String], mentions: [String])] = [
            (["park"], ["'park'", "list, replay, purge"]),
            ([], ["<action>"]),
            (["list", "--cid", "K123"], ["'K123'", "--cid"]),
            (["replay", "--cid", "k04ESXZPYX6PERVRRENRP6PCNX4A"], ["'k04ESXZPYX6PERVRRENRP6PCNX4A'", "--cid"]),
            (["list", "--limit", "0"], ["'0'", "--limit"]),
            (["list", "--yes"], ["--yes"]),
            (["purge"], ["--yes"]),
            (["list", "extra"], ["'extra'"]),
        ]

        for invalid in cases {
            let arguments = ["parked"] + invalid.arguments
            let result = try await runCLI(arguments)

            assertExit(result, 64, stderrContains: invalid.mentions, arguments)
            XCTAssertTrue(result.output.isEmpty, "standard output is not empty: \(result.describe(arguments))")
        }
    }

    // MARK: Helpers

    /// Publishes `count` invocations without headers to the queue of `service`, whose worker
    /// parks them with reason `missing-header`, and waits until they are parked.
    ///
    /// With `waitingForEach`, it waits for each message before it publishes the next, so that
    /// the parking queue contains them in publish order.
    private func parkMalformed(_ count: Int, in service: String, waitingForEach: Bool = true) async throws -> [CID] {
        var cids: [CID] = []
        for _ in 0..<count {
            let cid = CID.random()
            let properties = MessageProperties(contentType: "text/plain", deliveryMode: 2, correlationID: cid.rawValue)
            let message = OutgoingMessage(exchange: "", routingKey: TopologyNames.serviceQueue(service),
                                          properties: properties, body: Array("malformed".utf8))
            try await broker.publish([message])
            cids.append(cid)
            parkedCIDs.insert(cid)
            if waitingForEach {
                try await waitUntilParked([cid])
            }
        }
        try await waitUntilParked(Set(cids))
        return cids
    }

    private func waitUntilParked(_ cids: Set<CID>) async throws {
        let parked = try await eventually(timeout: .seconds(15), pollInterval: .milliseconds(200)) {
            try await listedCIDs(cids) == cids
        }
        XCTAssertTrue(parked, "the messages \(cids.map(\.rawValue)) were not parked within 15 s")
    }

    /// Returns which of `cids` the parking queue holds, read with the library as the command reads it.
    private func listedCIDs(_ cids: Set<CID>) async throws -> Set<CID> {
        let parking = ParkingQueue(configuration: try configuration, idleTimeout: .milliseconds(500))
        let listing = try await parking.list(limit: Self.readLimit, selection: .cids(cids))
        return Set(listing.messages.compactMap(\.cid))
    }

    private static func messages(inListing text: String) -> [[String: JSONValue]] {
        guard case .array(let elements)? = (try? JSONValue(parsing: text))?.objectValue?["messages"] else {
            return []
        }
        return elements.compactMap(\.objectValue)
    }

    private static func text(_ value: JSONValue?) -> String? {
        guard case .string(let text)? = value else { return nil }
        return text
    }
}
