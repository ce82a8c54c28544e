import NIOCore

extension ByteBuffer {
    /// Appends an exception reply PDU: the function code with its high bit set, then the code.
    @inlinable
    public mutating func writeModbusExceptionPDU(function: UInt8, code: ModbusExceptionCode) {
        writeMultipleIntegers(function | 0x80, code.rawValue)
    }

    /// Appends the reply PDU of FC1/FC2: function, byte count, bits packed LSB first with the last
    /// byte zero-padded. Values are 0 or 1 (the caller has checked).
    @inlinable
    public mutating func writeModbusReadBitsPDU(function: ModbusFunctionCode, bits: [UInt16]) {
        writeMultipleIntegers(function.rawValue, UInt8(truncatingIfNeeded: (bits.count + 7) / 8))
        writeModbusPackedBits(bits)
    }

    /// Appends bits (0 or 1) packed eight to a byte, first bit in the least significant position.
    @inlinable
    public mutating func writeModbusPackedBits(_ bits: [UInt16]) {
        var byte: UInt8 = 0
        for (index, bit) in bits.enumerated() {
            byte |= UInt8(truncatingIfNeeded: bit & 1) << UInt8(index & 7)
            if index & 7 == 7 {
                writeInteger(byte)
                byte = 0
            }
        }
        if bits.count & 7 != 0 { writeInteger(byte) }
    }

    /// Appends the reply PDU of FC3/FC4/FC23: function, byte count, big-endian registers.
    @inlinable
    public mutating func writeModbusReadRegistersPDU(function: ModbusFunctionCode, registers: [UInt16]) {
        writeMultipleIntegers(function.rawValue, UInt8(truncatingIfNeeded: registers.count * 2))
        for register in registers { writeInteger(register) }
    }

    /// Appends the reply PDU of FC15/FC16: function, start address, quantity written.
    @inlinable
    public mutating func writeModbusWriteMultiplePDU(function: ModbusFunctionCode, address: UInt16, count: Int) {
        writeMultipleIntegers(function.rawValue, address, UInt16(truncatingIfNeeded: count))
    }
}
