import AMQPRetry
import XCTest

final class PayloadTests: XCTestCase {
    func testDefaultContentTypeIsJSON() {
        let payload = Payload(bytes: [1, 2, 3])

        XCTAssertEqual(payload.contentType, "application/json")
        XCTAssertEqual(payload.bytes, [1, 2, 3])
    }

    func testEmptyPayload() {
        XCTAssertEqual(Payload.empty.bytes, [])
        XCTAssertEqual(Payload.empty.contentType, "application/json")
    }

    func testJSONTextPayload() throws {
        let payload = Payload(json: #"{"hi":"there"}"#)

        XCTAssertEqual(payload.contentType, "application/json")
        XCTAssertEqual(try payload.json(), ["hi": "there"])
    }

    func testTextPayload() {
        let payload = Payload(text: "héllo")

        XCTAssertEqual(payload.contentType, "text/plain; charset=utf-8")
        XCTAssertEqual(payload.bytes, Array("héllo".utf8))
        XCTAssertEqual(payload.text, "héllo")
    }

    func testTextIsNilForInvalidUTF8() {
        let payload = Payload(bytes: [0x61, 0xFF], contentType: "application/octet-stream")

        XCTAssertNil(payload.text)
    }

    func testJSONThrowsForInvalidBody() {
        let payload = Payload(text: "not json")

        XCTAssertThrowsError(try payload.json()) { error in
            XCTAssertTrue(error is JSONParseError)
        }
    }
}
