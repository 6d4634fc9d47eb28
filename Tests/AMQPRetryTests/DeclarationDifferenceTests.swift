import AMQPRetry
import XCTest

/// Reading RabbitMQ's `406 PRECONDITION_FAILED` replies, whose texts come from RabbitMQ 3.10.
final class DeclarationDifferenceTests: XCTestCase {
    func testDelayQueueWithoutTTL() {
        let text = "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'amqpretry.delay.500ms' in "
            + "vhost '/': received the value '500' of type 'long' but current is none"
        let difference = DeclarationDifference(replyText: text, role: .delay)

        XCTAssertEqual(difference.argument, "x-message-ttl")
        XCTAssertTrue(difference.isMissingOnBroker)
        XCTAssertFalse(difference.isExtraOnBroker)
        XCTAssertEqual(difference.replyText, text)
        XCTAssertTrue(difference.consequence?.contains("no x-message-ttl") == true, difference.consequence ?? "nil")
    }

    func testDelayQueueWithoutDeadLetterExchange() {
        let text = "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'amqpretry.delay.500ms' "
            + "in vhost '/': received the value '' of type 'longstr' but current is none"
        let difference = DeclarationDifference(replyText: text, role: .delay)

        XCTAssertEqual(difference.argument, "x-dead-letter-exchange")
        XCTAssertTrue(difference.consequence?.contains("lost silently") == true, difference.consequence ?? "nil")
    }

    func testDelayQueueWithOtherTTL() {
        let text = "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'amqpretry.delay.500ms' in "
            + "vhost '/': received the value '500' of type 'long' but current is the value '300' of type 'long'"
        let difference = DeclarationDifference(replyText: text, role: .delay)

        XCTAssertFalse(difference.isMissingOnBroker)
        XCTAssertTrue(difference.consequence?.contains("another x-message-ttl") == true, difference.consequence ?? "nil")
    }

    func testServiceQueueWithExtraArgument() {
        let text = "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'amqpretry.service.a' in "
            + "vhost '/': received none but current is the value '10' of type 'long'"
        let difference = DeclarationDifference(replyText: text, role: .service)

        XCTAssertEqual(difference.argument, "x-max-length")
        XCTAssertTrue(difference.isExtraOnBroker)
        XCTAssertFalse(difference.isMissingOnBroker)
        XCTAssertTrue(difference.consequence?.contains("length limit") == true, difference.consequence ?? "nil")
    }

    func testDurabilityAndExchangeType() {
        let durable = DeclarationDifference(
            replyText: "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'amqpretry.parked' in vhost '/': "
                + "received 'true' but current is 'false'", role: .parking)
        let type = DeclarationDifference(
            replyText: "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amqpretry.delay.500ms' in vhost "
                + "'/': received 'fanout' but current is 'direct'", role: .delay)

        XCTAssertEqual(durable.argument, "durable")
        XCTAssertTrue(durable.consequence?.contains("broker restarts") == true, durable.consequence ?? "nil")
        XCTAssertEqual(type.argument, "type")
        XCTAssertTrue(type.consequence?.contains("fanout") == true, type.consequence ?? "nil")
    }

    func testUnknownArgumentHasNoConsequence() {
        let difference = DeclarationDifference(
            replyText: "PRECONDITION_FAILED - inequivalent arg 'x-single-active-consumer' for queue 'q' in vhost '/': "
                + "received none but current is the value 'true' of type 'bool'", role: .service)

        XCTAssertEqual(difference.argument, "x-single-active-consumer")
        XCTAssertNil(difference.consequence)
    }

    func testOtherReplyFormHasNoArgument() {
        let difference = DeclarationDifference(replyText: "PRECONDITION_FAILED - something else", role: .service)

        XCTAssertNil(difference.argument)
        XCTAssertNil(difference.consequence)
        XCTAssertFalse(difference.isMissingOnBroker)
    }
}
