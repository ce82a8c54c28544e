import FuzzSupport

// The JSON parser and JSONPath are the package's own (`package` access), not public API;
// fuzzers are built in debug, where SwiftPM compiles every module for testing.
@testable import MQTTModbusBridgeConfiguration

/// The JSON parser and the JSON paths that point into a document. Input: a JSON document.
///
/// Invariants: a parsed document serializes to text that parses to the same document and
/// serializes again to the same text; every value in the document is found again at its
/// path, and that path written out (`a.b[0]["c.d"]`) parses back to the same path.
@main
enum FuzzJSON {
    static func main() { FuzzDriver.main(fuzzJSON) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = FuzzDriver.bytes(data, size)
    guard let document = try? JSONParser.parse(bytes) else { return 0 }
    let text = document.serialized()
    let reparsed: JSONValue
    do {
        reparsed = try JSONParser.parse(Array(text.utf8))
    } catch {
        fuzzCheck(false, "serialized document does not parse: \(error.message)")
        return 0
    }
    fuzzCheck(reparsed == document, "serialized document parses to another document")
    fuzzCheck(reparsed.serialized() == text, "serializing is not stable")

    var budget = 256
    checkPaths(in: document, root: document, at: [], budget: &budget)
    return 0
}

/// Looks up every value (up to `budget` of them) by its path, and round-trips the path's text.
func checkPaths(in value: JSONValue, root: JSONValue, at components: [JSONPath.Component], budget: inout Int) {
    guard budget > 0 else { return }
    budget -= 1
    let path = JSONPath(components)
    // Keys can repeat (and Swift compares them by canonical equivalence); lookup takes the last
    // member of a name, so a path through a repeated key may lead elsewhere or nowhere.
    if !hasRepeatedKeys(root, along: components) {
        switch root.value(at: path) {
        case .success(let found):
            fuzzCheck(found == value, "the value at '\(path)' is not the one there")
        case .failure(let error):
            fuzzCheck(false, "no value at a path of the document: \(error.message)")
        }
    }
    let written = path.description
    // A key holding both `"]` and `']` has no written form: neither quote can close it.
    let unwritable = components.contains {
        guard case .key(let key) = $0 else { return false }
        let pairs = zip(key.unicodeScalars, key.unicodeScalars.dropFirst())
        return pairs.contains { $0 == "\"" && $1 == "]" } && pairs.contains { $0 == "'" && $1 == "]" }
    }
    if !unwritable {
        checkWrittenPath(written, path)
    }
    switch value {
    case .array(let elements):
        for (index, element) in elements.enumerated() {
            checkPaths(in: element, root: root, at: components + [.index(index)], budget: &budget)
        }
    case .object(let members):
        for member in members {
            checkPaths(in: member.value, root: root, at: components + [.key(member.key)], budget: &budget)
        }
    default:
        break
    }
}

func checkWrittenPath(_ written: String, _ path: JSONPath) {
    do {
        let parsed = try JSONPath(parsing: written)
        fuzzCheck(parsed == path, "path \(path.components) written as '\(written)' parses to \(parsed.components)")
    } catch {
        fuzzCheck(false, "path \(path.components) written as '\(written)' does not parse: \(error)")
    }
}

func hasRepeatedKeys(_ root: JSONValue, along components: [JSONPath.Component]) -> Bool {
    var current = root
    for component in components {
        switch (component, current) {
        case (.key(let key), .object(let members)):
            if members.filter({ $0.key == key }).count > 1 { return true }
            current = members.last { $0.key == key }!.value
        case (.index(let index), .array(let elements)):
            current = elements[index]
        default:
            return false
        }
    }
    return false
}
