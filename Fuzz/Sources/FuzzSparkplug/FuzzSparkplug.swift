import FuzzSupport
import MQTTModbusBridgeConfiguration
import SparkplugB

#if canImport(Glibc)
import Glibc
#endif

/// The Sparkplug B decoding path: protobuf payloads decoded and fed to the node sessions, as
/// the bridge's ingest does.
///
/// Input: a topic text (a length and bytes) for the topic parser; then messages, each a byte
/// for the message type, one for the edge node (of two), one for the device (of two), a
/// two-byte length and that many payload bytes.
///
/// Invariants: a topic that parses writes back to its text; a decoded payload encodes to
/// bytes that decode to the same payload (quality kept as good or not good), and a metric value
/// that converts to a point value converts back to the same; the sessions follow their rules: a
/// birth puts the node (or device) in step with its metrics, a command changes nothing, a death
/// ends a session only with the session's bdSeq, a message of a node not in step is out of
/// step, a `seq` other than the next one puts the node out of step, DATA resolves every metric
/// or puts the node out of step.
///
/// `FuzzSparkplug --write-seeds DIR` writes the seed inputs, built with the codec.
@main
enum FuzzSparkplug {
    static func main() { FuzzDriver.main(fuzzSparkplug, extraCommands: ["--write-seeds": writeSeeds]) }
}

