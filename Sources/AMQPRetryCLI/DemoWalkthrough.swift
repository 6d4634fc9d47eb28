import AMQPRetry

/// The steps of `amqp-retry demo`: each invokes a demo service in one invoke/retry mode, prints
/// what happens, and checks the outcome against what the mode promises.
struct DemoWalkthrough: Sendable {
    /// The retry options of a step, in the form its heading shows them.
    struct Settings: Sendable, CustomStringConvertible {
        /// How many times a failed first call is repeated.
        let repeats: Int
        /// The interval between calls, in seconds.
        let seconds: Double

        var description: String {
            "(repeats \(repeats), seconds \(seconds.formatted()))"
        }
    }

    /// One step of the demo.
    struct Step: Sendable {
        /// The invoke/retry mode, such as `sync + async`.
        let mode: String
        /// A few words on the events of the step, such as `demo.fail fails every call`.
        let story: String
        /// The retry options the step invokes with.
        let settings: Settings
        /// Runs the step and returns whether it behaved as expected.
        let run: @Sendable (DemoWalkthrough, Settings) async -> Bool

        var heading: String {
            "\(mode): \(story) \(settings)"
        }
    }

    let invokeRetry: InvokeRetry
    let console: Console
    let callbackTimeout: Duration

    /// The `fail_times` of every demo.flaky request, so each invocation succeeds on the next attempt.
    static let flakyFailTimes = 2

    /// The `seconds` of the demo.slow request.
    static let slowSeconds = 2

    /// Every step, in the order the demo runs them.
    static let steps: [Step] = [
        Step(mode: "sync + sync", story: "demo.flaky fails \(flakyFailTimes) times, then succeeds",
             settings: Settings(repeats: 3, seconds: 0.5), run: { await $0.syncSyncFlaky($1) }),
        Step(mode: "sync + sync", story: "demo.fail fails every call",
             settings: Settings(repeats: 3, seconds: 1), run: { await $0.syncSyncFail($1) }),
        Step(mode: "sync + async", story: "demo.echo succeeds at once",
             settings: Settings(repeats: 3, seconds: 1), run: { await $0.syncAsyncEcho($1) }),
        Step(mode: "sync + async", story: "demo.flaky fails its first call, then succeeds in the background",
             settings: Settings(repeats: 3, seconds: 1), run: { await $0.syncAsyncFlaky($1) }),
        Step(mode: "async + async", story: "demo.flaky fails \(flakyFailTimes) times in the background, then succeeds",
             settings: Settings(repeats: 3, seconds: 1), run: { await $0.asyncAsyncFlaky($1) }),
        Step(mode: "async + async", story: "demo.fail fails every call, and the callback reports it",
             settings: Settings(repeats: 3, seconds: 1), run: { await $0.asyncAsyncFail($1) }),
        Step(mode: "async + async", story: "demo.slow takes \(slowSeconds) seconds while the client goes on",
             settings: Settings(repeats: 1, seconds: 1), run: { await $0.asyncAsyncSlow($1) }),
    ]

    /// Runs every step and prints a summary.
    /// - Returns: whether every step behaved as expected.
    func run() async -> Bool {
        var failedHeadings: [String] = []
        for step in Self.steps {
            console.write("")
            console.write("== " + step.heading)
            if await !step.run(self, step.settings) {
                failedHeadings.append(step.heading)
            }
        }

        printSummary(failedHeadings: failedHeadings)
        return failedHeadings.isEmpty
    }

    private func printSummary(failedHeadings: [String]) {
        let total = Self.steps.count
        let elapsed = console.elapsed.seconds.formatted(.number.precision(.fractionLength(1)))
        console.write("")
        guard !failedHeadings.isEmpty else {
            console.write("== Summary: all \(total) steps behaved as expected, in \(elapsed) s.")
            console.write("   To host the demo services on their own, run 'amqp-retry worker'.")
            return
        }

        console.write("== Summary: \(total - failedHeadings.count) of \(total) steps behaved as expected, "
            + "in \(elapsed) s. These did not:")
        for heading in failedHeadings {
            console.write("   " + heading)
        }
        console.write("   If another worker hosts the demo services on this broker, stop it and run the demo again;")
        console.write("   otherwise rerun with --log-level info and read the log lines on standard error.")
    }
}

// MARK: - Sync + sync

extension DemoWalkthrough {
    private func syncSyncFlaky(_ settings: Settings) async -> Bool {
        let request = Self.flakyRequest
        say("invoke() blocks the client until a call succeeds or all 1 + \(settings.repeats) calls have failed.")
        say("request: \(Console.describe(request))")

        let firstCall = console.callCount
        do {
            let response = try await invokeRetry.invoke(DemoServices.flaky, request, repeats: settings.repeats,
                                                         seconds: settings.seconds)
            say("result: response \(Console.describe(response))")
            let calls = console.calls(from: firstCall).filter { $0.service == DemoServices.flaky }
            return checkAll([
                check(Self.attempt(in: response) == Self.flakyAttempts, "demo.flaky to succeed on attempt \(Self.flakyAttempts)"),
                checkCallCount(calls, expected: Self.flakyAttempts),
            ])
        } catch {
            say("result: error: \(error)")
            return check(false, "demo.flaky to succeed on attempt \(Self.flakyAttempts)")
        }
    }

