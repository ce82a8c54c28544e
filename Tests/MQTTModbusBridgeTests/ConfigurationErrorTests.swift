import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

/// Every validation error, from a broken snippet: the message, the fix where there is one, and
/// the exact line (the line marked `#!`).
@Suite("Configuration errors")
struct ConfigurationErrorTests {
    @Suite("YAML syntax and document structure")
    struct YAMLAndStructure {

        @Test("YAML syntax error carries the line Yams reports") func yamlSyntaxErrorCarriesTheLineYamsReports() {
            let yaml = """
                units:
                  - id: 1
                    points:
                      - name: "unterminated
                        area: coil #!
                """
            let errors = configurationErrors(yaml)
            #expect(errors.count == 1)
            #expect(errors.first?.message.hasPrefix("invalid YAML") == true)
            #expect(errors.first?.line == 6 || errors.first?.line == 5, "\(errors)")
        }

        @Test("Bad indentation is a syntax error") func badIndentationIsASyntaxError() {
            let yaml = """
                broker:
                  host: a
                 port: 1883 #!
                """
            let errors = configurationErrors(yaml)
            #expect(errors.count == 1)
            #expect(errors.first?.message.contains("invalid YAML") == true)
            #expect(errors.first?.line == 3, "\(errors)")
        }

        @Test("Duplicate key") func duplicateKey() {
            let yaml = """
                broker:
                  host: a #!
                  host: b
                units: []
                """
            let errors = configurationErrors(yaml)
            #expect(errors.count == 1)
            #expect(errors.first?.message.contains("duplicate key 'host'") == true)
            #expect(errors.first?.line == 2)
        }

        @Test("Empty document") func emptyDocument() {
            expectSingleError("# only a comment #!\n", "the configuration is empty")
        }

        @Test("Root must be a mapping") func rootMustBeAMapping() {
            expectSingleError("- a #!\n- b\n", "the configuration must be a mapping")
        }

        @Test("Unknown top level key suggests the closest") func unknownTopLevelKeySuggestsTheClosest() {
            let yaml = """
                unit: #!
                  - id: 1
                """
            // One error: "missing 'units'" would only repeat it.
            let error = expectSingleError(yaml, "unknown key 'unit' in the configuration", fix: "did you mean 'units'?")
            #expect(error?.message == "unknown key 'unit' in the configuration")
            #expect(error?.column == 1)
        }

        @Test("Unknown point key suggests state topic") func unknownPointKeySuggestsStateTopic() {
            let yaml = singlePoint(
                """
                      - name: t
                        area: input_register
                        address: 0
                        type: int16
                        stat_topic: a/b #!
                """
            )
            // Only the misspelling: "has neither state_topic nor command_topic" would say it twice.
            let error = expectSingleError(
                yaml,
                "unknown key 'stat_topic' in point 't'",
                fix: "did you mean 'state_topic'?"
            )
            #expect(error?.line == 8)
            #expect(error?.column == 9)
        }

