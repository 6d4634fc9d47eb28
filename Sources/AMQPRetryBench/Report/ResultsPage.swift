import Foundation
import Glibc

/// The machine and software a run measured, for the results page.
struct MachineDescription: Sendable {
    let cores: Int
    let memory: String
    let processor: String
    let kernel: String

    /// Reads the online cores, `/proc/meminfo`, `/proc/cpuinfo` and `uname`.
    static func current() -> MachineDescription {
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let kilobytes = value(of: "MemTotal", in: meminfo).flatMap { Int($0.split(separator: " ").first ?? "") }
        var names = utsname()
        uname(&names)
        let release = withUnsafeBytes(of: &names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return MachineDescription(
            cores: sysconf(Int32(_SC_NPROCESSORS_ONLN)),
            memory: kilobytes.map { ResultRow.format(Double($0) / 1_048_576) + " GiB" } ?? "unknown",
            processor: value(of: "model name", in: cpuinfo) ?? "unknown processor",
            kernel: "Linux " + release
        )
    }

    private static func value(of key: String, in text: String) -> String? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) }),
              let colon = line.firstIndex(of: ":") else { return nil }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
}

/// The results of one run as Markdown: how it ran, on what, and the table.
struct ResultsPage: Sendable {
    let command: String
    let rounds: Int
    let scale: Double
    let date: Date
    let machine: MachineDescription
    let broker: String
    let brokerURL: String
    let librabbitmq: String
    let rows: [ResultRow]
    /// The name in the block's markers.
    var blockName = "results"
    /// The CPU layout of the broker and the benchmark, when the run recorded one.
    var cpuLayout: String?

    var startMarker: String { "<!-- \(blockName): start -->" }
    var endMarker: String { "<!-- \(blockName): end -->" }

    /// The results block, between the markers that ``write(to:)`` replaces.
    var markdown: String {
        var lines = [
            startMarker,
            "",
            "- Command: `\(command)`, \(rounds) round\(rounds == 1 ? "" : "s") of each workload"
                + (scale == 1 ? "" : ", counts scaled by \(scale) (not comparable with full runs)"),
            "- Date: \(Self.dateText(date))",
            "- Machine: \(machine.cores) cores (\(machine.processor)), \(machine.memory) memory, \(machine.kernel)",
            "- Broker: \(broker) at `\(brokerURL)`; librabbitmq \(librabbitmq)",
        ]
        if let cpuLayout {
            lines.append("- CPUs: \(cpuLayout)")
        }
        lines += [
            "",
            "| " + ResultRow.headers.joined(separator: " | ") + " |",
            "|" + ResultRow.headers.map { _ in "---" }.joined(separator: "|") + "|",
        ]
        lines += rows.map { "| " + $0.cells.joined(separator: " | ") + " |" }
        lines += ["", endMarker]
        return lines.joined(separator: "\n") + "\n"
    }

    /// Replaces the results block of the page at `path`, or appends one when the page has none.
    func write(to path: String) throws {
        let existing = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "# Benchmarks\n"
        let page: String
        if let start = existing.range(of: startMarker),
           let end = existing.range(of: endMarker, range: start.upperBound..<existing.endIndex) {
            let block = markdown.hasSuffix("\n") ? String(markdown.dropLast()) : markdown
            page = existing.replacingCharacters(in: start.lowerBound..<end.upperBound, with: block)
        } else {
            page = existing + "\n" + markdown
        }
        do {
            try page.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw BenchError("writing the results to \(path) failed: \(error)")
        }
    }

    private static func dateText(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}
