#!/usr/bin/env python3
"""Interoperability check: pymodbus's TCP client reads and writes every area of a server whose
store follows the test pattern (register N holds N; bit N is on when N % 3 == 0; 1000 addresses).

Usage: pymodbus_client.py PORT
Prints one line per check and exits 0 only if every check passed.
"""
import sys

from pymodbus.client import ModbusTcpClient
from pymodbus.pdu import ExceptionResponse

port = int(sys.argv[1])
failures = []


def check(name, actual, expected):
    ok = actual == expected
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {actual!r}" + ("" if ok else f" (expected {expected!r})"))
    if not ok:
        failures.append(name)


def bits(address, count):
    return [(address + i) % 3 == 0 for i in range(count)]


client = ModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
if not client.connect():
    print(f"FAIL cannot connect to 127.0.0.1:{port}")
    sys.exit(1)

try:
    check("FC3 read holding registers", client.read_holding_registers(5, count=3).registers, [5, 6, 7])
    check("FC4 read input registers", client.read_input_registers(10, count=125).registers, list(range(10, 135)))
    check("FC1 read coils", client.read_coils(0, count=10).bits[:10], bits(0, 10))
    check("FC2 read discrete inputs", client.read_discrete_inputs(3, count=17).bits[:17], bits(3, 17))

    check("FC6 write single register", client.write_register(100, 0xBEEF).isError(), False)
    check("FC6 read back", client.read_holding_registers(100, count=1).registers, [0xBEEF])
    check("FC16 write multiple registers", client.write_registers(200, [1, 2, 65535]).isError(), False)
    check("FC16 read back", client.read_holding_registers(200, count=3).registers, [1, 2, 65535])
    check("FC5 write single coil", client.write_coil(50, True).isError(), False)
    check("FC5 read back", client.read_coils(50, count=1).bits[0], True)
    pattern = [True, False, True, True, False, False, True, True, True]
    check("FC15 write multiple coils", client.write_coils(60, pattern).isError(), False)
    check("FC15 read back", client.read_coils(60, count=9).bits[:9], pattern)

    client.write_register(300, 0x12)
    check("FC22 mask write register", client.mask_write_register(address=300, and_mask=0xF2, or_mask=0x25).isError(), False)
    check("FC22 read back", client.read_holding_registers(300, count=1).registers, [0x17])
    rw = client.readwrite_registers(read_address=400, read_count=3, write_address=401, values=[7, 8])
    check("FC23 read/write multiple registers (write before read)", rw.registers, [400, 7, 8])

    info = client.read_device_information(read_code=1, object_id=0)
    check("FC43/14 basic device identification", {k: v for k, v in info.information.items()},
          {0: b"swift-mqtt-modbus", 1: b"ModbusTCPServer", 2: b"1.0"})

    error = client.read_holding_registers(999, count=2)
    check("exception 02 beyond the store", (error.isError(), getattr(error, "exception_code", None)), (True, 2))
    # pymodbus refuses to encode an invalid quantity itself, so 03 is checked by the raw-socket tests.

    for unit in (0, 255):
        check(f"unit id {unit} answered", client.read_holding_registers(1, count=1, device_id=unit).registers, [1])
finally:
    client.close()

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
