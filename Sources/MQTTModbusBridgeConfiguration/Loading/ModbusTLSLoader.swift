import ModbusCore
import Yams

/// `modbus.tls:` — the Modbus/TCP Security listener and its role → permission map.
extension ConfigurationLoader {
    static let modbusTLSKeys = [
        "host", "port", "certificate", "key", "ca", "roles", "default_role", "handshake_timeout",
    ]
    static let roleKeys = ["units", "read", "write", "function_codes"]
    /// The function codes the server serves, the only ones a role's list may name.
    static let servedFunctionCodes: [UInt8] = [1, 2, 3, 4, 5, 6, 8, 15, 16, 22, 23, 43]

    func parseModbusTLS(_ entry: Entry) -> ModbusTLSListenerSettings? {
        guard
            let view = reader.mapping(entry.value, context: "modbus.tls", allowed: Self.modbusTLSKeys, at: entry.mark)
        else { return nil }
        let fileFix = "give the path of a PEM file; a relative path is read from the configuration file's directory"
        let certificate = reader.required(view, "certificate", fix: fileFix).flatMap { reader.string($0) }
        let key = reader.required(view, "key", fix: fileFix).flatMap { reader.string($0) }
        let ca = reader.required(
            view,
            "ca",
            fix: "give the CA certificate(s) that sign the masters' client certificates (PEM)"
        ).flatMap { reader.string($0) }
        var roles: [String: ModbusRolePermissions] = [:]
        if let rolesEntry = reader.required(
            view,
            "roles",
            fix: "add 'roles:' with at least one role, e.g. roles: { operator: { read: all, write: all } }"
        ) {
            roles = parseRoles(rolesEntry)
        }
        var settings = ModbusTLSListenerSettings(
            certificateFile: certificate.map(resolvePath) ?? "",
            keyFile: key.map(resolvePath) ?? "",
            caFile: ca.map(resolvePath) ?? "",
            roles: roles
        )
        if let hostEntry = view["host"], let host = reader.string(hostEntry), checkHost(host, hostEntry) {
            settings.host = host
        }
        if let port = reader.integer(view["port"], in: 0...65535) { settings.port = port }
        if let roleEntry = view["default_role"], let role = reader.string(roleEntry) {
            if roles[role] == nil && !roles.isEmpty {
                let suggestion = YAMLReader.closest(to: role, in: roles.keys.sorted())
                diagnostics.error(
                    "'default_role' names '\(role)', which is not in modbus.tls.roles",
                    at: roleEntry.mark,
                    fix: suggestion.map { "did you mean '\($0)'?" }
                        ?? "name one of the roles (\(roles.keys.sorted().joined(separator: ", "))), or remove the key so that a certificate without a role may do nothing"
                )
            } else {
                settings.defaultRole = role
            }
        }
        if let timeoutEntry = view["handshake_timeout"], let timeout = reader.duration(timeoutEntry) {
            if timeout <= .zero {
                diagnostics.error("'handshake_timeout' must be longer than 0", at: timeoutEntry.mark)
            } else {
                settings.handshakeTimeout = timeout
            }
        }
        guard certificate != nil, key != nil, ca != nil else { return nil }
        return settings
    }

    /// `roles:` — a mapping of role name → permissions.
    private func parseRoles(_ entry: Entry) -> [String: ModbusRolePermissions] {
        var roles: [String: ModbusRolePermissions] = [:]
        guard case .mapping(let mapping) = entry.value else {
            diagnostics.error(
                "'roles' must be a mapping of role name: permissions, found \(entry.value.shapeDescription)",
                at: entry.mark,
                fix: "e.g. roles: { operator: { read: all, write: all }, viewer: { read: all } }"
            )
            return roles
        }
        if mapping.count == 0 {
            diagnostics.error(
                "'roles' is empty: every request on the TLS listener would be refused",
                at: entry.mark,
                fix: "add at least one role, e.g. viewer: { read: all }"
            )
        }
        for (keyNode, value) in mapping {
            guard let name = keyNode.scalarText, !name.isEmpty, !keyNode.isNullScalar else {
                diagnostics.error(
                    "role names must be text, found \(keyNode.shapeDescription)",
                    at: keyNode.mark ?? entry.mark
                )
                continue
            }
            let roleEntry = Entry(key: name, keyNode: keyNode, value: value)
            roles[name] = parseRole(name, roleEntry)
        }
        return roles
    }

    private func parseRole(_ name: String, _ entry: Entry) -> ModbusRolePermissions {
        var permissions = ModbusRolePermissions()
        let context = "modbus.tls.roles.\(name)"
        if entry.value.isNullScalar {
            diagnostics.error(
                "role '\(name)' has no permissions: a master with it could make no request",
                at: entry.mark,
                fix: "give it read, write, units or function_codes, e.g. \(name): { read: all }"
            )
            return permissions
        }
        guard let view = reader.mapping(entry.value, context: context, allowed: Self.roleKeys, at: entry.mark) else {
            return permissions
        }
        if let unitsEntry = view["units"] { permissions.units = parseRoleUnits(unitsEntry) }
        if let readEntry = view["read"] {
            permissions.readableAreas = parseAreas(readEntry, allowed: ModbusArea.allCases, role: name)
        }
        if let writeEntry = view["write"] {
            permissions.writableAreas = parseAreas(writeEntry, allowed: [.coil, .holdingRegister], role: name)
        }
        if let codesEntry = view["function_codes"] { permissions.functionCodes = parseFunctionCodes(codesEntry) }
        if !view.has("read") && !view.has("write") {
            diagnostics.warning(
                "role '\(name)' has neither 'read' nor 'write': it may use no function code that reads or writes",
                at: entry.mark,
                fix: "add read: all (or a list of areas), write: ..., if the role should reach data"
            )
        }
        if let codes = permissions.functionCodes {
            for code in codes.sorted() {
                let access = ModbusFunctionCode(rawValue: code).dataAccess
                if let area = access.reads, !permissions.readableAreas.contains(area) {
                    diagnostics.warning(
                        "role '\(name)' lists FC\(code), which reads \(area.configurationName)s, but 'read' does not allow them: it will be refused",
                        at: view["function_codes"]?.mark,
                        fix: "add \(area.configurationName) to 'read', or remove FC\(code)"
                    )
                }
                if let area = access.writes, !permissions.writableAreas.contains(area) {
                    diagnostics.warning(
                        "role '\(name)' lists FC\(code), which writes \(area.configurationName)s, but 'write' does not allow them: it will be refused",
                        at: view["function_codes"]?.mark,
                        fix: "add \(area.configurationName) to 'write', or remove FC\(code)"
                    )
                }
            }
        }
        return permissions
    }

