import Foundation

/// Timestamps in the form Zato uses for `req_ts_utc`: ISO 8601 in UTC with microseconds,
/// such as `2026-12-04T20:25:25.446454+00:00`.
public enum WireTimestamp {
    /// Returns the current time as a wire timestamp.
    public static func now() -> String {
        format(Date())
    }

    /// Formats a date as a wire timestamp, rounded to the nearest microsecond.
    public static func format(_ date: Date) -> String {
        format(date, fractionDigits: 6, utcDesignator: "+00:00")
    }

    /// Parses an ISO 8601 timestamp such as `2026-12-04T20:25:25.446454+00:00`.
    ///
    /// The fraction of a second (1 to 9 digits) is optional, and the offset is `Z` or `±HH:MM`.
    ///
    /// - Returns: The date, or `nil` when the text has another form or names an invalid time.
    public static func parse(_ text: String) -> Date? {
        TimestampParser(text: text)?.date
    }

    /// Formats a date in UTC with the given number of fraction digits (0 to 9) and a designator
    /// such as `Z` or `+00:00`.
    static func format(_ date: Date, fractionDigits: Int, utcDesignator: String) -> String {
        let scale = power(of: 10, fractionDigits)
        let ticks = clampedTicks((date.timeIntervalSince1970 * Double(scale)).rounded())

        // Floor division, so that times before 1970 still get a fraction in 0..<scale.
        let (seconds, fraction) = floorDivide(ticks, by: scale)
        let (days, secondOfDay) = floorDivide(seconds, by: 86_400)
        let (year, month, day) = civilDate(daysSince1970: days)

        // The longest Int64 year has 19 digits and a sign, and the rest of the text up to the
        // designator takes at most 25 bytes.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 48 + utcDesignator.utf8.count) { buffer in
            var text = TextWriter(buffer: buffer)
            text.appendSignedZeroPadded(year, width: 4)
            text.append(UInt8(ascii: "-"))
            text.appendZeroPadded(month, width: 2)
            text.append(UInt8(ascii: "-"))
            text.appendZeroPadded(day, width: 2)
            text.append(UInt8(ascii: "T"))
            text.appendZeroPadded(secondOfDay / 3600, width: 2)
            text.append(UInt8(ascii: ":"))
            text.appendZeroPadded(secondOfDay / 60 % 60, width: 2)
            text.append(UInt8(ascii: ":"))
            text.appendZeroPadded(secondOfDay % 60, width: 2)
            if fractionDigits > 0 {
                text.append(UInt8(ascii: "."))
                text.appendZeroPadded(fraction, width: fractionDigits)
            }
            for byte in utcDesignator.utf8 {
                text.append(byte)
            }
            return String(decoding: text.written, as: UTF8.self)
        }
    }
}

// MARK: - Calendar arithmetic

/// Converts days since 1970-01-01 to a proleptic Gregorian year, month and day.
///
/// The algorithm is Howard Hinnant's `civil_from_days`, which counts in 400-year eras
/// starting on March 1 so that the leap day falls at the end of each year.
func civilDate(daysSince1970: Int64) -> (year: Int64, month: Int64, day: Int64) {
    let shifted = daysSince1970 + 719_468
    let era = floorDivide(shifted, by: 146_097).quotient
    let dayOfEra = shifted - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let monthIndex = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
    let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    return (year, month, day)
}

/// Converts a proleptic Gregorian date to days since 1970-01-01 (Hinnant's `days_from_civil`).
func daysSince1970(year: Int64, month: Int64, day: Int64) -> Int64 {
    let marchYear = month <= 2 ? year - 1 : year
    let era = floorDivide(marchYear, by: 400).quotient
    let yearOfEra = marchYear - era * 400
    let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
}

