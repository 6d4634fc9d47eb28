import AMQPRetry

/// The request body of the benchmark services, the same as the baseline's: a JSON object of an
/// exact size, `{"i":<index>,"p":"xxx…"}`, whose `i` lets a handler find its invocation.
enum BenchPayload {
    private static let prefix = Array(#"{"i":"#.utf8)

    /// Makes the body of invocation `index`, `size` bytes long (at least 32).
    static func make(index: Int, size: Int) -> Payload {
        let head = Array(#"{"i":\#(index),"p":""#.utf8)
        let tail = Array(#""}"#.utf8)
        // Filling the whole body first writes the padding at memset speed.
        var bytes = [UInt8](repeating: UInt8(ascii: "x"), count: max(size, head.count + tail.count))
        bytes.replaceSubrange(0..<head.count, with: head)
        bytes.replaceSubrange(bytes.count - tail.count..<bytes.count, with: tail)
        return Payload(bytes: bytes, contentType: "application/json")
    }

    /// Reads the index of a body made by ``make(index:size:)``; `nil` for any other body.
    static func index(of bytes: [UInt8]) -> Int? {
        guard bytes.count > prefix.count, bytes.starts(with: prefix) else { return nil }
        var index = 0
        var position = prefix.count
        while position < bytes.count, let digit = digitValue(bytes[position]) {
            index = index * 10 + digit
            position += 1
        }
        return position > prefix.count ? index : nil
    }

    private static func digitValue(_ byte: UInt8) -> Int? {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) ? Int(byte - UInt8(ascii: "0")) : nil
    }
}
