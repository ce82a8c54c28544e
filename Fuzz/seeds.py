#!/usr/bin/env python3
"""Writes the seed corpora of the fuzzers whose inputs are plain bytes or text (Fuzz/Corpus/).

FuzzSparkplug's seeds are protobuf payloads that only the codec builds: they come from
`FuzzSparkplug --write-seeds Fuzz/Corpus/FuzzSparkplug`. FuzzConfigLoader's are the example
configurations (examples/configs/*.yaml), copied, plus a few small ones written here.

    python3 Fuzz/seeds.py        # rewrites the files this script owns; others are left alone

Each input layout is described at the top of its fuzzer's source file.
"""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "Corpus")


def write(fuzzer, name, data):
    folder = os.path.join(CORPUS, fuzzer)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as out:
        out.write(data)


def chunk(data):
    """A length byte and the bytes."""
    if isinstance(data, str):
        data = data.encode()
    return bytes([len(data)]) + data


def frame(transaction, unit, pdu):
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu


# Modbus request PDUs, one per function code, and a few refused ones.
PDUS = {
    "fc01-read-coils": bytes.fromhex("0100130013"),
    "fc02-read-discrete-inputs": bytes.fromhex("0200c40016"),
    "fc03-read-holding": bytes.fromhex("03006b0003"),
    "fc04-read-input": bytes.fromhex("0400080001"),
    "fc05-write-coil": bytes.fromhex("0500acff00"),
    "fc06-write-register": bytes.fromhex("0600010003"),
    "fc08-echo": bytes.fromhex("080000a537"),
    "fc15-write-coils": bytes.fromhex("0f0013000a02cd01"),
    "fc16-write-registers": bytes.fromhex("100001000204000a0102"),
    "fc22-mask-write": bytes.fromhex("16000400f20025"),
    "fc23-read-write": bytes.fromhex("1700030006000e00030600ff00ff00ff"),
    "fc43-device-id": bytes.fromhex("2b0e0100"),
    "fc43-individual": bytes.fromhex("2b0e0481"),
    "refused-fc07": bytes.fromhex("07"),
    "refused-quantity-0": bytes.fromhex("0300000000"),
    "refused-past-65535": bytes.fromhex("03ffff0002"),
    "refused-short": bytes.fromhex("0300"),
}

for name, pdu in PDUS.items():
    write("FuzzRequestParser", name, pdu)

# Frame assembler: [n][n read sizes - 1][stream].
read_holding = frame(1, 1, PDUS["fc03-read-holding"])
write_many = frame(2, 17, PDUS["fc16-write-registers"])
largest = frame(3, 1, bytes([0x10, 0, 0, 0, 123, 246]) + bytes(246))
write("FuzzFrameAssembler", "one-frame", bytes([0]) + read_holding)
write("FuzzFrameAssembler", "byte-by-byte", bytes([1, 0]) + read_holding + write_many)
write("FuzzFrameAssembler", "split-header", bytes([2, 2, 6]) + read_holding + write_many + read_holding)
write("FuzzFrameAssembler", "largest-frame", bytes([1, 99]) + largest + read_holding)
write("FuzzFrameAssembler", "partial-tail", bytes([1, 4]) + read_holding + read_holding[:9])
write("FuzzFrameAssembler", "bad-protocol", bytes([0]) + read_holding + bytes.fromhex("000100010006010300000001"))
write("FuzzFrameAssembler", "bad-length", bytes([1, 2]) + read_holding + bytes.fromhex("0001000001ff01"))

