import Foundation
import Synchronization

/// Monotonic time in nanoseconds, for deadlines that wall-clock changes cannot move.
enum MonotonicClock {
    /// Returns the current monotonic time in nanoseconds.
    static func now() -> UInt64 {
        DispatchTime.now().uptimeNanoseconds
    }

    /// Returns the monotonic time `duration` from now.
    static func deadline(after duration: Duration) -> UInt64 {
        now() &+ duration.nanoseconds
    }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to zero for negative durations.
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }

    /// The duration in milliseconds as a floating-point number.
    var milliseconds: Double {
        Double(nanoseconds) / 1_000_000
    }
}

/// Bounds the blocking librabbitmq calls of one connection, which its I/O thread makes, or a
/// caller's thread that holds the connection's state lock.
///
/// librabbitmq 0.11 sends frames with no deadline, so a broker that stops reading would block
/// a publish forever. The thread arms the watchdog before each blocking step. When a step
/// overruns its deadline, the watchdog shuts the socket down from its own timer, which makes the
/// blocked call fail at once. `shutdown` leaves the descriptor open, so the I/O thread still owns
/// and closes it.
final class Watchdog {
    /// The values the timer reads, shared between the I/O thread and the timer's queue.
    private final class Shared: Sendable {
        let deadline = Atomic<UInt64>(0)
        let socketDescriptor = Atomic<Int32>(-1)
        let fired = Atomic<Bool>(false)

        /// Shuts the socket down when the armed deadline has passed.
        func check() {
            let armed = deadline.load(ordering: .acquiring)
            guard armed != 0, MonotonicClock.now() > armed else { return }
            let descriptor = socketDescriptor.load(ordering: .acquiring)
            guard descriptor >= 0 else { return }
            deadline.store(0, ordering: .releasing)
            fired.store(true, ordering: .releasing)
            shutdown(descriptor, Int32(SHUT_RDWR))
        }
    }

    private let shared = Shared()
    private let timer: DispatchSourceTimer

    /// Starts a watchdog that checks its deadline every `interval`.
    init(interval: Duration = .milliseconds(100)) {
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global())
        timer.schedule(deadline: .now(), repeating: .nanoseconds(Int(interval.nanoseconds)))
        timer.setEventHandler { [shared] in shared.check() }
        timer.resume()
    }

    deinit {
        timer.cancel()
    }

    /// Sets the socket that the watchdog shuts down; -1 when there is none.
    func watch(socketDescriptor descriptor: Int32) {
        shared.socketDescriptor.store(descriptor, ordering: .releasing)
    }

    /// Runs a blocking step with a deadline; a step the watchdog cut short throws a timeout.
    func guarding<T>(_ timeout: Duration, _ body: () throws(AMQPError) -> T) throws(AMQPError) -> T {
        shared.fired.store(false, ordering: .releasing)
        shared.deadline.store(MonotonicClock.deadline(after: timeout), ordering: .releasing)
        defer { shared.deadline.store(0, ordering: .releasing) }
        do {
            return try body()
        } catch {
            if shared.fired.load(ordering: .acquiring) {
                throw AMQPError(.timeout, operation: error.operation,
                                replyText: "no progress within \(timeout); the connection was shut down")
            }
            throw error
        }
    }
}
