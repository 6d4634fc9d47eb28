import AMQPRetry
import XCTest

final class TopologyNamesTests: XCTestCase {
    func testServiceQueue() {
        XCTAssertEqual(TopologyNames.serviceQueue("demo.echo"), "amqpretry.service.demo.echo")
        XCTAssertTrue(TopologyNames.serviceQueue("x").hasPrefix(TopologyNames.servicePrefix))
    }

    func testLongestServiceQueueFitsAMQPLimit() {
        let name = String(repeating: "é", count: ServiceName.maximumBytes / 2)

        XCTAssertLessThanOrEqual(TopologyNames.serviceQueue(name).utf8.count, 255)
    }

    func testDelayQueueAndExchange() {
        XCTAssertEqual(TopologyNames.delayQueue(milliseconds: 1500), "amqpretry.delay.1500ms")
        XCTAssertEqual(TopologyNames.delayQueue(milliseconds: 1), "amqpretry.delay.1ms")
        XCTAssertEqual(TopologyNames.delayExchange(milliseconds: 1500), "amqpretry.delay.1500ms")
    }

    func testFixedNames() {
        XCTAssertEqual(TopologyNames.parkingQueue, "amqpretry.parked")
        XCTAssertEqual(TopologyNames.directReplyTo, "amq.rabbitmq.reply-to")
    }
}
