import AMQPRetry
import Foundation

/// A service that ends the worker process, which `amqp-retry worker` hosts only when the
/// environment variable `AMQPRETRY_DEMO_CRASH_SERVICE` is `1`. The fault tests use it to show
/// that an invocation which crashes every worker that handles it is parked after the worker's
/// redelivery limit, while the invocations behind it are still handled.
enum FaultServices {
    /// Exits the worker process with status 1 when its JSON request is `{"crash": true}`, and
    /// returns any other request unchanged.
    static let crash = "demo.crash"

    /// The environment variable that adds ``crash`` to the worker's services.
    static let environmentVariable = "AMQPRETRY_DEMO_CRASH_SERVICE"

    /// The exit status of a worker that ``crash`` ended.
    static let crashStatus: Int32 = 1

    /// Whether `AMQPRETRY_DEMO_CRASH_SERVICE` is `1`.
    static var isEnabled: Bool {
        ProcessInfo.processInfo.environment[environmentVariable] == "1"
    }

    /// Registers ``crash`` on `worker`, printing each call on `console` as the demo services do.
    ///
    /// A call that crashes prints its line, marked as failed, before the process exits, so that
    /// the lines on standard output count every call.
    static func register(on worker: Worker, console: Console) throws {
        try worker.register(crash) { request in
            guard requestsCrash(request.payload) else {
                console.record(ServiceCall(request, outcome: .success(request.payload)))
                return request.payload
            }
            console.record(ServiceCall(request, outcome: .failure("exiting the worker process on purpose")))
            exit(crashStatus)
        }
    }

    /// Returns whether a request is the JSON object `{"crash": true}`, possibly with other members.
    private static func requestsCrash(_ payload: Payload) -> Bool {
        guard let members = (try? payload.json())?.objectValue else {
            return false
        }
        return members["crash"] == .bool(true)
    }
}
