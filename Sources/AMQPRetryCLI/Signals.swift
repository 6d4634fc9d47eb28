import Dispatch
import Foundation
import Synchronization

/// Turns SIGINT and SIGTERM into a graceful stop: the first signal calls `stop`, and a second
/// one exits at once with status 1.
///
/// The signals are ignored at the process level and read through dispatch sources, so the
/// handler runs as ordinary code on a private queue rather than in an async-signal context.
/// They stay handled until the process exits.
final class ShutdownSignals: Sendable {
    /// The signals handled, with the names messages show.
    static let handled: [(number: Int32, name: String)] = [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")]

    private let received = Atomic<Int>(0)
    private let stop: @Sendable () -> Void

    // Dispatch sources are not Sendable. These are written only in init and kept only so that
    // they live as long as this object.
    nonisolated(unsafe) private let sources: [any DispatchSourceSignal]

    /// Starts handling SIGINT and SIGTERM.
    /// - Parameter stop: called once, on the first signal; it must return quickly.
    init(stop: @escaping @Sendable () -> Void) {
        self.stop = stop
        let queue = DispatchQueue(label: "amqp-retry.signals")
        sources = Self.handled.map { number, _ in
            // Without SIG_IGN the default action would end the process before the source receives the signal.
            signal(number, SIG_IGN)
            return DispatchSource.makeSignalSource(signal: number, queue: queue)
        }

        for (source, (_, name)) in zip(sources, Self.handled) {
            source.setEventHandler { [weak self] in
                self?.handle(name)
            }
            source.resume()
        }
    }

    private func handle(_ name: String) {
        let count = received.add(1, ordering: .relaxed).newValue
        guard count == 1 else {
            Self.writeError("Received \(name) again: exiting without waiting for running calls; "
                + "the broker redelivers the messages they had not acknowledged.")
            exit(ExitStatus.failure.rawValue)
        }

        Self.writeError("Received \(name): stopping after the running calls finish. Send it again to exit at once.")
        stop()
    }

    private static func writeError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
