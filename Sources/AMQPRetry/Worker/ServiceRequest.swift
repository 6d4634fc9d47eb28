/// Handles the requests of one service: returns the response, or throws to fail the call.
///
/// Any response that is not an error is a success, an empty one included.
public typealias ServiceHandler = @Sendable (ServiceRequest) async throws -> Payload

/// A request as a service handler receives it.
public struct ServiceRequest: Sendable {
    /// The request body and its content type. For a callback service this is the callback's
    /// JSON body, which ``callbackBody()`` decodes.
    public let payload: Payload
    /// The CID of the call.
    public let cid: CID
    /// The name of the service handling the request.
    public let service: String
    /// The number of this call of the invocation, starting at 1.
    public let attempt: Int
    /// The way the request arrived: a blocking call, a background invocation, or a callback.
    public let mode: InvocationMode
    /// The service that invoked this one, or the empty string.
    public let source: String
    /// The patterns a handler uses to invoke other services, bound to this request.
    public let patterns: Patterns

    /// Decodes the payload of a callback request.
    /// - Throws: when the payload is not a callback body.
    public func callbackBody() throws -> CallbackBody {
        try CallbackBody.decode(payload.bytes)
    }
}

/// The patterns a service reaches through its request, as Zato's services do with `self.patterns`.
public struct Patterns: Sendable {
    /// Invoke/retry with `source` set to the handling service and `orig_cid` to the request's CID.
    public let invokeRetry: InvokeRetry
}
