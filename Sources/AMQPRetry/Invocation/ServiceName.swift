/// The rules for the name of a service, which AMQPRetry also uses in the name of the
/// service's queue.
public enum ServiceName {
    /// The largest accepted name in UTF-8 bytes.
    ///
    /// AMQP 0-9-1 limits a queue name to 255 bytes, and the queue of a service adds the prefix
    /// `amqpretry.service.` (18 bytes), so 200 bytes leave room to spare.
    public static let maximumBytes = 200

    /// Checks that `name` can name a service.
    ///
    /// A name must not be empty, must be at most ``maximumBytes`` bytes of UTF-8, must not
    /// contain control characters and must not start with `amq.`, a prefix RabbitMQ reserves.
    ///
    /// - Parameters:
    ///   - name: The service name to check.
    ///   - option: The name of the argument that contains it, such as `target` or `callback`,
    ///     which the error names.
    /// - Throws: ``InvokeRetryError/invalidOption(name:value:reason:)`` with the rule the name breaks.
    public static func validate(_ name: String, option: String) throws {
        if let reason = violation(of: name) {
            throw InvokeRetryError.invalid(option, name, reason)
        }
    }

    /// Returns the rule `name` breaks, or `nil` when it is a valid service name.
    static func violation(of name: String) -> String? {
        if name.isEmpty {
            return "must not be empty"
        }
        if name.utf8.count > maximumBytes {
            return "must be at most \(maximumBytes) bytes of UTF-8, but has \(name.utf8.count)"
        }
        if containsControlCharacter(name) {
            return "must not contain control characters"
        }
        if name.hasPrefix("amq.") {
            return "must not start with 'amq.', which RabbitMQ reserves"
        }
        return nil
    }

    /// Returns whether `name` contains a character of general category Cc.
    ///
    /// Cc is exactly U+0000–U+001F and U+007F–U+009F, a set Unicode's stability policy fixes. In
    /// UTF-8 those are the bytes 0x00–0x1F and 0x7F, and the pairs 0xC2 0x80 to 0xC2 0x9F, so
    /// the check scans bytes instead of decoding scalars.
    static func containsControlCharacter(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            // Most names are printable ASCII, 0x20 to 0x7E, which one comparison per byte finds.
            guard bytes.contains(where: { $0 &- 0x20 >= 0x5F }) else { return false }

            var previous: UInt8 = 0
            for byte in bytes {
                if byte < 0x20 || byte == 0x7F || (previous == 0xC2 && byte >= 0x80 && byte <= 0x9F) {
                    return true
                }
                previous = byte
            }
            return false
        }
    }
}
