import AMQPRetry
import Foundation

/// `amqp-retry status`: the ready messages and consumers of service queues, delay queues and
/// the parking queue, read over AMQP.
enum StatusCommand {
    /// The `--log-level` of `status` without one. It hides the `warning` that this library logs
    /// each time the broker closes the channel of a passive declare of a missing queue.
    static let defaultLogLevel = Logger.Level.error

    /// The largest `--watch` interval, one day in seconds.
    static let maximumWatchSeconds = 86_400.0

    static let watchOption = OptionDefinition(
        name: "watch", valueName: "s",
        help: "Print the status again every s seconds, more than 0 and at most \(Int(maximumWatchSeconds)), "
            + "until SIGINT (Ctrl-C) or SIGTERM."
    )
    static let countOption = OptionDefinition(
        name: "count", valueName: "n",
        help: "With --watch, stop after printing the status n times, n at least 1. (default: no limit)"
    )

    /// The entry of `status` in the tool's table of commands.
    static let command = Command(
        name: "status",
        abstract: "Show the ready messages and consumers of service, delay and parking queues.",
        discussion: """
            For each service queue, READY is the number of invocations and callbacks waiting for \
            a worker and CONSUMERS the number of workers consuming it. For each delay queue, \
            READY is the number of pending retries. For the parking queue, READY is the number of \
            parked messages. A queue that does not exist shows as missing.

            With no service and no --delay, the command shows the demo services \
            (\(DemoServices.names.joined(separator: ", "))) and the delay queues of the demo's \
            intervals (\(SharedOptions.defaultDelays.map { "\($0) ms" }.joined(separator: ", "))). \
            Otherwise it shows exactly the services and intervals given, and always the parking queue.

            The counts come from passive queue.declare over AMQP, so the management plugin is not \
            needed and nothing is created. UNACKED is always n/a: AMQP 0-9-1 reports only ready \
            messages and consumers, so the number of messages delivered but not yet acknowledged \
            needs the management plugin or 'rabbitmqctl list_queues name messages_unacknowledged'.
            """,
        options: [
            ConnectionOptions.urlDefinition, SharedOptions.delay, SharedOptions.json, watchOption, countOption,
            ConnectionOptions.logLevelDefinition(default: defaultLogLevel),
        ],
        arguments: [
            ArgumentDefinition(name: "service", help: "A service whose queue to show.", isOptional: true,
                               isRepeatable: true),
        ],
        run: run
    )

    private static func run(_ arguments: CommandLineArguments) async throws(UsageError) -> ExitStatus {
        let (services, delays) = try SharedOptions.servicesAndDelays(arguments)
        let interval = try watchInterval(arguments)
        let count = try arguments.integer(countOption, in: 1...Int.max)
        if interval == nil {
            try arguments.reject(countOption, because: "needs --watch")
        }
        let options = try ConnectionOptions(arguments, defaultLogLevel: defaultLogLevel)
        let format: StatusFormat = arguments.contains(flag: SharedOptions.json.name) ? .json : .table

        let inspector = TopologyInspector(
            configuration: options.connection, name: "amqp-retry status",
            logger: .standardError(label: "amqpretry.status", logLevel: options.logLevel)
        )
        do {
            try await inspector.connect()
        } catch {
            CommandLineTool.writeError(options.connectionFailureMessage(error) + "\n")
            return .failure
        }

        let report: @Sendable () async -> Bool = {
            await printSnapshot(inspector, services: services, delays: delays, format: format, options: options)
        }
        let succeeded = if let interval {
            await watch(every: interval, count: count, report: report)
        } else {
            await report()
        }
        await inspector.close()
        return succeeded ? .success : .failure
    }

    private static func watchInterval(_ arguments: CommandLineArguments) throws(UsageError) -> Duration? {
        guard let seconds = try arguments.number(watchOption) else {
            return nil
        }
        guard seconds > 0, seconds <= maximumWatchSeconds else {
            throw UsageError.invalidValue(arguments.value(of: watchOption.name) ?? "", for: watchOption,
                                          expected: "a number of seconds more than 0 and at most \(Int(maximumWatchSeconds))")
        }
        return .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }

