import AMQPRetry
import Foundation
import XCTest

final class ConnectionConfigurationTests: XCTestCase {
    private let password = "s3cr3t-pa55"

    // MARK: Defaults and the URI specification's examples

    func testDefaults() throws {
        let configuration = try ConnectionConfiguration(url: "amqp://")

        XCTAssertEqual(configuration.host, "localhost")
        XCTAssertEqual(configuration.port, 5672)
        XCTAssertEqual(configuration.user, "guest")
        XCTAssertEqual(configuration.password, "guest")
        XCTAssertEqual(configuration.virtualHost, "/")
        XCTAssertEqual(configuration.heartbeat, .seconds(60))
        XCTAssertEqual(configuration.frameMax, 131_072)
        XCTAssertEqual(configuration.channelMax, 0)
        XCTAssertEqual(configuration.connectionTimeout, .seconds(30))
        XCTAssertEqual(configuration.operationTimeout, .seconds(30))
        XCTAssertNil(configuration.tls)
    }

    func testURISpecificationExamples() throws {
        typealias Expected = (user: String, password: String, host: String, port: Int, virtualHost: String)
        let cases: [(url: String, expected: Expected)] = [
            ("amqp://user:pass@host:10000/vhost", ("user", "pass", "host", 10000, "vhost")),
            ("amqp://user%61:%61pass@ho%61st:10000/v%2fhost", ("usera", "apass", "hoast", 10000, "v/host")),
            ("amqp://", ("guest", "guest", "localhost", 5672, "/")),
            ("amqp://:@/", ("", "", "localhost", 5672, "")),
            ("amqp://user@", ("user", "guest", "localhost", 5672, "/")),
            ("amqp://user:pass@", ("user", "pass", "localhost", 5672, "/")),
            ("amqp://host", ("guest", "guest", "host", 5672, "/")),
            ("amqp://:10000", ("guest", "guest", "localhost", 10000, "/")),
            ("amqp:///vhost", ("guest", "guest", "localhost", 5672, "vhost")),
            ("amqp://host/", ("guest", "guest", "host", 5672, "")),
            ("amqp://host/%2f", ("guest", "guest", "host", 5672, "/")),
            ("amqp://host/%2F", ("guest", "guest", "host", 5672, "/")),
            ("amqp://[::1]", ("guest", "guest", "::1", 5672, "/")),
            ("amqp://[::1]:5673/x", ("guest", "guest", "::1", 5673, "x")),
            ("amqp://[fe80::1:2]:", ("guest", "guest", "fe80::1:2", 5672, "/")),
            ("amqp://host:", ("guest", "guest", "host", 5672, "/")),
            ("AMQP://Host", ("guest", "guest", "Host", 5672, "/")),
            ("amqp://u:p%40ss%3Aw%2Frd@host", ("u", "p@ss:w/rd", "host", 5672, "/")),
            ("amqp://u:p@ss@host", ("u", "p@ss", "host", 5672, "/")),
            ("amqp://host/v%C3%A9", ("guest", "guest", "host", 5672, "vé")),
        ]

        for testCase in cases {
            let configuration = try ConnectionConfiguration(url: testCase.url)

            XCTAssertEqual(configuration.user, testCase.expected.user, testCase.url)
            XCTAssertEqual(configuration.password, testCase.expected.password, testCase.url)
            XCTAssertEqual(configuration.host, testCase.expected.host, testCase.url)
            XCTAssertEqual(configuration.port, testCase.expected.port, testCase.url)
            XCTAssertEqual(configuration.virtualHost, testCase.expected.virtualHost, testCase.url)
        }
    }

    func testAMQPSDefaults() throws {
        let configuration = try ConnectionConfiguration(url: "amqps://broker.example.com")

        XCTAssertEqual(configuration.port, 5671)
        XCTAssertEqual(configuration.tls, ConnectionConfiguration.TLSConfiguration())
        XCTAssertEqual(configuration.tls?.verifyPeer, true)
        XCTAssertEqual(configuration.tls?.verifyHostname, true)
        XCTAssertNil(configuration.tls?.caCertificatePath)
    }

    // MARK: Query parameters

