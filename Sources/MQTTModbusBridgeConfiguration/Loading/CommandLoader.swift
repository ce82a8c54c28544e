import Foundation
import Yams

extension ConfigurationLoader {
    /// Builds a point's command settings from its keys and the defaults, and checks that the ack
    /// mode can work with the rest of the point.
    func resolveCommand(
        topic: String,
        topicEntry: Entry,
        view: MappingView,
        defaults: PointDefaults,
        qos: QoSLevel,
        stateTopic: String?,
        payload statePayload: PayloadFormat,
        commandPayload: PayloadFormat? = nil,
        type: PointType,
        name: String,
        context: String
    ) -> (CommandSettings?, AckModeSource?) {
        let errorsBefore = diagnostics.errorCount
        // Commands are written in their own format when the point gives one.
        let payload = commandPayload ?? statePayload

        var template: CommandTemplate?
        let templateEntry = view["command_template"]
        if let templateEntry, let text = reader.string(templateEntry) {
            do {
                template = try CommandTemplate(parsing: text)
            } catch {
                let known = CommandTemplate.Placeholder.allCases.map { "{{\($0.rawValue)}}" }
                let suggestion = error.unknownName.flatMap {
                    YAMLReader.closest(to: $0, in: CommandTemplate.Placeholder.allCases.map(\.rawValue))
                }
                diagnostics.error(
                    "'command_template': \(error.reason)",
                    at: templateEntry.mark,
                    fix: suggestion.map { "did you mean '{{\($0)}}'?" }
                        ?? "placeholders are \(known.joined(separator: ", "))"
                )
            }
        }
        let retain = reader.bool(view["command_retain"]) ?? false

        let pointAck = view["ack"].map { parseAck($0, context: "\(context) ack") } ?? AckPartial()
        let mode: AckSettings.Mode
        let source: AckModeSource
        let modeMark: Mark?
        if let explicit = pointAck.mode {
            mode = explicit.mode
            source = .point(explicit.entry.mark)
            modeMark = explicit.entry.mark
        } else if let inherited = defaults.ack.mode {
            mode = inherited.mode
            source = .defaults(inherited.entry.mark)
            modeMark = inherited.entry.mark
        } else {
            // Never broker: the weakest mode must be chosen explicitly (docs/design.md §4).
            mode = .mqtt5
            source = .builtIn
            modeMark = topicEntry.mark
        }
        let modeOrigin: String
        switch source {
        case .point: modeOrigin = "ack mode \(mode)"
        case .defaults: modeOrigin = "ack mode \(mode) (from defaults.ack)"
        case .builtIn: modeOrigin = "ack mode \(mode) (the default)"
        }

        var ack = AckSettings(mode: mode)
        ack.timeout = pointAck.timeout ?? defaults.ack.timeout ?? AckSettings.defaultTimeout
        ack.idField = pointAck.idField ?? defaults.ack.idField ?? AckSettings.defaultIDField
        ack.successField = pointAck.successField ?? defaults.ack.successField ?? AckSettings.defaultSuccessField
        ack.errorField = pointAck.errorField ?? defaults.ack.errorField ?? AckSettings.defaultErrorField
        ack.codeField = pointAck.codeField ?? defaults.ack.codeField ?? AckSettings.defaultCodeField
        ack.tolerance = pointAck.tolerance?.value ?? defaults.ack.tolerance?.value ?? 0

        // Keys written on the point that the mode does not use are mistakes.
        let applicable: [String: Set<AckSettings.Mode>] = [
            "response_topic": [.mqtt5, .correlationID], "id_field": [.correlationID],
            "success_field": [.mqtt5, .correlationID],
            "error_field": [.mqtt5, .correlationID], "code_field": [.mqtt5, .correlationID], "tolerance": [.stateEcho],
        ]
        if let ackView = pointAck.view {
            for key in ackView.order {
                if let modes = applicable[key], !modes.contains(mode) {
                    let users = AckSettings.Mode.allCases.filter { modes.contains($0) }.map(\.rawValue).joined(
                        separator: " and "
                    )
                    diagnostics.error(
                        "ack '\(key)' only applies to mode \(users); this point uses \(modeOrigin)",
                        at: ackView[key]!.keyNode.mark,
                        fix: "remove \(key), or change the mode"
                    )
                }
            }
        }

        defer {
            if let responseTopic = ack.responseTopic, MQTTTopicRules.filter(responseTopic, matches: topic) {
                let entry = pointAck.responseTopic?.entry ?? defaults.ack.responseTopic?.entry
                diagnostics.error(
                    "ack response_topic '\(responseTopic)' receives the command topic '\(topic)': the bridge would take its own command for the acknowledgement",
                    at: entry?.mark ?? topicEntry.mark,
                    fix: "use a separate topic for acknowledgements (e.g. \(topic)/response)"
                )
            }
        }
        switch mode {
        case .mqtt5:
            if let explicit = pointAck.responseTopic ?? defaults.ack.responseTopic {
                if checkTopicName(explicit.topic, explicit.entry) { ack.responseTopic = explicit.topic }
            } else {
                ack.responseTopic = topic + "/response"
            }
            if protocolVersion == .mqtt311 {
                switch source {
                case .point(let mark), .defaults(let mark):
                    diagnostics.error(
                        "ack mode mqtt5 needs MQTT 5 request/response, but broker.protocol is mqtt311",
                        at: mark,
                        fix: "use protocol: mqtt5, or choose correlation_id, state_echo or broker"
                    )
                case .builtIn:
                    break  // reported once for all such points, at broker.protocol
                }
            }
        case .correlationID:
            if let explicit = pointAck.responseTopic ?? defaults.ack.responseTopic {
                if checkTopicFilter(explicit.topic, explicit.entry) { ack.responseTopic = explicit.topic }
            } else {
                diagnostics.error(
                    "\(modeOrigin) needs 'response_topic', the topic the device's acks arrive on",
                    at: modeMark,
                    fix: "add ack: { response_topic: <ack topic> } to the point or to defaults.ack"
                )
            }
            if let template {
                if !template.placeholders.contains(.correlationID) {
                    diagnostics.error(
                        "\(modeOrigin) needs the id in the command, but 'command_template' has no {{correlation_id}}",
                        at: templateEntry?.mark,
                        fix: "add \"\(ack.idField)\": \"{{correlation_id}}\" to the template"
                    )
                }
            } else if let path = payload.jsonPath {
                if path.isRoot || path.components.starts(with: ack.idField.components)
                    || ack.idField.components.starts(with: path.components)
                {
                    diagnostics.error(
                        "\(modeOrigin): the id field '\(ack.idField)' and the value path '\(path)' cannot share one command document",
                        at: modeMark,
                        fix: "give the value a path beside the id (e.g. path: value), or write a command_template"
                    )
                }
            } else {
                diagnostics.error(
                    "\(modeOrigin) needs the id in the command, but a \(payload.name) payload cannot carry it",
                    at: modeMark,
                    fix: "use payload format json, or a command_template containing {{correlation_id}}"
                )
            }
        case .stateEcho:
            if let stateTopic {
                if MQTTTopicRules.filter(stateTopic, matches: topic) {
                    diagnostics.error(
                        "\(modeOrigin) would take the bridge's own command on '\(topic)' for the device's confirmation: state_topic '\(stateTopic)' receives it",
                        at: topicEntry.mark,
                        fix: "publish commands on a separate topic (e.g. \(topic)/set)"
                    )
                }
            } else {
                diagnostics.error(
                    "\(modeOrigin) needs a 'state_topic' to watch for the written value",
                    at: modeMark,
                    fix: "add state_topic, or choose another ack mode"
                )
            }
        case .broker:
            if qos == .atMostOnce {
                diagnostics.error(
                    "\(modeOrigin) needs QoS 1 or 2: at QoS 0 the broker acknowledges nothing",
                    at: view["qos"]?.mark ?? modeMark,
                    fix: "set qos: 1"
                )
            }
        }
        if mode != .stateEcho, let stateTopic, MQTTTopicRules.filter(stateTopic, matches: topic) {
            diagnostics.warning(
                "state_topic '\(stateTopic)' receives the bridge's own commands on '\(topic)': a command shows as the state before the device applies it",
                at: topicEntry.mark,
                fix: "publish commands on a separate topic"
            )
        }

        // A template for a JSON payload must give JSON.
        if let template, case .json = payload.encoding {
            var probe = PointConfiguration(
                name: name.isEmpty ? "point" : name,
                unitID: 1,
                area: .holdingRegister,
                address: 0,
                type: type,
                payload: payload
            )
            probe.command = CommandSettings(topic: topic, template: template, ack: ack, payload: commandPayload)
            let sample: PointValue = type.isBoolean ? .bool(true) : (type.kind == .string ? .text("text") : .integer(1))
            if let text = try? CommandEncoder(point: probe).render(
                template,
                value: sample,
                correlationID: "0123abcd",
                timestamp: Date(timeIntervalSince1970: 0)
            ) {
                do {
                    _ = try JSONParser.parse(Array(text.utf8))
                } catch {
                    diagnostics.error(
                        "'command_template' does not give valid JSON for format json (\(error.reason), with {{value}} = \(sample))",
                        at: templateEntry?.mark,
                        fix:
                            "{{value}} becomes a JSON literal (numbers and true/false bare, text quoted); put other placeholders inside quotes"
                    )
                }
            }
        }

        guard diagnostics.errorCount == errorsBefore else { return (nil, source) }
        return (
            CommandSettings(
                topic: topic,
                template: template,
                qos: qos,
                retain: retain,
                ack: ack,
                payload: commandPayload
            ), source
        )
    }
}
