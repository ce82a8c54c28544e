import Foundation

/// The Python interpreter that runs the tests' pymodbus clients.
///
/// One fixed interpreter, not whatever `python3` comes first on PATH: `Tests/setup.sh` installs
/// pymodbus for this one, where every user can import it, so the tests also pass when `.ci/run`
/// runs them as an unprivileged user (a `python3` under root's home would not be reachable).
/// `MQTT_MODBUS_TEST_PYTHON` overrides it.
public enum TestPython {
    /// The interpreter's path: `$MQTT_MODBUS_TEST_PYTHON`, else Debian's `/usr/bin/python3`.
    public static var path: String {
        ProcessInfo.processInfo.environment["MQTT_MODBUS_TEST_PYTHON"] ?? "/usr/bin/python3"
    }

    /// ``path`` as a file URL.
    public static var url: URL { URL(fileURLWithPath: path) }
}