    func testQueryParameters() throws {
        let url = "amqp://host?heartbeat=10&frame_max=4096&channel_max=16&connection_timeout=2500&operation_timeout=750"

        let configuration = try ConnectionConfiguration(url: url)

        XCTAssertEqual(configuration.heartbeat, .seconds(10))
        XCTAssertEqual(configuration.frameMax, 4096)
        XCTAssertEqual(configuration.channelMax, 16)
        XCTAssertEqual(configuration.connectionTimeout, .milliseconds(2500))
        XCTAssertEqual(configuration.operationTimeout, .milliseconds(750))
    }

    func testZeroDisablesHeartbeatAndFrameLimit() throws {
        let configuration = try ConnectionConfiguration(url: "amqp://host/?heartbeat=0&frame_max=0")

        XCTAssertEqual(configuration.heartbeat, .zero)
        XCTAssertEqual(configuration.frameMax, 0)
    }

    func testTLSQueryParameters() throws {
        let url = "amqps://host?cacertfile=/etc/ca.pem&certfile=/etc/client.pem&keyfile=/etc/client%20key.pem"
            + "&verify=verify_peer&server_name_indication=host"

        let tls = try XCTUnwrap(try ConnectionConfiguration(url: url).tls)

        XCTAssertEqual(tls.caCertificatePath, "/etc/ca.pem")
        XCTAssertEqual(tls.certificatePath, "/etc/client.pem")
        XCTAssertEqual(tls.keyPath, "/etc/client key.pem")
        XCTAssertTrue(tls.verifyPeer)
        XCTAssertTrue(tls.verifyHostname)
    }

    func testVerifyNone() throws {
        let tls = try XCTUnwrap(try ConnectionConfiguration(url: "amqps://host?verify=verify_none").tls)

        XCTAssertFalse(tls.verifyPeer)
        XCTAssertFalse(tls.verifyHostname)
    }

    func testEmptyQueryItemsIgnored() throws {
        let configuration = try ConnectionConfiguration(url: "amqp://host?&heartbeat=5&&")

        XCTAssertEqual(configuration.heartbeat, .seconds(5))
    }

    // MARK: Errors

