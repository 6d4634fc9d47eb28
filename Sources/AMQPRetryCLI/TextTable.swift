/// A table printed in aligned columns, as `rabbitmqctl` and `docker ps` print theirs.
///
/// Columns are separated by two spaces. Numbers are right-aligned, text left-aligned, and the
/// last column is not padded, so that long text in it does not widen the others.
struct TextTable {
    /// The alignment of the cells of a column.
    enum Alignment {
        case left
        case right
    }

    /// The column headings, in upper case by convention.
    let headings: [String]

    /// The alignment of each column.
    let alignments: [Alignment]

    /// The rows; each has one cell per column.
    private(set) var rows: [[String]] = []

    /// Creates an empty table.
    init(headings: [String], alignments: [Alignment]) {
        precondition(headings.count == alignments.count, "each column needs one alignment")
        self.headings = headings
        self.alignments = alignments
    }

    /// Appends a row with one cell per column.
    mutating func append(_ cells: [String]) {
        precondition(cells.count == headings.count, "each row needs one cell per column")
        rows.append(cells)
    }

    /// Returns the table as lines of text, headings first, each line ending with a newline.
    func rendered() -> String {
        let all = [headings] + rows
        let widths = headings.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { line(of: $0, widths: widths) + "\n" }.joined()
    }

    private func line(of cells: [String], widths: [Int]) -> String {
        var parts: [String] = []
        for (column, cell) in cells.enumerated() {
            let padding = String(repeating: " ", count: widths[column] - cell.count)
            let isLast = column == cells.count - 1
            switch alignments[column] {
            case .right:
                parts.append(padding + cell)
            case .left:
                parts.append(isLast ? cell : cell + padding)
            }
        }
        return parts.joined(separator: "  ")
    }
}
