import AMQPRetry
import Foundation

/// A process started by a test, whose end a test can wait for with a deadline.
///
/// Standard output and error go to files, so that nothing blocks on a full pipe and the output
/// stays readable after the process ended.
final class ChildProcess: Sendable {
    private struct State {
        var status: Int32?
        var waiters: [UInt64: CheckedContinuation<Int32?, Never>] = [:]
        var nextWaiterID: UInt64 = 0
    }

    /// The process ID; never signalled after the process has been reaped.
    let pid: Int32
    let standardOutputPath: String
    let standardErrorPath: String
    private let state = Locked(State())
    /// Kept so that Foundation keeps watching the process for its termination handler.
    private let process: Process

    /// Starts `executable` with `arguments` and this process's environment.
    init(executable: String, arguments: [String], standardOutputPath: String, standardErrorPath: String) throws {
        _ = FileManager.default.createFile(atPath: standardOutputPath, contents: nil)
        _ = FileManager.default.createFile(atPath: standardErrorPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: standardOutputPath))
        let errors = try FileHandle(forWritingTo: URL(fileURLWithPath: standardErrorPath))
        defer {
            try? output.close()
            try? errors.close()
        }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = errors
        self.process = process
        self.standardOutputPath = standardOutputPath
        self.standardErrorPath = standardErrorPath

        // The handler may run before `run()` returns, so it reaches `self` only once `pid` is set.
        let onExit = Locked<(@Sendable (Int32) -> Void)?>(nil)
        let earlyStatus = Locked<Int32?>(nil)
        process.terminationHandler = { finished in
            let status = finished.terminationStatus
            let handler = onExit.withLock { handler -> (@Sendable (Int32) -> Void)? in
                if handler == nil {
                    earlyStatus.withLock { $0 = status }
                }
                return handler
            }
            handler?(status)
        }
        try process.run()
        pid = process.processIdentifier

        let exitedEarly = onExit.withLock { handler -> Int32? in
            handler = { [weak self] status in self?.finish(status) }
            return earlyStatus.withLock { $0 }
        }
        if let exitedEarly {
            finish(exitedEarly)
        }
    }

    /// The exit status, or the signal number for a process a signal ended; `nil` while it runs.
    var status: Int32? {
        state.withLock { $0.status }
    }

    /// Sends `signal` unless the process has already ended.
    func send(_ signal: Int32) {
        state.withLock { state in
            if state.status == nil {
                _ = kill(pid, signal)
            }
        }
    }

    /// Waits up to `timeout` for the process to end and returns its status, or `nil` when it
    /// still runs.
    func waitForExit(timeout: Duration) async -> Int32? {
        let id = state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
        let status = await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
            let ended = state.withLock { state -> Int32? in
                if let status = state.status { return status }
                state.waiters[id] = continuation
                return nil
            }
            if let ended {
                continuation.resume(returning: ended)
            }
        }
        timer.cancel()
        return status
    }

    /// Sends SIGTERM and waits up to `timeout`, then sends SIGKILL when the process still runs.
    /// Returns the status after SIGTERM, or `nil` when SIGKILL was needed.
    func terminate(timeout: Duration) async -> Int32? {
        send(SIGTERM)
        if let status = await waitForExit(timeout: timeout) {
            return status
        }
        send(SIGKILL)
        _ = await waitForExit(timeout: .seconds(10))
        return nil
    }

    /// Reads the standard output written so far.
    func standardOutput() -> String {
        (try? String(contentsOfFile: standardOutputPath, encoding: .utf8)) ?? ""
    }

    /// Reads the standard error written so far.
    func standardError() -> String {
        (try? String(contentsOfFile: standardErrorPath, encoding: .utf8)) ?? ""
    }

    /// Deletes the files of standard output and error.
    func removeOutputFiles() {
        try? FileManager.default.removeItem(atPath: standardOutputPath)
        try? FileManager.default.removeItem(atPath: standardErrorPath)
    }

    private func finish(_ status: Int32) {
        let waiters = state.withLock { state in
            state.status = status
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        waiters.forEach { $0.resume(returning: status) }
    }
}
