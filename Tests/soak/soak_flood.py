#!/usr/bin/env python3
"""The soak's telemetry flood: QoS 0 state messages for the bridge's 200 flood points, at a base
rate with bursts as fast as the broker takes them, over raw MQTT 3.1.1 (a few bytes of framing;
no library, so it costs little CPU). Reconnects whenever the broker goes away.

Usage: soak_flood.py PORT SEED RATE

RATE messages per second between bursts; every 2...6 s (drawn from SEED) a burst of 2,000...20,000
messages. Topic soak/flood/t only ever carries values t*300 ... t*300+299 (soak_common), which is
what the driver checks reads against. Runs until SIGTERM, then prints
"flood: published N messages in B bursts, C connections".
"""
import os
import random
import signal
import socket
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "BridgeEndToEndTests", "Python"))
import soak_common as common  # noqa: E402
from mqtt_packets import PINGREQ, PUBLISH_QOS0, connect_packet, connection_accepted, packet, utf8  # noqa: E402


def connect(port):
    connection = socket.create_connection(("127.0.0.1", port), timeout=2)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection.sendall(connect_packet(f"soak-flood-{os.getpid()}"))
    connack = connection.recv(4)
    if not connection_accepted(connack):
        raise OSError(f"connection refused: {connack!r}")
    connection.settimeout(5)
    return connection


def main():
    port, seed, rate = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    rng = random.Random(f"{seed}:flood")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    topics = [utf8(common.flood_topic(index)) for index in range(common.FLOOD_POINTS)]
    sent = bursts = connections = 0
    connection = None
    next_burst = time.monotonic() + rng.uniform(2, 6)
    last_ping = time.monotonic()
    while not stopping:
        if connection is None:
            try:
                connection = connect(port)
                connections += 1
            except OSError:
                time.sleep(0.1)
                continue
        now = time.monotonic()
        if now >= next_burst:
            count = rng.randint(2_000, 20_000)
            bursts += 1
            next_burst = now + rng.uniform(2, 6)
        else:
            count = max(1, int(rate / 20))
        chunk = bytearray()
        for index in range(sent, sent + count):
            topic = index % common.FLOOD_POINTS
            value = topic * common.FLOOD_SPAN + (index // common.FLOOD_POINTS) % common.FLOOD_SPAN
            chunk += packet(PUBLISH_QOS0, topics[topic] + str(value).encode())
        if now - last_ping > 20:
            chunk += PINGREQ  # the flood reads nothing, so keep-alive is ours
            last_ping = now
        try:
            connection.sendall(chunk)
            sent += count
        except OSError:
            connection.close()
            connection = None
            continue
        if count < 1000:
            time.sleep(0.05)
    print(f"flood: published {sent} messages in {bursts} bursts, {connections} connections", flush=True)


if __name__ == "__main__":
    main()
