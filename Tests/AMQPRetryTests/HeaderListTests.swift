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
