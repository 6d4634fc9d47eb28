/// The median and range of one figure over the rounds of a workload.
struct Summary: Sendable {
    let median: Double
    let minimum: Double
    let maximum: Double

    /// Summarises the figures of the rounds; `nil` when there are none.
    init?(_ values: [Double]) {
        let sorted = values.sorted()
        guard let first = sorted.first, let last = sorted.last else { return nil }
        let middle = sorted.count / 2
        median = sorted.count.isMultiple(of: 2) ? (sorted[middle - 1] + sorted[middle]) / 2 : sorted[middle]
        minimum = first
        maximum = last
    }
}

enum Percentile {
    /// Computes the nearest-rank percentile of `values` (`fraction` 0.5 for p50, 0.99 for p99), as the
    /// baseline computes it; `nil` for no values.
    static func nearestRank(_ values: [Double], _ fraction: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}
