import Foundation

/// The address, credentials and connection settings of a RabbitMQ broker, usually parsed
/// from an `amqp://` or `amqps://` URL.
///
/// The URL follows the RabbitMQ URI specification (https://www.rabbitmq.com/docs/uri-spec):
/// `amqp://user:password@host:port/vhost?key=value`, with user, password, host and virtual host
/// percent-decoded. Every part is optional and falls back to the defaults documented on each
/// property. The query keys are those of RabbitMQ's URI query parameters
/// (`heartbeat`, `frame_max`, `channel_max`, `connection_timeout`, `cacertfile`, `certfile`,
/// `keyfile`, `verify`, `server_name_indication`) plus `operation_timeout` and `queue_type`,
/// which are AMQPRetry's own. Unknown keys are rejected.
///
/// ``description``, ``redactedURL`` and every ``URLError`` show `***` in place of the password.
public struct ConnectionConfiguration: Sendable, CustomStringConvertible {
    /// The port of `amqp://` URLs without a port.
    public static let defaultPort = 5672

    /// The port of `amqps://` URLs without a port.
    public static let defaultTLSPort = 5671

    /// The broker's host name or IP address; an IPv6 address is stored without brackets.
    /// The default is `localhost`.
    public var host: String

    /// The broker's TCP port. The default is 5672, or 5671 with TLS.
    public var port: Int

    /// The user name for the SASL PLAIN login. The default is `guest`.
    public var user: String

    /// The password for the SASL PLAIN login. The default is `guest`.
    public var password: String

    /// The virtual host. The default, used when the URL has no path, is `/`.
    ///
    /// - Important: Under the URI specification, `amqp://host/` names the empty virtual host,
    ///   which RabbitMQ does not have by default. Write `amqp://host/%2F` or leave the path out
    ///   for the virtual host `/`.
    public var virtualHost: String

    /// The heartbeat interval to request from the broker; zero disables heartbeats.
    /// The default is 60 seconds (query key `heartbeat`, in seconds).
    public var heartbeat: Duration

    /// The largest frame size in bytes to request; zero means no limit.
    /// The default is 131072 (query key `frame_max`).
    public var frameMax: Int

    /// The largest number of channels to request; zero accepts the broker's limit.
    /// The default is 0 (query key `channel_max`).
    public var channelMax: Int

    /// The time allowed to open the TCP connection, complete TLS and log in.
    /// The default is 30 seconds (query key `connection_timeout`, in milliseconds).
    public var connectionTimeout: Duration

    /// The deadline of each blocking step on an open connection, such as a declare or the wait
    /// for a publisher confirm. The default is 30 seconds (query key `operation_timeout`, in
    /// milliseconds, an AMQPRetry extension).
    public var operationTimeout: Duration

    /// The TLS settings; set for `amqps://` URLs and `nil` for `amqp://` ones.
    public var tls: TLSConfiguration?

    /// The type of the service, delay and parking queues this process declares (query key
    /// `queue_type`, `classic` or `quorum`, an AMQPRetry extension). Every process that uses the
    /// same queues must use the same type. The default is `classic`.
    public var queueType: QueueType = .classic

    /// Further brokers of the same cluster, tried in turn when the current one cannot be
    /// reached. Each has its own host and port, and every other setting is shared. The default
    /// is an empty list.
    public var failoverAddresses: [BrokerAddress] = []

    /// A broker's host and port.
    public struct BrokerAddress: Sendable, Hashable {
        /// The host name or IP address.
        public var host: String
        /// The port.
        public var port: Int

        /// Creates an address.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// Every broker to try, the URL's own first.
    public var addresses: [BrokerAddress] {
        [BrokerAddress(host: host, port: port)] + failoverAddresses
    }

    /// Returns a copy that connects to `address`, with every other setting unchanged.
    public func connecting(to address: BrokerAddress) -> ConnectionConfiguration {
        var copy = self
        copy.host = address.host
        copy.port = address.port
        return copy
    }

