import Foundation
import Glibc

/// An error that ends the benchmark run.
struct BenchError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// A subprocess whose standard output is read line by line; its standard error is the
/// benchmark's own, so that its error messages reach the terminal.
///
/// The methods block the calling thread, so async code calls them through
/// ``onDedicatedThread(_:)``. One task uses a child at a time, which is why the class may be
/// marked `Sendable` without a lock.
final class ChildProcess: @unchecked Sendable {
    let name: String
    private let process = Process()
    private let output = Pipe()
    private var buffer: [UInt8] = []
    private var reachedEnd = false

    /// Starts `executable` with `arguments` and the benchmark's environment.
    init(executable: String, arguments: [String]) throws {
        name = URL(fileURLWithPath: executable).lastPathComponent + " " + (arguments.first ?? "")
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = output
        do {
            try process.run()
        } catch {
            throw BenchError("starting \(executable) failed: \(error)")
        }
    }

    var processIdentifier: Int32 {
        process.processIdentifier
    }

    /// Returns the next line of standard output, or `nil` once the process closed it.
    /// - Throws: ``BenchError`` when no line comes before `deadline` (a ``MonotonicTime``).
    func readLine(before deadline: UInt64) throws -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            if reachedEnd {
                defer { buffer.removeAll() }
                return buffer.isEmpty ? nil : String(decoding: buffer, as: UTF8.self)
            }
            try readMore(before: deadline)
        }
    }

    /// Reads lines until one starts with `prefix` and returns the rest of it.
    func waitForLine(startingWith prefix: String, before deadline: UInt64) throws -> String {
        while let line = try readLine(before: deadline) {
            if line.hasPrefix(prefix) {
                return String(line.dropFirst(prefix.count))
            }
        }
        throw BenchError("\(name) exited without printing '\(prefix)'")
    }

    /// Reads standard output to its end, waits for the exit, and returns the output's lines.
    /// - Throws: ``BenchError`` when the process fails or outlives `deadline`.
    func readToEnd(before deadline: UInt64) throws -> [String] {
        var lines: [String] = []
        while let line = try readLine(before: deadline) {
            lines.append(line)
        }
        let status = try waitForExit(before: deadline)
        guard status == 0 else {
            throw BenchError("\(name) failed with exit status \(status); its error is printed above")
        }
        return lines
    }

    /// Sends SIGTERM, waits up to `timeout` for the exit, then sends SIGKILL.
    @discardableResult
    func stop(within timeout: Duration) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        do {
            return try waitForExit(before: MonotonicTime.deadline(after: timeout))
        } catch {
            kill(process.processIdentifier, SIGKILL)
            return (try? waitForExit(before: MonotonicTime.deadline(after: .seconds(5)))) ?? -1
        }
    }

    /// Reads the resident memory of the process (`VmRSS` of `/proc/PID/status`) in bytes.
    func residentMemoryBytes() throws -> Int {
        let path = "/proc/\(process.processIdentifier)/status"
        guard let status = try? String(contentsOfFile: path, encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
            throw BenchError("reading VmRSS from \(path) failed")
        }
        return kilobytes * 1024
    }

    private func waitForExit(before deadline: UInt64) throws -> Int32 {
        while process.isRunning {
            guard MonotonicTime.now() < deadline else {
                throw BenchError("\(name) did not exit in time")
            }
            usleep(5_000)
        }
        return process.terminationStatus
    }

    private func readMore(before deadline: UInt64) throws {
        let now = MonotonicTime.now()
        guard now < deadline else {
            throw BenchError("\(name) printed nothing more in time")
        }
        var descriptor = pollfd(fd: output.fileHandleForReading.fileDescriptor, events: Int16(POLLIN), revents: 0)
        let waitMilliseconds = Int32(min((deadline - now) / 1_000_000, 100))
        guard poll(&descriptor, 1, waitMilliseconds) > 0 else { return }
        var chunk = [UInt8](repeating: 0, count: 4096)
        let count = read(descriptor.fd, &chunk, chunk.count)
        if count <= 0 {
            reachedEnd = true
        } else {
            buffer.append(contentsOf: chunk[..<count])
        }
    }
}

/// Runs blocking work on a thread of its own, so that it never holds one of the few threads of
/// Swift's cooperative pool, which AMQPRetry's side of a workload needs.
func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.start()
    }
}
