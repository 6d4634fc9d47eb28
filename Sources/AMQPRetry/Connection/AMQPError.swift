import CRabbitMQ

/// An error from the AMQP connection: the failure, the operation, and the broker's reply.
///
/// The description names the operation, the broker address and the broker's reply code and
/// text, and never the password.
public struct AMQPError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure.
    public enum Code: String, Sendable, Hashable {
        /// The TCP or TLS connection could not be opened.
        case connectionFailed = "connection failed"
        /// The broker refused the login (wrong user name, password or virtual host).
        case loginFailed = "login failed"
        /// The connection broke or the broker closed it.
        case connectionLost = "connection lost"
        /// The broker closed the channel, for example on a declare with different arguments.
        case channelClosed = "channel closed"
        /// A blocking step passed its deadline.
        case timeout = "timed out"
        /// The broker rejected a publish with `basic.nack`.
        case publishNacked = "publish rejected by the broker (basic.nack)"
        /// A mandatory publish reached no queue and came back with `basic.return`.
        case unroutable = "message returned as unroutable (basic.return)"
        /// The message cannot be encoded within AMQP's limits, so nothing of it was sent.
        case invalidMessage = "invalid message"
        /// The connection was closed by this process.
        case closed = "connection closed by the application"
        /// librabbitmq reported an error that fits no other code.
        case libraryError = "librabbitmq error"
    }

    /// The kind of failure.
    public let code: Code
    /// The AMQP method or step that failed, such as `basic.publish` or `queue.declare`.
    public let operation: String
    /// The broker's reply code, such as 404 or 406, when the broker closed a channel or connection.
    public let replyCode: UInt16?
    /// The broker's reply text, or librabbitmq's error string.
    public let replyText: String?

    /// Creates an error.
    public init(_ code: Code, operation: String, replyCode: UInt16? = nil, replyText: String? = nil) {
        self.code = code
        self.operation = operation
        self.replyCode = replyCode
        self.replyText = replyText
    }

    /// Whether the same step may succeed on a new connection, as opposed to a fault of the request.
    public var isRetriable: Bool {
        switch code {
        case .connectionFailed, .connectionLost, .timeout, .publishNacked: return true
        case .loginFailed, .channelClosed, .unroutable, .invalidMessage, .closed, .libraryError: return false
        }
    }

    /// A sentence naming the failure, the operation and the broker's reply.
    public var description: String {
        var text = "\(operation) failed: \(code.rawValue)"
        if let replyCode {
            text += " (reply code \(replyCode))"
        }
        if let replyText, !replyText.isEmpty {
            text += ": \(replyText)"
        }
        return text
    }
}

extension AMQPError {
    /// Makes an error from a librabbitmq status code such as `AMQP_STATUS_SOCKET_ERROR`.
    static func status(_ status: Int32, operation: String) -> AMQPError {
        let text = String(cString: amqp_error_string2(status))
        switch status {
        case AMQP_STATUS_TIMEOUT.rawValue:
            return AMQPError(.timeout, operation: operation, replyText: text)
        case AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue,
             AMQP_STATUS_CONNECTION_CLOSED.rawValue,
             AMQP_STATUS_SOCKET_ERROR.rawValue,
             AMQP_STATUS_SOCKET_CLOSED.rawValue,
             AMQP_STATUS_SSL_ERROR.rawValue:
            return AMQPError(.connectionLost, operation: operation, replyText: text)
        default:
            return AMQPError(.libraryError, operation: operation, replyText: text)
        }
    }

    /// Makes an error from the reply of a librabbitmq RPC, or returns `nil` when it succeeded.
    static func rpcReply(_ reply: amqp_rpc_reply_t, operation: String) -> AMQPError? {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return nil
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return status(reply.library_error, operation: operation)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            return serverException(reply.reply, operation: operation)
        default:
            return AMQPError(.libraryError, operation: operation, replyText: "no reply")
        }
    }

    /// Makes an error from a `channel.close` or `connection.close` method sent by the broker.
    static func serverException(_ method: amqp_method_t, operation: String) -> AMQPError {
        switch method.id {
        case AMQP_CHANNEL_CLOSE_METHOD:
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            return AMQPError(.channelClosed, operation: operation, replyCode: close.reply_code,
                             replyText: String(amqpBytes: close.reply_text))
        case AMQP_CONNECTION_CLOSE_METHOD:
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            return AMQPError(.connectionLost, operation: operation, replyCode: close.reply_code,
                             replyText: String(amqpBytes: close.reply_text))
        default:
            return AMQPError(.libraryError, operation: operation,
                             replyText: "unexpected method 0x\(String(method.id, radix: 16))")
        }
    }
}