    /// Creates a configuration from its parts. The values are not checked.
    ///
    /// - Parameters:
    ///   - host: The broker's host name or IP address. The default is `localhost`.
    ///   - port: The broker's port. The default is 5672, or 5671 when `tls` is set.
    ///   - user: The user name. The default is `guest`.
    ///   - password: The password. The default is `guest`.
    ///   - virtualHost: The virtual host. The default is `/`.
    ///   - tls: The TLS settings, or `nil` for a plain TCP connection (the default).
    public init(
        host: String = "localhost",
        port: Int? = nil,
        user: String = "guest",
        password: String = "guest",
        virtualHost: String = "/",
        tls: TLSConfiguration? = nil
    ) {
        self.host = host
        self.port = port ?? (tls == nil ? Self.defaultPort : Self.defaultTLSPort)
        self.user = user
        self.password = password
        self.virtualHost = virtualHost
        self.heartbeat = .seconds(60)
        self.frameMax = 131_072
        self.channelMax = 0
        self.connectionTimeout = .seconds(30)
        self.operationTimeout = .seconds(30)
        self.tls = tls
    }

    /// Parses an `amqp://` or `amqps://` URL, or a comma-separated list of them for the nodes
    /// of a cluster.
    ///
    /// With a list, the first URL gives every setting, and each further URL adds only its host
    /// and port to ``failoverAddresses``.
    ///
    /// - Parameter url: The URL, such as `amqp://guest:guest@localhost:5672/%2F?heartbeat=30`,
    ///   or a list such as `amqp://guest:guest@node1:5672/%2F,amqp://guest:guest@node2:5672/%2F`.
    /// - Throws: ``URLError`` naming the invalid part and its value, never the password.
    public init(url: String) throws {
        let urls = Self.splitURLList(url)
        self = try URLParser(url: urls[0]).parse()
        for other in urls.dropFirst() {
            let parsed = try URLParser(url: other).parse()
            failoverAddresses.append(BrokerAddress(host: parsed.host, port: parsed.port))
        }
    }

    /// Splits a list at each comma that starts another `amqp://` or `amqps://` URL, so that a
    /// comma inside a password stays where it is.
    private static func splitURLList(_ text: String) -> [String] {
        var urls: [String] = []
        var current = ""
        var rest = Substring(text)
        while let comma = rest.firstIndex(of: ",") {
            let after = rest[rest.index(after: comma)...]
            current += rest[..<comma]
            if after.hasPrefix("amqp://") || after.hasPrefix("amqps://") {
                urls.append(current)
                current = ""
            } else {
                current += ","
            }
            rest = after
        }
        urls.append(current + rest)
        return urls
    }

    /// Parses the URL in an environment variable, or `defaultURL` when the variable is unset or empty.
    ///
    /// - Parameters:
    ///   - variable: The name of the environment variable. The default is `AMQP_URL`.
    ///   - defaultURL: The URL to use when the variable is unset or empty. The default is
    ///     `amqp://guest:guest@localhost:5672/%2F`.
    /// - Throws: ``URLError`` naming the variable, the invalid part and its value.
    public static func fromEnvironment(
        variable: String = "AMQP_URL",
        default defaultURL: String = "amqp://guest:guest@localhost:5672/%2F"
    ) throws -> ConnectionConfiguration {
        guard let url = ProcessInfo.processInfo.environment[variable], !url.isEmpty else {
            return try ConnectionConfiguration(url: defaultURL)
        }

        do {
            return try ConnectionConfiguration(url: url)
        } catch var error as URLError {
            error.environmentVariable = variable
            throw error
        }
    }

    /// The broker as `host:port`, with an IPv6 address in brackets, for log metadata.
    public var brokerAddress: String {
        "\(Self.hostForURL(host)):\(port)"
    }

    /// The configuration as a URL with `***` in place of the password.
    ///
    /// The query lists only settings that differ from the defaults. A TLS configuration that
    /// turns off only ``TLSConfiguration/verifyHostname`` has no query form and is left out.
    public var redactedURL: String {
        let scheme = tls == nil ? "amqp" : "amqps"
        let authority = "\(Self.percentEncoded(user)):***@\(Self.hostForURL(host)):\(port)"
        let query = queryItems.map { "\($0.key)=\(Self.percentEncoded($0.value, keeping: "/:"))" }.joined(separator: "&")
        return "\(scheme)://\(authority)/\(Self.percentEncoded(virtualHost))" + (query.isEmpty ? "" : "?" + query)
    }

