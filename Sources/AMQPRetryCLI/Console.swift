import AMQPRetry
import Foundation

/// Standard output of the demo services and the demo: whole lines, each stamped with a time.
///
/// Each line goes out in one write, so lines from concurrent handlers never mix. When it keeps
/// records, the console also stores every call and callback it prints, so that the demo can
/// check them. A long-running worker keeps no records, because they would grow without bound.
final class Console: Sendable {
    /// The form of the time at the start of a line.
    enum TimeStyle: Sendable {
        /// Seconds since the console was created, such as `+1.52s`.
        case sinceStart
        /// The UTC date and time with milliseconds, as the log lines on standard error show it.
        case dateTime
    }

    private struct Records {
        var calls: [ServiceCall] = []
        var callbacks: [String: CallbackBody] = [:]
        var startedCIDs: Set<String> = []
    }

    /// The number of characters of a response or error that a line shows before cutting it.
    static let maximumValueCharacters = 200

    let timeStyle: TimeStyle
    let keepsRecords: Bool
    private let start = ContinuousClock.now
    private let records = Locked(Records())

    /// Creates a console.
    /// - Parameters:
    ///   - timeStyle: how lines show their time.
    ///   - keepsRecords: whether to store calls and callbacks for ``calls(cid:)`` and ``callback(cid:)``.
    init(timeStyle: TimeStyle, keepsRecords: Bool) {
        self.timeStyle = timeStyle
        self.keepsRecords = keepsRecords
    }

    /// Writes one line to standard output.
    func write(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// The time since the console was created.
    var elapsed: Duration {
        ContinuousClock.now - start
    }

    /// Returns the current time in the console's ``TimeStyle``.
    func timestamp() -> String {
        switch timeStyle {
        case .sinceStart:
            return String(format: "%+7.2fs", elapsed.seconds)
        case .dateTime:
            let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
            return Date.now.formatted(style)
        }
    }
}

// MARK: - Calls and callbacks

/// One finished call of a demo service's handler.
struct ServiceCall: Sendable {
    /// The service called.
    let service: String
    /// The number of the call within its invocation, starting at 1.
    let attempt: Int
    /// The CID of the invocation; every attempt of an invocation has the same one.
    let cid: CID
    /// Whether the call was blocking (`sync`) or in the background (`async`).
    let mode: InvocationMode
    /// The response or the error message.
    let outcome: CallOutcome
}

extension Console {
    /// Prints a finished call and, when the console keeps records, stores it.
    func record(_ call: ServiceCall) {
        if keepsRecords {
            records.withLock { $0.calls.append(call) }
        }

        let what = "attempt \(call.attempt)  \(call.mode.rawValue)"
        write(line(service: call.service, what: what, cid: call.cid.rawValue, detail: Self.describe(call.outcome)))
    }

    /// Prints a callback and, when the console keeps records, stores it by its `call_cid`.
    ///
    /// A console that keeps records marks a callback of an invocation that was not passed to
    /// ``noteStarted(cid:)``: it was left on the queue by an earlier process.
    func record(_ callback: CallbackBody) {
        let isLeftover = keepsRecords && records.withLock { records in
            records.callbacks[callback.callCID] = callback
            return !records.startedCIDs.contains(callback.callCID)
        }

        let noun = callback.attempts == 1 ? "attempt" : "attempts"
        var detail = "target \(callback.target), ok \(callback.ok), \(callback.attempts) \(noun), "
            + Self.result(of: callback)
        if isLeftover {
            detail += " (left on the queue by an earlier run, not started by this one)"
        }
        write(line(service: DemoServices.callbacks, what: "callback", cid: callback.callCID, detail: detail))
    }

    /// Formats a line of the timeline in columns: time, service, attempt or callback, CID, detail.
    private func line(service: String, what: String, cid: String, detail: String) -> String {
        "\(timestamp())  \(Self.padded(service, to: 14))  \(Self.padded(what, to: 16))  \(cid)  \(detail)"
    }

    /// Pads text with spaces to `width` characters; longer text stays whole.
    private static func padded(_ text: String, to width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }

    /// Returns the recorded calls of one invocation, in the order they finished.
    func calls(cid: CID) -> [ServiceCall] {
        records.withLock { $0.calls.filter { $0.cid == cid } }
    }

    /// Notes that this process started the invocation `cid`, so that its callback is not
    /// marked as left over by an earlier run.
    func noteStarted(cid: CID) {
        records.withLock { _ = $0.startedCIDs.insert(cid.rawValue) }
    }

    /// The number of calls recorded so far; pass it to ``calls(from:)`` to get the later ones.
    var callCount: Int {
        records.withLock { $0.calls.count }
    }

    /// Returns the calls recorded after the first `start` ones, in the order they finished.
    func calls(from start: Int) -> [ServiceCall] {
        records.withLock { Array($0.calls.dropFirst(start)) }
    }

    /// Returns the recorded callback of an invocation, or `nil` when none arrived yet.
    func callback(cid: CID) -> CallbackBody? {
        records.withLock { $0.callbacks[cid.rawValue] }
    }

    /// Describes an outcome as `ok: <response>` or `failed: <error>`.
    static func describe(_ outcome: CallOutcome) -> String {
        switch outcome {
        case .success(let payload):
            return "ok: " + describe(payload)
        case .failure(let message):
            return "failed: " + shortened(message)
        }
    }

    /// Renders a payload on one line: its text, `(empty)`, or its size when it is not UTF-8.
    static func describe(_ payload: Payload) -> String {
        guard let text = payload.text else {
            return "(\(payload.bytes.count) bytes, not UTF-8)"
        }
        return text.isEmpty ? "(empty)" : shortened(text)
    }

    private static func result(of callback: CallbackBody) -> String {
        if let error = callback.error {
            return "error: " + shortened(error)
        }
        guard let response = callback.response else {
            return "no response"
        }
        let encoding = callback.responseEncoding == "base64" ? " (base64)" : ""
        return "response\(encoding): " + (response.isEmpty ? "(empty)" : shortened(response))
    }

    /// Puts text on one line and cuts it after ``maximumValueCharacters`` characters.
    static func shortened(_ text: String) -> String {
        let oneLine = text.replacing("\r", with: "\\r").replacing("\n", with: "\\n")
        guard oneLine.count > maximumValueCharacters else {
            return oneLine
        }
        return oneLine.prefix(maximumValueCharacters) + "…"
    }
}

extension Duration {
    /// The duration in seconds, with the fraction.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
