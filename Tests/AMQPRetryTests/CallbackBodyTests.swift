import AMQPRetry
import Foundation
import XCTest

final class CallbackBodyTests: XCTestCase {
    private func invocation() throws -> Invocation {
        Invocation(
            cid: try CID(validating: "K04BAWB349PEBBYCPY6GQVSH4W0E"),
            mode: .async,
            target: "my.retry.target",
            attempt: 4,
            options: try RetryOptions(repeats: 3, seconds: 1),
            callback: "my.retry.callback",
            source: "retry.my-service",
            origCID: try CID(validating: "K07MKN0TY2FRMCGHQA1HZR2JMBEM"),
            context: ["hi": "there"],
            requestTimestamp: "2015-01-21T20:25:25.446454+00:00"
        )
    }

    private func jsonObject(_ body: CallbackBody) throws -> [String: JSONValue] {
        try XCTUnwrap(try JSONValue(parsing: body.encoded()).objectValue)
    }

    func testFailureBodyHasZatoKeys() throws {
        let body = CallbackBody.make(invocation: try invocation(), outcome: .failure("boom"), attempts: 4)

        let object = try jsonObject(body)

        XCTAssertEqual(object["ok"], false)
        XCTAssertEqual(object["source"], "retry.my-service")
        XCTAssertEqual(object["target"], "my.retry.target")
        XCTAssertEqual(object["retry_repeats"], 3)
        XCTAssertEqual(object["retry_seconds"], 1)
        XCTAssertEqual(object["call_cid"], "K04BAWB349PEBBYCPY6GQVSH4W0E")
        XCTAssertEqual(object["orig_cid"], "K07MKN0TY2FRMCGHQA1HZR2JMBEM")
        XCTAssertEqual(object["req_ts_utc"], "2015-01-21T20:25:25.446454+00:00")
        XCTAssertEqual(object["context"], ["hi": "there"])
        XCTAssertEqual(object["attempts"], 4)
        XCTAssertEqual(object["error"], "boom")
        XCTAssertEqual(object["response"], .null)
        XCTAssertEqual(object["response_encoding"], .null)
        XCTAssertEqual(object["response_content_type"], .null)
        XCTAssertNotNil(object["resp_ts_utc"].flatMap { if case .string(let text) = $0 { WireTimestamp.parse(text) } else { nil } })
        XCTAssertEqual(object.count, 15)
    }

    func testSuccessBodyWithTextResponse() throws {
        let payload = Payload(json: #"{"result":"ok"}"#)

        let body = CallbackBody.make(invocation: try invocation(), outcome: .success(payload), attempts: 2)

        XCTAssertTrue(body.ok)
        XCTAssertEqual(body.response, #"{"result":"ok"}"#)
        XCTAssertEqual(body.responseEncoding, "utf-8")
        XCTAssertEqual(body.responseContentType, "application/json")
        XCTAssertEqual(body.attempts, 2)
        XCTAssertNil(body.error)
    }

    func testSuccessBodyWithBinaryResponseUsesBase64() throws {
        let payload = Payload(bytes: [0xFF, 0x00, 0x80], contentType: "application/octet-stream")

        let body = CallbackBody.make(invocation: try invocation(), outcome: .success(payload), attempts: 1)

        XCTAssertEqual(body.response, "/wCA")
        XCTAssertEqual(body.responseEncoding, "base64")
        XCTAssertEqual(body.responseContentType, "application/octet-stream")
    }

    func testErrorIsBounded() throws {
        let message = String(repeating: "e", count: 5000) + "\u{0}"

        let body = CallbackBody.make(invocation: try invocation(), outcome: .failure(message), attempts: 4)

        XCTAssertEqual(body.error?.utf8.count, 1024)
        XCTAssertTrue(body.error?.hasSuffix("…") == true)
    }

    func testAbsentValuesWrittenAsNullOrEmpty() throws {
        let invocation = Invocation(mode: .async, target: "svc", requestTimestamp: nil)

        let body = CallbackBody.make(invocation: invocation, outcome: .failure("x"), attempts: 1)
        let object = try jsonObject(body)

        XCTAssertEqual(object["context"], .null)
        XCTAssertEqual(object["orig_cid"], "")
        XCTAssertEqual(object["req_ts_utc"], "")
        XCTAssertEqual(object["retry_repeats"], 0)
        XCTAssertEqual(object["retry_seconds"], 0)
    }

    func testEncodedHasSortedKeys() throws {
        let body = CallbackBody.make(invocation: try invocation(), outcome: .failure("boom"), attempts: 4)

        let text = String(decoding: body.encoded(), as: UTF8.self)

        XCTAssertTrue(text.hasPrefix(#"{"attempts":4,"call_cid":"K04BAWB349PEBBYCPY6GQVSH4W0E","context":{"hi":"there"},"error":"boom","ok":false,"#), text)
    }

    func testEncodeDecodeRoundTrip() throws {
        let bodies = [
            CallbackBody.make(invocation: try invocation(), outcome: .failure("boom"), attempts: 4),
            CallbackBody.make(invocation: try invocation(), outcome: .success(Payload(text: "hi")), attempts: 1),
        ]

        for body in bodies {
            XCTAssertEqual(try CallbackBody.decode(body.encoded()), body)
        }
    }

    func testCodableMatchesEncoded() throws {
        let body = CallbackBody.make(invocation: try invocation(), outcome: .failure("boom"), attempts: 4)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]

        let data = try encoder.encode(body)

        XCTAssertEqual(try JSONValue(parsing: Array(data)), try JSONValue(parsing: body.encoded()))
    }

    func testDecodeAcceptsMissingOptionalKeys() throws {
        let text = #"{"ok":true,"source":"s","target":"t","retry_repeats":1,"retry_seconds":0.5,"call_cid":"c","#
            + #""orig_cid":"","req_ts_utc":"","resp_ts_utc":"","attempts":1}"#

        let body = try CallbackBody.decode(Array(text.utf8))

        XCTAssertEqual(body.retrySeconds, 0.5)
        XCTAssertNil(body.context)
        XCTAssertNil(body.response)
        XCTAssertNil(body.error)
    }

    func testDecodeRejectsMissingRequiredKey() {
        let text = #"{"source":"s"}"#

        XCTAssertThrowsError(try CallbackBody.decode(Array(text.utf8))) { error in
            let description = "\(error)"
            XCTAssertTrue(error is JSONParseError)
            XCTAssertTrue(description.contains("'ok'") || description.contains("ok"), description)
        }
    }

    func testDecodeRejectsWrongType() {
        let text = #"{"ok":"yes"}"#

        XCTAssertThrowsError(try CallbackBody.decode(Array(text.utf8))) { error in
            XCTAssertTrue("\(error)".contains("ok"), "\(error)")
        }
    }

    func testDecodeRejectsInvalidJSON() {
        XCTAssertThrowsError(try CallbackBody.decode(Array("{".utf8))) { error in
            XCTAssertTrue(error is JSONParseError)
        }
    }

    func testEncodedMatchesSortedSerialization() throws {
        let bodies = [
            CallbackBody.make(invocation: try invocation(), outcome: .failure("boom \"quoted\"\n"), attempts: 4),
            CallbackBody.make(invocation: try invocation(), outcome: .success(Payload(text: "hi ✓")), attempts: 1),
        ]

        for body in bodies {
            let reserialized = try JSONValue(parsing: body.encoded()).serialized()
            XCTAssertEqual(String(decoding: body.encoded(), as: UTF8.self), reserialized)
        }
    }
}