# Reply encoding: [choice][fields].
write("FuzzReplyEncoding", "read-coils", bytes([0, 1, 0, 19]) + bytes.fromhex("cd6b05"))
write("FuzzReplyEncoding", "read-registers", bytes([1, 0, 3]) + bytes.fromhex("022b00000064"))
write("FuzzReplyEncoding", "write-multiple", bytes([2, 1, 0, 19, 0, 10]))
write("FuzzReplyEncoding", "exception", bytes([3, 0x03, 0x02]))
identity = chunk("ACME") + chunk("PUMP-7") + chunk("1.2") + bytes([1]) + chunk("https://example.invalid")
identity += bytes([1]) + chunk("Pump") + bytes([0, 0]) + bytes([2, 0x80]) + chunk("serial 42") + bytes([0x90]) + chunk("x")
write("FuzzReplyEncoding", "device-id-stream", bytes([4]) + identity + bytes([2, 0]))
write("FuzzReplyEncoding", "device-id-individual", bytes([4]) + identity + bytes([3, 0x80]))
long_values = chunk("V" * 200) + chunk("P" * 200) + chunk("R" * 10) + bytes([1]) + chunk("U" * 200)
write("FuzzReplyEncoding", "device-id-more-follows", bytes([4]) + long_values + bytes([0, 0, 0, 0, 1, 0]))

# JSON documents as devices publish them.
DOCUMENTS = {
    "number": "21.5",
    "object": '{"temperature":21.5,"humidity":40}',
    "zigbee2mqtt": '{"state":"ON","power":12.5,"energy":1.25,"linkquality":120,"update":{"state":"idle"}}',
    "tasmota": '{"Time":"2024-05-01T10:00:00","ENERGY":{"Total":12.345,"Power":[40,0]},"POWER":"OFF"}',
    "shelly": '{"id":1,"src":"shellyplus1-a8032ab12345","result":{"output":true,"apower":0.0}}',
    "ack": '{"id":"c-17","ok":false,"error":"valve jammed","code":6}',
    "escapes": '{"k\\u00e9y":"line\\nbreak \\"quoted\\" \\ud83d\\ude00","a.b":{"[0]":[null,true,false]}}',
    "numbers": "[0,-0,1e3,-2.5E-3,123456789012345678901234567890,18446744073709551615]",
    "nested": "[[[[[[[[{}]]]]]]]]",
    "repeated-key": '{"a":1,"a":{"b":2}}',
}
for name, text in DOCUMENTS.items():
    write("FuzzJSON", name, text)
    json.loads(text)  # the seeds themselves must be valid JSON

# Payload decoder: [format][type][scale][offset][order][words flag (+ words)][path chunk][payload].
# Types: 0 bool 1 int16 2 uint16 3 int32 4 uint32 5 int64 6 uint64 7 float32 8 float64,
# 9 (+16 k) string(k+1), 10 (+16 k) bit(k).
PLAIN, JSON_, BOOLEAN = 0, 1, 2
write("FuzzPayloadDecoder", "plain-int16", bytes([PLAIN, 1, 0, 0, 0, 0]) + b"-42")
write("FuzzPayloadDecoder", "plain-scaled", bytes([PLAIN, 4, 1, 4, 1, 0]) + b"21.5")
write("FuzzPayloadDecoder", "plain-hex", bytes([PLAIN, 2, 0, 0, 0, 0]) + b"0x1F")
write("FuzzPayloadDecoder", "plain-float32", bytes([PLAIN, 7, 0, 0, 3, 0]) + b" 1e-3\n")
write("FuzzPayloadDecoder", "plain-uint64", bytes([PLAIN, 6, 0, 0, 2, 0]) + b"18446744073709551615")
write("FuzzPayloadDecoder", "plain-string", bytes([PLAIN, 9 + 16 * 7, 0, 0, 1, 0]) + "pump Ä".encode())
write("FuzzPayloadDecoder", "plain-words", bytes([PLAIN, 0, 0, 0, 0, 1]) + chunk("ON") + chunk("OFF") + b"on")
write("FuzzPayloadDecoder", "json-path", bytes([JSON_, 8, 0, 0, 0, 0]) + chunk("ENERGY.Power[0]") + DOCUMENTS["tasmota"].encode())
write("FuzzPayloadDecoder", "json-quoted-key", bytes([JSON_, 3, 2, 3, 0, 0]) + chunk('["a.b"]["[0]"][1]') + DOCUMENTS["escapes"].encode())
write("FuzzPayloadDecoder", "json-bool", bytes([JSON_, 10 + 16 * 3, 0, 0, 0, 1]) + chunk("ON") + chunk("OFF") + chunk("state") + DOCUMENTS["zigbee2mqtt"].encode())
write("FuzzPayloadDecoder", "json-root", bytes([JSON_, 5, 0, 0, 0, 0]) + chunk("$") + b"-9223372036854775808")
write("FuzzPayloadDecoder", "boolean", bytes([BOOLEAN, 1, 0, 0, 0, 0]) + b" TRUE ")

