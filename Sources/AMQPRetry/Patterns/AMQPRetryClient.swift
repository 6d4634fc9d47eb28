/// A connection for programs outside any service that invoke services with ``InvokeRetry``.
///
/// ```swift
/// let client = try await AMQPRetryClient.connect(configuration: .fromEnvironment())
/// let cid = try await client.invokeRetry.invokeAsync("billing.charge", request, repeats: 3, seconds: 5,
///                                                    callback: "billing.charged")
/// await client.close()
/// ```
public final class AMQPRetryClient: Sendable {
    let engine: InvocationEngine

    private init(engine: InvocationEngine) {
        self.engine = engine
    }

    /// Connects to RabbitMQ.
    /// - Parameters:
    ///   - configuration: the broker URL and connection settings.
    ///   - name: the connection name that the broker's management UI shows.
    ///   - logger: receives connection and retry events; by default nothing is logged.
    /// - Throws: ``AMQPError`` when the broker cannot be reached or refuses the login.
    public static func connect(
        configuration: ConnectionConfiguration,
        name: String = "amqp-retry client",
        logger: Logger = .disabled
    ) async throws -> AMQPRetryClient {
        let engine = try await InvocationEngine.start(configuration: configuration, name: name, logger: logger)
        return AMQPRetryClient(engine: engine)
    }

    /// The invoke/retry pattern with an empty `source` and a fresh `orig_cid` for each call.
    public var invokeRetry: InvokeRetry {
        InvokeRetry(engine: engine, source: "", origCID: nil)
    }

    /// Closes the connection after the publishes already started are confirmed.
    public func close() async {
        await engine.close()
    }
}