    func testInvalidURLs() {
        let cases: [(url: String, part: String, reason: String)] = [
            ("", "scheme", "the scheme is missing"),
            ("localhost:5672", "scheme", "the scheme is missing"),
            ("http://host", "scheme", "scheme 'http' is not supported"),
            ("amqp://host:99999/", "port", "port '99999' is not a number between 1 and 65535"),
            ("amqp://host:0", "port", "port '0' is not a number between 1 and 65535"),
            ("amqp://host:-1", "port", "the port is not a number between 1 and 65535"),
            ("amqp://host:+1", "port", "the port is not a number between 1 and 65535"),
            ("amqp://host:abc", "port", "the port is not a number between 1 and 65535"),
            ("amqp://::1", "host", "write an IPv6 address in brackets"),
            ("amqp://[::1", "host", "has no closing ']'"),
            ("amqp://[host]", "host", "is not an IPv6 address in brackets"),
            ("amqp://[::1]x", "host", "only ':port' may follow"),
            ("amqp://ho%2Fst", "host", "contains a character that no host name has"),
            ("amqp://host/a/b", "virtual host", "virtual host 'a/b' contains '/'"),
            ("amqp://host/%zz", "virtual host", "is not valid percent-encoded UTF-8"),
            ("amqp://host/%FF", "virtual host", "is not valid percent-encoded UTF-8"),
            ("amqp://us%er@host", "user name", "user name 'us%er' is not valid percent-encoded UTF-8"),
            ("amqp://host#frag", "fragment", "a fragment ('#') is not allowed"),
            ("amqp://host/ vhost", "url", "contains a space or a control character"),
            ("amqp://host?heartbeat", "query", "is not key=value"),
            ("amqp://host?nope=1", "query parameter 'nope'", "query parameter 'nope' is unknown"),
            ("amqp://host?heartbeat=1&heartbeat=2", "query parameter 'heartbeat'", "is given more than once"),
            ("amqp://host?heartbeat=-1", "query parameter 'heartbeat'", "expected a whole number of seconds from 0 to 65535"),
            ("amqp://host?heartbeat=65536", "query parameter 'heartbeat'", "from 0 to 65535"),
            ("amqp://host?heartbeat=1.5", "query parameter 'heartbeat'", "'1.5', expected a whole number"),
            ("amqp://host?frame_max=4095", "query parameter 'frame_max'", "use 0 for no limit or at least 4096 bytes"),
            ("amqp://host?frame_max=2147483648", "query parameter 'frame_max'", "from 0 to 2147483647"),
            ("amqp://host?channel_max=70000", "query parameter 'channel_max'", "from 0 to 65535"),
            ("amqp://host?connection_timeout=0", "query parameter 'connection_timeout'", "milliseconds from 1 to"),
            ("amqp://host?operation_timeout=x", "query parameter 'operation_timeout'", "milliseconds from 1 to"),
            ("amqp://host?cacertfile=/ca.pem", "query parameter 'cacertfile'", "applies only to amqps:// URLs"),
            ("amqps://host?cacertfile=", "query parameter 'cacertfile'", "has an empty value"),
            ("amqps://host?verify=maybe", "query parameter 'verify'", "expected verify_peer or verify_none"),
            ("amqps://host?certfile=/c.pem", "query parameter 'certfile'", "certfile and keyfile must be given together"),
            ("amqps://host?keyfile=/k.pem", "query parameter 'certfile'", "certfile and keyfile must be given together"),
            ("amqp://host/vh@x", "user info", "'@' appears after the host"),
            ("amqp://guest:s3cr3t-pa55/", "port", "if the text after ':' is a password, add '@host'"),
        ]

        for testCase in cases {
            XCTAssertThrowsError(try ConnectionConfiguration(url: testCase.url), testCase.url) { error in
                guard let error = error as? ConnectionConfiguration.URLError else {
                    return XCTFail("unexpected error \(error) for \(testCase.url)")
                }
                XCTAssertEqual(error.part, testCase.part, testCase.url)
                XCTAssertTrue(error.reason.contains(testCase.reason), "\(testCase.url): \(error.reason)")
                XCTAssertTrue(error.description.hasPrefix("invalid AMQP URL '"), error.description)
            }
        }
    }

    func testPortErrorMessage() {
        let url = "amqp://guest:\(password)@host:99999/"

        XCTAssertThrowsError(try ConnectionConfiguration(url: url)) { error in
            XCTAssertEqual(
                "\(error)",
                "invalid AMQP URL 'amqp://guest:***@host:99999/': port '99999' is not a number between 1 and 65535"
            )
        }
    }

    func testNoErrorContainsPassword() {
        let urls = [
            "amqp://guest:\(password)@host:99999/",
            "amqp://guest:\(password)@host?nope=1",
            "amqp://guest:\(password)@host/a/b",
            "amqp://guest:\(password)@ho st",
            "amqp://guest:\(password)@[::1",
            "amqp://guest:\(password)%zz@host",
            "http://guest:\(password)@host",
            "amqp://guest:s3cr3t/pa55@host",
            "amqp://guest:s3cr3t?pa55@host",
            "amqp://guest:s3cr3t#pa55@host",
            "amqp://guest:s3cr3t:pa55@host:x",
            "guest:\(password)@host",
        ]

        for url in urls {
            XCTAssertThrowsError(try ConnectionConfiguration(url: url), url) { error in
                let description = "\(error)"
                XCTAssertFalse(description.contains("pa55"), description)
                XCTAssertFalse(description.contains("s3cr3t"), description)
                XCTAssertFalse(String(reflecting: error).contains("pa55"), url)
            }
        }
    }

    // MARK: Redacted URL

    func testDescriptionHidesPassword() throws {
        let configuration = try ConnectionConfiguration(url: "amqp://admin:\(password)@rabbit.local:5673/prod")

        XCTAssertEqual(configuration.description, "amqp://admin:***@rabbit.local:5673/prod")
        XCTAssertEqual(configuration.redactedURL, configuration.description)
        XCTAssertFalse("\(configuration)".contains(password))
    }