private func floorDivide(_ value: Int64, by divisor: Int64) -> (quotient: Int64, remainder: Int64) {
    // Truncating division rounds toward zero, so a negative remainder moves the quotient down
    // by one. Unlike negating `value`, this cannot overflow.
    let (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
    return remainder < 0 ? (quotient - 1, remainder + divisor) : (quotient, remainder)
}

/// Converts a tick count to `Int64`, which a date beyond about 292,000 years from 1970 at
/// microseconds exceeds. Such a tick count becomes the nearest one `Int64` holds, and NaN
/// becomes 0, so that formatting an impossible date returns text instead of trapping.
private func clampedTicks(_ ticks: Double) -> Int64 {
    // The largest Double below 2^63, because Int64(2^63) traps.
    let limit = 9_223_372_036_854_774_784.0
    guard !ticks.isNaN else { return 0 }
    return Int64(min(max(ticks, -limit), limit))
}

private func power(of base: Int64, _ exponent: Int) -> Int64 {
    (0..<exponent).reduce(1) { result, _ in result * base }
}

/// Writes ASCII text into a buffer that the caller sized for it.
private struct TextWriter {
    let buffer: UnsafeMutableBufferPointer<UInt8>
    private(set) var count = 0

    init(buffer: UnsafeMutableBufferPointer<UInt8>) {
        self.buffer = buffer
    }

    /// The bytes written so far.
    var written: UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: buffer[..<count])
    }

    mutating func append(_ byte: UInt8) {
        precondition(count < buffer.count, "the timestamp is longer than its buffer")
        buffer[count] = byte
        count += 1
    }

    /// Appends the decimal digits of a non-negative number, with leading zeros up to `width`.
    mutating func appendZeroPadded(_ value: Int64, width: Int) {
        var digitCount = 1
        var divisor: Int64 = 1
        while value / divisor >= 10 {
            digitCount += 1
            divisor *= 10
        }

        for _ in digitCount..<max(digitCount, width) {
            append(UInt8(ascii: "0"))
        }
        while divisor > 0 {
            append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            divisor /= 10
        }
    }

    /// Pads as printf's `%0*lld` does: a negative number keeps its sign first, within `width`.
    mutating func appendSignedZeroPadded(_ value: Int64, width: Int) {
        if value < 0 {
            append(UInt8(ascii: "-"))
            appendZeroPadded(-value, width: width - 1)
        } else {
            appendZeroPadded(value, width: width)
        }
    }
}

// MARK: - Parsing

/// A strict parser for `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
private struct TimestampParser {
    let date: Date

    init?(text: String) {
        var scanner = DigitScanner(bytes: Array(text.utf8))
        guard let year = scanner.number(digits: 4), scanner.skip("-"),
              let month = scanner.number(digits: 2), scanner.skip("-"),
              let day = scanner.number(digits: 2), scanner.skip("T"),
              let hour = scanner.number(digits: 2), scanner.skip(":"),
              let minute = scanner.number(digits: 2), scanner.skip(":"),
              let second = scanner.number(digits: 2)
        else {
            return nil
        }

        let fraction = scanner.skip(".") ? scanner.fraction() : 0
        guard let fraction, let offsetSeconds = scanner.utcOffsetSeconds(), scanner.isAtEnd,
              (1...12).contains(month), (1...Self.daysIn(month: month, year: year)).contains(day),
              hour < 24, minute < 60, second < 60
        else {
            return nil
        }

        let days = daysSince1970(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        date = Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2:
            let isLeapYear = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
            return isLeapYear ? 29 : 28
        case 4, 6, 9, 11:
            return 30
        default:
            return 31
        }
    }
}

/// Reads fixed-width ASCII digit fields and separators from bytes.
private struct DigitScanner {
    let bytes: [UInt8]
    var index = 0

    var isAtEnd: Bool { index == bytes.count }

    mutating func skip(_ character: Unicode.Scalar) -> Bool {
        guard index < bytes.count, bytes[index] == UInt8(ascii: character) else {
            return false
        }
        index += 1
        return true
    }

    mutating func number(digits: Int) -> Int64? {
        guard index + digits <= bytes.count else {
            return nil
        }

        var value: Int64 = 0
        for byte in bytes[index..<index + digits] {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else {
                return nil
            }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        index += digits
        return value
    }

    /// Reads 1 to 9 digits after the decimal point as a fraction of a second.
    mutating func fraction() -> Double? {
        var digits = 0
        while index + digits < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index + digits]) {
            digits += 1
        }
        guard (1...9).contains(digits), let value = number(digits: digits) else {
            return nil
        }
        return Double(value) / Double(power(of: 10, digits))
    }

    /// Reads `Z` or `±HH:MM` and returns the offset from UTC in seconds.
    mutating func utcOffsetSeconds() -> Int64? {
        if skip("Z") {
            return 0
        }

        let sign: Int64
        if skip("+") {
            sign = 1
        } else if skip("-") {
            sign = -1
        } else {
            return nil
        }

        guard let hours = number(digits: 2), skip(":"), let minutes = number(digits: 2), hours < 24, minutes < 60 else {
            return nil
        }
        return sign * (hours * 3600 + minutes * 60)
    }
}