    /// The redacted URL.
    public var description: String {
        redactedURL
    }
}

// MARK: - TLS

extension ConnectionConfiguration {
    /// TLS settings of an `amqps://` connection.
    ///
    /// The paths are not checked here; the connection reports a file it cannot read when it opens.
    public struct TLSConfiguration: Sendable, Hashable {
        /// A PEM file of CA certificates to trust (query key `cacertfile`). The default, `nil`,
        /// trusts the system bundle `/etc/ssl/certs/ca-certificates.crt` (Debian's path), because
        /// librabbitmq 0.11 loads no CA certificates by itself.
        public var caCertificatePath: String?

        /// A PEM client certificate for mutual TLS (query key `certfile`). The default is `nil`.
        public var certificatePath: String?

        /// The PEM private key of ``certificatePath`` (query key `keyfile`). The default is `nil`.
        public var keyPath: String?

        /// Whether to check the broker's certificate chain. The default is `true`;
        /// `verify=verify_none` sets it to `false`.
        public var verifyPeer: Bool

        /// Whether to check that the broker's certificate names ``ConnectionConfiguration/host``.
        /// The default is `true`; `verify=verify_none` sets it to `false`.
        public var verifyHostname: Bool

        /// Creates TLS settings; every argument defaults to the value documented on its property.
        public init(
            caCertificatePath: String? = nil,
            certificatePath: String? = nil,
            keyPath: String? = nil,
            verifyPeer: Bool = true,
            verifyHostname: Bool = true
        ) {
            self.caCertificatePath = caCertificatePath
            self.certificatePath = certificatePath
            self.keyPath = keyPath
            self.verifyPeer = verifyPeer
            self.verifyHostname = verifyHostname
        }
    }
}

// MARK: - Errors

extension ConnectionConfiguration {
    /// An AMQP URL that cannot be parsed. The message shows the URL with `***` in place of the password.
    public struct URLError: Error, Sendable, CustomStringConvertible {
        /// The URL with the password replaced by `***`.
        public let redactedURL: String

        /// The invalid part, such as `scheme`, `port` or `query parameter 'heartbeat'`.
        public let part: String

        /// A sentence that names the problem with the part and how to fix it.
        public let reason: String

        /// The environment variable the URL came from, if any.
        public internal(set) var environmentVariable: String?

        /// A message such as `invalid AMQP URL 'amqp://guest:***@host:99999/': port '99999' is
        /// not a number between 1 and 65535`.
        public var description: String {
            let source = environmentVariable.map { " in environment variable \($0)" } ?? ""
            return "invalid AMQP URL \(DisplayText.quoted(redactedURL))\(source): \(reason)"
        }
    }
}

// MARK: - URL rendering

extension ConnectionConfiguration {
    /// The query keys and values of the settings that differ from the defaults, sorted by key.
    private var queryItems: [(key: String, value: String)] {
        let defaults = ConnectionConfiguration()
        var items: [(key: String, value: String)] = []

        if heartbeat != defaults.heartbeat {
            items.append(("heartbeat", String(heartbeat.components.seconds)))
        }
        if frameMax != defaults.frameMax {
            items.append(("frame_max", String(frameMax)))
        }
        if channelMax != defaults.channelMax {
            items.append(("channel_max", String(channelMax)))
        }
        if connectionTimeout != defaults.connectionTimeout {
            items.append(("connection_timeout", String(Self.milliseconds(connectionTimeout))))
        }
        if operationTimeout != defaults.operationTimeout {
            items.append(("operation_timeout", String(Self.milliseconds(operationTimeout))))
        }
        if queueType != defaults.queueType {
            items.append(("queue_type", queueType.rawValue))
        }
        items += tlsQueryItems
        return items.sorted { $0.key < $1.key }
    }

    private var tlsQueryItems: [(key: String, value: String)] {
        guard let tls else {
            return []
        }

        var items: [(key: String, value: String)] = []
        if let path = tls.caCertificatePath {
            items.append(("cacertfile", path))
        }
        if let path = tls.certificatePath {
            items.append(("certfile", path))
        }
        if let path = tls.keyPath {
            items.append(("keyfile", path))
        }
        if !tls.verifyPeer {
            items.append(("verify", "verify_none"))
        }
        return items
    }

    private static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Puts an IPv6 address in brackets and percent-encodes other hosts.
    private static func hostForURL(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : percentEncoded(host)
    }

