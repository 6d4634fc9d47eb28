@testable import AMQPRetry
import Foundation
import XCTest

/// Passwords never appear in errors or logs: not after a failed login, at trace level, nor in
/// the output of a full `amqp-retry demo` run, plainly, percent-encoded or in base64.
final class SecurityPasswordTests: XCTestCase {
    /// Wrong passwords for the guest user; the second has characters that a URL must percent-encode.
    static let wrongPasswords = ["Wr0ng-s3cret-pass", "Wr0ng/s3cret@pass?"]

    /// The user and password the demo run logs in with.
    static let demoUser = "amqpretry-sec"
    static let demoPassword = "S3cret-Demo-Pa55"

    func testFailedLoginHidesPassword() async throws {
        let plain = try SecurityEnvironment.configuration("AMQP_URL")
        let tls = try SecurityEnvironment.configuration("AMQPRETRY_TLS_URL")

        for password in Self.wrongPasswords {
            for var configuration in [plain, tls] {
                configuration.password = password
                let secret = SecuritySecretForms(password: password)
                let scheme = configuration.tls == nil ? "amqp" : "amqps"

                let logs = SecurityLogCapture()
                let clientError = await loginError {
                    let client = try await AMQPRetryClient.connect(configuration: configuration,
                                                                   logger: logs.logger(label: "client"))
                    await client.close()
                }
                let worker = Worker(configuration: .init(connection: configuration), logger: logs.logger(label: "worker"))
                try worker.register("security.login.echo") { $0.payload }
                let workerError = await loginError { try await worker.run() }

                for error in [clientError, workerError].compactMap({ $0 }) {
                    XCTAssertEqual((error as? AMQPError)?.code, .loginFailed,
                                   "a wrong password over \(scheme) did not fail the login: \(error)")
                    secret.assertAbsent(in: SecuritySecretForms.texts(of: error), source: "the login error over \(scheme)")
                }
                XCTAssertNotNil(clientError, "AMQPRetryClient.connect over \(scheme) succeeded with a wrong password")
                XCTAssertNotNil(workerError, "Worker.run over \(scheme) succeeded with a wrong password")
                secret.assertAbsent(in: logs.lines, source: "a trace-level log line over \(scheme)")
                secret.assertAbsent(in: [configuration.description, configuration.redactedURL],
                                    source: "the configuration's description over \(scheme)")
            }
        }
    }

    func testCommandLineLoginFailureHidesPassword() async throws {
        let tool = try SecurityEnvironment.commandLineToolPath()
        let broker = try SecurityEnvironment.configuration("AMQP_URL")

        for password in Self.wrongPasswords {
            let url = "amqp://guest:\(ConnectionConfiguration.percentEncoded(password))@\(broker.brokerAddress)/%2F"
            let run = try await SecurityProgramRun.run(tool, ["demo", "--log-level", "trace", "--url", url],
                                                       timeout: .seconds(60))

            XCTAssertEqual(run.status, 1, "amqp-retry demo with a wrong password did not exit with status 1: \(run.output)")
            XCTAssertTrue(run.output.contains(AMQPError.Code.loginFailed.rawValue),
                          "amqp-retry demo does not report the failed login: \(run.output)")
            SecuritySecretForms(password: password).assertAbsent(in: [run.output], source: "the output of amqp-retry demo")
        }
    }

    func testDemoRunHidesPassword() async throws {
        let tool = try SecurityEnvironment.commandLineToolPath()
        let broker = try SecurityEnvironment.configuration("AMQP_URL")
        try await addDemoUser()

        let url = "amqp://\(Self.demoUser):\(Self.demoPassword)@\(broker.brokerAddress)/%2F"
        let run: SecurityProgramRun
        do {
            run = try await SecurityProgramRun.run(tool, ["demo", "--log-level", "trace", "--url", url],
                                                   timeout: .seconds(120))
        } catch {
            try await deleteDemoUser()
            throw error
        }
        try await deleteDemoUser()

        XCTAssertEqual(run.status, 0, "amqp-retry demo failed, so the run did not cover every step: \(run.output)")
        // The demo logs nothing at trace level today, so debug lines show that the verbose levels are on.
        let debugLines = run.output.split(separator: "\n").filter { $0.contains(" debug amqpretry.") }
        XCTAssertFalse(debugLines.isEmpty, "amqp-retry demo --log-level trace wrote no debug lines: \(run.output)")
        XCTAssertTrue(run.output.contains("\(Self.demoUser):***@"),
                      "the demo does not show the broker URL with a hidden password: \(run.output)")
        SecuritySecretForms(password: Self.demoPassword).assertAbsent(in: [run.output],
                                                                      source: "the output of amqp-retry demo")
    }

    /// Runs `body`, which must fail, and returns its error, or `nil` when it succeeded. The
    /// 5-second connection timeout of the configurations bounds it.
    private func loginError(_ body: () async throws -> Void) async -> (any Error)? {
        do {
            try await body()
            return nil
        } catch {
            return error
        }
    }

    /// Adds the demo's user with access to the virtual host `/`, replacing an earlier one.
    private func addDemoUser() async throws {
        _ = try? await SecurityEnvironment.rabbitmqctl(["delete_user", Self.demoUser])
        try await SecurityEnvironment.rabbitmqctl(["add_user", Self.demoUser, Self.demoPassword])
        try await SecurityEnvironment.rabbitmqctl(["set_permissions", "-p", "/", Self.demoUser, ".*", ".*", ".*"])
    }

    private func deleteDemoUser() async throws {
        try await SecurityEnvironment.rabbitmqctl(["delete_user", Self.demoUser])
    }
}
