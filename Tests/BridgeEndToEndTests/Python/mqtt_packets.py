"""Raw MQTT 3.1.1 framing for the test publishers that must be cheaper than an MQTT library
(the telemetry floods of the end-to-end tests, the benchmarks and the soak): a few bytes of
header per packet, built in batches."""

PUBLISH_QOS0 = 0x30
DISCONNECT = bytes([0xE0, 0])
PINGREQ = bytes([0xC0, 0])


def remaining_length(length):
    """The variable-length "remaining length" field of a fixed header."""
    encoded = bytearray()
    while True:
        byte = length % 128
        length //= 128
        encoded.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(encoded)


def packet(kind, body):
    """A packet: the first header byte, the remaining length, the body."""
    return bytes([kind]) + remaining_length(len(body)) + body


def utf8(text):
    """A length-prefixed UTF-8 string, as topics and client ids are written."""
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def connect_packet(client_id, keep_alive=60):
    """CONNECT: protocol "MQTT" level 4, clean session, no will, no credentials."""
    return packet(0x10, utf8("MQTT") + bytes([4, 0x02]) + keep_alive.to_bytes(2, "big") + utf8(client_id))


def connection_accepted(connack):
    """Whether the 4 bytes read after CONNECT are a CONNACK with return code 0."""
    return len(connack) >= 4 and connack[0] == 0x20 and connack[3] == 0
