import CRabbitMQ
import Foundation

extension String {
    /// Decodes librabbitmq bytes as UTF-8, repairing invalid sequences.
    init(amqpBytes bytes: amqp_bytes_t) {
        guard bytes.len > 0, let pointer = bytes.bytes else {
            self = ""
            return
        }
        self = String(decoding: UnsafeBufferPointer(start: pointer.assumingMemoryBound(to: UInt8.self),
                                                    count: bytes.len), as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    /// Copies librabbitmq bytes into a Swift array.
    init(amqpBytes bytes: amqp_bytes_t) {
        guard bytes.len > 0, let pointer = bytes.bytes else {
            self = []
            return
        }
        self = Array(UnsafeRawBufferPointer(start: pointer, count: bytes.len))
    }
}

/// C memory for librabbitmq calls: every buffer made here lives until the arena is reset or
/// released.
///
/// librabbitmq reads tables and properties through raw pointers during a call such as
/// `amqp_basic_publish`, so the arena must outlive that call. Buffers are carved out of large
/// blocks, so that an arena reused for every publish, as each connection's is, calls `malloc`
/// only while its first messages grow it.
final class CArena {
    /// The size in bytes of the first block. Each later block is twice as large as the last.
    static let initialBlockSize = 4096
    /// Every buffer starts at a multiple of this, the alignment of `amqp_table_entry_t`.
    private static let alignment = 16

    // One thread at a time uses an arena: a connection's publish arena only under its loop's
    // lock, and every other arena within one call. So the runtime's exclusivity checks, which
    // cost more than carving out a buffer, are turned off for its two fields.
    @exclusivity(unchecked) private var blocks: [(pointer: UnsafeMutableRawPointer, capacity: Int)] = []
    @exclusivity(unchecked) private var used = 0

    deinit {
        for block in blocks {
            free(block.pointer)
        }
    }

    /// Makes every buffer of the arena free for reuse, keeping only its largest block.
    ///
    /// Pointers handed out before become invalid.
    func reset() {
        guard let largest = blocks.last else { return }
        for block in blocks.dropLast() {
            free(block.pointer)
        }
        blocks = [largest]
        used = 0
    }

    /// Copies bytes into C memory.
    func bytes(_ value: [UInt8]) -> amqp_bytes_t {
        value.withUnsafeBytes(copy)
    }

    /// Copies a string into C memory as UTF-8, without a terminating NUL.
    func bytes(_ value: String) -> amqp_bytes_t {
        if let copied = value.utf8.withContiguousStorageIfAvailable({ copy(UnsafeRawBufferPointer($0)) }) {
            return copied
        }
        return bytes(Array(value.utf8))
    }

    /// Copies a string into C memory with a terminating NUL, for calls that take `const char *`.
    func cString(_ value: String) -> UnsafePointer<CChar> {
        let utf8 = Array(value.utf8CString)
        let pointer = allocate(utf8.count)
        utf8.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress!, byteCount: utf8.count) }
        return UnsafePointer(pointer.assumingMemoryBound(to: CChar.self))
    }

    /// Builds a librabbitmq table from a field table, with the entries sorted by the UTF-8 bytes
    /// of their names so that equal tables always encode alike.
    func table(_ table: FieldTable) -> amqp_table_t {
        self.table(count: table.count, table.lazy.map { ($0.key, $0.value) })
    }

    /// Builds a librabbitmq table from a message's headers, sorted as ``table(_:)`` sorts.
    func table(_ headers: HeaderList) -> amqp_table_t {
        table(count: headers.count, headers.entries.lazy.map { ($0.name, $0.value) })
    }

    private func table<Entries: Sequence<(String, FieldValue)>>(count: Int, _ source: Entries) -> amqp_table_t {
        guard count > 0 else {
            return amqp_table_t(num_entries: 0, entries: nil)
        }
        let entries = allocate(MemoryLayout<amqp_table_entry_t>.stride * count)
            .bindMemory(to: amqp_table_entry_t.self, capacity: count)
        var written = 0
        for (key, value) in source {
            entries[written] = amqp_table_entry_t(key: bytes(key), value: fieldValue(value))
            written += 1
        }
        Self.sortByKey(UnsafeMutableBufferPointer(start: entries, count: written))
        return amqp_table_t(num_entries: Int32(written), entries: entries)
    }

