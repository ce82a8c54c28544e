import Testing

@testable import MQTTModbusBridge
@testable import MQTTModbusBridgeConfiguration

@Suite("Durations, topics, JSON paths, templates")
struct SupportTests {
    @Test func durations() throws {
        #expect(try DurationSyntax.parse("250ms") == .milliseconds(250))
        #expect(try DurationSyntax.parse("5s") == .seconds(5))
        #expect(try DurationSyntax.parse("2m") == .seconds(120))
        #expect(try DurationSyntax.parse("1h") == .seconds(3600))
        #expect(try DurationSyntax.parse("1m30s") == .seconds(90))
        #expect(try DurationSyntax.parse("1h2m3s4ms") == .milliseconds(3_723_004))
        #expect(try DurationSyntax.parse("1.5s") == .milliseconds(1500))
        #expect(try DurationSyntax.parse("0.1s") == .milliseconds(100))
        #expect(try DurationSyntax.parse("30") == .seconds(30))
        #expect(try DurationSyntax.parse("0.25") == .milliseconds(250))
        #expect(try DurationSyntax.parse(" 0 ") == .zero)
        #expect(try DurationSyntax.parse("1.000000001s") == .nanoseconds(1_000_000_001))
    }

    @Test func badDurations() {
        for text in ["", "s", "-5s", "5 sec", "5x", "1h30", "1.s", "0.0000000001s", "5S", "876000h1s", "1e3s", "∞"] {
            #expect(throws: DurationSyntaxError.self, "\(text)") { try DurationSyntax.parse(text) }
        }
        #expect(
            throws: DurationSyntaxError(
                text: "5 sec",
                reason: "unexpected ' sec'; write durations like 250ms, 5s, 2m, 1h or 1m30s"
            )
        ) {
            try DurationSyntax.parse("5 sec")
        }
    }

    @Test func durationFormattingRoundTrips() throws {
        let cases: [(Duration, String)] = [
            (.zero, "0s"), (.milliseconds(250), "250ms"), (.seconds(5), "5s"), (.seconds(90), "1m30s"),
            (.seconds(7200), "2h"),
            (.milliseconds(3_723_004), "1h2m3s4ms"), (.nanoseconds(1_500), "0.0015ms"),
        ]
        for (duration, text) in cases {
            #expect(DurationSyntax.format(duration) == text)
            #expect(try DurationSyntax.parse(text) == duration)
        }
    }

    @Test func topicNamesAndFilters() throws {
        for name in ["a", "a/b/c", "/a", "a//b", "plant/boiler 1/temp", "é/ü"] {
            #expect(throws: Never.self) { try MQTTTopicRules.validateName(name) }
        }
        for name in ["", "a/+", "a/#", "#", "$SYS/x", "a\u{0}b", "a\u{7F}b", String(repeating: "é", count: 40_000)] {
            #expect(throws: MQTTTopicError.self, "\(name.prefix(10))") { try MQTTTopicRules.validateName(name) }
        }
        for filter in ["#", "+", "a/#", "a/+/c", "+/+", "$SYS/#", "a/+/#", "/+"] {
            #expect(throws: Never.self) { try MQTTTopicRules.validateFilter(filter) }
        }
        for filter in ["a/#/b", "a#", "a/b#", "a+", "a/+b/c", "##", ""] {
            #expect(throws: MQTTTopicError.self, "\(filter)") { try MQTTTopicRules.validateFilter(filter) }
        }
    }

    @Test func topicMatching() {
        #expect(MQTTTopicRules.filter("a/+/c", matches: "a/b/c"))
        #expect(!MQTTTopicRules.filter("a/+/c", matches: "a/b/d"))
        #expect(MQTTTopicRules.filter("a/#", matches: "a"))
        #expect(MQTTTopicRules.filter("a/#", matches: "a/b/c"))
        #expect(MQTTTopicRules.filter("#", matches: "x/y"))
        #expect(!MQTTTopicRules.filter("#", matches: "$SYS/x"))
        #expect(!MQTTTopicRules.filter("+/x", matches: "$SYS/x"))
        #expect(MQTTTopicRules.filter("$SYS/#", matches: "$SYS/x"))
        #expect(MQTTTopicRules.filter("+/x", matches: "/x"))
        #expect(!MQTTTopicRules.filter("a/b", matches: "a/b/c"))
        #expect(!MQTTTopicRules.filter("a/+", matches: "a"))
        #expect(MQTTTopicRules.filter("a/b", matches: "a/b"))
    }

    @Test func jsonPathSyntax() throws {
        #expect(try JSONPath(parsing: "a.b[0].c").components == [.key("a"), .key("b"), .index(0), .key("c")])
        #expect(try JSONPath(parsing: "$").isRoot)
        #expect(try JSONPath(parsing: "$.a") == JSONPath([.key("a")]))
        #expect(try JSONPath(parsing: "[2][3]") == JSONPath([.index(2), .index(3)]))
        #expect(try JSONPath(parsing: "[\"a.b\"].c") == JSONPath([.key("a.b"), .key("c")]))
        #expect(try JSONPath(parsing: "['x[1]']") == JSONPath([.key("x[1]")]))
        for text in ["a.b[0].c", "$", "[2][3]", "[\"a.b\"].c", "données.température"] {
            let path = try JSONPath(parsing: text)
            #expect(try JSONPath(parsing: path.description) == path)
        }
        for bad in ["", "a..b", ".a", "a.", "a[", "a[]", "a[-1]", "a[x]", "a]b", "a[0]b", "[\"a]"] {
            #expect(throws: JSONPathSyntaxError.self, "\(bad)") { try JSONPath(parsing: bad) }
        }
    }

    /// Found by Fuzz/FuzzJSON: a key whose "[" carries a combining mark was written without
    /// brackets (the check looked at characters, the parser reads scalars), and a key with a quote
    /// and a dot could not be written at all.
    @Test func jsonPathWritesEveryKeyBackReadably() throws {
        for key in [
            "m[\u{6D9}x", "a.\u{301}b", "say \"hi\".", "x\"]y.z", "x\"]\u{301}", "it's.ok", "$", "", "[0]", "'",
        ] {
            let path = JSONPath([.key("top"), .key(key), .index(1)])
            #expect(try JSONPath(parsing: path.description) == path, "\(path.description)")
        }
        #expect(try JSONPath(parsing: "[\"a\"b\"].c") == JSONPath([.key("a\"b"), .key("c")]))
        #expect(throws: JSONPathSyntaxError.self) { try JSONPath(parsing: "[\"a\"b") }
    }

    @Test func commandTemplateSyntax() throws {
        let template = try CommandTemplate(parsing: "{\"v\": {{ value }}, \"id\": \"{{correlation_id}}\"}")
        #expect(template.placeholders == [.value, .correlationID])
        #expect(throws: CommandTemplateSyntaxError.self) { try CommandTemplate(parsing: "{{value") }
        do {
            _ = try CommandTemplate(parsing: "{{vlaue}}")
        } catch {
            #expect(error.unknownName == "vlaue")
        }
        #expect(try CommandTemplate(parsing: "no placeholders").placeholders.isEmpty)
    }

    @Test func editDistanceSuggestions() {
        #expect(YAMLReader.editDistance("stat_topic", "state_topic") == 1)
        #expect(YAMLReader.editDistance("adress", "address") == 1)
        #expect(YAMLReader.editDistance("qso", "qos") == 1)  // a swap counts once
        #expect(YAMLReader.editDistance("", "abc") == 3)
        #expect(YAMLReader.closest(to: "comand_topic", in: ConfigurationLoader.pointKeys) == "command_topic")
        #expect(YAMLReader.closest(to: "zebra", in: ConfigurationLoader.pointKeys) == nil)
    }

    @Test func templateArithmetic() throws {
        let scope: [String: TemplateVariable] = ["n": .integer(3), "side": .text("left")]
        #expect(try ConfigurationLoader.evaluate("n", scope: scope) == .integer(3))
        #expect(try ConfigurationLoader.evaluate("100 + 2 * n", scope: scope) == .integer(106))
        #expect(try ConfigurationLoader.evaluate("(n - 1) / 2", scope: scope) == .integer(1))
        #expect(try ConfigurationLoader.evaluate("-n % 2", scope: scope) == .integer(-1))
        #expect(try ConfigurationLoader.evaluate("0x10 + n", scope: scope) == .integer(19))
        #expect(try ConfigurationLoader.evaluate("side", scope: scope) == .text("left"))
        for bad in ["n +", "side + 1", "m", "n / 0", "9223372036854775807 + n", "(n", "n n", "value"] {
            #expect(throws: TemplateError.self, "\(bad)") { try ConfigurationLoader.evaluate(bad, scope: scope) }
        }
        #expect(
            try ConfigurationLoader.fill("p_{{n}}_{{ side }}", scope: scope, keepCommandPlaceholders: false)
                == "p_3_left"
        )
        #expect(
            try ConfigurationLoader.fill("{{value}}/{{n}}", scope: scope, keepCommandPlaceholders: true)
                == "{{value}}/3"
        )
    }
}