# Command template: [json?][type][value kind][value 8][timestamp 8][id chunk][name chunk][template].
# Types: 0 int16 1 uint32 2 int64 3 float32 4 float64 5 bool 6 string(16); kinds: 0 integer
# 1 unsigned 2 number (bits) 3 bool 4 text (a chunk instead of the 8 bytes).
ts = struct.pack(">q", 1735786445678)
write("FuzzCommandTemplate", "json-value", bytes([1, 4, 2]) + struct.pack(">d", 21.5) + ts + chunk("c-1") + chunk("boiler.setpoint") + b'{"setpoint":{{value}},"id":"{{correlation_id}}"}')
write("FuzzCommandTemplate", "plain-all", bytes([0, 0, 0]) + struct.pack(">q", -7) + ts + chunk("id 2") + chunk("p") + b"set {{ value }} on {{unit}}/{{point}} at {{timestamp}} ({{correlation_id}})")
write("FuzzCommandTemplate", "json-bool", bytes([1, 5, 3, 1]) + ts + chunk('quote " and \\ and \n') + chunk("relay") + b'{"state":{{value}},"by":"{{point}}"}')
write("FuzzCommandTemplate", "json-text", bytes([1, 6, 4]) + chunk("läuft\u2028") + ts + chunk("") + chunk("label") + b'{"text":{{value}}}')
write("FuzzCommandTemplate", "unknown-placeholder", bytes([0, 1, 1]) + struct.pack(">Q", 2**64 - 1) + ts + chunk("x") + chunk("y") + b"{{ nope }} {{value")
write("FuzzCommandTemplate", "literal-only", bytes([0, 0, 0]) + bytes(8) + struct.pack(">q", -62135596800000) + chunk("") + chunk("") + b"ON } {")

# Ack evaluator: [own paths? (+4 path chunks)][property count (+ name choice, value chunk each)][payload].
write("FuzzAckEvaluator", "empty", bytes([0, 0]))
write("FuzzAckEvaluator", "ok-word", bytes([0, 0]) + b" OK\n")
write("FuzzAckEvaluator", "refusal-text", bytes([0, 0]) + b"valve jammed")
write("FuzzAckEvaluator", "json-code", bytes([0, 0]) + DOCUMENTS["ack"].encode())
write("FuzzAckEvaluator", "json-code-hex", bytes([0, 0]) + b'{"ok":false,"code":"0x0B"}')
write("FuzzAckEvaluator", "json-unanswerable", bytes([0, 0]) + b'{"ok":false,"code":99,"error":{"why":"x"}}')
write("FuzzAckEvaluator", "json-success", bytes([0, 0]) + b'{"id":17,"ok":true}')
write("FuzzAckEvaluator", "own-paths", bytes([1]) + chunk("result.done") + chunk("result.err") + chunk("result.code") + chunk("meta[0].id") + bytes([0]) + b'{"result":{"done":"success","err":null,"code":3},"meta":[{"id":"x"}]}')
write("FuzzAckEvaluator", "user-properties", bytes([0, 2, 0]) + chunk("busy") + bytes([1]) + chunk("6"))

# Configurations: the examples, and small ones.
examples = os.path.join(HERE, "..", "examples", "configs")
for name in sorted(os.listdir(examples)):
    if name.endswith(".yaml"):
        shutil.copyfile(os.path.join(examples, name), os.path.join(CORPUS, "FuzzConfigLoader", name))
write("FuzzConfigLoader", "minimal.yaml", """broker:
  host: 127.0.0.1
units:
  - id: 1
    points:
      - name: temperature
        address: 0
        type: float32
        state_topic: home/temperature
""")
write("FuzzConfigLoader", "errors.yaml", """broker:
  host: 127.0.0.1
  port: 99999
units:
  - id: 1
    points:
      - name: a
        address: 0
        type: int32
        state_topic: a/#
      - name: a
        address: 1
        type: nosuchtype
""")
print("seeds written to", CORPUS)