    /// Sorts table entries by name with an insertion sort, which suits the dozen headers of a
    /// message and compares the names already copied into C memory.
    private static func sortByKey(_ entries: UnsafeMutableBufferPointer<amqp_table_entry_t>) {
        guard entries.count > 1 else { return }
        for index in 1..<entries.count {
            let entry = entries[index]
            var position = index
            while position > 0, compare(entry.key, entries[position - 1].key) < 0 {
                entries[position] = entries[position - 1]
                position -= 1
            }
            entries[position] = entry
        }
    }

    /// Compares two byte strings as `memcmp` does, a shorter prefix first.
    private static func compare(_ left: amqp_bytes_t, _ right: amqp_bytes_t) -> Int {
        let common = min(left.len, right.len)
        if common > 0, let leftBytes = left.bytes, let rightBytes = right.bytes {
            let order = memcmp(leftBytes, rightBytes, common)
            if order != 0 {
                return Int(order)
            }
        }
        return left.len < right.len ? -1 : (left.len > right.len ? 1 : 0)
    }

    private func array(_ values: [FieldValue]) -> amqp_array_t {
        guard !values.isEmpty else {
            return amqp_array_t(num_entries: 0, entries: nil)
        }
        let entries = allocate(MemoryLayout<amqp_field_value_t>.stride * values.count)
            .bindMemory(to: amqp_field_value_t.self, capacity: values.count)
        for (index, value) in values.enumerated() {
            entries[index] = fieldValue(value)
        }
        return amqp_array_t(num_entries: Int32(values.count), entries: entries)
    }

    private func fieldValue(_ value: FieldValue) -> amqp_field_value_t {
        var field = amqp_field_value_t()
        switch value {
        case .bool(let flag):
            field.kind = kind(AMQP_FIELD_KIND_BOOLEAN)
            field.value.boolean = flag ? 1 : 0
        case .int8(let number):
            field.kind = kind(AMQP_FIELD_KIND_I8)
            field.value.i8 = number
        case .uint8(let number):
            field.kind = kind(AMQP_FIELD_KIND_U8)
            field.value.u8 = number
        case .int16(let number):
            field.kind = kind(AMQP_FIELD_KIND_I16)
            field.value.i16 = number
        case .uint16(let number):
            field.kind = kind(AMQP_FIELD_KIND_U16)
            field.value.u16 = number
        case .int32(let number):
            field.kind = kind(AMQP_FIELD_KIND_I32)
            field.value.i32 = number
        case .uint32(let number):
            field.kind = kind(AMQP_FIELD_KIND_U32)
            field.value.u32 = number
        case .int64(let number):
            field.kind = kind(AMQP_FIELD_KIND_I64)
            field.value.i64 = number
        case .uint64(let number):
            field.kind = kind(AMQP_FIELD_KIND_U64)
            field.value.u64 = number
        case .float(let number):
            field.kind = kind(AMQP_FIELD_KIND_F32)
            field.value.f32 = number
        case .double(let number):
            field.kind = kind(AMQP_FIELD_KIND_F64)
            field.value.f64 = number
        case .decimal(let decimals, let number):
            field.kind = kind(AMQP_FIELD_KIND_DECIMAL)
            field.value.decimal = amqp_decimal_t(decimals: decimals, value: number)
        case .string(let text):
            field.kind = kind(AMQP_FIELD_KIND_UTF8)
            field.value.bytes = bytes(text)
        case .bytes(let data):
            field.kind = kind(AMQP_FIELD_KIND_BYTES)
            field.value.bytes = bytes(data)
        case .timestamp(let seconds):
            field.kind = kind(AMQP_FIELD_KIND_TIMESTAMP)
            field.value.u64 = seconds
        case .table(let nested):
            field.kind = kind(AMQP_FIELD_KIND_TABLE)
            field.value.table = table(nested)
        case .array(let values):
            field.kind = kind(AMQP_FIELD_KIND_ARRAY)
            field.value.array = array(values)
        case .void:
            field.kind = kind(AMQP_FIELD_KIND_VOID)
        }
        return field
    }

