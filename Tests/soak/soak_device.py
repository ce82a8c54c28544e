#!/usr/bin/env python3
"""The soak's simulated device: answers the bridge's commands for the 100 writable points, with
the faults soak_common.Decision picks for each (point, value): delays, drops, duplicates,
reordering, refusals and acknowledgements with a wrong correlation.

Usage: soak_device.py PORT SEED LOG

It connects to the broker on 127.0.0.1:PORT with MQTT 5 (paho-mqtt), reconnects whenever the
broker goes away, publishes every point's state (retained) on each connection, and records what
it did, one line each, in LOG:

  C <t> <point> <value> <correlation>     a command received (correlation "-" for none)
  A <t> <correlation> <1|0> <code|->      an ack for a real command: positive, or a refusal with
                                          the exception code it must be answered with
  B <t> <kind>                            an ack no write may accept (wrong correlation)
  S <t> <point> <value>                   a state published
  K <t>                                   connected (again)

Times are time.monotonic(), the clock the driver uses too. It prints "ready" once its first
subscription is acknowledged, and flushes LOG and exits on SIGTERM.
"""
import heapq
import json
import os
import random
import signal
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_common as common  # noqa: E402

PORT, SEED, LOG_PATH = int(sys.argv[1]), sys.argv[2], sys.argv[3]
REORDER_HOLD_S = 0.15


class Log:
    def __init__(self, path):
        self.file = open(path, "w", buffering=1 << 20)
        self.lock = threading.Lock()

    def write(self, *fields):
        line = " ".join(str(field) for field in fields) + "\n"
        with self.lock:
            self.file.write(line)

    def close(self):
        with self.lock:
            self.file.flush()
            self.file.close()


class Scheduler:
    """Runs callables at a later time on one thread of its own."""

    def __init__(self):
        self.heap = []
        self.counter = 0
        self.condition = threading.Condition()
        threading.Thread(target=self.run, daemon=True).start()

    def at(self, delay, action):
        with self.condition:
            self.counter += 1
            heapq.heappush(self.heap, (time.monotonic() + delay, self.counter, action))
            self.condition.notify()

    def run(self):
        while True:
            with self.condition:
                while not self.heap or self.heap[0][0] > time.monotonic():
                    timeout = self.heap[0][0] - time.monotonic() if self.heap else None
                    self.condition.wait(timeout)
                _, _, action = heapq.heappop(self.heap)
            try:
                action()
            except Exception as error:  # a failed publish while the broker is down
                print(f"device: scheduled action failed: {error}", file=sys.stderr)