    /// Percent-encodes every byte except the unreserved characters of RFC 3986 and those in `kept`.
    static func percentEncoded(_ text: String, keeping kept: String = "") -> String {
        var encoded = ""
        for byte in text.utf8 {
            let scalar = Unicode.Scalar(byte)
            let isUnreserved = ("0"..."9").contains(scalar) || ("a"..."z").contains(scalar)
                || ("A"..."Z").contains(scalar) || "-._~".unicodeScalars.contains(scalar) || kept.unicodeScalars.contains(scalar)
            if isUnreserved {
                encoded.unicodeScalars.append(scalar)
            } else {
                encoded += String(format: "%%%02X", byte)
            }
        }
        return encoded
    }

    /// Replaces the password of a URL that may be malformed with `***`.
    ///
    /// The password is taken to run from the first `:` after `://` to the last `@`, which
    /// hides it even when it contains unencoded `/`, `?`, `#` or `@`.
    static func redact(_ url: String) -> String {
        let start = url.range(of: "://")?.upperBound ?? url.startIndex
        guard let at = url[start...].lastIndex(of: "@"), let colon = url[start..<at].firstIndex(of: ":") else {
            return url
        }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}

// MARK: - URL parsing

/// Parses an AMQP URL into a configuration, one part at a time.
private struct URLParser {
    typealias URLError = ConnectionConfiguration.URLError

    let url: String

    func parse() throws -> ConnectionConfiguration {
        let (scheme, rest) = try splitScheme()
        var configuration = ConnectionConfiguration(tls: scheme == "amqps" ? .init() : nil)

        try checkCharacters(rest)
        let (hierarchy, query) = split(rest, at: "?")
        let (authority, path) = split(hierarchy, at: "/")

        // An '@' after the host means the user info held an unencoded '/' or '?', and quoting
        // the parts after it would show a piece of the password.
        if path?.contains("@") == true || query?.contains("@") == true {
            let reason = "'@' appears after the host; percent-encode '/', '?', '#' and '@' in the user name "
                + "and password, and write '@' in the virtual host or query as %40"
            throw error("user info", reason)
        }

        try applyAuthority(authority, to: &configuration)
        if let path {
            configuration.virtualHost = try virtualHost(path)
        }
        if let query {
            try applyQuery(query, to: &configuration)
        }
        return configuration
    }

    private func error(_ part: String, _ reason: String) -> URLError {
        URLError(redactedURL: ConnectionConfiguration.redact(url), part: part, reason: reason)
    }

    private func split(_ text: Substring, at separator: Character) -> (Substring, Substring?) {
        guard let index = text.firstIndex(of: separator) else {
            return (text, nil)
        }
        return (text[..<index], text[text.index(after: index)...])
    }

    // MARK: Scheme and characters

    private func splitScheme() throws -> (scheme: String, rest: Substring) {
        guard let separator = url.range(of: "://") else {
            throw error("scheme", "the scheme is missing; the URL must start with amqp:// or amqps://")
        }

        let scheme = url[..<separator.lowerBound].lowercased()
        guard scheme == "amqp" || scheme == "amqps" else {
            throw error("scheme", "scheme \(DisplayText.quoted(scheme)) is not supported; use amqp:// or amqps://")
        }
        return (scheme, url[separator.upperBound...])
    }

    private func checkCharacters(_ rest: Substring) throws {
        if rest.contains("#") {
            throw error("fragment", "a fragment ('#') is not allowed; percent-encode '#' as %23")
        }

        let hasSpaceOrControl = rest.unicodeScalars.contains { $0 == " " || $0.properties.generalCategory == .control }
        if hasSpaceOrControl {
            throw error("url", "the URL contains a space or a control character; percent-encode it")
        }
    }

    // MARK: Authority

    private func applyAuthority(_ authority: Substring, to configuration: inout ConnectionConfiguration) throws {
        var hostAndPort = authority
        if let at = authority.lastIndex(of: "@") {
            try applyUserInfo(authority[..<at], to: &configuration)
            hostAndPort = authority[authority.index(after: at)...]
        }

        let (host, port) = try splitHostAndPort(hostAndPort)
        if !host.isEmpty {
            configuration.host = host
        }
        if let port, !port.isEmpty {
            configuration.port = try parsePort(port)
        }
    }

