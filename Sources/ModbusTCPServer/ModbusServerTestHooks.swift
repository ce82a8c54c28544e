import NIOCore
import Synchronization

/// Seams for tests to make connection setup fail; nothing sets them outside tests.
final class ModbusServerTestHooks: Sendable {
    private let setup = Mutex<(@Sendable (any Channel) throws -> Void)?>(nil)

    /// Runs first in every accepted connection's setup; a throw takes the setup-failure path.
    var connectionSetup: (@Sendable (any Channel) throws -> Void)? {
        get { setup.withLock { $0 } }
        set { setup.withLock { $0 = newValue } }
    }
}
