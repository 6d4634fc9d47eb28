import XCTest

@testable import AMQPRetry

final class ClusterConfigurationTests: XCTestCase {
    func testURLListAddsFailoverAddresses() throws {
        let configuration = try ConnectionConfiguration(
            url: "amqp://u:p@node1:5672/%2F?heartbeat=5,amqp://u:p@node2:5673/%2F,amqp://node3")

        XCTAssertEqual(configuration.host, "node1")
        XCTAssertEqual(configuration.heartbeat, .seconds(5))
        XCTAssertEqual(configuration.addresses.map(\.host), ["node1", "node2", "node3"])
        XCTAssertEqual(configuration.addresses.map(\.port), [5672, 5673, 5672])
    }

    func testCommaInPasswordIsNotASeparator() throws {
        let configuration = try ConnectionConfiguration(url: "amqp://user:pa,ss@node1:5672/%2F")

        XCTAssertEqual(configuration.password, "pa,ss")
        XCTAssertTrue(configuration.failoverAddresses.isEmpty)
    }

    func testConnectingToAddressKeepsSettings() throws {
        let configuration = try ConnectionConfiguration(url: "amqp://u:p@node1/vh,amqp://node2:6000")
        let moved = configuration.connecting(to: configuration.failoverAddresses[0])

        XCTAssertEqual(moved.brokerAddress, "node2:6000")
        XCTAssertEqual(moved.virtualHost, "vh")
        XCTAssertEqual(moved.password, "p")
    }

    func testQueueTypeQueryParameter() throws {
        let quorum = try ConnectionConfiguration(url: "amqp://localhost/?queue_type=quorum")
        let classic = try ConnectionConfiguration(url: "amqp://localhost/")

        XCTAssertEqual(quorum.queueType, .quorum)
        XCTAssertEqual(classic.queueType, .classic)
        XCTAssertTrue(quorum.redactedURL.contains("queue_type=quorum"), quorum.redactedURL)
    }

    func testInvalidQueueTypeNamesValue() {
        XCTAssertThrowsError(try ConnectionConfiguration(url: "amqp://localhost/?queue_type=stream")) { error in
            XCTAssertTrue("\(error)".contains("'stream'"), "\(error)")
            XCTAssertTrue("\(error)".contains("'classic' or 'quorum'"), "\(error)")
        }
    }

    func testQuorumServiceQueueDeadLettersToParking() {
        let arguments = Topology.serviceQueueArguments(type: .quorum)

        XCTAssertEqual(arguments["x-queue-type"], .text("quorum"))
        XCTAssertEqual(arguments["x-dead-letter-strategy"], .text("at-least-once"))
        XCTAssertEqual(arguments["x-overflow"], .text("reject-publish"))
        XCTAssertEqual(arguments["x-dead-letter-routing-key"], .text(TopologyNames.parkingQueue))
        XCTAssertEqual(arguments["x-delivery-limit"], .int64(Topology.quorumDeliveryLimit))
    }

    func testQuorumDelayQueueKeepsTTL() {
        let arguments = Topology.delayQueueArguments(milliseconds: 1500, type: .quorum)

        XCTAssertEqual(arguments["x-message-ttl"], .int64(1500))
        XCTAssertEqual(arguments["x-dead-letter-exchange"], .text(""))
        XCTAssertEqual(arguments["x-dead-letter-strategy"], .text("at-least-once"))
    }

    func testClassicQueuesHaveNoTypeArgument() {
        XCTAssertTrue(Topology.serviceQueueArguments(type: .classic).isEmpty)
        XCTAssertNil(Topology.delayQueueArguments(milliseconds: 10)["x-queue-type"])
    }
}
