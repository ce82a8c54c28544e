import CMosquitto

/// Process-wide libmosquitto set-up.
enum MosquittoLibrary {
    /// `mosquitto_lib_init` must run once per process before any other call
    /// (it seeds OpenSSL and the random source). A global `let` is initialised
    /// lazily, exactly once and thread-safely by the Swift runtime. There is no
    /// matching `mosquitto_lib_cleanup`: the library stays usable until exit.
    private static let initResult: Int32 = mosquitto_lib_init()

    static func initialize() throws(MQTTError) {
        let rc = Self.initResult
        guard rc == MOSQ_ERR_SUCCESS.rawValue else {
            throw MosquittoResult.error(rc)
        }
    }

    static var version: String {
        var major: Int32 = 0
        var minor: Int32 = 0
        var revision: Int32 = 0
        _ = mosquitto_lib_version(&major, &minor, &revision)
        return "\(major).\(minor).\(revision)"
    }
}
