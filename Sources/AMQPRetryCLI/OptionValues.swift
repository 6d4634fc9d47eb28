import AMQPRetry

/// Typed values of options, checked before a command connects to the broker.
///
/// Each error names the option, the value as typed, and the expected form.
extension CommandLineArguments {
    /// Returns the value of `option` as a whole number in `range`, or `nil` when it was not given.
    func integer(_ option: OptionDefinition, in range: ClosedRange<Int>) throws(UsageError) -> Int? {
        guard let text = value(of: option.name) else {
            return nil
        }
        return try Self.integer(text, option: option, in: range)
    }

    /// Returns every value of the repeatable `option` as whole numbers in `range`.
    func integers(_ option: OptionDefinition, in range: ClosedRange<Int>) throws(UsageError) -> [Int] {
        var numbers: [Int] = []
        for text in values(of: option.name) {
            numbers.append(try Self.integer(text, option: option, in: range))
        }
        return numbers
    }

    /// Returns the value of `option` as a finite number, or `nil` when it was not given.
    func number(_ option: OptionDefinition) throws(UsageError) -> Double? {
        guard let text = value(of: option.name) else {
            return nil
        }
        guard let number = Double(text), number.isFinite else {
            throw UsageError.invalidValue(text, for: option, expected: "a number")
        }
        return number
    }

    /// Throws unless the flag or option `option` is absent, with `reason` saying why it is not
    /// accepted here.
    func reject(_ option: OptionDefinition, because reason: String) throws(UsageError) {
        guard value(of: option.name) != nil || contains(flag: option.name) else {
            return
        }
        throw UsageError(message: "The option '\(option.singleSynopsis)' \(reason)")
    }

    private static func integer(_ text: String, option: OptionDefinition,
                                in range: ClosedRange<Int>) throws(UsageError) -> Int {
        guard let number = Int(text), range.contains(number) else {
            let expected = "a whole number from \(range.lowerBound) to \(range.upperBound)"
            throw UsageError.invalidValue(text, for: option, expected: expected)
        }
        return number
    }
}

extension UsageError {
    /// Makes the error for an invalid option value, such as
    /// `Invalid value 'abc' for '--repeats <n>': expected a whole number from 1 to 1000000`.
    static func invalidValue(_ text: String, for option: OptionDefinition, expected: String) -> UsageError {
        UsageError(message: "Invalid value '\(text)' for '\(option.singleSynopsis)': expected \(expected)")
    }

    /// Makes the error for an invalid option value from the reason the library gives, such as
    /// `Invalid value '-1' for '--seconds <s>': must be a finite number greater than 0`.
    static func invalidValue(_ text: String, for option: OptionDefinition, reason: String) -> UsageError {
        UsageError(message: "Invalid value '\(text)' for '\(option.singleSynopsis)': \(reason)")
    }
}

/// The retry intervals and CIDs that several commands read.
enum SharedOptions {
    /// The definition of `--json`.
    static let json = OptionDefinition(
        name: "json", valueName: nil,
        help: "Print JSON instead of a table: one object per line, with keys that stay the same across versions."
    )

    /// The definition of `--delay`.
    static let delay = OptionDefinition(
        name: "delay", valueName: "ms",
        help: "A retry interval in milliseconds, from 1 to \(RetryOptions.maximumIntervalMilliseconds), "
            + "whose delay queue amqpretry.delay.<ms>ms to include. Repeat it for several intervals.",
        isRepeatable: true
    )

    /// The services and retry intervals a command uses when it is given none: those of the
    /// demo services, whose demo retries every 0.5 or 1 second.
    static let defaultDelays: [Int64] = [500, 1000]

    /// Reads the services given as arguments and the intervals given with `--delay`; with
    /// neither, returns the demo services and ``defaultDelays``.
    static func servicesAndDelays(_ arguments: CommandLineArguments) throws(UsageError) -> (services: [String], delays: [Int64]) {
        let services = arguments.positionals
        for service in services {
            try checkServiceName(service, label: "argument '<service>'")
        }

        let maximum = Int(RetryOptions.maximumIntervalMilliseconds)
        let delays = try arguments.integers(delay, in: 1...maximum).map(Int64.init)
        guard services.isEmpty, delays.isEmpty else {
            return (unique(services), unique(delays))
        }
        return (DemoServices.names, defaultDelays)
    }

    /// Throws unless `name` is a valid service name.
    static func checkServiceName(_ name: String, label: String) throws(UsageError) {
        do {
            try ServiceName.validate(name, option: label)
        } catch InvokeRetryError.invalidOption(_, _, let reason) {
            throw UsageError(message: "Invalid value '\(name)' for \(label): a service name \(reason)")
        } catch {
            throw UsageError(message: "Invalid value '\(name)' for \(label): \(error)")
        }
    }

    /// Removes repeated elements, keeping the first of each.
    private static func unique<Element: Hashable>(_ elements: [Element]) -> [Element] {
        var seen: Set<Element> = []
        return elements.filter { seen.insert($0).inserted }
    }
}
