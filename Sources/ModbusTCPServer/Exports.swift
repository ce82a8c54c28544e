// The server's API is spelled in ModbusCore's types (areas, exception codes, device identity);
// importing ModbusTCPServer alone is enough to use it.
@_exported import ModbusCore
