import CFuzzerDriver

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The signature of `LLVMFuzzerTestOneInput`: one input, 0 to keep going.
public typealias FuzzTestOneInput = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

/// Starts libFuzzer from a fuzzer's `@main`.
///
/// SwiftPM links an executable with `main` pointing at the module's renamed entry point, so the
/// `main` that `-sanitize=fuzzer` brings along is never the one that runs; `LLVMFuzzerRunDriver`
/// is libFuzzer's documented way in for programs with a `main` of their own. Every libFuzzer
/// option (`-max_total_time=30`, corpus directories, a reproducer file) works as usual.
public enum FuzzDriver {
    /// Runs libFuzzer with the program's arguments and exits with its status.
    ///
    /// `extraCommands` are checked first: when the first argument is one of their names, that
    /// command runs with the remaining arguments instead of the fuzzer (for example writing seed
    /// files that only the codec can make).
    public static func main(
        _ testOneInput: FuzzTestOneInput,
        extraCommands: [String: ([String]) -> Int32] = [:]
    ) -> Never {
        let arguments = CommandLine.arguments
        if arguments.count > 1, let command = extraCommands[arguments[1]] {
            exit(command(Array(arguments.dropFirst(2))))
        }
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
    }

    /// The bytes of one input.
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }
}

/// Stops the fuzzer with `message` when an invariant does not hold. It traps like any crash,
/// so libFuzzer saves the input as a reproducer.
public func fuzzCheck(
    _ condition: @autoclosure () -> Bool,
    _ message: @autoclosure () -> String,
    file: StaticString = #fileID,
    line: UInt = #line
) {
    if !condition() { fatalError("invariant broken: \(message())", file: file, line: line) }
}
