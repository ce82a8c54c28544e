import FuzzSupport
import ModbusCore
import NIOCore

/// The MBAP frame assembler against the plain decoder.
///
/// Input: a byte `n`, then `n % 16` read sizes (each 1...256), then the byte stream. The stream
/// is fed to ``ModbusTCPFrameAssembler`` in reads of those sizes (cycled) and, as the
/// reference, decoded in one piece by ``ModbusTCPFrameDecoder/decodeFrame(from:)``.
///
/// Invariants: both give the same frames, then the same framing error or the same number of
/// bytes of an incomplete frame; the assembler never keeps a whole frame's worth of bytes
/// between reads; every read is consumed; each frame re-encodes to exactly the bytes it came
/// from.
@main
enum FuzzFrameAssembler {
    static func main() { FuzzDriver.main(fuzzFrameAssembler) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameAssembler(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(FuzzDriver.bytes(data, size))
    let readSizes = input.take(Int(input.byte()) % 16).map { Int($0) + 1 }
    let stream = input.rest()

    let reference = decodeInOnePiece(stream)
    let assembled = assemble(stream, readSizes: readSizes.isEmpty ? [stream.count + 1] : readSizes)

    fuzzCheck(assembled.frames == reference.frames, "assembled frames differ from the decoder's")
    fuzzCheck(
        assembled.error == reference.error,
        "error \(String(describing: assembled.error)) where the decoder says \(String(describing: reference.error))"
    )
    if reference.error == nil {
        fuzzCheck(
            assembled.buffered == reference.remainder,
            "\(assembled.buffered) bytes kept, \(reference.remainder) left by the decoder"
        )
    }
    var encoded = ByteBuffer()
    for frame in reference.frames { encoded.writeModbusTCPFrame(frame) }
    fuzzCheck(
        Array(encoded.readableBytesView) == Array(stream.prefix(encoded.readableBytes)),
        "re-encoded frames are not the bytes they were decoded from"
    )
    return 0
}

struct Outcome {
    var frames: [ModbusTCPFrame] = []
    var error: ModbusFramingError?
    /// Bytes after the last frame (reference) or kept by the assembler.
    var remainder = 0
    var buffered = 0
}

func decodeInOnePiece(_ stream: [UInt8]) -> Outcome {
    var outcome = Outcome()
    var buffer = ByteBuffer(bytes: stream)
    do {
        while let frame = try ModbusTCPFrameDecoder.decodeFrame(from: &buffer) { outcome.frames.append(frame) }
    } catch {
        outcome.error = error as? ModbusFramingError
        fuzzCheck(outcome.error != nil, "decodeFrame threw \(error), not a ModbusFramingError")
    }
    outcome.remainder = buffer.readableBytes
    return outcome
}

func assemble(_ stream: [UInt8], readSizes: [Int]) -> Outcome {
    var outcome = Outcome()
    var assembler = ModbusTCPFrameAssembler()
    var offset = 0
    var read = 0
    while offset < stream.count {
        let end = min(stream.count, offset + readSizes[read % readSizes.count])
        var bytes = ByteBuffer(bytes: stream[offset..<end])
        offset = end
        read += 1
        do {
            while let frame = try assembler.nextFrame(from: &bytes) { outcome.frames.append(frame) }
        } catch {
            outcome.error = error as? ModbusFramingError
            fuzzCheck(outcome.error != nil, "nextFrame threw \(error), not a ModbusFramingError")
            return outcome
        }
        assembler.keepRemainder(of: &bytes)
        fuzzCheck(bytes.readableBytes == 0, "keepRemainder left \(bytes.readableBytes) bytes unread")
        fuzzCheck(
            assembler.bufferedByteCount < ModbusTCPLimits.maxADULength,
            "\(assembler.bufferedByteCount) bytes kept between reads, a whole frame's worth"
        )
    }
    outcome.buffered = assembler.bufferedByteCount
    return outcome
}
