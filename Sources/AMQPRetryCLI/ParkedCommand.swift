import AMQPRetry
import Foundation

/// `amqp-retry parked`: lists, replays or purges the messages in the parking queue.
enum ParkedCommand {
    /// The operation `parked` runs on the messages.
    enum Action: String, CaseIterable {
        /// Print the messages and leave the queue unchanged.
        case list
        /// Move the messages back to their service queues as fresh invocations.
        case replay
        /// Delete the messages.
        case purge
    }

    /// The `--limit` of `parked list` without one.
    static let defaultListLimit = 1000

    /// The largest `--limit`.
    static let maximumLimit = 10_000_000

    /// How many messages a replay reads between two progress lines on standard error.
    static let progressInterval = 100

    /// The `--log-level` of `parked` without one.
    static let defaultLogLevel = Logger.Level.error

    static let cidOption = OptionDefinition(
        name: "cid", valueName: "cid",
        help: "Act only on the messages with this CID as correlation_id. Repeat it for several CIDs. "
            + "(default: every message read)",
        isRepeatable: true
    )
    static let limitOption = OptionDefinition(
        name: "limit", valueName: "n",
        help: "Read at most n messages, from 1 to \(maximumLimit), from the head of the queue. (default: "
            + "\(defaultListLimit) for list; for replay and purge, every message ready when the command starts)"
    )
    static let yesOption = OptionDefinition(
        name: "yes", valueName: nil,
        help: "Confirm that 'parked purge' deletes the messages for good; purge does nothing without it."
    )

    /// The entry of `parked` in the tool's table of commands.
    static let command = Command(
        name: "parked",
        abstract: "List, replay or purge the messages in the parking queue \(TopologyNames.parkingQueue).",
        discussion: """
            list prints each parked message's time of parking, CID, size, source queue and reason \
            in queue order, and leaves the queue unchanged: the messages are read without being \
            acknowledged and go back to their places when the command disconnects.

            replay publishes each selected message back to the service queue it was parked from, \
            with amqpretry-attempt set to 1 and the parked headers and amqpretry-last-error \
            removed, so the worker calls the service with every retry again; the CID stays, so a \
            callback still matches the call. Each parked copy is acknowledged only after the \
            broker confirmed the replayed one, so an interruption loses no message and at worst \
            leaves one message both replayed and parked. Progress goes to standard error every \
            \(progressInterval) messages.

            purge deletes the selected messages and needs --yes. Without --cid it sends \
            queue.purge, which also deletes messages parked while it runs.

            Messages that are not selected stay in the queue. A command reads only the messages \
            that were ready when it started; while another consumer reads the parking queue, it \
            receives some messages instead of this command. The exit status is 1 when a \
            connection fails, a selected message cannot be replayed, or a --cid matches no message read.
            """,
        options: [
            ConnectionOptions.urlDefinition, cidOption, limitOption, SharedOptions.json, yesOption,
            ConnectionOptions.logLevelDefinition(default: defaultLogLevel),
        ],
        arguments: [
            ArgumentDefinition(name: "action", help: "What to do: list, replay or purge."),
        ],
        run: run
    )

    private static func run(_ arguments: CommandLineArguments) async throws(UsageError) -> ExitStatus {
        let action = try action(arguments)
        let selection = try selection(arguments)
        let limit = try arguments.integer(limitOption, in: 1...maximumLimit)
        try checkConfirmation(arguments, action: action)
        let options = try ConnectionOptions(arguments, defaultLogLevel: defaultLogLevel)
        let format: ParkedFormat = arguments.contains(flag: SharedOptions.json.name) ? .json : .text

        let parking = ParkingQueue(
            configuration: options.connection, name: "amqp-retry parked \(action.rawValue)",
            logger: .standardError(label: "amqpretry.parked", logLevel: options.logLevel)
        )
        do {
            switch action {
            case .list:
                let listing = try await parking.list(limit: limit ?? defaultListLimit, selection: selection)
                return format.printListing(listing, selection: selection)
            case .replay:
                let report = try await parking.replay(selection, limit: limit, progress: printProgress)
                return format.printReport(report, action: action, selection: selection)
            case .purge:
                let report = try await parking.purge(selection, limit: limit)
                return format.printReport(report, action: action, selection: selection)
            }
        } catch {
            CommandLineTool.writeError(options.connectionFailureMessage(error) + "\n")
            return .failure
        }
    }

    private static func action(_ arguments: CommandLineArguments) throws(UsageError) -> Action {
        try arguments.checkPositionalCount(atMost: 1)
        let actions = Action.allCases.map(\.rawValue).joined(separator: ", ")
        guard let text = arguments.positionals.first else {
            throw UsageError(message: "Missing expected argument '<action>': one of \(actions)")
        }
        guard let action = Action(rawValue: text) else {
            throw UsageError(message: "Invalid value '\(text)' for argument '<action>': expected one of \(actions)")
        }
        return action
    }

    private static func selection(_ arguments: CommandLineArguments) throws(UsageError) -> ParkedSelection {
        let texts = arguments.values(of: cidOption.name)
        guard !texts.isEmpty else {
            return .all
        }

        var cids: Set<CID> = []
        for text in texts {
            do {
                cids.insert(try CID(validating: text))
            } catch let error as InvalidValueError {
                throw UsageError.invalidValue(text, for: cidOption, expected: error.expected)
            } catch {
                throw UsageError.invalidValue(text, for: cidOption, reason: "\(error)")
            }
        }
        return .cids(cids)
    }

    /// Throws unless `--yes` is given exactly for `purge`.
    private static func checkConfirmation(_ arguments: CommandLineArguments, action: Action) throws(UsageError) {
        let confirmed = arguments.contains(flag: yesOption.name)
        switch action {
        case .purge where !confirmed:
            throw UsageError(message: "'parked purge' deletes parked messages for good: add --yes to confirm")
        case .list, .replay:
            try arguments.reject(yesOption, because: "applies only to 'parked purge'")
        case .purge:
            break
        }
    }

    private static func printProgress(_ progress: ParkedProgress) {
        guard progress.handled % progressInterval == 0 else {
            return
        }
        CommandLineTool.writeError("replayed \(progress.completed) of \(progress.handled) selected messages so far, "
            + "\(progress.read) messages read\n")
    }
}
