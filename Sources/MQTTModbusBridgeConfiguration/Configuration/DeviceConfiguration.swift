/// A device: a group of points that lives or dies together, with the ways the bridge learns that
/// it is gone (the `devices:` section). Points join a device by name (`device:` on the point, or
/// on its unit for every point of the unit).
///
/// While a device is offline, its points read as their missing-value policy says, at once and
/// whatever their `max_age`, and writes to them answer 0B without publishing anything (unless
/// ``offlineWrites`` is ``OfflineWritePolicy/publish``).
public struct DeviceConfiguration: Sendable, Hashable {
    /// The device's name, unique among devices; points refer to it.
    public var name: String
    /// The topic where the device (or its last will) says whether it is online.
    public var availability: AvailabilitySettings?
    /// No message from the device (on its availability topic or any of its points' state topics)
    /// for this long makes it offline, until the next message; `nil`: silence is not watched.
    public var silence: Duration?
    /// What a Modbus write to a point of the device does while the device is offline.
    public var offlineWrites: OfflineWritePolicy
    /// Where the device was defined.
    public var location: ConfigurationLocation
    /// What the device's `profile:` expanded to (its family and the topics derived); `nil`: the
    /// device was described by hand.
    public var profile: DeviceProfile?
    /// Messages published on start and after each reconnection to make the device report its
    /// state (a profile's, or `refresh:` written by hand); empty: none.
    public var refresh: [RefreshMessage] = []
    /// The Sparkplug B edge node (and device) whose births, data and deaths the device's points
    /// follow (`sparkplug:`); `nil`: not a Sparkplug device.
    public var sparkplug: SparkplugSource?

    /// Creates a device.
    public init(
        name: String,
        availability: AvailabilitySettings? = nil,
        silence: Duration? = nil,
        offlineWrites: OfflineWritePolicy = .refuse,
        location: ConfigurationLocation = ConfigurationLocation(file: "", line: 0, column: 0)
    ) {
        self.name = name
        self.availability = availability
        self.silence = silence
        self.offlineWrites = offlineWrites
        self.location = location
    }

    /// Whether anything tells the bridge that the device is gone: an availability topic, a
    /// silence limit, or Sparkplug death certificates.
    public var watchesAvailability: Bool { availability != nil || silence != nil || sparkplug != nil }
}

/// What a write to an offline device's point does.
public enum OfflineWritePolicy: String, Sendable, Hashable, CaseIterable {
    /// Answer 0B (gateway target device failed to respond) and publish nothing: a command to a
    /// device that is gone would be applied whenever it comes back, if ever.
    case refuse
    /// Publish the command anyway and wait for its acknowledgement as usual.
    case publish
}

/// How a device announces that it is online or offline, usually through its MQTT last will.
public struct AvailabilitySettings: Sendable, Hashable {
    /// The topic (a topic name, not a filter) the availability messages arrive on.
    public var topic: String
    /// Payloads meaning online (compared without case).
    public var onlineWords: [String]
    /// Payloads meaning offline (compared without case).
    public var offlineWords: [String]
    /// Where the word is in a JSON payload (`{"state": "online"}` with path `state`); a payload
    /// that is not JSON, or has nothing there, is read as plain text, so that both forms work.
    public var path: JSONPath?

    /// `online` and `true`: Tasmota's `Online`, zigbee2mqtt's `online`, Shelly's `true`.
    public static let defaultOnlineWords = ["online", "true"]
    /// `offline` and `false`.
    public static let defaultOfflineWords = ["offline", "false"]

    /// Creates availability settings.
    public init(
        topic: String,
        onlineWords: [String] = AvailabilitySettings.defaultOnlineWords,
        offlineWords: [String] = AvailabilitySettings.defaultOfflineWords,
        path: JSONPath? = nil
    ) {
        self.topic = topic
        self.onlineWords = onlineWords
        self.offlineWords = offlineWords
        self.path = path
    }
}
