import AMQPRetry
import Dispatch
import Foundation

/// Turns the first SIGINT or SIGTERM into a call of `stop`, for commands that repeat work until
/// interrupted. A second signal exits at once with status 1.
///
/// As in ``ShutdownSignals``, the signals are ignored at the process level and read through
/// dispatch sources, so that `stop` runs as ordinary code, not in an async-signal context.
final class InterruptSignals: Sendable {
    private let received = Locked(0)
    private let stop: @Sendable () -> Void

    // Dispatch sources are not Sendable. These are written only in init and kept only so that
    // they live as long as this object.
    nonisolated(unsafe) private let sources: [any DispatchSourceSignal]

    /// Starts handling SIGINT and SIGTERM.
    /// - Parameter stop: called once, on the first signal; it must return quickly.
    init(stop: @escaping @Sendable () -> Void) {
        self.stop = stop
        let queue = DispatchQueue(label: "amqp-retry.interrupt")
        sources = ShutdownSignals.handled.map { number, _ in
            signal(number, SIG_IGN)
            return DispatchSource.makeSignalSource(signal: number, queue: queue)
        }

        for source in sources {
            source.setEventHandler { [weak self] in
                self?.handle()
            }
            source.resume()
        }
    }

    private func handle() {
        let count = received.withLock { count in
            count += 1
            return count
        }
        guard count == 1 else {
            exit(ExitStatus.failure.rawValue)
        }
        stop()
    }
}