class Device:
    def __init__(self):
        self.log = Log(LOG_PATH)
        self.scheduler = Scheduler()
        self.lock = threading.Lock()
        self.state = {point: common.INITIAL_BASE + point for point in range(common.POINTS)}
        self.last_correlation = {}  # point -> (correlation, response topic) of its previous command
        self.held = []  # reordered acks, released after the next one
        self.wrong_counter = 0
        self.bogus = random.Random(f"{SEED}:bogus")
        self.ready = False
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-device",
                             protocol=mqtt.MQTTv5)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=0.05, max_delay=0.5)
        client.on_connect = self.on_connect
        client.on_subscribe = self.on_subscribe
        client.on_message = self.on_message
        self.client = client

    # MQTT callbacks (paho's network thread)

    def on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            return
        self.log.write("K", time.monotonic())
        client.subscribe("soak/p/+/set", qos=1)
        with self.lock:
            states = dict(self.state)
        for point, value in states.items():
            self.publish_state(point, value)

    def on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if not self.ready:
            self.ready = True
            print("ready", flush=True)

    def on_message(self, client, userdata, message):
        now = time.monotonic()
        try:
            point = int(message.topic.split("/")[2])
        except (IndexError, ValueError):
            return
        mode = common.mode_of(point)
        value, correlation, response_topic = self.parse_command(point, mode, message)
        if value is None:
            print(f"device: unreadable command on {message.topic}: {message.payload!r}", file=sys.stderr)
            return
        self.log.write("C", now, point, value, correlation if correlation is not None else "-")
        decision = common.Decision(SEED, point, value)
        # What an earlier command held back (reorder) goes out after this command's answer.
        with self.lock:
            earlier, self.held = self.held, []
        if mode == "broker":
            if decision.fault == "ok":
                self.apply(point, value)
        elif mode == "state_echo":
            self.echo(point, value, decision)
        elif correlation is None:
            print(f"device: command without correlation on {message.topic}", file=sys.stderr)
        else:
            self.acknowledge(point, value, mode, correlation, response_topic, decision)
        for action in earlier:
            action()

    # Commands

    def parse_command(self, point, mode, message):
        payload = message.payload.decode("utf-8", "replace")
        try:
            if mode == "correlation_id":
                document = json.loads(payload)
                if common.uses_template(point):
                    return int(document["v"]), document["cid"], common.ack_topic(point)
                return int(document["value"]), document["id"], common.ack_topic(point)
            value = int(float(payload))
        except (ValueError, KeyError, TypeError):
            return None, None, None
        if mode == "mqtt5":
            properties = message.properties
            correlation = getattr(properties, "CorrelationData", None) if properties else None
            response_topic = getattr(properties, "ResponseTopic", None) if properties else None
            if correlation is None or response_topic is None:
                return value, None, None
            return value, correlation.decode("utf-8", "replace"), response_topic
        return value, None, None

    def apply(self, point, value):
        with self.lock:
            self.state[point] = value
        self.publish_state(point, value)

    def publish_state(self, point, value):
        if common.mode_of(point) == "correlation_id":
            payload = json.dumps({"value": value})
        else:
            payload = str(value)
        self.log.write("S", time.monotonic(), point, value)
        self.client.publish(common.state_topic(point), payload, qos=1, retain=True)

    # state_echo: the state message is the acknowledgement

    def echo(self, point, value, decision):
        fault = decision.fault
        if fault == "ok":
            self.apply(point, value)
        elif fault == "delay":
            self.scheduler.at(decision.delay, lambda: self.apply(point, value))
        elif fault == "drop":
            pass
        elif fault == "duplicate":
            self.apply(point, value)
            self.scheduler.at(decision.second_delay, lambda: self.apply(point, value))
        elif fault == "reorder":
            self.hold(lambda: self.apply(point, value))
        elif fault == "refuse":  # the device keeps its value and reports it
            with self.lock:
                current = self.state[point]
            self.publish_state(point, current)
        elif fault == "wrong_correlation":  # reports a value other than the one written
            with self.lock:
                self.wrong_counter += 1
                wrong = common.WRONG_BASE + self.wrong_counter % common.WRONG_SPAN
            self.apply(point, wrong)

    # mqtt5 and correlation_id: an acknowledgement message

    def acknowledge(self, point, value, mode, correlation, response_topic, decision):
        fault = decision.fault
        previous = self.last_correlation.get(point)
        self.last_correlation[point] = (correlation, response_topic)

        def positive():
            self.apply(point, value)
            self.send_ack(mode, point, correlation, response_topic, decision, positive=True)

        if fault == "ok":
            positive()
        elif fault == "delay":
            self.scheduler.at(decision.delay, positive)
        elif fault == "drop":
            if decision.applies:
                self.apply(point, value)
        elif fault == "duplicate":
            positive()
            self.scheduler.at(decision.second_delay,
                              lambda: self.send_ack(mode, point, correlation, response_topic, decision, True))
        elif fault == "reorder":
            self.hold(positive)
        elif fault == "refuse":
            self.send_ack(mode, point, correlation, response_topic, decision, positive=False)
        elif fault == "wrong_correlation":
            self.send_wrong(mode, point, correlation, response_topic, decision, previous)
            if decision.then_correct:
                self.scheduler.at(decision.second_delay, positive)

    def hold(self, action):
        with self.lock:
            self.held.append(action)
        # Released after the next acknowledgement, or after REORDER_HOLD_S if none comes.
        self.scheduler.at(REORDER_HOLD_S, self.release_held)

    def release_held(self):
        with self.lock:
            held, self.held = self.held, []
        for action in held:
            action()

    def send_ack(self, mode, point, correlation, response_topic, decision, positive):
        properties = Properties(PacketTypes.PUBLISH)
        if positive:
            form = decision.positive_form
            if mode == "mqtt5":
                payload = {"empty": b"", "ok_true": b'{"ok":true}', "plain_ok": b"ok",
                           "json_empty": b"{}"}[form]
            else:
                field = "cid" if common.uses_template(point) else "id"
                document = {field: correlation}
                if form == "ok_true":
                    document["ok"] = True
                payload = json.dumps(document).encode()
            code = "-"
        else:
            payload, properties = self.refusal(mode, point, correlation, decision, properties)
            code = decision.expected_refusal_code()
        if mode == "mqtt5":
            properties.CorrelationData = correlation.encode()
        self.log.write("A", time.monotonic(), correlation, 1 if positive else 0, code)
        self.client.publish(response_topic, payload, qos=1, properties=properties)

    def refusal(self, mode, point, correlation, decision, properties):
        form = decision.form
        if mode == "mqtt5":
            if form == "ok_false":
                return b'{"ok":false}', properties
            if form == "error_field":
                return b'{"error":"refused by the soak device"}', properties
            if form == "code_field":
                return json.dumps({"code": decision.code}).encode(), properties
            if form == "user_error":
                properties.UserProperty = [("error", "refused")]
                return b"", properties
            if form == "user_code":
                properties.UserProperty = [("modbus_exception", str(decision.code))]
                return b"", properties
            return b"refused", properties  # plain text other than ok/success/...
        field = "cid" if common.uses_template(point) else "id"
        document = {field: correlation}
        if form == "ok_false":
            document["ok"] = False
        elif form == "error_field":
            document["error"] = "refused by the soak device"
        else:
            document["code"] = decision.code
        return json.dumps(document).encode(), properties

    def send_wrong(self, mode, point, correlation, response_topic, decision, previous):
        kind = decision.wrong_kind
        if kind == "stale" and previous is not None:
            # The previous command's own correlation, answered again: a real (late or
            # duplicate) acknowledgement of that command, recorded as such.
            old_correlation, old_topic = previous
            self.send_ack(mode, point, old_correlation, old_topic, decision, positive=True)
            return
        if kind == "stale":
            kind = "garbage"
        bogus = f"soak-bogus-{self.bogus.getrandbits(48):012x}"
        mutated = correlation[:-1] + ("x" if correlation[-1:] != "x" else "y")
        properties = Properties(PacketTypes.PUBLISH)
        if mode == "mqtt5":
            if kind in ("garbage", "malformed"):
                properties.CorrelationData = bogus.encode()
            elif kind == "mutated":
                properties.CorrelationData = mutated.encode()
            payload = b"\xff\xfe not json" if kind == "malformed" else b'{"ok":true}'
        else:
            field = "cid" if common.uses_template(point) else "id"
            if kind == "garbage":
                payload = json.dumps({field: bogus, "ok": True}).encode()
            elif kind == "mutated":
                payload = json.dumps({field: mutated, "ok": True}).encode()
            elif kind == "missing":
                payload = b'{"ok":true}'
            else:
                payload = b'{"' + field.encode() + b'": "' + correlation.encode() + b'", "ok": tr'
        self.log.write("B", time.monotonic(), kind)
        self.client.publish(response_topic, payload, qos=1, properties=properties)

    def run(self):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        self.client.connect_async("127.0.0.1", PORT, keepalive=10, clean_start=True)
        self.client.loop_start()
        stop.wait()
        self.client.loop_stop()
        self.log.close()


if __name__ == "__main__":
    Device().run()
