@testable import AMQPRetry
import XCTest

/// Checks the byte scan of `ServiceName.containsControlCharacter` against the Unicode scalars
/// of the name: U+0000–U+001F and U+007F–U+009F are control characters.
final class ServiceNameControlScanTests: XCTestCase {
    private static func hasControlScalar(_ name: String) -> Bool {
        name.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
    }

    func testEveryBMPScalarInShortAndLongNames() {
        // Swift stores names of at most 15 UTF-8 bytes inline, and longer ones on the heap.
        let long = String(repeating: "service.", count: 4)

        for value in UInt32(0)...0xFFFF {
            guard let scalar = Unicode.Scalar(value) else { continue }
            let character = String(Character(scalar))
            for name in ["a" + character, character + "b", long + character, character + long + "\u{E9}"] {
                XCTAssertEqual(ServiceName.containsControlCharacter(name), Self.hasControlScalar(name),
                               "U+\(String(value, radix: 16, uppercase: true)) in a \(name.utf8.count)-byte name")
            }
        }
    }

    func testC1ControlAfterOtherLeadBytes() {
        let cases: [(name: String, isControl: Bool)] = [
            ("\u{C2}\u{80}", true),         // C3 82 C2 80: "Â" and then U+0080
            ("\u{C2}", false),              // C3 82
            ("\u{A0}\u{9F}", true),         // C2 A0 C2 9F
            ("\u{100}\u{85}", true),        // C4 80 C2 85
            ("\u{0800}\u{80}x", true),      // E0 A0 80 C2 80
            ("\u{1F600}", false),           // F0 9F 98 80
            (String(repeating: "\u{E9}", count: 20) + "\u{9F}", true),
        ]

        for testCase in cases {
            XCTAssertEqual(ServiceName.containsControlCharacter(testCase.name), testCase.isControl,
                           testCase.name.unicodeScalars.map { String($0.value, radix: 16) }.joined(separator: " "))
        }
    }
}
