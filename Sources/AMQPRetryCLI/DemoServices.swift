import AMQPRetry

/// The services that `amqp-retry worker` and `amqp-retry demo` host, which show how
/// invoke/retry behaves when a service succeeds, fails for a while, always fails, or is slow.
///
/// Every call of a service except the callback service is printed on the ``Console`` when it
/// finishes, and every callback when it arrives.
enum DemoServices {
    /// Returns its request unchanged.
    static let echo = "demo.echo"
    /// Fails until its attempt number exceeds the request's `fail_times`, then returns `{"attempt": N}`.
    static let flaky = "demo.flaky"
    /// Always fails.
    static let fail = "demo.fail"
    /// Sleeps for the request's `seconds`, then returns `{"slept": S}`.
    static let slow = "demo.slow"
    /// Prints every callback it receives.
    static let callbacks = "demo.callbacks"

    /// Every demo service with what it does, in the order help text lists them.
    static let summaries: [(name: String, summary: String)] = [
        (echo, "returns its request unchanged"),
        (flaky, "fails until its attempt number exceeds the request's fail_times (default \(defaultFailTimes))"),
        (fail, "always fails"),
        (slow, "sleeps for the request's seconds (default \(Int(defaultSleepSeconds)), at most "
            + "\(Int(maximumSleepSeconds))), then responds"),
        (callbacks, "receives the outcome of background invocations and prints it"),
    ]

    /// Every demo service, in the order help text lists them.
    static let names = summaries.map(\.name)

    /// The `fail_times` of a `demo.flaky` request without one.
    static let defaultFailTimes = 2

    /// The `seconds` of a `demo.slow` request without one.
    static let defaultSleepSeconds = 1.0

    /// The maximum sleep of `demo.slow`, in seconds.
    static let maximumSleepSeconds = 600.0

    /// Registers every demo service on `worker`, printing calls and callbacks on `console`.
    static func register(on worker: Worker, console: Console) throws {
        try register(echo, on: worker, console: console) { $0.payload }
        try register(flaky, on: worker, console: console, handler: flaky)
        try register(fail, on: worker, console: console, handler: fail)
        try register(slow, on: worker, console: console, handler: slow)
        try worker.register(callbacks) { request in
            console.record(try request.callbackBody())
            return .empty
        }
    }

    /// Registers a handler that prints each of its calls when it finishes.
    private static func register(
        _ service: String, on worker: Worker, console: Console, handler: @escaping ServiceHandler
    ) throws {
        try worker.register(service) { request in
            do {
                let response = try await handler(request)
                console.record(ServiceCall(request, outcome: .success(response)))
                return response
            } catch {
                console.record(ServiceCall(request, outcome: .failure(String(describing: error))))
                throw error
            }
        }
    }
}

// MARK: - Handlers

extension DemoServices {
    private static func flaky(_ request: ServiceRequest) throws -> Payload {
        let failTimes = try integerField("fail_times", of: request) ?? defaultFailTimes
        guard request.attempt > failTimes else {
            throw DemoServiceError(
                message: "attempt \(request.attempt) failed on purpose: \(flaky) fails its first \(failTimes) "
                    + "attempts (fail_times \(failTimes))"
            )
        }
        return jsonPayload(["attempt": .number(Double(request.attempt))])
    }

    private static func fail(_ request: ServiceRequest) throws -> Payload {
        throw DemoServiceError(message: "attempt \(request.attempt) failed on purpose: \(fail) always fails")
    }

    private static func slow(_ request: ServiceRequest) async throws -> Payload {
        let expected = "a number of seconds from 0 to \(Int(maximumSleepSeconds))"
        let seconds = try numberField("seconds", of: request, expected: expected) ?? defaultSleepSeconds
        guard seconds >= 0, seconds <= maximumSleepSeconds else {
            throw invalidField("seconds", .number(seconds), of: request, expected: expected)
        }

        try await Task.sleep(for: .seconds(seconds))
        return jsonPayload(["slept": .number(seconds)])
    }

    private static func jsonPayload(_ members: [String: JSONValue]) -> Payload {
        Payload(json: JSONValue.object(members).serialized())
    }
}

// MARK: - Reading requests

extension DemoServices {
    /// Returns a whole-number field of a JSON request, or `nil` when the request is empty or
    /// lacks the field.
    private static func integerField(_ name: String, of request: ServiceRequest) throws -> Int? {
        guard let value = try field(name, of: request) else {
            return nil
        }
        guard case .number(let number) = value, let integer = Int(exactly: number), integer >= 0 else {
            throw invalidField(name, value, of: request, expected: "a whole number of at least 0")
        }
        return integer
    }

    /// Returns a number field of a JSON request, or `nil` when the request is empty or lacks the field.
    /// - Parameter expected: the accepted values, which the error for a value of another type names.
    private static func numberField(_ name: String, of request: ServiceRequest, expected: String) throws -> Double? {
        guard let value = try field(name, of: request) else {
            return nil
        }
        guard case .number(let number) = value else {
            throw invalidField(name, value, of: request, expected: expected)
        }
        return number
    }

    /// Returns a field of a JSON object request; an empty request, a missing field and `null` are `nil`.
    private static func field(_ name: String, of request: ServiceRequest) throws -> JSONValue? {
        guard !request.payload.bytes.isEmpty else {
            return nil
        }

        let members = (try? request.payload.json())?.objectValue
        guard let members else {
            let received = Console.describe(request.payload)
            throw DemoServiceError(
                message: "the request of \(request.service) must be empty or a JSON object such as "
                    + "{\"\(name)\": 2}, but it is \(received)"
            )
        }
        return members[name] == .null ? nil : members[name]
    }

    private static func invalidField(
        _ name: String, _ value: JSONValue, of request: ServiceRequest, expected: String
    ) -> DemoServiceError {
        DemoServiceError(
            message: "invalid value \(value.serialized()) for field '\(name)' of the request of "
                + "\(request.service): expected \(expected)"
        )
    }
}

/// A failure of a demo service. Its message becomes the error that the caller or the callback receives.
struct DemoServiceError: Error, CustomStringConvertible {
    /// The error message.
    let message: String

    var description: String {
        message
    }
}

extension ServiceCall {
    /// Creates the record of a finished call of `request`.
    init(_ request: ServiceRequest, outcome: CallOutcome) {
        self.init(service: request.service, attempt: request.attempt, cid: request.cid,
                  mode: request.mode, outcome: outcome)
    }
}
