import Foundation

/// Random numbers from the kernel's CSPRNG, fetched 256 bytes per `getrandom` call.
///
/// `SystemRandomNumberGenerator` makes one `getrandom` system call per 64-bit number on Linux,
/// which made CIDs and message IDs cost several system calls per invocation.
struct BufferedSystemRandom: RandomNumberGenerator {
    private struct Pool {
        var words = [UInt64](repeating: 0, count: 32)
        var next = 32
    }

    private static let pool = Locked(Pool())

    mutating func next() -> UInt64 {
        Self.pool.withLock { pool in
            if pool.next == pool.words.count {
                Self.refill(&pool.words)
                pool.next = 0
            }
            defer { pool.next += 1 }
            return pool.words[pool.next]
        }
    }

    /// Fills `words` with glibc's `arc4random_buf` (glibc 2.36 and later), which makes one
    /// `getrandom` call for the whole buffer.
    private static func refill(_ words: inout [UInt64]) {
        words.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
    }
}

/// Message IDs: random version 4 UUIDs in lower case.
enum MessageID {
    /// A new ID, written as `UUID().uuidString.lowercased()` writes one, without the
    /// `/dev/urandom` open, read and close that Foundation's `UUID()` makes on Linux.
    static func random() -> String {
        var generator = BufferedSystemRandom()
        let words = (generator.next(), generator.next())
        var bytes = withUnsafeBytes(of: words) { Array($0) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let uuid = UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                               bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
        return uuid.uuidString.lowercased()
    }
}
