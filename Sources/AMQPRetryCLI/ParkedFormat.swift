import AMQPRetry

/// The output format of `parked`. Listings and summaries go to standard output, notes and
/// errors to standard error.
enum ParkedFormat {
    /// A table for `list`, a sentence for `replay` and `purge`.
    case text
    /// One JSON object on one line.
    case json

    /// The number of characters of a reason or CID that the table shows before cutting it.
    static let maximumCellCharacters = 120

    /// Prints a listing and returns the exit status: 1 when a `--cid` matched no message read.
    func printListing(_ listing: ParkedListing, selection: ParkedSelection) -> ExitStatus {
        switch self {
        case .text:
            CommandLineTool.writeOutput(Self.table(listing.messages))
        case .json:
            let object: JSONValue = .object([
                "queue": .string(TopologyNames.parkingQueue),
                "ready": .number(Double(listing.scan.readyAtStart)),
                "read": .number(Double(listing.scan.examined)),
                "messages": .array(listing.messages.map(Self.json)),
            ])
            CommandLineTool.writeOutput(object.serialized() + "\n")
        }

        Self.printNotes(listing.scan)
        let found = Set(listing.messages.compactMap(\.cid))
        return Self.reportMissing(selection, found: found) ? .failure : .success
    }

    /// Prints the summary of a replay or purge and returns the exit status: 1 when a selected
    /// message failed or a `--cid` matched no message read.
    func printReport(_ report: ParkedOperationReport, action: ParkedCommand.Action,
                     selection: ParkedSelection) -> ExitStatus {
        switch self {
        case .text:
            CommandLineTool.writeOutput(Self.summary(report, action: action))
        case .json:
            CommandLineTool.writeOutput(Self.json(report, action: action, selection: selection).serialized() + "\n")
        }

        Self.printNotes(report.scan)
        for failure in report.failures {
            CommandLineTool.writeError("Error: the parked message with correlation_id "
                + "'\(Self.cell(failure.message.correlationID))' stays parked: \(failure.error)\n")
        }
        let missing = Self.reportMissing(selection, found: report.matchedCIDs)
        return missing || !report.failures.isEmpty ? .failure : .success
    }
}

// MARK: - Text

extension ParkedFormat {
    private static func table(_ messages: [ParkedMessage]) -> String {
        var table = TextTable(headings: ["PARKED-AT", "CID", "SIZE", "QUEUE", "REASON"],
                              alignments: [.left, .left, .right, .left, .left])
        for message in messages {
            table.append([
                cell(message.parkedAt), cell(message.correlationID), String(message.size),
                cell(message.sourceQueue), cell(message.reason),
            ])
        }
        return table.rendered()
    }

    private static func summary(_ report: ParkedOperationReport, action: ParkedCommand.Action) -> String {
        let verb = action == .replay ? "Replayed" : "Purged"
        let remaining = report.scan.examined - report.completed
        return "\(verb) \(count(report.completed, "message")); read \(report.scan.examined) of "
            + "\(report.scan.readyAtStart) ready in \(TopologyNames.parkingQueue); \(remaining) read stay parked.\n"
    }

    /// Prints on standard error why a scan may have missed messages.
    private static func printNotes(_ scan: ParkedScan) {
        if scan.consumersAtStart > 0 {
            CommandLineTool.writeError("Note: \(count(scan.consumersAtStart, "other consumer")) read "
                + "\(TopologyNames.parkingQueue); the messages delivered to them were not read.\n")
        }
        if scan.endedEarly {
            CommandLineTool.writeError("Note: only \(scan.examined) of the \(scan.expected) messages expected "
                + "arrived before no message came for a while.\n")
        }
        if scan.expected < scan.readyAtStart {
            CommandLineTool.writeError("Note: read the first \(scan.expected) of \(scan.readyAtStart) parked "
                + "messages; pass a larger --limit to read more.\n")
        }
    }

    /// Prints each CID of the selection that no message read had, and returns whether there was one.
    private static func reportMissing(_ selection: ParkedSelection, found: Set<CID>) -> Bool {
        guard case .cids(let cids) = selection else {
            return false
        }
        let missing = cids.subtracting(found).map(\.rawValue).sorted()
        for cid in missing {
            CommandLineTool.writeError("Error: no parked message with CID \(cid) among the messages read\n")
        }
        return !missing.isEmpty
    }

    /// Renders an optional header value on one line, cut after ``maximumCellCharacters``.
    private static func cell(_ text: String?) -> String {
        guard let text, !text.isEmpty else {
            return "-"
        }
        let oneLine = Console.shortened(text)
        return oneLine.count > maximumCellCharacters ? oneLine.prefix(maximumCellCharacters) + "…" : oneLine
    }

    private static func count(_ number: Int, _ noun: String) -> String {
        number == 1 ? "1 \(noun)" : "\(number) \(noun)s"
    }
}

// MARK: - JSON

extension ParkedFormat {
    /// Returns a parked message as JSON, with `null` for each header it lacks.
    private static func json(_ message: ParkedMessage) -> JSONValue {
        let headers = message.properties.headers
        return .object([
            "cid": text(message.correlationID),
            "reason": text(message.reason),
            "reason_code": text(message.reason.flatMap { $0.split(separator: ":").first.map(String.init) }),
            "source_queue": text(message.sourceQueue),
            "service": text(message.service),
            "parked_at": text(message.parkedAt),
            "size": .number(Double(message.size)),
            "content_type": text(message.properties.contentType),
            "mode": text(headers[WireHeader.mode]?.textValue),
            "attempt": headers[WireHeader.attempt]?.integerValue.map { .number(Double($0)) } ?? .null,
        ])
    }

    private static func json(_ report: ParkedOperationReport, action: ParkedCommand.Action,
                             selection: ParkedSelection) -> JSONValue {
        let failures = report.failures.map { failure -> JSONValue in
            .object(["cid": text(failure.message.correlationID), "error": .string(failure.error)])
        }
        let missing = report.missingCIDs(of: selection).map(\.rawValue).sorted().map(JSONValue.string)
        return .object([
            "action": .string(action.rawValue),
            "ready": .number(Double(report.scan.readyAtStart)),
            "read": .number(Double(report.scan.examined)),
            "completed": .number(Double(report.completed)),
            "failed": .array(failures),
            "missing_cids": .array(missing),
        ])
    }

    private static func text(_ value: String?) -> JSONValue {
        value.map(JSONValue.string) ?? .null
    }
}
