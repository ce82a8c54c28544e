import FuzzSupport
import MQTTModbusBridgeConfiguration
import ModbusCore

/// The YAML configuration loader, from text in memory (no file is read). Input: the YAML.
///
/// Invariants: the loader returns a configuration or a list of errors, never traps; every
/// error has a message and a line and column inside the text; a configuration it returns keeps
/// the rules it checks: point names and unit ids unique, each point inside the address space,
/// no two points of a unit on the same register (bits at different positions excepted), scales
/// finite and not 0.
@main
enum FuzzConfigLoader {
    static func main() { FuzzDriver.main(fuzzConfigLoader) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigLoader(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: FuzzDriver.bytes(data, size), as: UTF8.self)
    // YAML counts a lone carriage return as a line break too (and NEL, LS, PS); Character's
    // isNewline covers those, "\r\n" as one, so this is an upper bound on the loader's lines.
    let lineCount = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).count
    let configuration: BridgeConfiguration
    do {
        configuration = try BridgeConfiguration.parse(yaml: text, file: "fuzz.yaml")
    } catch {
        fuzzCheck(!error.errors.isEmpty, "refused without an error")
        for problem in error.errors {
            fuzzCheck(!problem.message.isEmpty, "an error without a message")
            fuzzCheck(problem.file == "fuzz.yaml", "an error in '\(problem.file)'")
            fuzzCheck(problem.line >= 0 && problem.line <= lineCount + 1, "line \(problem.line) of \(lineCount)")
            fuzzCheck(problem.column >= 0, "column \(problem.column)")
        }
        return 0
    }
    check(configuration)
    return 0
}

func check(_ configuration: BridgeConfiguration) {
    let names = configuration.points.map(\.name)
    fuzzCheck(Set(names).count == names.count, "point names repeat: \(names)")
    let unitIDs = configuration.units.flatMap(\.answeredIDs)
    fuzzCheck(Set(unitIDs).count == unitIDs.count, "unit ids repeat: \(unitIDs)")
    for unit in configuration.units {
        // Per area: registers a point takes whole, and the bits taken of the others.
        var whole: [ModbusArea: Set<Int>] = [:]
        var bits: [ModbusArea: [Int: Set<Int>]] = [:]
        for point in unit.points {
            fuzzCheck(point.unitID == unit.id, "point \(point.name) of unit \(point.unitID) in unit \(unit.id)")
            fuzzCheck(point.addressRange.upperBound <= 65535, "point \(point.name) ends at \(point.addressRange)")
            fuzzCheck(point.scale.isFinite && point.scale != 0, "point \(point.name) has scale \(point.scale)")
            fuzzCheck(point.offset.isFinite, "point \(point.name) has offset \(point.offset)")
            for address in point.addressRange {
                let overlaps: Bool
                if whole[point.area, default: []].contains(address) {
                    overlaps = true
                } else if let position = point.bitPosition {
                    overlaps = bits[point.area, default: [:]][address, default: []].contains(position)
                    bits[point.area, default: [:]][address, default: []].insert(position)
                } else {
                    overlaps = bits[point.area]?[address] != nil
                    whole[point.area, default: []].insert(address)
                }
                fuzzCheck(!overlaps, "point \(point.name) overlaps another at \(point.area) \(address)")
            }
        }
    }
}
