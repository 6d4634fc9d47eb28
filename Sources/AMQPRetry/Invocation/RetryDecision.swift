/// The outcome of one call of a target service's handler.
public enum CallOutcome: Sendable, Hashable {
    /// The handler returned a response.
    case success(Payload)
    /// The handler threw; the associated value is the error message.
    case failure(String)
}

/// The step a worker takes with a message after calling the handler.
public enum RetryAction: Sendable, Equatable {
    /// Sends the outcome to the `reply_to` queue of a blocking call.
    case reply
    /// Publishes the next attempt to the delay queue of `delayMilliseconds`.
    case retry(nextAttempt: Int, delayMilliseconds: Int64)
    /// Ends the invocation and publishes the callback, if one is set, with `ok` as its outcome.
    case finish(ok: Bool)
    /// Moves the message to the parking queue.
    case park(ParkReason)
}

/// The retry rules of invoke/retry: attempt counting, when to retry and when to give up.
public enum RetryPolicy {
    /// Decides what happens after an attempt of `invocation` ended with `outcome`.
    ///
    /// - A ``InvocationMode/sync`` request always gets a reply; the caller retries.
    /// - A ``InvocationMode/callback`` finishes when its handler succeeds and is parked when it fails.
    /// - An ``InvocationMode/async`` invocation finishes on success. On failure it is retried
    ///   after the interval while `attempt < 1 + repeats`. After the last attempt it finishes
    ///   with `ok: false` when a callback is set, and is parked otherwise.
    public static func decide(invocation: Invocation, outcome: CallOutcome) -> RetryAction {
        switch (invocation.mode, outcome) {
        case (.sync, _):
            return .reply
        case (.callback, .success), (.async, .success):
            return .finish(ok: true)
        case (.callback, .failure(let message)):
            return .park(callbackFailed(invocation, message: message))
        case (.async, .failure(let message)):
            return decideAfterAsyncFailure(invocation, message: message)
        }
    }

    private static func decideAfterAsyncFailure(_ invocation: Invocation, message: String) -> RetryAction {
        // Options are always set on a decoded async invocation; without them there is nothing to repeat.
        let repeats = invocation.options?.repeats ?? 0
        if let options = invocation.options, invocation.attempt < 1 + repeats {
            return .retry(nextAttempt: invocation.attempt + 1, delayMilliseconds: options.intervalMilliseconds)
        }

        if invocation.callback != nil {
            return .finish(ok: false)
        }
        return .park(retriesExhausted(invocation, message: message))
    }

    private static func retriesExhausted(_ invocation: Invocation, message: String) -> ParkReason {
        let noun = invocation.attempt == 1 ? "attempt" : "attempts"
        let detail = "invoking '\(invocation.target)' failed after \(invocation.attempt) \(noun) "
            + "and no callback is set: \(WireHeader.boundedErrorMessage(message))"
        return ParkReason(code: .retriesExhausted, detail: detail)
    }

    private static func callbackFailed(_ invocation: Invocation, message: String) -> ParkReason {
        let detail = "callback service '\(invocation.target)' failed: \(WireHeader.boundedErrorMessage(message))"
        return ParkReason(code: .callbackFailed, detail: detail)
    }
}
