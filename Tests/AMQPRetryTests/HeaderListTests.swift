import CRabbitMQ
import XCTest

@testable import AMQPRetry

final class HeaderListTests: XCTestCase {
    func testSubscriptSetsReplacesAndRemoves() {
        var headers = HeaderList()
        headers["a"] = .int64(1)
        headers["b"] = .text("two")
        headers["a"] = .int64(3)
        headers["missing"] = nil

        XCTAssertEqual(headers["a"], .int64(3))
        XCTAssertEqual(headers["b"], .text("two"))
        XCTAssertEqual(headers.count, 2)

        headers["a"] = nil

        XCTAssertNil(headers["a"])
        XCTAssertEqual(headers.entries.map(\.name), ["b"])
    }

    func testLookupComparesWholeNames() {
        var headers = HeaderList()
        headers[WireHeader.mode] = .text("async")
        headers["amqpretry-mods"] = .text("same length")
        headers["amqpretry-mode-x"] = .text("longer")

        XCTAssertEqual(headers[WireHeader.mode], .text("async"))
        XCTAssertEqual(headers["amqpretry-mods"], .text("same length"))
        XCTAssertNil(headers["amqpretry-mod"])
    }

    func testTableConversionKeepsEveryHeader() {
        let table: FieldTable = ["x-death": .array([]), "app": .text("v"), WireHeader.attempt: .int8(2)]

        XCTAssertEqual(HeaderList(table).table, table)
    }

    func testEqualityIgnoresOrder() {
        var first = HeaderList()
        first["a"] = .int64(1)
        first["b"] = .int64(2)
        var second = HeaderList()
        second["b"] = .int64(2)
        second["a"] = .int64(1)
        var third = second
        third["a"] = .int32(1)

        XCTAssertEqual(first, second)
        XCTAssertEqual(first.hashValue, second.hashValue)
        XCTAssertNotEqual(first, third)
    }

    func testMergeReplacesAndAppends() {
        var headers = HeaderList(["keep": .int64(1), "replace": .int64(2)])
        headers.merge(HeaderList(["replace": .int64(20), "add": .int64(30)]))

        XCTAssertEqual(headers.table, ["keep": .int64(1), "replace": .int64(20), "add": .int64(30)])
    }

    func testDecoderKeepsLastOfRepeatedName() {
        let arena = CArena()
        var entries = [
            amqp_table_entry_t(key: arena.bytes(WireHeader.attempt), value: amqp_field_value_t()),
            amqp_table_entry_t(key: arena.bytes("app"), value: amqp_field_value_t()),
            amqp_table_entry_t(key: arena.bytes(WireHeader.attempt), value: amqp_field_value_t()),
        ]
        for index in entries.indices {
            entries[index].value.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue)
            entries[index].value.value.i64 = Int64(index + 1)
        }

        let headers = entries.withUnsafeMutableBufferPointer { buffer in
            FieldTableDecoder.headerList(amqp_table_t(num_entries: 3, entries: buffer.baseAddress))
        }

        XCTAssertEqual(headers.count, 2)
        XCTAssertEqual(headers[WireHeader.attempt], .int64(3))
        XCTAssertEqual(headers["app"], .int64(2))
    }

    func testHeaderListRoundTripsThroughArena() {
        var headers = HeaderList()
        headers["text"] = .text("héllo")
        headers["nested"] = .table(["n": .int64(1)])
        headers[WireHeader.version] = .int64(1)
        let arena = CArena()
        let table = arena.table(headers)
        let names = (0..<Int(table.num_entries)).map { String(amqpBytes: table.entries[$0].key) }

        XCTAssertEqual(names, [WireHeader.version, "nested", "text"])
        XCTAssertEqual(FieldTableDecoder.headerList(table), headers)
    }

    func testPropertiesHeadersReadAndWriteList() {
        var properties = MessageProperties(headers: ["a": .int64(1)])
        properties.headers["b"] = .int64(2)

        XCTAssertEqual(properties.headerList["b"], .int64(2))
        XCTAssertEqual(properties.headers, ["a": .int64(1), "b": .int64(2)])
        XCTAssertEqual(properties, MessageProperties(headers: ["b": .int64(2), "a": .int64(1)]))
    }

    func testInvocationHeadersInNameOrder() throws {
        let invocation = Invocation(
            mode: .async, target: "demo.fail", attempt: 2, options: try RetryOptions(repeats: 3, seconds: 1.5),
            callback: "demo.callback", source: "demo.caller", origCID: .random(), context: ["n": 1],
            requestTimestamp: "2015-01-21T20:25:25.446454+00:00", lastError: "boom"
        )

        let names = invocation.headerList().entries.map(\.name)

        XCTAssertEqual(names.count, 12)
        XCTAssertEqual(names, names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        XCTAssertEqual(invocation.headerList().table, invocation.headers())
    }
}

/// Header names that are not plain ASCII. Swift compares strings by canonical equivalence, so
/// `"é"` (C3 A9) and `"e\u{301}"` (65 CC 81) are one dictionary key, and invalid UTF-8 names
/// decode to U+FFFD. A ``HeaderList`` must treat names as ``FieldTable`` keys do.
final class HeaderListNameEquivalenceTests: XCTestCase {
    private static let precomposed = "\u{E9}"
    private static let decomposed = "e\u{301}"

