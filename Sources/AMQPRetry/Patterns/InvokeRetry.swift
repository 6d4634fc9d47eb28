import Foundation

/// Zato's invoke/retry pattern: invoke a service and repeat the call when it fails.
///
/// Reach it from a handler as `request.patterns.invokeRetry`, which fills in `source` and
/// `orig_cid` from the request being handled, or from ``AMQPRetryClient/invokeRetry`` outside
/// any service. Each call takes `repeats` (how many times a failed first call is retried, at
/// least 1) and exactly one of `seconds` or `minutes` (the positive interval between calls,
/// kept to the millisecond). Options are validated before anything is published, and an invalid
/// one throws ``InvokeRetryError/invalidOption(name:value:reason:)``.
public struct InvokeRetry: Sendable {
    let engine: InvocationEngine
    /// The name of the invoking service, or the empty string outside a service.
    public let source: String
    /// The CID of the request the invoking service is handling; `nil` outside a service, where
    /// each call gets a fresh `orig_cid`.
    public let origCID: CID?

    init(engine: InvocationEngine, source: String, origCID: CID?) {
        self.engine = engine
        self.source = source
        self.origCID = origCID
    }

    /// Invokes a service and blocks through every retry (sync + sync).
    ///
    /// Each call waits for its reply up to `timeout`, which counts as a failure when it passes.
    /// - Returns: the response of the first call that succeeds.
    /// - Throws: ``InvokeRetryError/retriesExhausted(cid:target:attempts:lastFailure:)`` after
    ///   `1 + repeats` failed calls, or ``InvokeRetryError/invalidOption(name:value:reason:)``.
    public func invoke(
        _ target: String,
        _ request: Payload = .empty,
        repeats: Int,
        seconds: Double? = nil,
        minutes: Double? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> Payload {
        let plan = try CallPlan(target: target, repeats: repeats, seconds: seconds, minutes: minutes,
                                callback: nil, context: nil, timeout: timeout)
        var invocation = makeInvocation(plan, request: request, mode: .sync)
        var lastFailure = ""
        for attempt in 1...(1 + plan.options.repeats) {
            invocation.attempt = attempt
            switch await callLogged(invocation, timeout: timeout) {
            case .success(let response):
                return response
            case .failure(let message):
                lastFailure = message
            }
            if attempt <= plan.options.repeats {
                try await Task.sleep(for: .milliseconds(plan.options.intervalMilliseconds))
            }
        }
        throw InvokeRetryError.retriesExhausted(cid: invocation.cid, target: target,
                                                attempts: 1 + plan.options.repeats, lastFailure: lastFailure)
    }

    /// Invokes a service with a blocking first call and, when it fails, retries in the
    /// background (sync + async).
    ///
    /// On success the response comes back at once. On failure the invocation goes to the
    /// broker's delay queue, the first retry runs one interval later, and the `callback` service
    /// receives the final outcome.
    /// - Parameters:
    ///   - asyncFallback: must be `true`; it names the mode as Zato's `async_fallback` does.
    ///   - callback: the service that receives the outcome of the background retries; required.
    ///   - context: a JSON object passed unchanged to the callback.
    /// - Returns: ``InvokeResult/response(_:)`` or, when the first call failed,
    ///   ``InvokeResult/retrying(cid:)`` with the CID the callback will carry.
    public func invoke(
        _ target: String,
        _ request: Payload = .empty,
        repeats: Int,
        seconds: Double? = nil,
        minutes: Double? = nil,
        asyncFallback: Bool,
        callback: String?,
        context: JSONValue? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> InvokeResult {
        guard asyncFallback else {
            throw InvokeRetryError.invalidOption(name: "asyncFallback", value: "false",
                                                 reason: "use invoke(_:_:repeats:seconds:minutes:timeout:) for sync + sync")
        }
        guard let callback else {
            throw InvokeRetryError.invalidOption(
                name: "callback", value: "nil",
                reason: "sync + async needs a callback service to receive the outcome of the background retries")
        }
        let plan = try CallPlan(target: target, repeats: repeats, seconds: seconds, minutes: minutes,
                                callback: callback, context: context, timeout: timeout)
        var invocation = makeInvocation(plan, request: request, mode: .sync)

        let outcome = await callLogged(invocation, timeout: timeout)
        guard case .failure(let message) = outcome else {
            if case .success(let response) = outcome {
                return .response(response)
            }
            preconditionFailure("a call outcome is either a success or a failure")
        }

        invocation.mode = .async
        invocation.attempt = 2
        invocation.lastError = WireHeader.boundedErrorMessage(message)
        try await engine.publish(invocation, delayMilliseconds: plan.options.intervalMilliseconds)
        return .retrying(cid: invocation.cid)
    }

    /// Publishes an invocation for the background and returns its CID at once (async + async).
    ///
    /// A worker calls the target, retries through the delay queue, and publishes the final
    /// outcome to `callback` when one is given. The call returns once the broker confirmed
    /// the invocation.
    public func invokeAsync(
        _ target: String,
        _ request: Payload = .empty,
        repeats: Int,
        seconds: Double? = nil,
        minutes: Double? = nil,
        callback: String? = nil,
        context: JSONValue? = nil
    ) async throws -> CID {
        let plan = try CallPlan(target: target, repeats: repeats, seconds: seconds, minutes: minutes,
                                callback: callback, context: context, timeout: nil)
        let invocation = makeInvocation(plan, request: request, mode: .async)
        try await engine.publish(invocation)
        return invocation.cid
    }

    private func makeInvocation(_ plan: CallPlan, request: Payload, mode: InvocationMode) -> Invocation {
        Invocation(
            cid: CID.random(), mode: mode, target: plan.target, attempt: 1, options: plan.options,
            callback: plan.callback, source: source, origCID: origCID ?? CID.random(),
            context: plan.context, requestTimestamp: WireTimestamp.now(), lastError: nil, payload: request
        )
    }

    private func callLogged(_ invocation: Invocation, timeout: Duration) async -> CallOutcome {
        let outcome = await engine.call(invocation, timeout: timeout)
        if case .failure(let message) = outcome {
            engine.logger.info("invoke/retry call failed", metadata: [
                LogKey.cid: invocation.cid.rawValue, LogKey.target: invocation.target,
                LogKey.attempt: String(invocation.attempt), LogKey.error: message,
            ])
        }
        return outcome
    }
}

/// The result of a sync + async invocation.
public enum InvokeResult: Sendable, Hashable {
    /// The first call succeeded with this response.
    case response(Payload)
    /// The first call failed; retries run in the background and end in a callback with this CID.
    case retrying(cid: CID)
}

/// The options of one call, validated before anything is published.
struct CallPlan {
    /// The largest context a worker accepts in the `amqpretry-context` header (64 KiB).
    static let maximumContextBytes = 64 * 1024

    let target: String
    let options: RetryOptions
    let callback: String?
    let context: JSONValue?

    init(target: String, repeats: Int, seconds: Double?, minutes: Double?,
         callback: String?, context: JSONValue?, timeout: Duration?) throws {
        try ServiceName.validate(target, option: "target")
        options = try RetryOptions(repeats: repeats, seconds: seconds, minutes: minutes)
        if let callback {
            try ServiceName.validate(callback, option: "callback")
        }
        if let context, context.objectValue == nil {
            throw InvokeRetryError.invalidOption(name: "context", value: context.serialized(),
                                                 reason: "must be a JSON object")
        }
        if let context, context.serialized().utf8.count > Self.maximumContextBytes {
            throw InvokeRetryError.invalidOption(
                name: "context", value: "a JSON object of \(context.serialized().utf8.count) bytes",
                reason: "must be at most \(Self.maximumContextBytes) bytes as JSON; pass large data in the request")
        }
        if let timeout {
            try RetryOptions.validateTimeout(timeout)
        }
        self.target = target
        self.callback = callback
        self.context = context
    }
}
