import Foundation
import MQTTModbusBridge

/// The commissioning page, `GET /`: one HTML document rendered from a snapshot, with no script.
///
/// It reloads itself (`<meta http-equiv="refresh">`), so it works in any browser, including the
/// locked-down ones of control rooms, and in a headless browser's DOM dump. Every value from the
/// configuration or the wire is HTML-escaped: a topic or a string point may hold anything.
enum StatusPage {
    static func render(_ snapshot: BridgeStatusSnapshot, refreshSeconds: Int) -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta http-equiv="refresh" content="\(refreshSeconds)">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>mqtt-modbus-bridge status</title>
            <style>\(style)</style>
            </head>
            <body>
            <h1>mqtt-modbus-bridge</h1>
            <p class="summary">
            Broker <b id="broker-state" class="\(escape(snapshot.broker.state))">\(escape(snapshot.broker.state))</b>
            (\(escape(snapshot.broker.host)):\(snapshot.broker.port), client id \(escape(snapshot.broker.clientID))) ·
            Modbus \(snapshot.modbus.listening ? "listening" : "<b class=\"down\">not listening</b>")
            on \(escape(snapshot.modbus.host)):\(snapshot.modbus.port) ·
            \(snapshot.modbus.connections) connection\(snapshot.modbus.connections == 1 ? "" : "s") ·
            \(snapshot.modbus.writesInFlight) write\(snapshot.modbus.writesInFlight == 1 ? "" : "s") in flight ·
            taken \(escape(Self.time(snapshot.takenAt))), reloads every \(refreshSeconds) s
            </p>
            <p class="summary">\(freshnessSummary(snapshot.points))</p>
            <h2>Points</h2>
            <table id="points">
            <thead><tr><th>unit</th><th>name</th><th>area</th><th>address</th><th>reference</th><th>type</th>\
            <th>topic</th><th>value</th><th>registers</th><th>age</th><th>freshness</th><th>last write</th></tr></thead>
            <tbody>

            """
        for point in snapshot.points {
            html += pointRow(point)
        }
        html += """
            </tbody>
            </table>
            <h2>Modbus connections</h2>

            """
        if snapshot.connections.isEmpty {
            html += "<p id=\"no-connections\">No Modbus master is connected.</p>\n"
        } else {
            html += """
                <table id="connections">
                <thead><tr><th>peer</th><th>connected for</th><th>requests</th><th>last request</th></tr></thead>
                <tbody>

                """
            for connection in snapshot.connections {
                html += """
                    <tr><td>\(escape(connection.peer))</td><td>\(seconds(connection.connectedSeconds))</td>\
                    <td>\(connection.requests)</td>\
                    <td>\(connection.secondsSinceLastRequest.map { "\(seconds($0)) ago" } ?? "none yet")</td></tr>

                    """
            }
            html += "</tbody>\n</table>\n"
        }
        html += """
            <p class="note">Read-only: nothing on this page or this listener changes the bridge. \
            The same data: <a href="/api/points">/api/points</a>, <a href="/api/connections">/api/connections</a>; \
            <a href="/health">/health</a>, <a href="/metrics">/metrics</a>.</p>
            </body>
            </html>

            """
        return html
    }

    private static func pointRow(_ point: BridgeStatusSnapshot.PointStatus) -> String {
        let topic = [point.stateTopic.map { "state " + $0 }, point.commandTopic.map { "command " + $0 }]
            .compactMap { $0 }.map(escape).joined(separator: "<br>")
        let registers = point.registers.map { "0x" + hex($0) }.joined(separator: " ")
        let write: String
        if let last = point.lastWrite {
            var text = "\(escape(last.value)) → <span class=\"\(last.outcome == "ok" ? "fresh" : "stale")\">"
            text += escape(last.outcome)
            if let code = last.exceptionCode { text += " (exception \(hexByte(code)))" }
            text += "</span>, \(String(format: "%.1f", last.latencyMilliseconds)) ms, \(seconds(last.secondsAgo)) ago"
            write = text
        } else {
            write = point.commandTopic == nil ? "read-only" : "none yet"
        }
        return """
            <tr id="point-\(point.unit)-\(escape(point.name))" data-freshness="\(point.freshness.rawValue)">\
            <td>\(point.unit)</td><td class="name">\(escape(point.name))</td><td>\(escape(point.area))</td>\
            <td>\(point.address)</td><td>\(escape(point.reference))</td><td>\(escape(point.type))</td>\
            <td class="topic">\(topic)</td><td class="value">\(point.value.map(escape) ?? "—")</td>\
            <td class="registers">\(registers.isEmpty ? "—" : registers)</td>\
            <td>\(point.ageSeconds.map(seconds) ?? "—")</td>\
            <td class="freshness \(point.freshness.rawValue)">\(label(point.freshness))</td><td>\(write)</td></tr>

            """
    }

    private static func freshnessSummary(_ points: [BridgeStatusSnapshot.PointStatus]) -> String {
        let counts = PointFreshness.allCases.map { freshness in
            (freshness, points.count { $0.freshness == freshness })
        }
        return "\(points.count) point\(points.count == 1 ? "" : "s"): "
            + counts.map { "<span class=\"\($0.0.rawValue)\">\($0.1) \(label($0.0))</span>" }.joined(separator: ", ")
    }

    static func label(_ freshness: PointFreshness) -> String {
        switch freshness {
        case .fresh: "fresh"
        case .stale: "stale"
        case .missing: "missing"
        case .deviceOffline: "device offline"
        case .connectionLost: "connection lost"
        }
    }

    /// Escapes the five characters HTML gives a meaning to.
    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    private static func hex(_ word: UInt16) -> String {
        let digits = String(word, radix: 16, uppercase: true)
        return String(repeating: "0", count: 4 - digits.count) + digits
    }

    private static func hexByte(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16, uppercase: true)
        return (digits.count < 2 ? "0" : "") + digits
    }

    private static func seconds(_ value: Double) -> String {
        if value < 10 { return String(format: "%.1f s", value) }
        if value < 3600 { return "\(Int(value)) s" }
        return String(format: "%.1f h", value / 3600)
    }

    private static func time(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    private static let style = """
        body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
        table{border-collapse:collapse;font-size:0.9em}\
        th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left;vertical-align:top}\
        th{background:#f2f2f2}.registers,.value{font-family:monospace}\
        .fresh{color:#11772b}.stale{color:#a05a00}.missing{color:#666}.device_offline,.connection_lost,.down,.disconnected{color:#b00020}\
        .connected{color:#11772b}.connecting{color:#a05a00}.summary{margin:0.3em 0}.note{color:#666;font-size:0.85em}
        """
}
