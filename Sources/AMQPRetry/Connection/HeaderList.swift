/// The application headers of a message as name-value pairs with distinct names, in the order
/// they were decoded or added.
///
/// Names are compared as `String`s, as ``FieldTable`` keys are. So two canonically equivalent
/// names, such as `"\u{E9}"` and `"e\u{301}"`, are one name even though their UTF-8 bytes differ.
///
/// ``MessageProperties`` keeps its headers in this form so that decoding and publishing a
/// message hash no names. For the dozen headers of an invocation, a linear search costs less
/// than building a `Dictionary`, which hashes every name. ``MessageProperties/headers``
/// converts to and from a ``FieldTable`` only when code reads or assigns that property.
struct HeaderList: Sendable {
    /// One header.
    struct Entry: Sendable {
        var name: String
        var value: FieldValue
    }

    /// The headers, each name once.
    private(set) var entries: [Entry] = []

    /// Whether some name, added now or before, has a byte outside ASCII. Only such a name can
    /// equal a name of another length in UTF-8, so while this is false, lookups skip every
    /// name whose length differs. Removing headers leaves it as it is.
    private var mayHaveNonASCIIName = false

    /// Creates an empty list with room for `capacity` headers.
    init(capacity: Int = 0) {
        entries.reserveCapacity(capacity)
    }

    /// Creates the list of a field table's entries.
    init(_ table: FieldTable) {
        entries = table.map { Entry(name: $0.key, value: $0.value) }
        mayHaveNonASCIIName = entries.contains { !Self.isASCII($0.name) }
    }

    /// The headers as a field table.
    var table: FieldTable {
        var table = FieldTable(minimumCapacity: entries.count)
        for entry in entries {
            table[entry.name] = entry.value
        }
        return table
    }

    var isEmpty: Bool { entries.isEmpty }

    var count: Int { entries.count }

    /// The value of the header `name`, or `nil` when the list has none. Setting `nil` removes
    /// the header.
    subscript(name: String) -> FieldValue? {
        get {
            index(of: name).map { entries[$0].value }
        }
        set {
            switch (index(of: name), newValue) {
            case (let index?, let value?): entries[index].value = value
            case (let index?, nil): entries.remove(at: index)
            case (nil, let value?): append(name, value)
            case (nil, nil): break
            }
        }
    }

    /// Appends a header whose name the list does not have yet, which the caller guarantees.
    ///
    /// A caller that knows the name is ASCII, as AMQPRetry's own header names are, passes
    /// `nameIsASCII: true` to skip scanning it.
    mutating func appendNew(_ name: String, _ value: FieldValue, nameIsASCII: Bool = false) {
        assert(index(of: name) == nil, "header \(name) is already in the list")
        assert(!nameIsASCII || Self.isASCII(name), "header \(name) is not ASCII")
        append(name, value, nameIsASCII: nameIsASCII)
    }

    private mutating func append(_ name: String, _ value: FieldValue, nameIsASCII: Bool = false) {
        if !nameIsASCII && !mayHaveNonASCIIName && !Self.isASCII(name) {
            mayHaveNonASCIIName = true
        }
        entries.append(Entry(name: name, value: value))
    }

    /// Removes every header whose name matches `shouldRemove`.
    mutating func removeAll(where shouldRemove: (String) -> Bool) {
        entries.removeAll { shouldRemove($0.name) }
    }

    /// Sets every header of `other`, replacing the values of names this list has already.
    mutating func merge(_ other: HeaderList) {
        for entry in other.entries {
            self[entry.name] = entry.value
        }
    }

    private func index(of name: String) -> Int? {
        // Comparing lengths first skips most names without looking at their bytes. Names of
        // different lengths are equal only when one of them has a byte outside ASCII.
        let length = name.utf8.count
        if let index = entries.firstIndex(where: { $0.name.utf8.count == length && $0.name == name }) {
            return index
        }
        guard mayHaveNonASCIIName || !Self.isASCII(name) else {
            return nil
        }
        return entries.firstIndex { $0.name == name }
    }

    private static func isASCII(_ name: String) -> Bool {
        name.utf8.withContiguousStorageIfAvailable { bytes in bytes.allSatisfy { $0 < 0x80 } }
            ?? name.utf8.allSatisfy { $0 < 0x80 }
    }
}

extension HeaderList: Hashable {
    /// Compares the headers as tables do, whatever their order.
    static func == (left: HeaderList, right: HeaderList) -> Bool {
        guard left.count == right.count else { return false }
        return left.entries.allSatisfy { right[$0.name] == $0.value }
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(table)
    }
}
