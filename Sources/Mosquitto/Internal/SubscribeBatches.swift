#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How many filters go into one SUBSCRIBE packet (`mosquitto_subscribe_multiple`).
///
/// One packet per filter costs a round trip's worth of broker and client work each: 10,000
/// filters took about 1.5 s to subscribe even with a thousand packets in flight. One packet
/// carries one QoS and one set of options for all its filters, and a broker may limit the
/// packet size (MQTT 5's Maximum Packet Size, mosquitto's `max_packet_size`), so a batch holds
/// filters of one kind and stays far below any sensible limit.
enum SubscribeBatches {
    /// Filters per packet at most.
    static let maxFilters = 1000
    /// Bytes of filters (each with its 2-byte length and its options byte) per packet at most.
    static let maxBytes = 64 * 1024

    /// `subscriptions` in packets: grouped by QoS and options (groups in the order of their
    /// first filter, filters in their order within a group), each packet at most `maxFilters`
    /// filters and `maxBytes` bytes of them (a single larger filter gets a packet of its own).
    static func split(
        _ subscriptions: [Subscription],
        maxFilters: Int = maxFilters,
        maxBytes: Int = maxBytes
    ) -> [[Subscription]] {
        struct Kind: Hashable {
            var qos: MQTTQoS
            var options: MQTTSubscriptionOptions
        }
        var order: [Kind] = []
        var groups: [Kind: [Subscription]] = [:]
        for subscription in subscriptions {
            let kind = Kind(qos: subscription.qos, options: subscription.options)
            if groups[kind] == nil { order.append(kind) }
            groups[kind, default: []].append(subscription)
        }
        var packets: [[Subscription]] = []
        for kind in order {
            var packet: [Subscription] = []
            var bytes = 0
            for subscription in groups[kind] ?? [] {
                let size = subscription.filter.utf8.count + 3
                if !packet.isEmpty && (packet.count >= maxFilters || bytes + size > maxBytes) {
                    packets.append(packet)
                    packet = []
                    bytes = 0
                }
                packet.append(subscription)
                bytes += size
            }
            if !packet.isEmpty { packets.append(packet) }
        }
        return packets
    }

    /// Calls `body` with the strings as an array of C strings (`char *const *`), valid only
    /// during the call.
    static func withCStrings<Result>(
        _ strings: [String],
        _ body: (UnsafeBufferPointer<UnsafeMutablePointer<CChar>?>) -> Result
    ) -> Result {
        let copies = strings.map { strdup($0) }
        defer { for copy in copies { free(copy) } }
        return copies.withUnsafeBufferPointer(body)
    }
}