    /// `units:` — `all` or a list of unit ids.
    private func parseRoleUnits(_ entry: Entry) -> Set<UInt8>? {
        if entry.value.scalarText?.lowercased() == "all" { return nil }
        guard let nodes = reader.sequence(entry) else { return [] }
        var units: Set<UInt8> = []
        for node in nodes {
            let item = Entry(key: "units", keyNode: node, value: node)
            if let unit = reader.integer(
                item,
                in: 0...255,
                fix: "unit ids are 0...255; write 'units: all' for every unit"
            ) {
                units.insert(UInt8(unit))
                roleUnitMarks.append((UInt8(unit), node.mark ?? entry.mark))
            }
        }
        if nodes.isEmpty {
            diagnostics.warning(
                "'units' is an empty list: the role may address no unit",
                at: entry.mark,
                fix: "list unit ids, or write 'units: all'"
            )
        }
        return units
    }

    /// `read:` / `write:` — `all`, `none`, or a list of area names.
    private func parseAreas(_ entry: Entry, allowed: [ModbusArea], role: String) -> Set<ModbusArea> {
        if let word = entry.value.scalarText?.lowercased(), entry.value.isPlainScalar {
            if word == "all" { return Set(allowed) }
            if word == "none" { return [] }
        }
        guard case .sequence = entry.value else {
            diagnostics.error(
                "'\(entry.key)' must be all, none or a list of areas, found \(entry.value.shapeDescription)",
                at: entry.mark,
                fix: "e.g. \(entry.key): [\(allowed.map(\.configurationName).joined(separator: ", "))]"
            )
            return []
        }
        guard let nodes = reader.sequence(entry) else { return [] }
        var areas: Set<ModbusArea> = []
        let options = ModbusArea.allCases.map { ($0.configurationName, $0) }
        for node in nodes {
            let item = Entry(key: entry.key, keyNode: node, value: node)
            guard let area = reader.choice(item, options) else { continue }
            guard allowed.contains(area) else {
                diagnostics.error(
                    "role '\(role)': no function code writes \(area.configurationName)s",
                    at: node.mark ?? entry.mark,
                    fix: "only coil and holding_register can be written; remove \(area.configurationName) from 'write'"
                )
                continue
            }
            areas.insert(area)
        }
        return areas
    }

    /// `function_codes:` — a list of served function codes.
    private func parseFunctionCodes(_ entry: Entry) -> Set<UInt8>? {
        if entry.value.scalarText?.lowercased() == "all" { return nil }
        guard let nodes = reader.sequence(entry) else { return [] }
        var codes: Set<UInt8> = []
        let served = Self.servedFunctionCodes.map(String.init).joined(separator: ", ")
        for node in nodes {
            let item = Entry(key: "function_codes", keyNode: node, value: node)
            guard let code = reader.integer(item, in: 1...127, fix: "function codes are 1...127: \(served)") else {
                continue
            }
            guard Self.servedFunctionCodes.contains(UInt8(code)) else {
                diagnostics.error(
                    "'function_codes' lists \(code), which the server does not serve",
                    at: node.mark ?? entry.mark,
                    fix: "list only served function codes: \(served)"
                )
                continue
            }
            codes.insert(UInt8(code))
        }
        return codes
    }

    /// Checks that span the listener and the units: the two listeners on one port, a role's
    /// units that the configuration does not serve.
    func validateModbusTLS(_ modbus: ModbusListenerSettings, tlsEntry: Entry?, plainEntry: Entry?, units: Set<UInt8>) {
        if !modbus.plainListener && modbus.tls == nil && tlsEntry == nil {
            diagnostics.error(
                "'plain_listener: false' leaves the bridge with no Modbus listener",
                at: plainEntry?.mark,
                fix: "add modbus.tls (the Modbus/TCP Security listener), or remove plain_listener"
            )
        }
        guard let tls = modbus.tls, let tlsEntry else { return }
        if modbus.plainListener && tls.port == modbus.port && tls.port != 0
            && (tls.host ?? modbus.host) == modbus.host
        {
            diagnostics.error(
                "modbus.tls.port \(tls.port) is the plain listener's port",
                at: tlsEntry.mark,
                fix: "give the TLS listener its own port (802 by default), or set plain_listener: false"
            )
        }
        for (unit, mark) in roleUnitMarks where !units.contains(unit) {
            diagnostics.warning(
                "a role in modbus.tls.roles lists unit \(unit), which no unit of this configuration answers",
                at: mark,
                fix: "check the unit id; requests for it are answered 0B whatever the role"
            )
        }
    }
}