    func testRedactedURLOfDefaults() throws {
        let configuration = try ConnectionConfiguration(url: "amqp://")

        XCTAssertEqual(configuration.redactedURL, "amqp://guest:***@localhost:5672/%2F")
    }

    func testRedactedURLListsChangedSettings() throws {
        let url = "amqps://u%40x:\(password)@[::1]/?heartbeat=5&cacertfile=/etc/ca.pem&verify=verify_none&operation_timeout=1500"

        let configuration = try ConnectionConfiguration(url: url)

        XCTAssertEqual(
            configuration.redactedURL,
            "amqps://u%40x:***@[::1]:5671/?cacertfile=/etc/ca.pem&heartbeat=5&operation_timeout=1500&verify=verify_none"
        )
    }

    func testRedactedURLParsesBack() throws {
        let urls = [
            "amqp://a:b@host:1234/v%2Fh?channel_max=7&frame_max=8192",
            "amqps://[fe80::1]/?connection_timeout=100&certfile=/c.pem&keyfile=/k.pem",
            "amqp://host/",
        ]

        for url in urls {
            let configuration = try ConnectionConfiguration(url: url)
            let reparsed = try ConnectionConfiguration(url: configuration.redactedURL.replacingOccurrences(of: "***", with: "pw"))

            XCTAssertEqual(reparsed.redactedURL, configuration.redactedURL, url)
            XCTAssertEqual(reparsed.virtualHost, configuration.virtualHost, url)
            XCTAssertEqual(reparsed.tls, configuration.tls, url)
        }
    }

    func testBrokerAddress() throws {
        XCTAssertEqual(try ConnectionConfiguration(url: "amqp://u:\(password)@rabbit:5673").brokerAddress, "rabbit:5673")
        XCTAssertEqual(try ConnectionConfiguration(url: "amqps://[::1]").brokerAddress, "[::1]:5671")
    }

    // MARK: Memberwise initializer

    func testInitializerDefaults() {
        let plain = ConnectionConfiguration()
        let secure = ConnectionConfiguration(host: "h", tls: .init(verifyPeer: false))

        XCTAssertEqual(plain.port, 5672)
        XCTAssertEqual(plain.redactedURL, "amqp://guest:***@localhost:5672/%2F")
        XCTAssertEqual(secure.port, 5671)
        XCTAssertEqual(secure.redactedURL, "amqps://guest:***@h:5671/%2F?verify=verify_none")
    }

    // MARK: Environment

    func testFromEnvironmentReadsVariable() throws {
        let variable = "AMQPRETRY_TEST_URL_\(UUID().uuidString.prefix(8))"
        setenv(variable, "amqp://u:\(password)@envhost:5999/envvh", 1)
        defer { unsetenv(variable) }

        let configuration = try ConnectionConfiguration.fromEnvironment(variable: variable)

        XCTAssertEqual(configuration.host, "envhost")
        XCTAssertEqual(configuration.port, 5999)
        XCTAssertEqual(configuration.virtualHost, "envvh")
        XCTAssertEqual(configuration.password, password)
    }

    func testFromEnvironmentUsesDefaultWhenUnsetOrEmpty() throws {
        let variable = "AMQPRETRY_TEST_URL_\(UUID().uuidString.prefix(8))"

        let unset = try ConnectionConfiguration.fromEnvironment(variable: variable)
        setenv(variable, "", 1)
        defer { unsetenv(variable) }
        let empty = try ConnectionConfiguration.fromEnvironment(variable: variable, default: "amqp://fallback")

        XCTAssertEqual(unset.redactedURL, "amqp://guest:***@localhost:5672/%2F")
        XCTAssertEqual(empty.host, "fallback")
    }

    func testFromEnvironmentErrorNamesVariable() {
        let variable = "AMQPRETRY_TEST_URL_\(UUID().uuidString.prefix(8))"
        setenv(variable, "amqp://u:\(password)@host:99999", 1)
        defer { unsetenv(variable) }

        XCTAssertThrowsError(try ConnectionConfiguration.fromEnvironment(variable: variable)) { error in
            let description = "\(error)"
            XCTAssertTrue(description.contains("in environment variable \(variable)"), description)
            XCTAssertFalse(description.contains(password), description)
        }
    }
}