    private func kind(_ kind: amqp_field_value_kind_t) -> UInt8 {
        UInt8(kind.rawValue)
    }

    private func copy(_ source: UnsafeRawBufferPointer) -> amqp_bytes_t {
        guard let base = source.baseAddress, source.count > 0 else {
            return amqp_bytes_t(len: 0, bytes: nil)
        }
        let pointer = allocate(source.count)
        pointer.copyMemory(from: base, byteCount: source.count)
        return amqp_bytes_t(len: source.count, bytes: pointer)
    }

    /// Returns `count` bytes aligned to ``alignment`` from the current block, or from a new
    /// block twice the size of the last one (or larger, when `count` needs it).
    private func allocate(_ count: Int) -> UnsafeMutableRawPointer {
        let size = (Swift.max(count, 1) + Self.alignment - 1) & ~(Self.alignment - 1)
        if let block = blocks.last, block.capacity - used >= size {
            defer { used += size }
            return block.pointer + used
        }
        let capacity = Swift.max(size, (blocks.last?.capacity ?? Self.initialBlockSize / 2) * 2)
        guard let pointer = malloc(capacity) else {
            fatalError("out of memory allocating \(capacity) bytes for an AMQP frame")
        }
        blocks.append((pointer, capacity))
        used = size
        return pointer
    }
}

/// Converts librabbitmq tables into field tables.
enum FieldTableDecoder {
    /// Nesting deeper than this is cut and replaced by `.void`, so a hostile header cannot
    /// exhaust the stack.
    static let maximumDepth = 32

    /// Copies a librabbitmq table into a field table.
    static func table(_ table: amqp_table_t, depth: Int = 0) -> FieldTable {
        var result = FieldTable(minimumCapacity: Int(max(table.num_entries, 0)))
        guard table.num_entries > 0, let entries = table.entries else {
            return result
        }
        for index in 0..<Int(table.num_entries) {
            let entry = entries[index]
            result[knownName(entry.key) ?? String(amqpBytes: entry.key)] = value(entry.value, depth: depth + 1)
        }
        return result
    }

    /// Copies a librabbitmq table into the headers of a message. A name that occurs more than
    /// once keeps its last value, as in ``table(_:depth:)``.
    static func headerList(_ table: amqp_table_t) -> HeaderList {
        var headers = HeaderList(capacity: Int(max(table.num_entries, 0)))
        guard table.num_entries > 0, let start = table.entries else {
            return headers
        }

        let entries = UnsafeBufferPointer(start: start, count: Int(table.num_entries))
        let namesAreDistinct = hasDistinctASCIINames(entries)
        for entry in entries {
            let name = knownName(entry.key) ?? String(amqpBytes: entry.key)
            if namesAreDistinct {
                headers.appendNew(name, value(entry.value, depth: 1), nameIsASCII: true)
            } else {
                headers[name] = value(entry.value, depth: 1)
            }
        }
        return headers
    }

    /// Returns whether every name is ASCII and no two names have the same bytes, comparing the
    /// bytes in C memory, which costs less than comparing the names as strings.
    ///
    /// Names with other bytes can differ as bytes and still be one string. Invalid UTF-8 such as
    /// 0xFF and 0xFE decodes to U+FFFD for both, and `"\u{E9}"` equals `"e\u{301}"`, so for such
    /// names the caller compares the decoded strings.
    private static func hasDistinctASCIINames(_ entries: UnsafeBufferPointer<amqp_table_entry_t>) -> Bool {
        for index in entries.indices {
            let key = entries[index].key
            if key.len > 0, let bytes = key.bytes,
               UnsafeRawBufferPointer(start: bytes, count: key.len).contains(where: { $0 >= 0x80 }) {
                return false
            }
            for earlier in entries[..<index] where earlier.key.len == key.len
                && (key.len == 0 || memcmp(earlier.key.bytes, key.bytes, key.len) == 0) {
                return false
            }
        }
        return true
    }

