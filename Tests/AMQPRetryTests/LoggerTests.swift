@testable import AMQPRetry
import Foundation
import XCTest

final class LoggerTests: XCTestCase {
    func testRecordsAtOrAboveLevelReachHandler() {
        let capture = LogCapture()
        let logger = capture.logger(logLevel: .notice)

        for level in Logger.Level.allCases {
            logger.log(level: level, "message at \(level)")
        }

        XCTAssertEqual(capture.records.map(\.level), [.notice, .warning, .error, .critical])
    }

    func testEachLevelMethodUsesItsLevel() {
        let capture = LogCapture()
        let logger = capture.logger(logLevel: .trace)

        logger.trace("t")
        logger.debug("d")
        logger.info("i")
        logger.notice("n")
        logger.warning("w")
        logger.error("e")
        logger.critical("c")

        XCTAssertEqual(capture.records.map(\.level), Logger.Level.allCases)
        XCTAssertEqual(capture.records.map(\.message), ["t", "d", "i", "n", "w", "e", "c"])
    }

    func testMessageNotBuiltWhenLevelDisabled() {
        let capture = LogCapture()
        let logger = capture.logger(logLevel: .info)
        let builds = Locked(0)

        logger.debug({ builds.withLock { $0 += 1 }; return "expensive" }(),
                     metadata: { builds.withLock { $0 += 1 }; return [:] }())

        XCTAssertEqual(builds.withLock { $0 }, 0)
        XCTAssertTrue(capture.records.isEmpty)
    }

    func testDisabledLoggerBuildsNothing() {
        let builds = Locked(0)

        for level in Logger.Level.allCases {
            Logger.disabled.log(level: level, { builds.withLock { $0 += 1 }; return "dropped" }())
        }

        XCTAssertEqual(builds.withLock { $0 }, 0)
        XCTAssertFalse(Logger.disabled.isEnabled(.critical))
    }

    func testCallMetadataOverridesLoggerMetadata() throws {
        let capture = LogCapture()
        var logger = capture.logger(label: "amqpretry.worker")
        logger.metadata = [LogKey.service: "demo.echo", LogKey.attempt: "1"]

        logger.info("retry scheduled", metadata: [LogKey.attempt: "2", LogKey.cid: "K0ABC"])

        let record = try XCTUnwrap(capture.records.first)
        XCTAssertEqual(record.label, "amqpretry.worker")
        XCTAssertEqual(record.metadata, [LogKey.service: "demo.echo", LogKey.attempt: "2", LogKey.cid: "K0ABC"])
    }

    func testLevelNamesAreLowercase() {
        let names = Logger.Level.allCases.map(\.description)

        XCTAssertEqual(names, ["trace", "debug", "info", "notice", "warning", "error", "critical"])
    }

    func testLevelsAreOrderedBySeverity() {
        XCTAssertLessThan(Logger.Level.trace, .debug)
        XCTAssertLessThan(Logger.Level.warning, .error)
        XCTAssertLessThan(Logger.Level.error, .critical)
    }

    func testFormattedLineSortsAndQuotesMetadata() {
        let record = LogRecord(
            level: .warning,
            label: "amqpretry.worker",
            message: "handler failed",
            metadata: ["b.key": "two words", "a.key": "plain", "c.key": "", "d.key": "say \"hi\""],
            date: Date(timeIntervalSince1970: 1_700_000_000.123)
        )

        let line = record.formattedLine()

        let expected = "2023-11-14T22:13:20.123Z warning amqpretry.worker: handler failed "
            + "a.key=plain b.key=\"two words\" c.key=\"\" d.key=\"say \\\"hi\\\"\""
        XCTAssertEqual(line, expected)
    }

    func testFormattedLineEscapesLineBreaks() {
        let record = LogRecord(
            level: .error,
            label: "test",
            message: "first\nsecond",
            metadata: [LogKey.error: "line1\nline2"],
            date: Date(timeIntervalSince1970: 0)
        )

        let line = record.formattedLine()

        XCTAssertFalse(line.contains("\n"))
        XCTAssertEqual(line, "1970-01-01T00:00:00.000Z error test: first\\nsecond amqpretry.error=\"line1\\nline2\"")
    }

    func testLogKeysHaveProjectPrefix() {
        let keys = [
            LogKey.cid, LogKey.origCID, LogKey.target, LogKey.service, LogKey.attempt, LogKey.repeats,
            LogKey.interval, LogKey.queue, LogKey.error, LogKey.reason, LogKey.deliveryTag, LogKey.broker,
            LogKey.callback,
        ]

        XCTAssertEqual(Set(keys).count, keys.count)
        for key in keys {
            XCTAssertTrue(key.hasPrefix("amqpretry."), key)
        }
        XCTAssertEqual(LogKey.interval, "amqpretry.interval_ms")
        XCTAssertEqual(LogKey.origCID, "amqpretry.orig_cid")
        XCTAssertEqual(LogKey.deliveryTag, "amqpretry.delivery_tag")
    }
}
