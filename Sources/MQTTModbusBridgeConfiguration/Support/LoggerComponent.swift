import Logging

extension Logger {
    /// A logger for a part of the component this logger belongs to: labelled `<label>.<name>`,
    /// with this logger's level and metadata, so that a level set on the bridge's logger also
    /// governs its MQTT client and Modbus server.
    package func component(_ name: String) -> Logger {
        var child = Logger(label: "\(label).\(name)")
        child.logLevel = logLevel
        for (key, value) in handler.metadata { child[metadataKey: key] = value }
        return child
    }
}
