import ModbusCore

/// What became of one request a server took.
public enum ModbusRequestOutcome: Sendable, Hashable {
    /// Answered with the normal response.
    case ok
    /// Answered with this exception: by a handler, or by the server itself (01 for a function
    /// it does not serve, 02 or 03 for a malformed request, 0B for a unit outside its set).
    case exception(ModbusExceptionCode)
    /// Not answered: a unit outside the set with ``ModbusUnknownUnitResponse/noResponse``.
    case unanswered
}

/// One request as a ``ModbusRequestObserver`` sees it.
public struct ModbusObservedRequest: Sendable, Hashable {
    /// The unit id the request was addressed to.
    public var unitID: UInt8
    /// The function code byte as received, served or not (an exception reply carries it with
    /// the high bit set; this is the request's).
    public var functionCode: UInt8
    public var outcome: ModbusRequestOutcome

    /// Creates an observed request.
    public init(unitID: UInt8, functionCode: UInt8, outcome: ModbusRequestOutcome) {
        self.unitID = unitID
        self.functionCode = functionCode
        self.outcome = outcome
    }
}

/// Sees every request the server takes, once, when its reply is ready (or when it is decided
/// that there is none): the one place to count requests by function code, unit and outcome,
/// including those the server answers without calling a handler.
///
/// It runs on the connection's event loop (or, for a request whose handler suspended, on the
/// task that ran it), before the reply is written: keep it to an atomic counter or two.
public struct ModbusRequestObserver: Sendable {
    private let body: @Sendable (ModbusObservedRequest) -> Void

    /// An observer calling `body` for every request.
    public init(_ body: @escaping @Sendable (ModbusObservedRequest) -> Void) {
        self.body = body
    }

    func observe(_ unitID: UInt8, _ functionCode: UInt8, _ outcome: ModbusRequestOutcome) {
        body(ModbusObservedRequest(unitID: unitID, functionCode: functionCode, outcome: outcome))
    }
}