    private func applyUserInfo(_ userInfo: Substring, to configuration: inout ConnectionConfiguration) throws {
        let (user, password) = split(userInfo, at: ":")
        guard let decodedUser = percentDecoded(user) else {
            throw error("user name", "user name \(DisplayText.quoted(String(user))) is not valid percent-encoded UTF-8; write '%' as %25")
        }
        configuration.user = decodedUser

        // A user name without ':' keeps the default password, as the URI specification requires.
        if let password {
            guard let decodedPassword = percentDecoded(password) else {
                throw error("password", "the password is not valid percent-encoded UTF-8; write '%' as %25")
            }
            configuration.password = decodedPassword
        }
    }

    /// Splits `host:port` or `[IPv6]:port` and percent-decodes the host.
    private func splitHostAndPort(_ text: Substring) throws -> (host: String, port: Substring?) {
        if text.hasPrefix("[") {
            return try splitBracketedHost(text)
        }

        let (host, port) = split(text, at: ":")
        if port?.contains(":") == true {
            throw error("host", "host \(DisplayText.quoted(String(text))) has several ':'; write an IPv6 address in brackets, such as [::1]")
        }
        guard let decoded = percentDecoded(host) else {
            throw error("host", "host \(DisplayText.quoted(String(host))) is not valid percent-encoded UTF-8")
        }
        if decoded.unicodeScalars.contains(where: { $0 == " " || $0.properties.generalCategory == .control || "/?#@[]".unicodeScalars.contains($0) }) {
            throw error("host", "host \(DisplayText.quoted(decoded)) contains a character that no host name has")
        }
        return (decoded, port)
    }

    private func splitBracketedHost(_ text: Substring) throws -> (host: String, port: Substring?) {
        guard let close = text.firstIndex(of: "]") else {
            throw error("host", "host \(DisplayText.quoted(String(text))) has no closing ']'")
        }

        let address = text[text.index(after: text.startIndex)..<close]
        let isIPv6 = !address.isEmpty && address.contains(":")
            && address.unicodeScalars.allSatisfy { $0.properties.isASCIIHexDigit || $0 == ":" || $0 == "." }
        guard isIPv6 else {
            throw error("host", "host \(DisplayText.quoted(String(text))) is not an IPv6 address in brackets")
        }

        let afterBracket = text[text.index(after: close)...]
        guard afterBracket.isEmpty || afterBracket.hasPrefix(":") else {
            throw error("host", "host \(DisplayText.quoted(String(text))) has text after ']'; only ':port' may follow")
        }
        return (String(address), afterBracket.isEmpty ? nil : afterBracket.dropFirst())
    }

    private func parsePort(_ text: Substring) throws -> Int {
        guard let port = decimalInteger(text), (1...65535).contains(port) else {
            // Text that is not digits may be a password whose `@host` part is missing, as in
            // `amqp://user:secret/`, so only a number is echoed.
            guard text.allSatisfy(\.isASCIIDigitCharacter) else {
                throw error("port", "the port is not a number between 1 and 65535; "
                    + "if the text after ':' is a password, add '@host' after it")
            }
            throw error("port", "port \(DisplayText.quoted(String(text))) is not a number between 1 and 65535")
        }
        return Int(port)
    }

    // MARK: Virtual host

    private func virtualHost(_ path: Substring) throws -> String {
        if path.contains("/") {
            throw error("virtual host", "virtual host \(DisplayText.quoted(String(path))) contains '/'; write it as %2F")
        }
        guard let decoded = percentDecoded(path) else {
            throw error("virtual host", "virtual host \(DisplayText.quoted(String(path))) is not valid percent-encoded UTF-8")
        }
        return decoded
    }

    // MARK: Query

    private func applyQuery(_ query: Substring, to configuration: inout ConnectionConfiguration) throws {
        var seenKeys: Set<String> = []
        for item in query.split(separator: "&", omittingEmptySubsequences: true) {
            let (rawKey, rawValue) = split(item, at: "=")
            guard let key = percentDecoded(rawKey), let rawValue, let value = percentDecoded(rawValue) else {
                throw error("query", "query item \(DisplayText.quoted(String(item))) is not key=value in percent-encoded UTF-8")
            }
            guard seenKeys.insert(key).inserted else {
                throw error("query parameter '\(key)'", "query parameter \(DisplayText.quoted(key)) is given more than once")
            }
            try applyQueryParameter(key: key, value: value, to: &configuration)
        }

        try checkClientCertificate(configuration.tls)
    }

