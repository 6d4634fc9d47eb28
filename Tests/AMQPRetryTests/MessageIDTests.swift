@testable import AMQPRetry
import Foundation
import XCTest

final class MessageIDTests: XCTestCase {
    func testMessageIDFormatMatchesFoundation() {
        let bytes: [UInt8] = [0x00, 0x1f, 0xa0, 0xff, 0x12, 0x34, 0x4e, 0x56, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67]
        let uuid = UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                               bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))

        let formatted = bytes.withUnsafeBytes { MessageID.format($0) }

        XCTAssertEqual(formatted, uuid.uuidString.lowercased())
    }

    func testRandomMessageIDIsVersion4() throws {
        let id = MessageID.random()
        let uuid = try XCTUnwrap(UUID(uuidString: id))

        XCTAssertEqual(id, uuid.uuidString.lowercased())
        XCTAssertEqual(uuid.uuid.6 >> 4, 4)
        XCTAssertEqual(uuid.uuid.8 >> 6, 2)
    }
}
