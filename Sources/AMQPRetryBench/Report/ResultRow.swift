/// A condition a row of the results must meet.
enum Target: Sendable {
    /// AMQPRetry's median divided by the baseline's is at least this.
    case ratioAtLeast(Double)
    /// AMQPRetry's median divided by the baseline's is at most this.
    case ratioAtMost(Double)
    /// AMQPRetry's median is below this, in the row's unit.
    case amqpRetryBelow(Double)
    /// AMQPRetry's median is at most this, in the row's unit.
    case amqpRetryAtMost(Double)

    var text: String {
        switch self {
        case .ratioAtLeast(let ratio): "ratio ≥ \(ResultRow.format(ratio))"
        case .ratioAtMost(let ratio): "ratio ≤ \(ResultRow.format(ratio))"
        case .amqpRetryBelow(let limit): "AMQPRetry < \(ResultRow.format(limit))"
        case .amqpRetryAtMost(let limit): "AMQPRetry ≤ \(ResultRow.format(limit))"
        }
    }
}

/// One figure of one workload, measured on both sides over the rounds.
struct ResultRow: Sendable {
    let workload: String
    /// The figure and its unit, such as `invocations/s` or `lateness p99 (ms)`.
    let figure: String
    let amqpRetry: [Double]
    /// Empty when the baseline has no such figure.
    let baseline: [Double]
    let target: Target?

    init(_ workload: String, _ figure: String, amqpRetry: [Double], baseline: [Double], target: Target? = nil) {
        self.workload = workload
        self.figure = figure
        self.amqpRetry = amqpRetry
        self.baseline = baseline
        self.target = target
    }

    /// AMQPRetry's median divided by the baseline's.
    var ratio: Double? {
        guard let ours = Summary(amqpRetry), let theirs = Summary(baseline), theirs.median != 0 else { return nil }
        return ours.median / theirs.median
    }

    /// Whether the target holds; `nil` for a row without one or without the figures it needs.
    var targetHolds: Bool? {
        guard let target, let ours = Summary(amqpRetry)?.median else { return nil }
        switch target {
        case .ratioAtLeast(let minimum): return ratio.map { $0 >= minimum }
        case .ratioAtMost(let maximum): return ratio.map { $0 <= maximum }
        case .amqpRetryBelow(let limit): return ours < limit
        case .amqpRetryAtMost(let limit): return ours <= limit
        }
    }

    /// The cells of the results table.
    var cells: [String] {
        [
            workload, figure, Self.summaryText(amqpRetry), Self.summaryText(baseline),
            ratio.map(Self.format) ?? "n/a", target?.text ?? "",
            targetHolds.map { $0 ? "holds" : "misses" } ?? "",
        ]
    }

    static let headers = ["Workload", "Figure", "AMQPRetry", "Baseline", "Ratio", "Target", "Result"]

    /// The median and, over several rounds, the range: `4,210 (4,102–4,388)`.
    static func summaryText(_ values: [Double]) -> String {
        guard let summary = Summary(values) else { return "n/a" }
        guard values.count > 1 else { return format(summary.median) }
        return "\(format(summary.median)) (\(format(summary.minimum))–\(format(summary.maximum)))"
    }

    /// Three significant figures up to 1,000, whole numbers with thousands separators above.
    static func format(_ value: Double) -> String {
        let magnitude = abs(value)
        if magnitude >= 1000 {
            return grouped(Int(value.rounded()))
        }
        let decimals = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : 2
        return fixed(value, decimals: decimals)
    }

    /// A whole number with thousands separators: `20,000`.
    static func grouped(_ value: Int) -> String {
        let digits = String(abs(value))
        var text = ""
        for (offset, digit) in digits.enumerated() {
            if offset > 0, (digits.count - offset).isMultiple(of: 3) {
                text.append(",")
            }
            text.append(digit)
        }
        return value < 0 ? "-" + text : text
    }

    private static func fixed(_ value: Double, decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals {
            scale *= 10
        }
        let scaled = Int((abs(value) * scale).rounded())
        let whole = scaled / Int(scale)
        let fraction = scaled % Int(scale)
        var text = String(whole)
        if decimals > 0 {
            let digits = String(fraction)
            text += "." + String(repeating: "0", count: decimals - digits.count) + digits
        }
        return value < 0 && scaled != 0 ? "-" + text : text
    }
}