    private func syncSyncFail(_ settings: Settings) async -> Bool {
        let calls = 1 + settings.repeats
        say("demo.fail always fails, so invoke() makes \(calls) calls and then throws retriesExhausted.")

        do {
            let response = try await invokeRetry.invoke(DemoServices.fail, repeats: settings.repeats,
                                                         seconds: settings.seconds)
            say("result: response \(Console.describe(response))")
            return check(false, "invoke() to throw after \(calls) calls")
        } catch {
            say("result: error: \(error)")
            guard case .retriesExhausted(let cid, _, let attempts, _) = error as? InvokeRetryError else {
                return check(false, "invoke() to throw retriesExhausted after \(calls) calls")
            }
            return checkAll([
                check(attempts == calls, "the error to count \(calls) attempts"),
                checkCallCount(console.calls(cid: cid), expected: calls),
            ])
        }
    }
}

// MARK: - Sync + async

extension DemoWalkthrough {
    private func syncAsyncEcho(_ settings: Settings) async -> Bool {
        let request = Payload(json: #"{"greeting":"hello"}"#)
        say("invoke(asyncFallback: true) blocks only for the first call. It succeeds, so its response")
        say("comes back at once and nothing runs in the background.")
        say("request: \(Console.describe(request))")

        do {
            let result = try await invokeRetry.invoke(
                DemoServices.echo, request, repeats: settings.repeats, seconds: settings.seconds,
                asyncFallback: true, callback: DemoServices.callbacks
            )
            guard case .response(let response) = result else {
                say("result: \(Self.describe(result))")
                return check(false, "a response to the first call")
            }
            say("result: response \(Console.describe(response))")
            return check(response.bytes == request.bytes, "the response to equal the request")
        } catch {
            say("result: error: \(error)")
            return check(false, "a response to the first call")
        }
    }

    private func syncAsyncFlaky(_ settings: Settings) async -> Bool {
        let request = Self.flakyRequest
        say("The first call blocks and fails, so invoke(asyncFallback: true) returns a CID, the worker")
        say("repeats the call every \(settings.seconds.formatted()) s in the background, and demo.callbacks receives the outcome.")
        say("request: \(Console.describe(request))")

        do {
            let result = try await invokeRetry.invoke(
                DemoServices.flaky, request, repeats: settings.repeats, seconds: settings.seconds,
                asyncFallback: true, callback: DemoServices.callbacks
            )
            say("result: \(Self.describe(result))")
            guard case .retrying(let cid) = result else {
                return check(false, "the first call to fail and the retries to go to the background")
            }
            console.noteStarted(cid: cid)
            return checkCallback(await waitForCallback(cid: cid), cid: cid, ok: true, attempts: Self.flakyAttempts)
        } catch {
            say("result: error: \(error)")
            return check(false, "the first call to fail and the retries to go to the background")
        }
    }
}

// MARK: - Async + async

extension DemoWalkthrough {
    private func asyncAsyncFlaky(_ settings: Settings) async -> Bool {
        let request = Self.flakyRequest
        say("invokeAsync() publishes the invocation and returns its CID; every call runs in the background.")
        say("request: \(Console.describe(request))")

        guard let cid = await invokeAsync(DemoServices.flaky, request, settings) else {
            return false
        }
        return checkCallback(await waitForCallback(cid: cid), cid: cid, ok: true, attempts: Self.flakyAttempts)
    }

    private func asyncAsyncFail(_ settings: Settings) async -> Bool {
        let context: JSONValue = ["order_id": 1234]
        let calls = 1 + settings.repeats
        say("After \(calls) failed calls the worker gives up and sends demo.callbacks ok false with the last error.")
        say("The context \(context.serialized()) travels with the invocation and comes back in the callback.")

        guard let cid = await invokeAsync(DemoServices.fail, .empty, settings, context: context) else {
            return false
        }
        let callback = await waitForCallback(cid: cid)
        return checkAll([
            checkCallback(callback, cid: cid, ok: false, attempts: calls),
            check(callback?.context == context, "the callback to carry the context \(context.serialized())"),
        ])
    }

