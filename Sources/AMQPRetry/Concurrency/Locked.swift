import Glibc

/// A value guarded by a `pthread_mutex_t`, with the `withLock` method of `Synchronization.Mutex`.
///
/// On Linux, a contended `Synchronization.Mutex` waits on a futex inside libswiftSynchronization,
/// which is not built with ThreadSanitizer. TSan then misses the ordering between one thread's
/// unlock and the next thread's lock, and reports races on the guarded value. TSan intercepts
/// `pthread_mutex_lock` and `pthread_mutex_unlock`, so it records the ordering this type makes.
///
/// The mutex is of type `PTHREAD_MUTEX_ERRORCHECK`, so a thread that calls `withLock` again from
/// inside its own `withLock` stops the process with a message instead of deadlocking.
package final class Locked<Value: ~Copyable> {
    /// The mutex, on the heap because a `pthread_mutex_t` must not move after
    /// `pthread_mutex_init`, and Swift gives `&` on a stored property no fixed address.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// The guarded value, accessed only while `mutex` is locked.
    private var value: Value

    /// Creates a lock that guards `initialValue`.
    package init(_ initialValue: consuming Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())

        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        defer { pthread_mutexattr_destroy(&attributes) }
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ERRORCHECK))
        let status = pthread_mutex_init(mutex, &attributes)
        precondition(status == 0, "pthread_mutex_init failed with error \(status)")

        value = initialValue
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value and returns what `body` returns.
    ///
    /// The mutex is unlocked when `body` returns or throws. Calling `withLock` on the same lock
    /// from inside `body` stops the process.
    package func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout Value) throws(E) -> Result
    ) throws(E) -> Result {
        let lockStatus = pthread_mutex_lock(mutex)
        precondition(lockStatus == 0, "pthread_mutex_lock failed with error \(lockStatus)")
        defer {
            let unlockStatus = pthread_mutex_unlock(mutex)
            precondition(unlockStatus == 0, "pthread_mutex_unlock failed with error \(unlockStatus)")
        }
        return try body(&value)
    }

    /// Runs `body` with exclusive access to the value if the mutex is free, and returns `nil`
    /// without waiting when another thread, or the calling thread itself, holds it.
    package func withLockIfAvailable<Result: ~Copyable, E: Error>(
        _ body: (inout Value) throws(E) -> Result
    ) throws(E) -> Result? {
        let lockStatus = pthread_mutex_trylock(mutex)
        guard lockStatus == 0 else {
            precondition(lockStatus == EBUSY, "pthread_mutex_trylock failed with error \(lockStatus)")
            return nil
        }
        defer {
            let unlockStatus = pthread_mutex_unlock(mutex)
            precondition(unlockStatus == 0, "pthread_mutex_unlock failed with error \(unlockStatus)")
        }
        return try body(&value)
    }
}

// The compiler cannot see that `mutex` serializes every access to `value`, and `value` is
// reachable only through `withLock`, so the lock is as safe to share as the value it guards.
extension Locked: @unchecked Sendable where Value: ~Copyable & Sendable {}
