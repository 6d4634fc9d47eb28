import CRabbitMQ
import XCTest

@testable import AMQPRetry

final class FrameSizeTests: XCTestCase {
    private let sampleTable: FieldTable = [
        "flag": .bool(true),
        "small": .int8(-3),
        "short": .uint16(7),
        "int": .int32(-70_000),
        "long": .int64(5_000_000_000),
        "float": .float(1.5),
        "double": .double(2.25),
        "decimal": .decimal(decimals: 2, value: 12_345),
        "text": .text("héllo"),
        "bytes": .bytes([0, 1, 2, 255]),
        "time": .timestamp(1_700_000_000),
        "nested": .table(["inner": .text("x"), "deeper": .table(["n": .int64(1)])]),
        "list": .array([.int64(1), .text("two"), .void]),
        "nothing": .void,
    ]

    func testTableSizeMatchesLibrabbitmq() {
        let arena = CArena()
        var table = arena.table(sampleTable)
        var buffer = [UInt8](repeating: 0, count: 4096)
        var offset = 0

        let status = buffer.withUnsafeMutableBytes { raw in
            amqp_encode_table(amqp_bytes_t(len: raw.count, bytes: raw.baseAddress), &table, &offset)
        }

        XCTAssertEqual(status, AMQP_STATUS_OK.rawValue)
        XCTAssertEqual(FrameSize.tableSize(sampleTable), offset)
    }

    func testValidMessagePasses() {
        let message = OutgoingMessage(exchange: "", routingKey: "amqpretry.service.a",
                                      properties: MessageProperties(headers: sampleTable), body: [])

        XCTAssertNoThrow(try FrameSize.validate(message, frameMax: 131_072))
    }

    func testOversizedHeadersAreRejected() {
        let headers: FieldTable = ["big": .string([UInt8](repeating: 65, count: 200_000))]
        let message = OutgoingMessage(exchange: "", routingKey: "q", properties: MessageProperties(headers: headers),
                                      body: [])

        XCTAssertThrowsError(try FrameSize.validate(message, frameMax: 131_072)) { error in
            let amqpError = error as? AMQPError
            XCTAssertEqual(amqpError?.code, .invalidMessage)
            XCTAssertTrue(amqpError?.description.contains("frame_max 131072") == true, "\(error)")
        }
    }

    func testLongShortStringIsRejected() {
        let properties = MessageProperties(correlationID: String(repeating: "c", count: 256))
        let message = OutgoingMessage(exchange: "", routingKey: "q", properties: properties, body: [])

        XCTAssertThrowsError(try FrameSize.validate(message, frameMax: 131_072)) { error in
            XCTAssertTrue("\(error)".contains("correlation_id is 256 bytes"), "\(error)")
        }
    }

    func testLongRoutingKeyIsRejected() {
        let message = OutgoingMessage(exchange: "", routingKey: String(repeating: "r", count: 300),
                                      properties: MessageProperties(), body: [])

        XCTAssertThrowsError(try FrameSize.validate(message, frameMax: 131_072)) { error in
            XCTAssertTrue("\(error)".contains("routing key is 300 bytes"), "\(error)")
        }
    }
    func testLongHeaderNameAtAnyDepthIsRejected() {
        let longName = String(repeating: "n", count: 256)
        let cases: [(label: String, headers: FieldTable)] = [
            ("top level", [longName: .int8(1)]),
            ("nested table", ["outer": .table([longName: .int8(1)])]),
            ("table in an array", ["list": .array([.int8(0), .table([longName: .int8(1)])])]),
            ("table in an array in an array", ["list": .array([.array([.table([longName: .int8(1)])])])]),
            ("array in a table", ["outer": .table(["list": .array([.table([longName: .int8(1)])])])]),
        ]

        for testCase in cases {
            let message = OutgoingMessage(exchange: "", routingKey: "q",
                                          properties: MessageProperties(headers: testCase.headers), body: [])
            XCTAssertThrowsError(try FrameSize.validate(message, frameMax: 131_072), testCase.label) { error in
                XCTAssertTrue("\(error)".contains("header name is 256 bytes"), "\(testCase.label): \(error)")
            }
        }
    }

    func testNameOf255BytesPasses() {
        let name = String(repeating: "n", count: 255)
        let headers: FieldTable = [name: .int8(1), "list": .array([.table([name: .int8(1)])])]
        let message = OutgoingMessage(exchange: "", routingKey: "q", properties: MessageProperties(headers: headers),
                                      body: [])

        XCTAssertNoThrow(try FrameSize.validate(message, frameMax: 131_072))
    }
}