    private func asyncAsyncSlow(_ settings: Settings) async -> Bool {
        let request = Payload(json: JSONValue.object(["seconds": .number(Double(Self.slowSeconds))]).serialized())
        say("invokeAsync() returns as soon as the broker has the invocation, long before demo.slow ends.")
        say("request: \(Console.describe(request))")

        let start = ContinuousClock.now
        guard let cid = await invokeAsync(DemoServices.slow, request, settings) else {
            return false
        }
        let returnedEarly = check(ContinuousClock.now - start < .seconds(1), "invokeAsync() to return within 1 s")
        let callback = await waitForCallback(cid: cid)
        return checkAll([returnedEarly, checkCallback(callback, cid: cid, ok: true, attempts: 1)])
    }

    /// Calls `invokeAsync` with demo.callbacks as the callback and prints the CID or the error.
    private func invokeAsync(
        _ service: String, _ request: Payload, _ settings: Settings, context: JSONValue? = nil
    ) async -> CID? {
        do {
            let cid = try await invokeRetry.invokeAsync(
                service, request, repeats: settings.repeats, seconds: settings.seconds,
                callback: DemoServices.callbacks, context: context
            )
            console.noteStarted(cid: cid)
            say("result: CID \(cid), returned at once; the calls follow in the background")
            return cid
        } catch {
            say("result: error: \(error)")
            _ = check(false, "invokeAsync() to return a CID")
            return nil
        }
    }
}

// MARK: - Callbacks and checks

extension DemoWalkthrough {
    /// Checks that the callback of an invocation arrived with the expected `ok` and `attempts`,
    /// and that this demo's worker made exactly that many calls.
    private func checkCallback(_ callback: CallbackBody?, cid: CID, ok: Bool, attempts: Int) -> Bool {
        checkAll([
            check(callback != nil, "a callback within \(Self.describe(callbackTimeout))"),
            check(callback?.ok == ok, "the callback to report ok \(ok)"),
            check(callback?.attempts == attempts, "the callback to count \(attempts) \(Self.attemptNoun(attempts))"),
            checkCallCount(console.calls(cid: cid), expected: attempts),
        ])
    }

    /// Returns the callback of an invocation once demo.callbacks has received it, or `nil`
    /// after ``callbackTimeout``.
    private func waitForCallback(cid: CID) async -> CallbackBody? {
        let deadline = ContinuousClock.now + callbackTimeout
        // Polling keeps the wait simple; 20 ms is short next to the retry intervals of the steps.
        while ContinuousClock.now < deadline {
            if let callback = console.callback(cid: cid) {
                return callback
            }
            try? await Task.sleep(for: .milliseconds(20))
        }

        say("no callback for \(cid) within \(Self.describe(callbackTimeout)); another worker may have taken it")
        return nil
    }

    /// Checks that the calls of one invocation are attempts 1 to `expected`, all of them in this
    /// demo's timeline.
    private func checkCallCount(_ calls: [ServiceCall], expected: Int) -> Bool {
        let noun = expected == 1 ? "call" : "calls"
        let seen = calls.map(\.attempt)
        guard seen == Array(1...expected) else {
            let attempts = seen.isEmpty ? "none" : "attempts " + seen.map(String.init).joined(separator: ", ")
            _ = check(false, "\(expected) \(noun) in this demo's timeline")
            say("         it shows \(attempts); another worker that hosts the demo services may have taken the others")
            return false
        }
        return check(true, "\(expected) \(noun) in this demo's timeline")
    }

    /// Prints whether an expectation is met and returns the result.
    private func check(_ isMet: Bool, _ expectation: String) -> Bool {
        say("\(isMet ? "[ok]    " : "[FAILED]") expected \(expectation)")
        return isMet
    }

    /// Returns whether every check passed; the checks themselves have already printed.
    private func checkAll(_ results: [Bool]) -> Bool {
        results.allSatisfy { $0 }
    }

    /// Prints a line of the step's narrative, indented under its heading.
    private func say(_ text: String) {
        console.write("   " + text)
    }

    /// The request of every demo.flaky call, with ``flakyFailTimes``.
    private static var flakyRequest: Payload {
        Payload(json: JSONValue.object(["fail_times": .number(Double(flakyFailTimes))]).serialized())
    }

    /// The attempt on which a demo.flaky invocation succeeds.
    private static var flakyAttempts: Int {
        flakyFailTimes + 1
    }

    /// Returns the `attempt` field of a demo.flaky response, or `nil` when it has none.
    private static func attempt(in response: Payload) -> Int? {
        guard case .number(let number) = (try? response.json())?.objectValue?["attempt"] else {
            return nil
        }
        return Int(exactly: number)
    }

    private static func describe(_ result: InvokeResult) -> String {
        switch result {
        case .response(let response):
            return "response \(Console.describe(response))"
        case .retrying(let cid):
            return "the first call failed; retrying in the background with CID \(cid)"
        }
    }

    private static func describe(_ duration: Duration) -> String {
        "\(duration.seconds.formatted()) s"
    }

    private static func attemptNoun(_ count: Int) -> String {
        count == 1 ? "attempt" : "attempts"
    }
}
