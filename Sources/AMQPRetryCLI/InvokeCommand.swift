import AMQPRetry
import Foundation

/// `amqp-retry invoke`: invokes a service in one of the three invoke/retry modes.
enum InvokeCommand {
    /// The `--repeats` of an invocation without one: one retry after a failed first call.
    static let defaultRepeats = 1

    /// The `--timeout` of a blocking call without one, in seconds; the library's default.
    static let defaultTimeoutSeconds: Int64 = 30

    /// The media type of a request without `--content-type`.
    static let defaultContentType = "application/json"

    /// The `--log-level` of `invoke` without one; `info` shows each failed call on standard error.
    static let defaultLogLevel = Logger.Level.info

    static let modeOption = OptionDefinition(
        name: "mode", valueName: "mode",
        help: "How to call and retry: sync blocks through every retry; fallback blocks on the first call "
            + "and retries in the background; async runs every call in the background. (default: sync)"
    )
    static let repeatsOption = OptionDefinition(
        name: "repeats", valueName: "n",
        help: "How many times a failed first call is retried, from 1 to \(RetryOptions.maximumRepeats); "
            + "the service is called at most 1 + n times. (default: \(defaultRepeats))"
    )
    static let secondsOption = OptionDefinition(
        name: "seconds", valueName: "s",
        help: "The interval between calls in seconds, kept to the millisecond. Give this or --minutes."
    )
    static let minutesOption = OptionDefinition(
        name: "minutes", valueName: "m",
        help: "The interval between calls in minutes. Give this or --seconds."
    )
    static let callbackOption = OptionDefinition(
        name: "callback", valueName: "service",
        help: "The service that receives the outcome of the background calls. Required with --mode fallback, "
            + "optional with async, not accepted with sync."
    )
    static let contextOption = OptionDefinition(
        name: "context", valueName: "json",
        help: "A JSON object, at most 64 KiB, passed unchanged to the callback. Only with --mode fallback or async."
    )
    static let timeoutOption = OptionDefinition(
        name: "timeout", valueName: "s",
        help: "How long each blocking call waits for its reply, in seconds, up to 3600; a call that times out "
            + "counts as failed. Only with --mode sync or fallback. (default: \(defaultTimeoutSeconds))"
    )
    static let fileOption = OptionDefinition(
        name: "file", valueName: "path",
        help: "Read the request from this file, or from standard input when the path is '-', instead of "
            + "the <payload> argument."
    )
    static let contentTypeOption = OptionDefinition(
        name: "content-type", valueName: "type",
        help: "The media type of the request, sent as its content_type. (default: \(defaultContentType))"
    )

    /// The entry of `invoke` in the tool's table of commands.
    static let command = Command(
        name: "invoke",
        abstract: "Invoke a service and retry failed calls, blocking or in the background.",
        discussion: """
            The mode sync is Zato's invoke (sync + sync): the command waits through every retry, \
            prints the response on standard output and exits with status 0, or, after 1 + repeats \
            failed calls, prints the CID, the number of attempts and the last error on standard \
            error and exits with status 1. The mode fallback is invoke with async_fallback (sync + \
            async): it prints the response when the first call succeeds; otherwise the retries go \
            on in the background, the command prints the CID, and the --callback service receives \
            the outcome. The mode async is invoke_async (async + async): the command prints the \
            CID as soon as the broker has the invocation.

            Standard output holds only the response, written byte for byte, or the CID; progress \
            and log lines go to standard error. Every option is checked before the command \
            connects, so an invalid command line publishes nothing and exits with status 64.
            """,
        options: [
            ConnectionOptions.urlDefinition, modeOption, repeatsOption, secondsOption, minutesOption,
            callbackOption, contextOption, timeoutOption, fileOption, contentTypeOption,
            ConnectionOptions.logLevelDefinition(default: defaultLogLevel),
        ],
        arguments: [
            ArgumentDefinition(name: "target", help: "The service to invoke."),
            ArgumentDefinition(name: "payload", help: "The request. (default: empty, or the content of --file)",
                               isOptional: true),
        ],
        run: run
    )

    private static func run(_ arguments: CommandLineArguments) async throws(UsageError) -> ExitStatus {
        let request = try InvokeRequest(arguments)
        let options = try ConnectionOptions(arguments, defaultLogLevel: defaultLogLevel)

        let client: AMQPRetryClient
        do {
            client = try await AMQPRetryClient.connect(
                configuration: options.connection, name: "amqp-retry invoke",
                logger: .standardError(label: "amqpretry.client", logLevel: options.logLevel)
            )
        } catch {
            CommandLineTool.writeError(options.connectionFailureMessage(error) + "\n")
            return .failure
        }

        do {
            let status = try await invoke(request, with: client.invokeRetry)
            await client.close()
            return status
        } catch {
            await client.close()
            throw error
        }
    }

    /// Makes the call in the request's mode and prints its outcome.
    private static func invoke(_ request: InvokeRequest, with invokeRetry: InvokeRetry) async throws(UsageError) -> ExitStatus {
        do {
            switch request.mode {
            case .sync:
                let response = try await invokeRetry.invoke(
                    request.target, request.payload, repeats: request.repeats, seconds: request.seconds,
                    minutes: request.minutes, timeout: request.timeout)
                FileHandle.standardOutput.write(Data(response.bytes))
            case .fallback:
                let result = try await invokeRetry.invoke(
                    request.target, request.payload, repeats: request.repeats, seconds: request.seconds,
                    minutes: request.minutes, asyncFallback: true, callback: request.callback,
                    context: request.context, timeout: request.timeout)
                printFallback(result, callback: request.callback ?? "")
            case .async:
                let cid = try await invokeRetry.invokeAsync(
                    request.target, request.payload, repeats: request.repeats, seconds: request.seconds,
                    minutes: request.minutes, callback: request.callback, context: request.context)
                CommandLineTool.writeOutput(cid.rawValue + "\n")
            }
            return .success
        } catch InvokeRetryError.invalidOption(let name, let value, let reason) {
            throw UsageError(message: "Invalid value '\(value)' for \(label(ofLibraryOption: name)): \(reason)")
        } catch {
            CommandLineTool.writeError("Error: \(error)\n")
            return .failure
        }
    }

    /// Returns the command-line name of an option that the library names in an error, such as
    /// `'--context <json>'` for `context`.
    private static func label(ofLibraryOption name: String) -> String {
        if name == "target" {
            return "argument '<target>'"
        }
        let option = command.options.first { $0.name == name }
        return "'\(option?.singleSynopsis ?? name)'"
    }

    private static func printFallback(_ result: InvokeResult, callback: String) {
        switch result {
        case .response(let response):
            FileHandle.standardOutput.write(Data(response.bytes))
        case .retrying(let cid):
            CommandLineTool.writeError("The first call failed; the retries go on in the background, and "
                + "'\(callback)' receives the outcome as a callback with CID \(cid).\n")
            CommandLineTool.writeOutput(cid.rawValue + "\n")
        }
    }
}
