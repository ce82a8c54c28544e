/// MQTT 5 subscription options. The defaults are MQTT 3.1.1's behaviour, so
/// they work over either protocol version; anything else needs MQTT 5.
public struct MQTTSubscriptionOptions: Sendable, Hashable {
    /// When the broker sends retained messages for a new subscription.
    public enum RetainHandling: UInt8, Sendable, Hashable {
        /// On every subscribe (the MQTT 3.1.1 behaviour).
        case sendOnSubscribe = 0
        /// Only if the subscription did not exist before.
        case sendOnNewSubscription = 1
        /// Never.
        case doNotSend = 2
    }

    /// Do not receive messages this client published itself (for example a
    /// gateway that publishes commands under a topic it also subscribes to).
    public var noLocal: Bool
    /// Keep the retain flag as published on live messages instead of clearing it.
    public var retainAsPublished: Bool
    /// When retained messages are sent.
    public var retainHandling: RetainHandling

    /// Creates options.
    public init(
        noLocal: Bool = false,
        retainAsPublished: Bool = false,
        retainHandling: RetainHandling = .sendOnSubscribe
    ) {
        self.noLocal = noLocal
        self.retainAsPublished = retainAsPublished
        self.retainHandling = retainHandling
    }

    /// True for the MQTT 3.1.1-compatible defaults.
    var isDefault: Bool {
        !self.noLocal && !self.retainAsPublished && self.retainHandling == .sendOnSubscribe
    }

    /// The option bits of the SUBSCRIBE packet (MQTT 5 §3.8.3.1), as
    /// libmosquitto's `options` argument expects them.
    var mosquittoOptions: Int32 {
        var bits: Int32 = 0
        if self.noLocal { bits |= 0x04 }
        if self.retainAsPublished { bits |= 0x08 }
        bits |= Int32(self.retainHandling.rawValue) << 4
        return bits
    }
}

/// The client's subscriptions at one moment (``MQTTClient/subscriptionCounts``).
public struct MQTTSubscriptionCounts: Sendable, Hashable {
    /// Subscriptions the client keeps and restores on every reconnection: those a
    /// `subscribe` call made and the broker granted, less those unsubscribed.
    public var remembered: Int
    /// Filters the broker granted on the current connection; 0 while disconnected.
    public var acknowledged: Int
    /// SUBSCRIBE packets sent (by calls or by restoring after a reconnection) whose SUBACK has
    /// not arrived yet.
    public var pending: Int

    /// Counts as the client reports them.
    public init(remembered: Int, acknowledged: Int, pending: Int) {
        self.remembered = remembered
        self.acknowledged = acknowledged
        self.pending = pending
    }
}
