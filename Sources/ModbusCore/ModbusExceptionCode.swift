/// A Modbus exception code, the single data byte of an exception reply.
///
/// A struct with static members rather than an enum so that codes can be added (or received
/// from a peer) without breaking the API.
public struct ModbusExceptionCode: RawRepresentable, Hashable, Sendable, Error, CustomStringConvertible {
    /// The byte on the wire.
    public var rawValue: UInt8

    /// Wraps a raw exception-code byte.
    @inlinable
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// 01: the function code is not supported (or not allowed) by the server.
    public static let illegalFunction = Self(rawValue: 0x01)
    /// 02: the address range is not available in the server.
    public static let illegalDataAddress = Self(rawValue: 0x02)
    /// 03: a value in the request (quantity, byte count, coil value ...) is not allowed.
    public static let illegalDataValue = Self(rawValue: 0x03)
    /// 04: an unrecoverable error occurred while the server was executing the request.
    public static let serverDeviceFailure = Self(rawValue: 0x04)
    /// 05: the request was accepted and will take long to process.
    public static let acknowledge = Self(rawValue: 0x05)
    /// 06: the server is busy; the client should retry later.
    public static let serverDeviceBusy = Self(rawValue: 0x06)
    /// 08: memory parity error (file records).
    public static let memoryParityError = Self(rawValue: 0x08)
    /// 0A: a gateway could not allocate a path to the target (for example, upstream unreachable).
    public static let gatewayPathUnavailable = Self(rawValue: 0x0A)
    /// 0B: a gateway's target device did not respond.
    public static let gatewayTargetDeviceFailedToRespond = Self(rawValue: 0x0B)

    /// Whether the Modbus Application Protocol (App §7) defines this code: 01, 02, 03, 04, 05,
    /// 06, 08, 0A or 0B. Any other byte, 0 included, is not an exception a client can interpret.
    @inlinable
    public var isDefined: Bool {
        switch rawValue {
        case 0x01...0x06, 0x08, 0x0A, 0x0B: true
        default: false
        }
    }

    public var description: String {
        let name: String
        switch self {
        case .illegalFunction: name = "illegal function"
        case .illegalDataAddress: name = "illegal data address"
        case .illegalDataValue: name = "illegal data value"
        case .serverDeviceFailure: name = "server device failure"
        case .acknowledge: name = "acknowledge"
        case .serverDeviceBusy: name = "server device busy"
        case .memoryParityError: name = "memory parity error"
        case .gatewayPathUnavailable: name = "gateway path unavailable"
        case .gatewayTargetDeviceFailedToRespond: name = "gateway target device failed to respond"
        default: name = "exception"
        }
        return "\(name) (0x\(String(rawValue, radix: 16, uppercase: true).leftPadded(to: 2)))"
    }
}

/// An error that a read or write handler throws to put a specific Modbus exception code on the wire.
///
/// Any other error thrown by a handler is logged and answered with
/// ``ModbusExceptionCode/serverDeviceFailure`` (04).
///
/// ```swift
/// throw ModbusException(.illegalDataAddress, "no register at \(address)")
/// throw ModbusException.serverDeviceBusy
/// ```
public struct ModbusException: Error, Hashable, Sendable, CustomStringConvertible {
    /// The code sent to the client.
    public var code: ModbusExceptionCode
    /// Why, for logs; never sent on the wire.
    public var reason: String?

    /// Creates an exception with a code and an optional reason for the logs.
    public init(_ code: ModbusExceptionCode, _ reason: String? = nil) {
        self.code = code
        self.reason = reason
    }

    /// 01 illegal function.
    public static let illegalFunction = Self(.illegalFunction)
    /// 02 illegal data address.
    public static let illegalDataAddress = Self(.illegalDataAddress)
    /// 03 illegal data value.
    public static let illegalDataValue = Self(.illegalDataValue)
    /// 04 server device failure.
    public static let serverDeviceFailure = Self(.serverDeviceFailure)
    /// 06 server device busy.
    public static let serverDeviceBusy = Self(.serverDeviceBusy)
    /// 0A gateway path unavailable.
    public static let gatewayPathUnavailable = Self(.gatewayPathUnavailable)
    /// 0B gateway target device failed to respond.
    public static let gatewayTargetDeviceFailedToRespond = Self(.gatewayTargetDeviceFailedToRespond)

    public var description: String {
        if let reason { "Modbus exception \(code): \(reason)" } else { "Modbus exception \(code)" }
    }
}

extension String {
    @usableFromInline
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