        @Test("Misspelt required key is reported once") func misspeltRequiredKeyIsReportedOnce() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, adress: 3, state_topic: a } #!\n"),
                "unknown key 'adress' in point 'a'",
                fix: "did you mean 'address'?"
            )
        }

        @Test("Unknown key without close match lists the allowed keys")
        func unknownKeyWithoutCloseMatchListsTheAllowedKeys() {
            let yaml = """
                broker:
                  tls:
                    ca_file: a.pem
                    zebra: 1 #!
                units:
                  - id: 1
                    points:
                      - { name: a, area: coil, address: 0, state_topic: a }
                """
            expectSingleError(yaml, "unknown key 'zebra' in broker.tls", fix: "allowed keys: ca_file, ca_path")
        }

        @Test("Unknown keys at every level") func unknownKeysAtEveryLevel() {
            let yaml = """
                modbus:
                  prot: 502
                defaults:
                  ack: { mod: mqtt5 }
                units:
                  - id: 1
                    fill_gap: true
                    points:
                      - name: a
                        area: coil
                        address: 0
                        state_topic: a
                        payload: { formt: json }
                """
            let errors = configurationErrors(yaml)
            #expect(errors.map(\.line) == [2, 4, 7, 13])
            #expect(
                errors.map(\.fix) == [
                    "did you mean 'port'?", "did you mean 'mode'?", "did you mean 'fill_gaps'?",
                    "did you mean 'format'?",
                ]
            )
        }

        @Test("Wrong value types") func wrongValueTypes() {
            let yaml = """
                broker:
                  port: abc
                  clean_session: maybe
                  tls: yes
                units:
                  - id: 1
                    points: 5
                """
            let errors = configurationErrors(yaml)
            #expect(errors.map(\.line) == [2, 3, 4, 7])
            #expect(errors[0].message == "'port' must be a whole number, found 'abc'")
            #expect(errors[1].message == "'clean_session' must be true or false, found 'maybe'")
            #expect(errors[2].message == "broker.tls must be a mapping of key: value pairs, found 'yes'")
            #expect(errors[3].message == "'points' must be a list, found '5'")
        }

        @Test("Units must be a list") func unitsMustBeAList() {
            expectSingleError("units: #!\n  id: 1\n", "'units' must be a list, found a mapping")
        }

        @Test("Empty value is an error") func emptyValueIsAnError() {
            let yaml = """
                broker:
                  host: #!
                units:
                  - id: 1
                    points:
                      - { name: a, area: coil, address: 0, state_topic: a }
                """
            expectSingleError(yaml, "'host' has no value")
        }

        @Test("Version must be 1") func versionMustBeOne() {
            expectSingleError(
                "version: 2 #!\nunits:\n  - id: 1\n    points:\n      - { name: a, area: coil, address: 0, state_topic: a }\n",
                "'version' must be in 1...1"
            )
        }
    }

    @Suite("Required keys and value ranges")
    struct RequiredKeysAndRanges {

        @Test("Missing required point keys") func missingRequiredPointKeys() {
            let yaml = singlePoint(
                """
                      - name: p #!
                        state_topic: a
                """
            )
            let errors = configurationErrors(yaml)
            #expect(errors.map(\.message) == ["point 'p' is missing 'area'", "point 'p' is missing 'address'"])
            #expect(errors.allSatisfy { $0.line == markedLine(in: yaml) })
        }

        @Test("Register points need a type") func registerPointsNeedAType() {
            expectSingleError(
                singlePoint(
                    """
                          - name: p #!
                            area: holding_register
                            address: 0
                            state_topic: a
                    """
                ),
                "point 'p' is missing 'type'",
                fix: "int16, uint16"
            )
        }

        @Test("Missing unit ID") func missingUnitID() {
            let yaml = """
                units:
                  - name: boiler #!
                    points:
                      - { name: a, area: coil, address: 0, state_topic: a }
                """
            expectSingleError(yaml, "unit is missing 'id'")
        }

        @Test("Unit ID out of range") func unitIDOutOfRange() {
            let yaml = """
                units:
                  - id: 256 #!
                    points:
                      - { name: a, area: coil, address: 0, state_topic: a }
                """
            expectSingleError(yaml, "'id' must be in 0...255, found 256", fix: "Modbus unit ids are 0...255")
        }

        @Test("Address out of range") func addressOutOfRange() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 70000, state_topic: a } #!\n"),
                "'address' must be in 0...65535, found 70000"
            )
        }

        @Test("Negative address") func negativeAddress() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: -1, state_topic: a } #!\n"),
                "'address' must be in 0...65535, found -1"
            )
        }

        @Test("QoS out of range") func qosOutOfRange() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, state_topic: a, qos: 3 } #!\n"),
                "'qos' must be one of 0, 1, 2, found '3'"
            )
        }

        @Test("Broker port out of range") func brokerPortOutOfRange() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, state_topic: a }\n", broker: "  port: 0 #!"),
                "'port' must be in 1...65535, found 0"
            )
        }

        @Test("Modbus port out of range") func modbusPortOutOfRange() {
            let yaml =
                "modbus:\n  port: 70000 #!\n"
                + singlePoint("      - { name: a, area: coil, address: 0, state_topic: a }\n")
            expectSingleError(yaml, "'port' must be in 0...65535, found 70000")
        }

        @Test("Bit out of range") func bitOutOfRange() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: bit, bit: 16, state_topic: a } #!\n"
                ),
                "'bit' must be in 0...15, found 16"
            )
        }

        @Test("Bit position required for bit type") func bitPositionRequiredForBitType() {
            expectSingleError(
                singlePoint("      - { name: a, area: holding_register, address: 0, type: bit, state_topic: a } #!\n"),
                "point 'a' is missing 'bit'"
            )
        }

        @Test("String length out of range") func stringLengthOutOfRange() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: string, length: 124, state_topic: a } #!\n"
                ),
                "'length' must be in 1...123, found 124"
            )
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: string, length: 0, state_topic: a } #!\n"
                ),
                "'length' must be in 1...123, found 0"
            )
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: string, state_topic: a } #!\n"
                ),
                "point 'a' is missing 'length'"
            )
        }

        @Test("Length and bit only for their types") func lengthAndBitOnlyForTheirTypes() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: int16, length: 4, state_topic: a } #!\n"
                ),
                "'length' only applies to type string (this point is int16)"
            )
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: uint16, bit: 4, state_topic: a } #!\n"
                ),
                "'bit' only applies to type bit (this point is uint16)"
            )
        }

        @Test("Unknown area suggests the closest") func unknownAreaSuggestsTheClosest() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_registers, address: 0, type: int16, state_topic: a } #!\n"
                ),
                "'area' must be one of coil, discrete_input, holding_register, input_register, found 'holding_registers'",
                fix: "did you mean 'holding_register'?"
            )
        }

        @Test("Unknown type suggests the closest") func unknownTypeSuggestsTheClosest() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: flaot32, state_topic: a } #!\n"
                ),
                "found 'flaot32'",
                fix: "did you mean 'float32'?"
            )
        }

        @Test("Invalid point name") func invalidPointName() {
            expectSingleError(
                singlePoint("      - { name: boiler temp, area: coil, address: 0, state_topic: a } #!\n"),
                "point name 'boiler temp' may contain only",
                fix: "boiler_temp"
            )
        }
    }

    @Suite("Register placement and types")
    struct Registers {

        @Test("Overlapping registers name both points and lines") func overlappingRegistersNameBothPointsAndLines() {
            let yaml = """
                units:
                  - id: 1
                    points:
                      - name: first
                        area: holding_register
                        address: 10
                        type: float32
                        state_topic: a
                      - name: second
                        area: holding_register
                        address: 11 #!
                        type: int16
                        state_topic: b
                """
            expectSingleError(
                yaml,
                "point 'second' (holding_register 11) overlaps point 'first' (holding_register 10...11) defined at line 4, in unit 1",
                fix: "move one of them"
            )
        }

        @Test("Same address in other areas or units does not overlap")
        func sameAddressInOtherAreasOrUnitsDoesNotOverlap() {
            let yaml = """
                units:
                  - id: 1
                    points:
                      - { name: a, area: holding_register, address: 0, type: int16, state_topic: a }
                      - { name: b, area: input_register, address: 0, type: int16, state_topic: b }
                      - { name: c, area: coil, address: 0, state_topic: c }
                      - { name: d, area: discrete_input, address: 0, state_topic: d }
                  - id: 2
                    points:
                      - { name: e, area: holding_register, address: 0, type: int16, state_topic: e }
                """
            #expect(validConfiguration(yaml)?.points.count == 5)
        }

        @Test("Bit points share a register but not a bit") func bitPointsShareARegisterButNotABit() {
            let shared = """
                units:
                  - id: 1
                    points:
                      - { name: a, area: input_register, address: 5, type: bit, bit: 0, state_topic: a }
                      - { name: b, area: input_register, address: 5, type: bit, bit: 1, state_topic: b }
                """
            #expect(validConfiguration(shared)?.points.count == 2)
            let sameBit = """
                units:
                  - id: 1
                    points:
                      - { name: a, area: input_register, address: 5, type: bit, bit: 3, state_topic: a }
                      - { name: b, area: input_register, address: 5, type: bit, bit: 3, state_topic: b } #!
                """
            expectSingleError(
                sameBit,
                "point 'b' (input_register 5 bit 3) overlaps point 'a' (input_register 5 bit 3) defined at line 4"
            )
            let wholeRegister = """
                units:
                  - id: 1
                    points:
                      - { name: a, area: input_register, address: 5, type: bit, bit: 3, state_topic: a }
                      - { name: b, area: input_register, address: 4, type: int32, state_topic: b } #!
                """
            expectSingleError(
                wholeRegister,
                "point 'b' (input_register 4...5) overlaps point 'a' (input_register 5 bit 3)"
            )
        }

        @Test("Point past the last address") func pointPastTheLastAddress() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 65534, type: float64, state_topic: a } #!\n"
                ),
                "point 'a' needs addresses 65534...65537, past the last Modbus address 65535",
                fix: "at most 65532"
            )
        }

        @Test("Last address fits") func lastAddressFits() {
            #expect(
                validConfiguration(
                    singlePoint(
                        "      - { name: a, area: holding_register, address: 65532, type: uint64, state_topic: a }\n"
                    )
                ) != nil
            )
        }

        @Test("Numeric type in a bit area") func numericTypeInABitArea() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, type: float32, state_topic: a } #!\n"),
                "type float32 does not fit area coil",
                fix: "use type bool"
            )
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: discrete_input, address: 0, type: string, length: 2, state_topic: a } #!\n"
                ),
                "type string does not fit area discrete_input"
            )
        }

        @Test("Bool in a register area") func boolInARegisterArea() {
            expectSingleError(
                singlePoint("      - { name: a, area: holding_register, address: 0, type: bool, state_topic: a } #!\n"),
                "type bool does not fit area holding_register",
                fix: "use type bit"
            )
        }

        @Test("Command topic on a read only area") func commandTopicOnAReadOnlyArea() {
            let yaml = singlePoint(
                """
                      - name: a
                        area: input_register
                        address: 0
                        type: int16
                        state_topic: a
                        command_topic: a/set #!
                """
            )
            expectSingleError(
                yaml,
                "'command_topic' on a read-only area: input_register cannot be written over Modbus",
                fix: "holding_register"
            )
            let discrete = singlePoint(
                "      - { name: a, area: discrete_input, address: 0, state_topic: a, command_topic: a/set } #!\n"
            )
            expectSingleError(discrete, "discrete_input cannot be written over Modbus")
        }

        @Test("Byte order on boolean types") func byteOrderOnBooleanTypes() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, byte_order: CDAB, state_topic: a } #!\n"),
                "'byte_order' has no effect on type bool"
            )
        }
    }

    @Suite("Scale and offset")
    struct ScaleAndOffset {

        @Test("Impossible scales") func impossibleScales() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: int16, scale: 0, state_topic: a } #!\n"
                ),
                "'scale' must be a finite number other than 0, found 0"
            )
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: int16, scale: .nan, state_topic: a } #!\n"
                ),
                "'scale' must be a finite number other than 0"
            )
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: int16, scale: .inf, state_topic: a } #!\n"
                ),
                "'scale' must be a finite number other than 0"
            )
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: int16, scale: 1e12, state_topic: a } #!\n"
                ),
                "'scale' 1e12 is outside"
            )
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: int16, scale: ten, state_topic: a } #!\n"
                ),
                "'scale' must be a number, found 'ten'"
            )
        }

        @Test("Offset outside the type range") func offsetOutsideTheTypeRange() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: uint16, offset: 70000, state_topic: a } #!\n"
                ),
                "'offset' 70000 is outside the range of uint16 (0...65535), so not even the value 0 can be stored"
            )
        }

        @Test("Scale on non numeric types") func scaleOnNonNumericTypes() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: holding_register, address: 0, type: string, length: 2, scale: 10, state_topic: a } #!\n"
                ),
                "'scale' only applies to numeric types (this point is string)"
            )
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, offset: 1, state_topic: a } #!\n"),
                "'offset' only applies to numeric types (this point is bool)"
            )
        }
    }

    @Suite("Topics and topic filters")
    struct Topics {

        @Test("# must be last and alone") func hashMustBeLastAndAlone() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, state_topic: plant/#/temp } #!\n"),
                "'#' must be the last level",
                fix: "'plant/#'"
            )
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, state_topic: plant/temp# } #!\n"),
                "'#' must occupy a whole level"
            )
        }

        @Test("+ must fill a whole level") func plusMustBeAlone() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, state_topic: plant/b+/t } #!\n"),
                "'+' must occupy a whole level"
            )
        }

        @Test("State topic filter is allowed") func stateTopicFilterIsAllowed() {
            #expect(
                validConfiguration(
                    singlePoint("      - { name: a, area: coil, address: 0, state_topic: plant/+/running }\n")
                )?.points.first?.stateTopic == "plant/+/running"
            )
        }

        @Test("Command topic with wildcard") func commandTopicWithWildcard() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: s, command_topic: plant/+/set } #!\n"
                ),
                "wildcards ('+', '#') are not allowed in a topic that is published to"
            )
        }

        @Test("Command topic reserved for the broker") func commandTopicReservedForTheBroker() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, state_topic: s, command_topic: $SYS/x } #!\n"),
                "topics starting with '$' are reserved for the broker"
            )
        }

        @Test("Topic with a control character or NUL") func topicWithControlCharacterOrNUL() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, state_topic: \"a\\x01b\" } #!\n"),
                "control characters (U+0001)"
            )
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, state_topic: \"a\\0b\" } #!\n"),
                "NUL"
            )
        }

        @Test("Empty topic") func emptyTopic() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, state_topic: \"\" } #!\n"),
                "'state_topic' is empty"
            )
        }

        @Test("Empty topic levels are warnings") func emptyTopicLevelsAreWarnings() throws {
            let configuration = try #require(
                validConfiguration(singlePoint("      - { name: a, area: coil, address: 0, state_topic: plant//a }\n"))
            )
            #expect(configuration.warnings.count == 1)
            #expect(configuration.warnings.first?.severity == .warning)
            #expect(configuration.warnings.first?.message.contains("'//', an empty level") == true)
            #expect(configuration.warnings.first?.description.hasPrefix("test.yaml:4:") == true)
        }

        @Test("Status topic must be a name") func statusTopicMustBeAName() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a }\n",
                    broker: "  status_topic: bridge/# #!"
                ),
                "not allowed in a topic that is published to"
            )
        }
    }

    @Suite("Point names and unit IDs")
    struct NamesAndIds {

        @Test("Duplicate point names") func duplicatePointNames() {
            let yaml = """
                units:
                  - id: 1
                    points:
                      - { name: pump, area: coil, address: 0, state_topic: a }
                  - id: 2
                    points:
                      - { name: pump, area: coil, address: 0, state_topic: b } #!
                """
            expectSingleError(yaml, "point name 'pump' is already used by the point at line 4")
        }

        @Test("Duplicate unit IDs") func duplicateUnitIDs() {
            let yaml = """
                units:
                  - id: 3
                    points:
                      - { name: a, area: coil, address: 0, state_topic: a }
                  - id: 3 #!
                    points:
                      - { name: b, area: coil, address: 1, state_topic: b }
                """
            expectSingleError(yaml, "unit id 3 is already used by the unit at line 2")
        }

        @Test("Unit without points") func unitWithoutPoints() {
            expectSingleError("units:\n  - id: 4 #!\n    name: empty\n", "unit 4 has no points")
        }

        @Test("Point without any topic") func pointWithoutAnyTopic() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0 } #!\n"),
                "point 'a' has neither 'state_topic' nor 'command_topic'"
            )
        }
    }

    @Suite("Payload formats")
    struct Payload {

        @Test("JSON format without path") func jsonFormatWithoutPath() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a, payload: { format: json } } #!\n"
                ),
                "format json needs a 'path' to the value",
                fix: "'$' takes the whole document"
            )
        }

        @Test("JSON path from defaults") func jsonPathFromDefaults() throws {
            let yaml = singlePoint(
                "      - { name: a, area: coil, address: 0, state_topic: a }\n",
                defaults: "  payload: { format: json, path: data.value }"
            )
            let point = try #require(validConfiguration(yaml)?.points.first)
            #expect(point.payload.jsonPath == JSONPath([.key("data"), .key("value")]))
        }

        @Test("Path without JSON format") func pathWithoutJSONFormat() {
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, state_topic: a, payload: { path: a.b } } #!\n"),
                "'path' only applies to format json (this point's format is plain)"
            )
        }

        @Test("Invalid JSON path") func invalidJSONPath() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a, payload: { format: json, path: \"a..b\" } } #!\n"
                ),
                "invalid JSON path 'a..b'"
            )
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a, payload: { format: json, path: \"a[x]\" } } #!\n"
                ),
                "'[x]' is not an array index"
            )
        }

        @Test("Word in both lists") func wordInBothLists() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a, payload: { true_words: [ON, x], false_words: [X] } } #!\n"
                ),
                "'x' is both a true word and a false word"
            )
        }

        @Test("Boolean format on a string") func booleanFormatOnAString() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: input_register, address: 0, type: string, length: 2, state_topic: a, payload: { format: boolean } } #!\n"
                ),
                "format boolean does not apply to string points"
            )
        }
    }

    @Suite("Missing-value policies")
    struct MissingValues {

        @Test("Substitute value out of the type range") func substituteValueOutOfTheTypeRange() {
            expectSingleError(
                singlePoint(
                    """
                          - name: a
                            area: input_register
                            address: 0
                            type: uint16
                            state_topic: a
                            on_missing: { value: -1 } #!
                    """
                ),
                "on_missing value: -1 is outside the range of uint16, 0...65535"
            )
        }

        @Test("Substitute value from defaults is checked per point") func substituteValueFromDefaultsIsCheckedPerPoint()
        {
            let yaml = singlePoint(
                "      - { name: small, area: input_register, address: 0, type: uint16, state_topic: a }\n",
                defaults: "  on_missing: { value: -5 } #!"
            )
            expectSingleError(
                yaml,
                "defaults.on_missing value for point 'small' (uint16): -5 is outside the range of uint16"
            )
        }

        @Test("Substitute text too long") func substituteTextTooLong() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: input_register, address: 0, type: string, length: 1, state_topic: a, on_missing: { value: abc } } #!\n"
                ),
                "the text is 3 bytes of UTF-8; 1 registers hold at most 2"
            )
        }

        @Test("Missing policy exception codes") func missingPolicyExceptionCodes() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a, on_missing: { exception: 1 } } #!\n"
                ),
                "exception code 1 cannot answer a read of a missing value; use one of 0x02, 0x04, 0x06, 0x0A, 0x0B"
            )
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a, on_missing: { exception: gateway_target_fail } } #!\n"
                ),
                "unknown exception 'gateway_target_fail'",
                fix: "did you mean 'gateway_target_failed'?"
            )
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, state_topic: a, on_missing: zero } #!\n"),
                "'on_missing' must be 'exception' or a mapping"
            )
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a, on_missing: { exception: 4, value: 0 } } #!\n"
                ),
                "'on_missing' takes either 'exception' or 'value', not both"
            )
        }
    }

    @Suite("Commands and acknowledgements")
    struct CommandsAndAcknowledgements {

        @Test("Ack mode MQTT 5 with protocol MQTT 3.1.1 on the point") func ackModeMQTT5WithProtocolMQTT311OnThePoint()
        {
            let yaml = singlePoint(
                """
                      - name: sp
                        area: holding_register
                        address: 0
                        type: int16
                        command_topic: sp/set
                        ack: { mode: mqtt5 } #!
                """,
                broker: "  protocol: mqtt311"
            )
            expectSingleError(
                yaml,
                "ack mode mqtt5 needs MQTT 5 request/response, but broker.protocol is mqtt311",
                fix: "use protocol: mqtt5"
            )
        }

        @Test("Ack mode MQTT 5 with protocol MQTT 3.1.1 from defaults is reported once")
        func ackModeMQTT5WithProtocolMQTT311FromDefaultsIsReportedOnce() {
            let yaml = """
                broker:
                  protocol: mqtt311
                defaults:
                  ack:
                    mode: mqtt5 #!
                units:
                  - id: 1
                    points:
                      - { name: a, area: holding_register, address: 0, type: int16, command_topic: a/set }
                      - { name: b, area: holding_register, address: 1, type: int16, command_topic: b/set }
                """
            expectSingleError(yaml, "ack mode mqtt5 needs MQTT 5 request/response")
        }

        @Test("Default ack mode with protocol MQTT 3.1.1 is reported at the protocol")
        func defaultAckModeWithProtocolMQTT311IsReportedAtTheProtocol() {
            let yaml = """
                broker:
                  protocol: mqtt311 #!
                units:
                  - id: 1
                    points:
                      - { name: a, area: holding_register, address: 0, type: int16, command_topic: a/set }
                      - { name: b, area: holding_register, address: 1, type: int16, command_topic: b/set }
                """
            let error = expectSingleError(
                yaml,
                "broker.protocol is mqtt311, but 2 writable points (first: 'a' at line 6) use the default ack mode mqtt5"
            )
            #expect(error?.fix?.contains("defaults.ack.mode") == true)
        }

        @Test("Correlation ID needs a response topic") func correlationIDNeedsAResponseTopic() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, command_topic: a/set, payload: { format: json, path: v }, ack: { mode: correlation_id } } #!\n"
                ),
                "ack mode correlation_id needs 'response_topic'"
            )
        }

        @Test("Correlation ID needs the ID in the command") func correlationIDNeedsTheIDInTheCommand() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, command_topic: a/set, ack: { mode: correlation_id, response_topic: a/ack } } #!\n"
                ),
                "ack mode correlation_id needs the id in the command, but a plain payload cannot carry it",
                fix: "use payload format json"
            )
            let template = singlePoint(
                """
                      - name: a
                        area: holding_register
                        address: 0
                        type: int16
                        command_topic: a/set
                        command_template: '{"v": {{value}}}' #!
                        payload: { format: json, path: v }
                        ack: { mode: correlation_id, response_topic: a/ack }
                """
            )
            expectSingleError(template, "'command_template' has no {{correlation_id}}")
        }

        @Test("Correlation ID field colliding with the value path") func correlationIDFieldCollidingWithTheValuePath() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, command_topic: a/set, payload: { format: json, path: id }, ack: { mode: correlation_id, response_topic: a/ack } } #!\n"
                ),
                "the id field 'id' and the value path 'id' cannot share one command document"
            )
        }

        @Test("State echo needs a state topic") func stateEchoNeedsAStateTopic() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, command_topic: a/set, ack: { mode: state_echo } } #!\n"
                ),
                "ack mode state_echo needs a 'state_topic'"
            )
        }

        @Test("State echo cannot listen to its own commands") func stateEchoCannotListenToItsOwnCommands() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a/#, command_topic: a/set, ack: { mode: state_echo } } #!\n"
                ),
                "would take the bridge's own command on 'a/set' for the device's confirmation"
            )
        }

        @Test("Own commands on the state topic warn for other modes") func ownCommandsOnTheStateTopicWarnForOtherModes()
            throws
        {
            let configuration = try #require(
                validConfiguration(
                    singlePoint("      - { name: a, area: coil, address: 0, state_topic: a/+, command_topic: a/set }\n")
                )
            )
            #expect(
                configuration.warnings.map(\.message) == [
                    "state_topic 'a/+' receives the bridge's own commands on 'a/set': a command shows as the state before the device applies it"
                ]
            )
        }

        @Test("Broker ack needs QoS 1") func brokerAckNeedsQoS1() {
            expectSingleError(
                singlePoint(
                    """
                          - name: a
                            area: coil
                            address: 0
                            command_topic: a/set
                            qos: 0 #!
                            ack: { mode: broker }
                    """
                ),
                "ack mode broker needs QoS 1 or 2"
            )
        }

        @Test("Ack key that the mode does not use") func ackKeyThatTheModeDoesNotUse() {
            expectSingleError(
                singlePoint(
                    """
                          - name: a
                            area: holding_register
                            address: 0
                            type: int16
                            command_topic: a/set
                            ack:
                              tolerance: 0.5 #!
                    """
                ),
                "ack 'tolerance' only applies to mode state_echo; this point uses ack mode mqtt5 (the default)"
            )
        }

        @Test("Command keys without a command topic") func commandKeysWithoutACommandTopic() {
            expectSingleError(
                singlePoint(
                    """
                          - name: a
                            area: coil
                            address: 0
                            state_topic: a
                            ack: { mode: broker } #!
                    """
                ),
                "'ack' needs a 'command_topic'"
            )
        }

        @Test("Unknown command template placeholder") func unknownCommandTemplatePlaceholder() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, command_topic: a/set, command_template: 'x={{valeu}}' } #!\n"
                ),
                "unknown placeholder '{{valeu}}'",
                fix: "did you mean '{{value}}'?"
            )
        }

        @Test("Command template that is not JSON") func commandTemplateThatIsNotJSON() {
            expectSingleError(
                singlePoint(
                    """
                          - name: a
                            area: holding_register
                            address: 0
                            type: int16
                            payload: { format: json, path: v }
                            command_topic: a/set
                            command_template: '{"v": {{value}}, "id": {{correlation_id}}}' #!
                    """
                ),
                "'command_template' does not give valid JSON for format json"
            )
        }

        @Test("Ack topic that receives the command") func ackTopicThatReceivesTheCommand() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, command_topic: a/set, ack: { response_topic: a/set } } #!\n"
                ),
                "ack response_topic 'a/set' receives the command topic 'a/set': the bridge would take its own command for the acknowledgement"
            )
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, command_topic: a/set, payload: { format: json, path: v }, ack: { mode: correlation_id, response_topic: a/# } } #!\n"
                ),
                "ack response_topic 'a/#' receives the command topic 'a/set'"
            )
        }

        @Test("Client ID that makes an invalid status topic") func clientIDThatMakesAnInvalidStatusTopic() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a }\n",
                    broker: "  client_id: bridge#1 #!"
                ),
                "the default status topic 'bridge#1/status' (client_id + '/status') is not a valid topic"
            )
        }

        @Test("Ack timeout must be positive") func ackTimeoutMustBePositive() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, command_topic: a/set, ack: { timeout: 0s } } #!\n"
                ),
                "'timeout' must be longer than 0"
            )
        }
    }

    @Suite("Broker settings")
    struct Broker {

        @Test("Password and password file") func passwordAndPasswordFile() {
            let yaml = singlePoint(
                "      - { name: a, area: coil, address: 0, state_topic: a }\n",
                broker: "  username: u\n  password: p\n  password_file: /run/secrets/p #!"
            )
            expectSingleError(yaml, "'password' and 'password_file' are both set", fix: "keep one")
        }

        @Test("Password without username") func passwordWithoutUsername() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a }\n",
                    broker: "  password: p #!"
                ),
                "a password needs a 'username'"
            )
        }

        @Test("TLS certificate without key") func tlsCertificateWithoutKey() {
            let yaml = singlePoint(
                "      - { name: a, area: coil, address: 0, state_topic: a }\n",
                broker: "  tls:\n    ca_file: ca.pem\n    cert_file: c.pem #!"
            )
            expectSingleError(yaml, "a client certificate needs both 'cert_file' and 'key_file'; 'key_file' is missing")
        }

        @Test("TLS without a CA") func tlsWithoutCA() {
            let yaml = singlePoint(
                "      - { name: a, area: coil, address: 0, state_topic: a }\n",
                broker: "  tls: #!\n    verify_server: true"
            )
            expectSingleError(yaml, "broker.tls needs 'ca_file' or 'ca_path'")
        }

        @Test("TLS verification off is a warning") func tlsVerificationOffIsAWarning() throws {
            let yaml = singlePoint(
                "      - { name: a, area: coil, address: 0, state_topic: a }\n",
                broker: "  tls:\n    ca_file: ca.pem\n    verify_server: false"
            )
            let configuration = try #require(validConfiguration(yaml))
            #expect(configuration.warnings.count == 1)
            #expect(configuration.warnings.first?.line == 4)
            #expect(configuration.broker.port == 8883)
        }

        @Test("Keep alive range") func keepAliveRange() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a }\n",
                    broker: "  keepalive: 2s #!"
                ),
                "'keepalive' must be 0 (off) or whole seconds from 5s to 65535s"
            )
        }

        @Test("Bad duration") func badDuration() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a }\n",
                    broker: "  keepalive: 5 sec #!"
                ),
                "'keepalive': '5 sec' is not a duration",
                fix: "250ms, 5s"
            )
            expectSingleError(
                singlePoint("      - { name: a, area: coil, address: 0, state_topic: a, max_age: 10 minutes } #!\n"),
                "'max_age': '10 minutes' is not a duration"
            )
        }

        @Test("Session expiry needs MQTT 5") func sessionExpiryNeedsMQTT5() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a }\n",
                    broker: "  protocol: mqtt311\n  session_expiry: 1h #!"
                ),
                "'session_expiry' is an MQTT 5 feature but protocol is mqtt311"
            )
        }

        @Test("Reconnect delays in order") func reconnectDelaysInOrder() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a }\n",
                    broker: "  reconnect:\n    min_delay: 1m\n    max_delay: 10s #!"
                ),
                "reconnect min_delay (1m) is longer than max_delay (10s)"
            )
        }

        @Test("Host with port") func hostWithPort() {
            expectSingleError(
                singlePoint(
                    "      - { name: a, area: coil, address: 0, state_topic: a }\n",
                    broker: "  host: broker:1883 x #!"
                ),
                "'host' must be a host name or an IP address"
            )
        }
    }

    @Suite("Modbus listener settings")
    struct Modbus {

        @Test("Device identification too long") func deviceIdentificationTooLong() {
            let long = String(repeating: "x", count: 250)
            let yaml =
                "modbus:\n  device_identification: #!\n    vendor_name: \(long)\n"
                + singlePoint("      - { name: a, area: coil, address: 0, state_topic: a }\n")
            expectSingleError(yaml, "device identification: object 0x0 is 250 bytes")
        }

        @Test("Private object ID range") func privateObjectIDRange() {
            let yaml =
                "modbus:\n  device_identification:\n    private_objects:\n      0x10: text #!\n"
                + singlePoint("      - { name: a, area: coil, address: 0, state_topic: a }\n")
            expectSingleError(yaml, "'private object id' must be in 128...255, found 0x10")
        }
    }

    @Suite("Templates")
    struct Templates {

        @Test("Unknown template placeholder") func unknownTemplatePlaceholder() {
            let yaml = """
                units:
                  - id: 1
                    templates:
                      - for: { n: [1, 2] }
                        name: "pump_{{m}}" #!
                        area: coil
                        address: "{{n}}"
                        state_topic: "p/{{n}}"
                """
            let error = expectSingleError(yaml, "placeholder '{{m}}': unknown variable 'm'")
            #expect(error?.fix?.contains("variables here: index, n") == true)
            #expect(error?.message.hasSuffix("(template instance n=1)") == true)
        }

        @Test("Template without for") func templateWithoutFor() {
            let yaml = """
                units:
                  - id: 1
                    templates:
                      - name: "pump_{{n}}" #!
                        area: coil
                        address: 0
                        state_topic: p
                """
            expectSingleError(yaml, "a template is missing 'for'")
        }

        @Test("Unquoted placeholder") func unquotedPlaceholder() {
            let yaml = """
                units:
                  - id: 1
                    templates:
                      - for: { n: [1, 2] }
                        name: "pump_{{n}}"
                        area: coil
                        address: {{ n }} #!
                        state_topic: "p/{{n}}"
                """
            expectSingleError(yaml, "'address' looks like an unquoted placeholder", fix: "quote it")
        }

        @Test("Template arithmetic errors") func templateArithmeticErrors() {
            let yaml = """
                units:
                  - id: 1
                    templates:
                      - for: { n: [0, 1] }
                        name: "p_{{n}}"
                        area: coil
                        address: "{{ 10 / n }}" #!
                        state_topic: "p/{{n}}"
                """
            expectSingleError(yaml, "placeholder '{{10 / n}}': division by zero")
        }

        @Test("Reserved template variable") func reservedTemplateVariable() {
            let yaml = """
                units:
                  - id: 1
                    templates:
                      - for: { value: [0, 1] } #!
                        name: "p_{{value}}"
                        area: coil
                        address: 0
                        state_topic: p
                """
            expectSingleError(yaml, "'value' cannot be a template variable: the name is reserved")
        }

        @Test("Template instances that overlap") func templateInstancesThatOverlap() {
            let yaml = """
                units:
                  - id: 1
                    templates:
                      - for: { n: "1...3" }
                        name: "p_{{n}}"
                        area: coil
                        address: "{{ n / 2 }}" #!
                        state_topic: "p/{{n}}"
                """
            // n=1 → 0, n=2 → 1, n=3 → 1: the third overlaps the second.
            expectSingleError(yaml, "point 'p_3' (coil 1) overlaps point 'p_2' (coil 1)")
        }

        @Test("Same error in every instance is reported once") func sameErrorInEveryInstanceIsReportedOnce() {
            let yaml = """
                units:
                  - id: 1
                    templates:
                      - for: { n: "1...5" }
                        name: "p_{{n}}"
                        area: coil
                        address: "{{n}}"
                        state_topc: "p/{{n}}" #!
                """
            let errors = configurationErrors(yaml)
            #expect(errors.filter { $0.message.contains("unknown key 'state_topc'") }.count == 1)
        }
    }

    @Suite("How errors are reported")
    struct Reporting {

        @Test("All errors are reported at once sorted by line") func allErrorsAreReportedAtOnceSortedByLine() {
            let yaml = """
                broker:
                  port: 99999
                units:
                  - id: 1
                    points:
                      - { name: a, area: coil, address: 0, state_topic: "a/#/b" }
                      - { name: b, area: holding_register, address: 0, type: float32, scale: 0, state_topic: b }
                      - { name: a, area: coil, address: 1, state_topic: c }
                """
            let errors = configurationErrors(yaml)
            #expect(errors.map(\.line) == [2, 6, 7, 8])
            let description = ConfigurationErrors(errors).description
            let lines = description.split(separator: "\n")
            #expect(lines.count == 4)
            #expect(lines[0] == "test.yaml:2:9: error: 'port' must be in 1...65535, found 99999")
            #expect(
                lines[3].hasPrefix(
                    "test.yaml:8:17: error: point name 'a' is already used by the point at line 6 (fix: "
                )
            )
        }

        @Test("Error description format") func errorDescriptionFormat() {
            let error = ConfigurationError(file: "f.yaml", line: 3, column: 7, message: "bad", fix: "do this")
            #expect(error.description == "f.yaml:3:7: error: bad (fix: do this)")
            let noLine = ConfigurationError(file: "f.yaml", line: 0, column: 0, message: "cannot read")
            #expect(noLine.description == "f.yaml: error: cannot read")
        }

        @Test("Unreadable file") func unreadableFile() {
            do {
                _ = try BridgeConfiguration.load(path: "/nonexistent/bridge.yaml")
                Issue.record("expected an error")
            } catch {
                #expect(error.errors.count == 1)
                #expect(error.errors[0].line == 0)
                #expect(
                    error.description.hasPrefix("/nonexistent/bridge.yaml: error: cannot read the configuration file")
                )
            }
        }
    }
}
