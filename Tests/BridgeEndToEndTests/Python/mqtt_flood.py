#!/usr/bin/env python3
"""A fast MQTT telemetry flood for the tests and benchmarks: QoS 0 PUBLISH packets over one
connection, from a process of its own, without an MQTT library (MQTT 3.1.1 framing is a few
bytes, and building the packets in batches is what makes it fast).

Usage: mqtt_flood.py PORT MESSAGES TOPICS [PREFIX] [SECONDS]

Publishes MESSAGES messages (0: no limit) round-robin over TOPICS topics PREFIX/0 ...
PREFIX/(TOPICS-1) (PREFIX defaults to "flood") on 127.0.0.1:PORT; the payload of message i is
the decimal text of i // TOPICS. Stops after SECONDS seconds if given (0: no limit), or when
stdin closes if SECONDS is "-". Prints one line: "published N in S s (R msg/s)". Exits 1 if
the broker refuses the connection.
"""
import socket
import sys
import threading
import time

from mqtt_packets import DISCONNECT, PUBLISH_QOS0, connect_packet, connection_accepted, packet, utf8


def main():
    port, messages, topics = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    prefix = sys.argv[4] if len(sys.argv) > 4 else "flood"
    seconds_arg = sys.argv[5] if len(sys.argv) > 5 else "0"
    stop = threading.Event()
    if seconds_arg == "-":
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        seconds = 0.0
    else:
        seconds = float(seconds_arg)

    connection = socket.create_connection(("127.0.0.1", port))
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client_id = f"flood-{time.monotonic_ns() % 1_000_000}"
    connection.sendall(connect_packet(client_id))
    connack = connection.recv(4)
    if not connection_accepted(connack):
        print(f"the broker refused the connection: {connack!r}", file=sys.stderr)
        sys.exit(1)

    topic_fields = [utf8(f"{prefix}/{index}") for index in range(topics)]
    started = time.monotonic()
    sent = 0
    batch = 1000
    while (messages == 0 or sent < messages) and not stop.is_set():
        if seconds and time.monotonic() - started >= seconds:
            break
        count = batch if messages == 0 else min(batch, messages - sent)
        chunk = bytearray()
        for index in range(sent, sent + count):
            chunk += packet(PUBLISH_QOS0, topic_fields[index % topics] + str(index // topics).encode())
        connection.sendall(chunk)
        sent += count
    # DISCONNECT once everything is written: the broker handles what it received first.
    connection.sendall(DISCONNECT)
    connection.close()
    elapsed = time.monotonic() - started
    print(f"published {sent} in {elapsed:.3f} s ({sent / elapsed if elapsed else 0:.0f} msg/s)", flush=True)


if __name__ == "__main__":
    main()