let nodes = [
    SparkplugNodeKey(groupID: "plant", edgeNodeID: "edge-1"), SparkplugNodeKey(groupID: "plant", edgeNodeID: "edge-2"),
]
let devices = ["meter", "pump"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSparkplug(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(FuzzDriver.bytes(data, size))
    let topicText = input.text(maxLength: 96)
    if let topic = SparkplugTopic(parsing: topicText) {
        fuzzCheck(topic.text == topicText, "topic '\(topicText)' written back as '\(topic.text)'")
    }
    var sessions = SparkplugSessions()
    var model = SessionModel()
    while !input.isEmpty {
        let type = SparkplugTopic.MessageType.allCases[input.choice(SparkplugTopic.MessageType.allCases.count)]
        let node = nodes[input.choice(nodes.count)]
        let device = devices[input.choice(devices.count)]
        let bytes = input.take(Int(input.uint16()) % 2048)
        let topic = SparkplugTopic(node: node, messageType: type, deviceID: type.isDeviceMessage ? device : nil)
        fuzzCheck(SparkplugTopic(parsing: topic.text) == topic, "topic \(topic.text) does not parse back")
        guard let payload = try? SparkplugPayload.decode(bytes) else { continue }
        checkRoundTrip(payload)
        checkValues(payload)
        let event = sessions.receive(topic, payload)
        model.check(event, topic: topic, payload: payload, sessions: sessions)
    }
    return 0
}

/// Encoding a decoded payload and decoding it again gives the same payload. The quality's
/// text is not kept (a number becomes the text "quality N"), only whether it is good.
func checkRoundTrip(_ payload: SparkplugPayload) {
    let again: SparkplugPayload
    do {
        again = try SparkplugPayload.decode(payload.encoded())
    } catch {
        fuzzCheck(false, "an encoded payload does not decode: \(error)")
        return
    }
    fuzzCheck(again.timestamp == payload.timestamp && again.seq == payload.seq, "timestamp or seq changed")
    fuzzCheck(again.metrics.count == payload.metrics.count, "metrics lost")
    for (metric, back) in zip(payload.metrics, again.metrics) {
        fuzzCheck(
            back.name == metric.name && back.alias == metric.alias && back.timestamp == metric.timestamp
                && back.datatype == metric.datatype && back.isNull == metric.isNull
                && back.isHistorical == metric.isHistorical,
            "metric \(metric) came back as \(back)"
        )
        fuzzCheck(sameValue(metric.value, back.value), "value \(String(describing: metric.value)) changed")
        fuzzCheck((metric.quality == .good) == (back.quality == .good), "quality \(metric.quality) changed")
    }
}

func sameValue(_ value: SparkplugPayload.Value?, _ back: SparkplugPayload.Value?) -> Bool {
    switch (value, back) {
    case (.float(let a)?, .float(let b)?): a.bitPattern == b.bitPattern
    case (.double(let a)?, .double(let b)?): a.bitPattern == b.bitPattern
    // A data set or a template is read over, and not written.
    case (.unsupported?, nil): true
    default: value == back
    }
}

/// A value that converts to a point value converts back to a metric value that gives the same
/// point value (the write path's conversion is the read path's inverse).
func checkValues(_ payload: SparkplugPayload) {
    for metric in payload.metrics {
        guard let datatype = metric.knownDatatype, let value = metric.value,
            let pointValue = try? value.pointValue(as: datatype)
        else { continue }
        if case .number(let number) = pointValue, !number.isFinite { continue }
        do {
            let back = try SparkplugPayload.Value(pointValue, as: datatype)
            let again = try back.pointValue(as: datatype)
            fuzzCheck(again == pointValue, "\(datatype) \(pointValue) comes back as \(again)")
        } catch {
            fuzzCheck(false, "\(datatype) \(pointValue) read from \(value) cannot be written: \(error)")
        }
    }
}

/// What the sessions must answer, kept apart from them: which nodes are in step, their bdSeq
/// and the next seq, and which devices are born.
struct SessionModel {
    var inStep: [SparkplugNodeKey: (bdSeq: UInt64?, nextSeq: UInt64, devices: Set<String>)] = [:]

    mutating func check(
        _ event: SparkplugSessions.Event,
        topic: SparkplugTopic,
        payload: SparkplugPayload,
        sessions: SparkplugSessions
    ) {
        let node = topic.node
        let named = payload.metrics.filter { $0.name != nil }.count
        switch topic.messageType {
        case .nodeCommand, .deviceCommand:
            guard case .ignored = event else { return fail("a command gave \(event)") }
        case .nodeBirth:
            guard case .born(node, nil, let metrics) = event, metrics.count == named else {
                return fail("NBIRTH gave \(event)")
            }
            inStep[node] = (payload.bdSeq, ((payload.seq ?? 0) % 256 + 1) % 256, [])
            for metric in payload.metrics {
                if let name = metric.name {
                    fuzzCheck(sessions.birthMetric(node, device: nil, name: name) != nil, "metric \(name) not born")
                }
            }
        case .nodeDeath:
            guard let session = inStep[node] else {
                guard case .ignored = event else { return fail("NDEATH of a node not in step gave \(event)") }
                break
            }
            if payload.bdSeq == session.bdSeq {
                guard case .nodeDied(node) = event else { return fail("NDEATH of the session gave \(event)") }
                inStep[node] = nil
            } else {
                guard case .ignored = event else { return fail("NDEATH of an earlier session gave \(event)") }
            }
        case .nodeData, .deviceBirth, .deviceData, .deviceDeath:
            guard var session = inStep[node] else {
                guard case .outOfStep(node, _) = event else { return fail("a message out of step gave \(event)") }
                break
            }
            guard payload.seq == session.nextSeq else {
                guard case .outOfStep(node, _) = event else { return fail("a seq gap gave \(event)") }
                inStep[node] = nil
                break
            }
            session.nextSeq = (session.nextSeq + 1) % 256
            let device = topic.deviceID ?? ""
            switch (topic.messageType, event) {
            case (.nodeData, .data(node, nil, let metrics)), (.deviceData, .data(node, device?, let metrics)):
                fuzzCheck(metrics.count == payload.metrics.count, "DATA resolved \(metrics.count) metrics")
                fuzzCheck(
                    topic.messageType == .nodeData || session.devices.contains(device),
                    "DATA of an unborn device"
                )
            case (.nodeData, .outOfStep(node, _)), (.deviceData, .outOfStep(node, _)):
                inStep[node] = nil
                return
            case (.deviceBirth, .born(node, device?, let metrics)):
                fuzzCheck(metrics.count == named, "DBIRTH gave \(metrics.count) metrics")
                session.devices.insert(device)
            case (.deviceDeath, .deviceDied(node, device)):
                session.devices.remove(device)
            default:
                return fail("\(topic.messageType) in step gave \(event)")
            }
            inStep[node] = session
        }
        for key in nodes {
            fuzzCheck(sessions.isInStep(key) == (inStep[key] != nil), "node \(key) in step: \(sessions.isInStep(key))")
            for device in devices {
                let born = inStep[key]?.devices.contains(device) ?? false
                fuzzCheck(sessions.isBorn(key, device: device) == born, "device \(device) of \(key) born: \(!born)")
            }
        }
    }

    func fail(_ message: String) { fuzzCheck(false, message) }
}

// MARK: Seeds

/// Writes seed inputs made with the codec: whole sessions (births, data by alias and by name,
/// deaths), a seq gap, an unknown alias, a late NDEATH, and single payloads of every datatype.
func writeSeeds(_ arguments: [String]) -> Int32 {
    guard let directory = arguments.first else {
        print("usage: FuzzSparkplug --write-seeds DIR")
        return 2
    }
    func metric(
        _ name: String?,
        alias: UInt64?,
        _ datatype: SparkplugDataType,
        _ value: SparkplugPayload.Value?
    )
        -> SparkplugPayload.Metric
    {
        SparkplugPayload.Metric(
            name: name,
            alias: alias,
            timestamp: 1_700_000_000_000,
            datatype: datatype.rawValue,
            value: value
        )
    }
    let birthMetrics = [
        metric("bdSeq", alias: nil, .uint64, .long(3)),
        metric("Node Control/Rebirth", alias: nil, .boolean, .boolean(false)),
        metric("temperature", alias: 1, .float, .float(21.5)),
        metric("pressure", alias: 2, .double, .double(1.013)),
        metric("count", alias: 3, .int32, .int(UInt32(bitPattern: -5))),
        metric("total", alias: 4, .uint64, .long(123_456_789_012)),
        metric("running", alias: 5, .boolean, .boolean(true)),
        metric("label", alias: 6, .string, .string("pump A")),
        metric("small", alias: 7, .int8, .int(0xFF)),
        metric("word", alias: 8, .uint16, .int(65535)),
        metric("when", alias: 9, .dateTime, .long(1_700_000_000_000)),
    ]
    var stale = metric("temperature", alias: 1, .float, .float(19))
    stale.quality = .notGood("quality 500")
    let nbirth = SparkplugPayload(timestamp: 1_700_000_000_000, seq: 0, metrics: birthMetrics)
    let ndata = SparkplugPayload(
        timestamp: 1_700_000_000_100,
        seq: 1,
        metrics: [metric(nil, alias: 1, .float, .float(22)), metric(nil, alias: 5, .boolean, .boolean(false)), stale]
    )
    let dbirth = SparkplugPayload(
        seq: 2,
        metrics: [
            metric("power", alias: 20, .int16, .int(UInt32(bitPattern: -300))),
            metric("on", alias: 21, .boolean, .boolean(true)),
        ]
    )
    let ddata = SparkplugPayload(seq: 3, metrics: [metric(nil, alias: 20, .int16, .int(1200))])
    let ddeath = SparkplugPayload(seq: 4)
    let ndeath = SparkplugPayload(metrics: [metric("bdSeq", alias: nil, .uint64, .long(3))])
    let lateDeath = SparkplugPayload(metrics: [metric("bdSeq", alias: nil, .uint64, .long(2))])
    let gap = SparkplugPayload(seq: 7, metrics: [metric(nil, alias: 1, .float, .float(23))])
    let unknownAlias = SparkplugPayload(seq: 1, metrics: [metric(nil, alias: 99, .float, .float(1))])
    let command = SparkplugPayload.rebirthRequest(timestamp: 1_700_000_000_000)

    typealias Message = (SparkplugTopic.MessageType, node: Int, device: Int, SparkplugPayload)
    func input(_ messages: [Message], topic: String = "") -> [UInt8] {
        var bytes = [UInt8(topic.utf8.count)] + Array(topic.utf8)
        for (type, node, device, payload) in messages {
            let encoded = payload.encoded()
            let typeIndex = UInt8(SparkplugTopic.MessageType.allCases.firstIndex(of: type)!)
            bytes += [typeIndex, UInt8(node), UInt8(device), UInt8(encoded.count >> 8), UInt8(encoded.count & 0xFF)]
            bytes += encoded
        }
        return bytes
    }
    let seeds: [String: [UInt8]] = [
        "session": input([
            (.nodeBirth, 0, 0, nbirth), (.nodeData, 0, 0, ndata), (.deviceBirth, 0, 0, dbirth),
            (.deviceData, 0, 0, ddata), (.deviceDeath, 0, 0, ddeath), (.nodeDeath, 0, 0, ndeath),
        ]),
        "two-nodes": input([
            (.nodeBirth, 0, 0, nbirth), (.nodeBirth, 1, 0, nbirth), (.nodeData, 1, 0, ndata),
            (.nodeCommand, 0, 0, command), (.nodeData, 0, 0, ndata),
        ]),
        "seq-gap": input([(.nodeBirth, 0, 0, nbirth), (.nodeData, 0, 0, gap), (.nodeData, 0, 0, ndata)]),
        "unknown-alias": input([(.nodeBirth, 0, 0, nbirth), (.nodeData, 0, 0, unknownAlias)]),
        "late-death": input([(.nodeBirth, 0, 0, nbirth), (.nodeDeath, 0, 0, lateDeath), (.nodeData, 0, 0, ndata)]),
        "data-before-birth": input([(.deviceData, 1, 1, ddata), (.nodeBirth, 1, 1, nbirth)]),
        "topic": input([(.nodeBirth, 0, 0, nbirth)], topic: "spBv1.0/plant/DDATA/edge-1/meter"),
        "state-topic": input([], topic: "spBv1.0/STATE/scada-host"),
        // seq is a uint64 on the wire; 2^64 - 1 once trapped the sessions.
        "largest-seq": input([
            (.nodeBirth, 0, 0, SparkplugPayload(seq: .max, metrics: birthMetrics)),
            (.nodeData, 0, 0, SparkplugPayload(seq: 0)),
        ]),
    ]
    for (name, bytes) in seeds {
        let path = directory + "/" + name
        guard let file = fopen(path, "wb") else {
            print("cannot write \(path)")
            return 1
        }
        _ = bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    print("wrote \(seeds.count) seeds to \(directory)")
    return 0
}