    /// Calls `report` every `interval` until SIGINT or SIGTERM, or `count` times, and returns
    /// whether the last report succeeded.
    private static func watch(every interval: Duration, count: Int?,
                              report: @escaping @Sendable () async -> Bool) async -> Bool {
        let loop = Task {
            var succeeded = true
            var reports = 0
            while !Task.isCancelled {
                succeeded = await report()
                reports += 1
                if let count, reports >= count {
                    break
                }
                try? await Task.sleep(for: interval)
            }
            return succeeded
        }
        let signals = InterruptSignals { loop.cancel() }
        let succeeded = await loop.value
        withExtendedLifetime(signals) {}
        return succeeded
    }

    /// Reads and prints one snapshot, or prints the error; returns whether it succeeded.
    private static func printSnapshot(_ inspector: TopologyInspector, services: [String], delays: [Int64],
                                      format: StatusFormat, options: ConnectionOptions) async -> Bool {
        do {
            let snapshot = try await inspector.status(services: services, delays: delays)
            CommandLineTool.writeOutput(format.render(snapshot, broker: options.connection.redactedURL))
            return true
        } catch {
            CommandLineTool.writeError(options.connectionFailureMessage(error) + "\n")
            return false
        }
    }
}

/// How `status` prints a snapshot.
enum StatusFormat {
    /// A line with the broker and the time, then a table with one row per queue.
    case table
    /// One JSON object on one line.
    case json

    /// The text of `UNACKED`, which AMQP does not report.
    static let unavailable = "n/a"

    /// Returns the snapshot as text, ending with a newline.
    func render(_ snapshot: StatusSnapshot, broker: String) -> String {
        switch self {
        case .table:
            return Self.table(snapshot, broker: broker)
        case .json:
            return Self.json(snapshot).serialized() + "\n"
        }
    }

    private static func table(_ snapshot: StatusSnapshot, broker: String) -> String {
        var table = TextTable(headings: ["KIND", "NAME", "QUEUE", "READY", "CONSUMERS", "UNACKED"],
                              alignments: [.left, .left, .left, .right, .right, .right])
        for service in snapshot.services {
            table.append(row("service", service.name, service.queue))
        }
        for delay in snapshot.delays {
            table.append(row("delay", "\(delay.milliseconds) ms", delay.queue))
        }
        table.append(row("parking", "parked", snapshot.parking))

        let time = snapshot.date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
        return "\(time)  RabbitMQ at \(broker)\n" + table.rendered()
    }

    private static func row(_ kind: String, _ name: String, _ queue: QueueStatus) -> [String] {
        guard let counts = queue.counts else {
            return [kind, name, queue.name, "missing", "-", "-"]
        }
        return [kind, name, queue.name, String(counts.messageCount), String(counts.consumerCount), unavailable]
    }

    /// Returns the snapshot as JSON with fixed keys. A missing queue has `exists` false and
    /// `null` counts, and `unacked` is always `null` because AMQP does not report it.
    static func json(_ snapshot: StatusSnapshot) -> JSONValue {
        let services = snapshot.services.map { service in
            queueJSON(service.queue, adding: ["service": .string(service.name)])
        }
        let delays = snapshot.delays.map { delay in
            queueJSON(delay.queue, adding: ["milliseconds": .number(Double(delay.milliseconds))])
        }
        return .object([
            "time": .string(WireTimestamp.format(snapshot.date)),
            "services": .array(services),
            "delays": .array(delays),
            "parking": queueJSON(snapshot.parking, adding: [:]),
        ])
    }

    private static func queueJSON(_ queue: QueueStatus, adding extra: [String: JSONValue]) -> JSONValue {
        var members: [String: JSONValue] = [
            "queue": .string(queue.name),
            "exists": .bool(queue.exists),
            "ready": queue.counts.map { .number(Double($0.messageCount)) } ?? .null,
            "consumers": queue.counts.map { .number(Double($0.consumerCount)) } ?? .null,
            "unacked": .null,
        ]
        members.merge(extra) { _, new in new }
        return .object(members)
    }
}
