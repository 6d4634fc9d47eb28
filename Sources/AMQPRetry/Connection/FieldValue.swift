/// A value in an AMQP 0-9-1 field table, as carried in message headers and queue arguments.
///
/// Integers keep the width they had on the wire, because RabbitMQ reports the type of each
/// argument and tools in other languages may choose any width. AMQPRetry itself always writes
/// ``FieldValue/int64(_:)`` (`l`, a signed 64-bit integer) so that its declarations never differ.
public enum FieldValue: Sendable, Hashable {
    /// A boolean (`t`).
    case bool(Bool)
    /// A signed 8-bit integer (`b`).
    case int8(Int8)
    /// An unsigned 8-bit integer (`B`).
    case uint8(UInt8)
    /// A signed 16-bit integer (`s`).
    case int16(Int16)
    /// An unsigned 16-bit integer (`u`).
    case uint16(UInt16)
    /// A signed 32-bit integer (`I`).
    case int32(Int32)
    /// An unsigned 32-bit integer (`i`).
    case uint32(UInt32)
    /// A signed 64-bit integer (`l`).
    case int64(Int64)
    /// An unsigned 64-bit integer (`L`).
    case uint64(UInt64)
    /// A 32-bit float (`f`).
    case float(Float)
    /// A 64-bit float (`d`).
    case double(Double)
    /// A decimal (`D`): `value` divided by ten to the power `decimals`.
    case decimal(decimals: UInt8, value: UInt32)
    /// A long string (`S`), which AMQP defines as bytes and RabbitMQ clients treat as UTF-8 text.
    case string([UInt8])
    /// A byte array (`x`).
    case bytes([UInt8])
    /// A timestamp in seconds since the Unix epoch (`T`).
    case timestamp(UInt64)
    /// A nested field table (`F`).
    case table([String: FieldValue])
    /// A field array (`A`).
    case array([FieldValue])
    /// No value (`V`).
    case void

    /// Makes a long-string value from Swift text, encoded as UTF-8.
    public static func text(_ value: String) -> FieldValue {
        .string(Array(value.utf8))
    }

    /// The value as a signed 64-bit integer, when it is an integer of any width that fits.
    public var integerValue: Int64? {
        switch self {
        case .int8(let value): return Int64(value)
        case .uint8(let value): return Int64(value)
        case .int16(let value): return Int64(value)
        case .uint16(let value): return Int64(value)
        case .int32(let value): return Int64(value)
        case .uint32(let value): return Int64(value)
        case .int64(let value): return value
        case .uint64(let value): return Int64(exactly: value)
        default: return nil
        }
    }

    /// The value as text, when it is a long string or byte array holding valid UTF-8.
    public var textValue: String? {
        switch self {
        case .string(let bytes), .bytes(let bytes):
            return String(validating: bytes, as: UTF8.self)
        default:
            return nil
        }
    }
}

/// An AMQP field table: header or argument names mapped to values.
public typealias FieldTable = [String: FieldValue]
