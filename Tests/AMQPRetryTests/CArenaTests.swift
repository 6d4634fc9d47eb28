import CRabbitMQ
import XCTest

@testable import AMQPRetry

final class CArenaTests: XCTestCase {
    private func keys(of table: amqp_table_t) -> [String] {
        (0..<Int(table.num_entries)).map { String(amqpBytes: table.entries[$0].key) }
    }

    func testTableEntriesSortedByName() {
        let arena = CArena()
        let table = arena.table(["b": .int64(2), "a": .int64(1), "ab": .int64(3), "B": .int64(4), "": .void])

        XCTAssertEqual(keys(of: table), ["", "B", "a", "ab", "b"])
    }

    func testTableRoundTripsThroughDecoder() {
        let source: FieldTable = [
            "text": .text("héllo"), "nested": .table(["n": .int64(1)]), "list": .array([.bool(true), .void]),
        ]
        let arena = CArena()

        XCTAssertEqual(FieldTableDecoder.table(arena.table(source)), source)
    }

    func testResetArenaBuildsNewTables() {
        let arena = CArena()
        let first = arena.table(["first": .text(String(repeating: "x", count: CArena.initialBlockSize * 3))])
        XCTAssertEqual(keys(of: first), ["first"])

        arena.reset()
        let second: FieldTable = ["second": .text("y"), "third": .bytes([1, 2, 3])]

        XCTAssertEqual(FieldTableDecoder.table(arena.table(second)), second)
    }

    func testBytesCopiesStringAndArray() {
        let arena = CArena()
        let text = arena.bytes("amqpretry.service.a")
        let array = arena.bytes([UInt8]([0, 255, 7]))
        let empty = arena.bytes("")

        XCTAssertEqual(String(amqpBytes: text), "amqpretry.service.a")
        XCTAssertEqual([UInt8](amqpBytes: array), [0, 255, 7])
        XCTAssertEqual(empty.len, 0)
    }

    func testDecoderReadsKnownAndOtherNames() {
        let source: FieldTable = [
            WireHeader.mode: .text("async"),
            "amqpretry-mods": .text("same length as amqpretry-mode"),
            WireHeader.intervalMilliseconds: .int64(100),
            "x": .bool(true),
            "ämqpretry-mode": .int8(1),
        ]
        let arena = CArena()

        XCTAssertEqual(FieldTableDecoder.table(arena.table(source)), source)
    }
}