    /// AMQPRetry's header names, grouped by their length in bytes, so that decoding a header
    /// with one of these names shares the constant instead of allocating a new string.
    private static let knownNames: [[(bytes: [UInt8], name: String)]] = {
        let names = [
            WireHeader.version, WireHeader.mode, WireHeader.target, WireHeader.attempt, WireHeader.repeats,
            WireHeader.intervalMilliseconds, WireHeader.callback, WireHeader.source, WireHeader.origCID,
            WireHeader.context, WireHeader.requestTimestamp, WireHeader.lastError, WireHeader.status,
            WireHeader.error, WireHeader.parkedReason, WireHeader.parkedQueue, WireHeader.parkedAt,
            WireHeader.redeliveries,
        ]
        var groups = [[(bytes: [UInt8], name: String)]](repeating: [], count: 1 + names.map(\.utf8.count).max()!)
        for name in names {
            groups[name.utf8.count].append((Array(name.utf8), name))
        }
        return groups
    }()

    /// Returns the constant for a name in ``knownNames``, or `nil` for any other name.
    private static func knownName(_ bytes: amqp_bytes_t) -> String? {
        guard bytes.len < knownNames.count, let pointer = bytes.bytes else { return nil }
        for candidate in knownNames[bytes.len]
        where candidate.bytes.withUnsafeBytes({ memcmp($0.baseAddress!, pointer, bytes.len) == 0 }) {
            return candidate.name
        }
        return nil
    }

    private static func array(_ array: amqp_array_t, depth: Int) -> [FieldValue] {
        guard array.num_entries > 0, let entries = array.entries else {
            return []
        }
        return (0..<Int(array.num_entries)).map { value(entries[$0], depth: depth + 1) }
    }

    private static func value(_ field: amqp_field_value_t, depth: Int) -> FieldValue {
        switch amqp_field_value_kind_t(UInt32(field.kind)) {
        case AMQP_FIELD_KIND_BOOLEAN: return .bool(field.value.boolean != 0)
        case AMQP_FIELD_KIND_I8: return .int8(field.value.i8)
        case AMQP_FIELD_KIND_U8: return .uint8(field.value.u8)
        case AMQP_FIELD_KIND_I16: return .int16(field.value.i16)
        case AMQP_FIELD_KIND_U16: return .uint16(field.value.u16)
        case AMQP_FIELD_KIND_I32: return .int32(field.value.i32)
        case AMQP_FIELD_KIND_U32: return .uint32(field.value.u32)
        case AMQP_FIELD_KIND_I64: return .int64(field.value.i64)
        case AMQP_FIELD_KIND_U64: return .uint64(field.value.u64)
        case AMQP_FIELD_KIND_F32: return .float(field.value.f32)
        case AMQP_FIELD_KIND_F64: return .double(field.value.f64)
        case AMQP_FIELD_KIND_DECIMAL:
            return .decimal(decimals: field.value.decimal.decimals, value: field.value.decimal.value)
        case AMQP_FIELD_KIND_UTF8: return .string([UInt8](amqpBytes: field.value.bytes))
        case AMQP_FIELD_KIND_BYTES: return .bytes([UInt8](amqpBytes: field.value.bytes))
        case AMQP_FIELD_KIND_TIMESTAMP: return .timestamp(field.value.u64)
        case AMQP_FIELD_KIND_TABLE:
            return depth < maximumDepth ? .table(table(field.value.table, depth: depth)) : .void
        case AMQP_FIELD_KIND_ARRAY:
            return depth < maximumDepth ? .array(array(field.value.array, depth: depth)) : .void
        default: return .void
        }
    }
}