    /// Decodes a librabbitmq table of 64-bit integer headers whose names are raw bytes.
    private static func decodeBoth(_ headers: [(name: [UInt8], value: Int64)]) -> (list: HeaderList, table: FieldTable) {
        let arena = CArena()
        var entries = headers.map { header in
            var value = amqp_field_value_t()
            value.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue)
            value.value.i64 = header.value
            return amqp_table_entry_t(key: arena.bytes(header.name), value: value)
        }
        return entries.withUnsafeMutableBufferPointer { buffer in
            let table = amqp_table_t(num_entries: Int32(buffer.count), entries: buffer.baseAddress)
            return (FieldTableDecoder.headerList(table), FieldTableDecoder.table(table))
        }
    }

    /// Decodes names as ``decodeBoth(_:)`` does, with the values 1, 2, 3 and so on.
    private static func decodeBoth(names: [[UInt8]]) -> (list: HeaderList, table: FieldTable) {
        decodeBoth(names.enumerated().map { (name: $0.element, value: Int64($0.offset + 1)) })
    }

    func testLookupFindsCanonicallyEquivalentName() {
        let headers = HeaderList([Self.precomposed: .int64(1)])

        XCTAssertEqual(headers[Self.decomposed], .int64(1))
        XCTAssertEqual(HeaderList(["K": .int64(2)])["\u{212A}"], .int64(2), "KELVIN SIGN is canonically K")
    }

    func testSettingEquivalentNameReplacesValue() {
        var headers = HeaderList()
        headers[Self.precomposed] = .int64(1)
        headers[Self.decomposed] = .int64(2)

        XCTAssertEqual(headers.count, 1)
        XCTAssertEqual(headers.table, [Self.precomposed: .int64(2)])
    }

    func testPropertiesWithEquivalentNamesAreEqual() {
        let precomposed = MessageProperties(headers: [Self.precomposed: .int64(1)])
        let decomposed = MessageProperties(headers: [Self.decomposed: .int64(1)])

        XCTAssertEqual(precomposed.headers, decomposed.headers)
        XCTAssertEqual(precomposed, decomposed)
        XCTAssertEqual(precomposed.hashValue, decomposed.hashValue)
    }

    func testDecoderMergesInvalidUTF8Names() {
        let decoded = Self.decodeBoth(names: [[0xFF], [0xFE], Array("app".utf8)])

        XCTAssertEqual(decoded.table.count, 2)
        XCTAssertEqual(decoded.list.count, 2)
        XCTAssertEqual(decoded.list.table, decoded.table)
        XCTAssertEqual(decoded.list["\u{FFFD}"], .int64(2))
    }

    func testDecoderMergesSameLengthEquivalents() {
        // Two orders of the same combining marks: different bytes, one canonical string.
        let first = "a\u{301}\u{316}"
        let second = "a\u{316}\u{301}"
        XCTAssertEqual(first, second)

        let decoded = Self.decodeBoth(names: [Array(first.utf8), Array(second.utf8)])

        XCTAssertEqual(decoded.list.count, 1)
        XCTAssertEqual(decoded.list.table, decoded.table)
        XCTAssertEqual(decoded.list[first], .int64(2))
    }

    func testDecoderMergesOtherLengthEquivalents() {
        let decoded = Self.decodeBoth(names: [Array(Self.precomposed.utf8), Array(Self.decomposed.utf8)])

        XCTAssertEqual(decoded.list.count, 1)
        XCTAssertEqual(decoded.list.table, decoded.table)
        XCTAssertEqual(decoded.list[Self.precomposed], .int64(2))
    }

    func testEqualDecodedListsHashAlike() {
        let precomposed = Array(Self.precomposed.utf8)
        let decomposed = Array(Self.decomposed.utf8)
        let forward = Self.decodeBoth([(precomposed, 1), (decomposed, 2)]).list
        let backward = Self.decodeBoth([(decomposed, 2), (precomposed, 1)]).list

        // Each list keeps the last value it decoded, as a dictionary does, so the two differ.
        XCTAssertEqual(forward.table, [Self.precomposed: .int64(2)])
        XCTAssertEqual(backward.table, [Self.precomposed: .int64(1)])
        XCTAssertNotEqual(forward, backward)
        XCTAssertEqual(forward, HeaderList(forward.table))
        XCTAssertEqual(forward.hashValue, HeaderList(forward.table).hashValue)
    }

    func testEncodedTableHasDistinctNames() {
        let decoded = Self.decodeBoth(names: [[0xFF], [0xFE], Array(Self.precomposed.utf8), Array(Self.decomposed.utf8)])
        let arena = CArena()
        let table = arena.table(decoded.list)
        let names = (0..<Int(table.num_entries)).map { [UInt8](amqpBytes: table.entries[$0].key) }

        XCTAssertEqual(names.count, Set(names).count, "names written twice: \(names)")
        XCTAssertEqual(FrameSize.tableSize(decoded.table), FrameSize.tableSize(decoded.list.table))
    }
}