    private func applyQueryParameter(key: String, value: String, to configuration: inout ConnectionConfiguration) throws {
        switch key {
        case "heartbeat":
            configuration.heartbeat = .seconds(try integer(key, value, in: 0...65535, unit: "seconds"))
        case "frame_max":
            configuration.frameMax = Int(try frameMax(value))
        case "channel_max":
            configuration.channelMax = Int(try integer(key, value, in: 0...65535, unit: "channels"))
        case "connection_timeout":
            configuration.connectionTimeout = .milliseconds(try integer(key, value, in: 1...2_147_483_647, unit: "milliseconds"))
        case "operation_timeout":
            configuration.operationTimeout = .milliseconds(try integer(key, value, in: 1...2_147_483_647, unit: "milliseconds"))
        case "queue_type":
            guard let type = QueueType(rawValue: value) else {
                throw error("query parameter 'queue_type'",
                            "query parameter 'queue_type' is \(DisplayText.quoted(value)), expected 'classic' or 'quorum'")
            }
            configuration.queueType = type
        case "cacertfile", "certfile", "keyfile", "verify", "server_name_indication":
            try applyTLSParameter(key: key, value: value, to: &configuration.tls)
        default:
            let known = "heartbeat, frame_max, channel_max, connection_timeout, operation_timeout, queue_type, "
                + "cacertfile, certfile, keyfile, verify, server_name_indication"
            throw error("query parameter '\(key)'", "query parameter \(DisplayText.quoted(key)) is unknown; the known ones are \(known)")
        }
    }

    private func applyTLSParameter(key: String, value: String, to tls: inout ConnectionConfiguration.TLSConfiguration?) throws {
        guard var settings = tls else {
            throw error("query parameter '\(key)'", "query parameter '\(key)' applies only to amqps:// URLs")
        }
        if value.isEmpty {
            throw error("query parameter '\(key)'", "query parameter '\(key)' has an empty value")
        }

        switch key {
        case "cacertfile": settings.caCertificatePath = value
        case "certfile": settings.certificatePath = value
        case "keyfile": settings.keyPath = value
        case "verify": try applyVerify(value, to: &settings)
        default: break // server_name_indication: accepted for compatibility and ignored.
        }
        tls = settings
    }

    private func applyVerify(_ value: String, to settings: inout ConnectionConfiguration.TLSConfiguration) throws {
        switch value {
        case "verify_peer":
            settings.verifyPeer = true
            settings.verifyHostname = true
        case "verify_none":
            settings.verifyPeer = false
            settings.verifyHostname = false
        default:
            throw error("query parameter 'verify'", "query parameter 'verify' is \(DisplayText.quoted(value)), expected verify_peer or verify_none")
        }
    }

    private func checkClientCertificate(_ tls: ConnectionConfiguration.TLSConfiguration?) throws {
        guard let tls, (tls.certificatePath == nil) != (tls.keyPath == nil) else {
            return
        }
        throw error("query parameter 'certfile'", "certfile and keyfile must be given together")
    }

    private func frameMax(_ value: String) throws -> Int64 {
        let frameMax = try integer("frame_max", value, in: 0...2_147_483_647, unit: "bytes")
        guard frameMax == 0 || frameMax >= 4096 else {
            throw error("query parameter 'frame_max'", "query parameter 'frame_max' is \(frameMax); use 0 for no limit or at least 4096 bytes")
        }
        return frameMax
    }

    private func integer(_ key: String, _ value: String, in range: ClosedRange<Int64>, unit: String) throws -> Int64 {
        guard let number = decimalInteger(Substring(value)), range.contains(number) else {
            let reason = "query parameter '\(key)' is \(DisplayText.quoted(value)), expected a whole number of \(unit) "
                + "from \(range.lowerBound) to \(range.upperBound)"
            throw error("query parameter '\(key)'", reason)
        }
        return number
    }

    // MARK: Text helpers

    /// Parses 1 to 10 ASCII digits, without a sign.
    private func decimalInteger(_ text: Substring) -> Int64? {
        guard (1...10).contains(text.utf8.count), text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else {
            return nil
        }
        return Int64(text)
    }

    /// Decodes `%XX` escapes; returns `nil` for a malformed escape or bytes that are not UTF-8.
    private func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

private extension Character {
    /// Whether the character is one of the ASCII digits 0 to 9.
    var isASCIIDigitCharacter: Bool {
        isASCII && isNumber
    }
}
