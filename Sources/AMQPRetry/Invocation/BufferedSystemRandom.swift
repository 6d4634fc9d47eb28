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
        var words = (generator.next(), generator.next())
        return withUnsafeMutableBytes(of: &words) { bytes in
            bytes[6] = (bytes[6] & 0x0F) | 0x40
            bytes[8] = (bytes[8] & 0x3F) | 0x80
            return format(UnsafeRawBufferPointer(bytes))
        }
    }

    /// Writes 16 bytes as a UUID in lower case: 8, 4, 4, 4 and 12 hexadecimal digits.
    static func format(_ bytes: UnsafeRawBufferPointer) -> String {
        precondition(bytes.count == 16, "a UUID has 16 bytes")
        return String(unsafeUninitializedCapacity: 36) { text in
            var position = 0
            for (index, byte) in bytes.enumerated() {
                if index == 4 || index == 6 || index == 8 || index == 10 {
                    text[position] = UInt8(ascii: "-")
                    position += 1
                }
                text[position] = hexDigits[Int(byte >> 4)]
                text[position + 1] = hexDigits[Int(byte & 0x0F)]
                position += 2
            }
            return position
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
}
