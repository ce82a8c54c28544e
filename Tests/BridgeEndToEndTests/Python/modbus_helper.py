#!/usr/bin/env python3
"""The end-to-end tests' independent Modbus client: pymodbus, driven by JSON lines.

Usage: modbus_helper.py PORT

Reads one JSON request per line on stdin and writes one JSON answer per line on stdout, echoing
the request's "id". Requests name a connection ("conn", default "main"); each connection is a
pymodbus ModbusTcpClient (8 s response timeout: longer than any ack timeout the tests hold a
write for, with room for a loaded machine) with its own worker thread, so requests on different connections run
at the same time (a write held by the bridge does not block a read on another connection) while
requests on one connection keep their order.

  {"id": 1, "op": "read", "unit": 1, "area": "holding_register", "address": 0, "count": 2}
      -> {"id": 1, "values": [0, 215]}   or {"id": 1, "exception": 11}   or {"id": 1, "error": "..."}
  {"id": 2, "op": "write", "unit": 1, "area": "holding_register", "address": 0, "values": [215], "single": true}
      -> {"id": 2, "ok": true}           (single: FC5/FC6, else FC15/FC16; coil values 0/1)
  {"id": 3, "op": "decode", "unit": 1, "area": "input_register", "address": 4, "type": "float32",
   "order": "CDAB", "scale": 10, "offset": 0}
      -> {"id": 3, "registers": [...], "value": "21.5"}
     The value is decoded here, independently of the bridge's codec, following the byte-order
     table of examples/CONFIGURATION.md; integers with scale 1 and an integral offset are exact
     (decimal text), everything else is Python's repr of a float.

  {"id": 4, "op": "mask_write", "unit": 1, "address": 5, "and_mask": 65527, "or_mask": 8}
      -> {"id": 4, "ok": true}           (FC22)
  {"id": 5, "op": "readwrite", "unit": 1, "address": 10, "values": [215, 100], "read_address": 10, "read_count": 2}
      -> {"id": 5, "values": [215, 100]} (FC23: the write at "address", then the read)
  {"id": 6, "op": "ping"} -> {"id": 6, "ok": true}   (answered once Python and pymodbus are loaded)

The process ends at end of input.
"""
import json
import queue
import struct
import sys
import threading

from pymodbus.client import ModbusTcpClient

PORT = int(sys.argv[1])
OUTPUT = threading.Lock()
REGISTERS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2,
             "int64": 4, "uint64": 4, "float64": 4}


def answer(message):
    with OUTPUT:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def read(client, request):
    area, unit = request["area"], request.get("unit", 1)
    address, count = request["address"], request.get("count", 1)
    if area == "coil":
        result = client.read_coils(address, count=count, device_id=unit)
    elif area == "discrete_input":
        result = client.read_discrete_inputs(address, count=count, device_id=unit)
    elif area == "holding_register":
        result = client.read_holding_registers(address, count=count, device_id=unit)
    elif area == "input_register":
        result = client.read_input_registers(address, count=count, device_id=unit)
    else:
        raise ValueError(f"unknown area {area}")
    if result.isError():
        return {"exception": result.exception_code}
    if area in ("coil", "discrete_input"):
        return {"values": [1 if bit else 0 for bit in result.bits[:count]]}
    return {"values": list(result.registers)}


def write(client, request):
    area, unit, address, values = request["area"], request.get("unit", 1), request["address"], request["values"]
    single = request.get("single", False)
    if area == "coil":
        bits = [value != 0 for value in values]
        result = client.write_coil(address, bits[0], device_id=unit) if single else client.write_coils(address, bits, device_id=unit)
    elif area == "holding_register":
        result = client.write_register(address, values[0], device_id=unit) if single else client.write_registers(address, values, device_id=unit)
    else:
        raise ValueError(f"area {area} cannot be written")
    if result.isError():
        return {"exception": result.exception_code}
    return {"ok": True}


def ordered_bytes(registers, order):
    """The value's bytes, most significant first, from registers in `order`."""
    words = list(registers)
    if order in ("CDAB", "DCBA"):
        words.reverse()
    data = b"".join(struct.pack(">H", word) for word in words)
    if order in ("BADC", "DCBA"):
        data = b"".join(data[index + 1:index + 2] + data[index:index + 1] for index in range(0, len(data), 2))
    return data


def decode(client, request):
    kind, order = request["type"], request.get("order", "ABCD")
    scale, offset = request.get("scale", 1), request.get("offset", 0)
    count = request["length"] if kind == "string" else REGISTERS[kind]
    result = read(client, dict(request, count=count))
    if "values" not in result:
        return result
    registers = result["values"]
    if kind == "string":
        # Strings keep their word order; BADC and DCBA swap the bytes of each word.
        data = b"".join(struct.pack("<H" if order in ("BADC", "DCBA") else ">H", word) for word in registers)
        return {"registers": registers, "value": data.split(b"\0", 1)[0].decode("utf-8")}
    data = ordered_bytes(registers, order)
    if kind.startswith("float"):
        raw = struct.unpack(">f" if kind == "float32" else ">d", data)[0]
    else:
        raw = int.from_bytes(data, "big", signed=not kind.startswith("u"))
    if not kind.startswith("float") and scale == 1 and float(offset).is_integer():
        value = str(raw - int(offset))
    else:
        value = repr((raw - offset) / scale)
    return {"registers": registers, "value": value}


def mask_write(client, request):
    result = client.mask_write_register(
        address=request["address"], and_mask=request["and_mask"], or_mask=request["or_mask"], device_id=request.get("unit", 1))
    if result.isError():
        return {"exception": result.exception_code}
    return {"ok": True}


def readwrite(client, request):
    result = client.readwrite_registers(
        read_address=request["read_address"], read_count=request["read_count"], write_address=request["address"],
        values=request["values"], device_id=request.get("unit", 1))
    if result.isError():
        return {"exception": result.exception_code}
    return {"values": list(result.registers)}


OPERATIONS = {"read": read, "write": write, "decode": decode, "mask_write": mask_write, "readwrite": readwrite}


def serve(client, requests):
    while True:
        request = requests.get()
        if request is None:
            client.close()
            return
        try:
            if not client.connected and not client.connect():
                reply = {"error": f"cannot connect to 127.0.0.1:{PORT}"}
            else:
                reply = OPERATIONS[request["op"]](client, request)
        except Exception as error:  # noqa: BLE001 - every failure goes back to the test
            reply = {"error": f"{type(error).__name__}: {error}"}
        reply["id"] = request.get("id")
        answer(reply)


def main():
    connections = {}
    workers = []
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request["op"] == "ping":
            answer({"id": request.get("id"), "ok": True})
            continue
        name = request.get("conn", "main")
        if name not in connections:
            connections[name] = queue.Queue()
            client = ModbusTcpClient("127.0.0.1", port=PORT, timeout=request.get("timeout", 8), retries=0)
            worker = threading.Thread(target=serve, args=(client, connections[name]), daemon=True)
            worker.start()
            workers.append(worker)
        connections[name].put(request)
    for requests in connections.values():
        requests.put(None)
    for worker in workers:
        worker.join(timeout=5)


if __name__ == "__main__":
    main()
