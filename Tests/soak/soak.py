#!/usr/bin/env python3
"""Fault-injection soak of the bridge (docs/soak.md): the real `mqtt-modbus-bridge run` binary,
a real mosquitto that this script starts, kills and restarts on one free loopback port, a
simulated device that mistreats acknowledgements (soak_device.py), a telemetry flood
(soak_flood.py) and 16 pymodbus masters reading and writing 100 points in every ack mode, some of
them hanging up in the middle of a request. At the end it checks the invariants, prints the seed
and every count, and exits 1 if any invariant failed.

Usage: soak.py --bridge PATH [--writes N] [--seed S] [--restarts K] [--flood-rate R] [--out DIR]
"""
import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_common as common  # noqa: E402

from pymodbus.client import AsyncModbusTcpClient  # noqa: E402
from pymodbus.exceptions import ModbusException  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MASTER_TIMEOUT_S = 10.0  # far beyond the ack timeout: a write still unanswered then is a bug
OUTAGE_GRACE_S = 5.0  # after the broker is back, the bridge reconnects and subscribes within this
STALE_GRACE_S = 1.0  # after a kill, the bridge has noticed the closed connection within this
# A broker killed this soon after accepting a broker-mode command may not have passed it on.
BROKER_LOSS_WINDOW_S = 1.0


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def now():
    return time.monotonic()


# --- the broker -----------------------------------------------------------------------------


class Broker:
    """mosquitto on one port, killed and restarted on the same port."""

    def __init__(self, directory, port):
        self.port = port
        self.config = os.path.join(directory, "mosquitto.conf")
        self.log = open(os.path.join(directory, "mosquitto.log"), "ab")
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "set_tcp_nodelay true",
                 "persistence false", "max_queued_messages 10000"]
        if os.getuid() == 0:
            lines.append("user root")  # otherwise it switches to user "mosquitto"
        with open(self.config, "w") as file:
            file.write("\n".join(lines) + "\n")
        self.executable = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = None
        self.outages = []  # (killed at, accepting again at)

    def start(self):
        deadline = now() + 15
        while True:
            self.process = subprocess.Popen([self.executable, "-c", self.config],
                                            stdout=self.log, stderr=self.log)
            while now() < deadline and self.process.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return
                except OSError:
                    time.sleep(0.02)
            if now() >= deadline:
                raise RuntimeError("mosquitto did not start (see mosquitto.log)")
            time.sleep(0.1)  # it exited: the port may still be held; try again

    def kill(self, sig):
        self.process.send_signal(sig)
        self.process.wait(timeout=10)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


# --- the masters ------------------------------------------------------------------------------


class Run:
    """Shared state of the masters: counters, the records the checks read, the stop rule."""

    def __init__(self, args, modbus_port):
        self.args = args
        self.port = modbus_port
        self.writes = []  # (points, values, t0, t1, outcome) outcome: "ok" | int code | "noreply:..."
        self.abandoned = []  # (variant, points, values, t0)
        self.reads = []  # (first, count, t0, t1, values | int code | "noreply:...")
        self.flood_reads = []
        self.write_requests = 0
        self.stop = False
        self.stopped_early = None
        self.counters = Counter()

    def writes_started(self):
        return self.write_requests


def mbap_fc6(transaction, address, value):
    return struct.pack(">HHHBBHH", transaction, 0, 6, 1, 6, address, value)


class Master:
    def __init__(self, run, index, seed):
        self.run = run
        self.index = index
        self.rng = random.Random(f"{seed}:master:{index}")
        self.next_k = defaultdict(int)
        self.client = None

    def next_value(self, point):
        k = self.next_k[point]
        if k >= common.MAX_WRITES_PER_MASTER_POINT:
            raise RuntimeError(f"master {self.index} ran out of values for point {point}")
        self.next_k[point] = k + 1
        return self.index + common.MASTERS * k

    async def connect(self):
        if self.client is not None:
            self.client.close()
        while True:
            client = AsyncModbusTcpClient("127.0.0.1", port=self.run.port, timeout=MASTER_TIMEOUT_S,
                                          retries=0, reconnect_delay=0)
            if await client.connect():
                self.client = client
                self.run.counters["master connections"] += 1
                return
            client.close()
            await asyncio.sleep(0.1)

    async def loop(self):
        await self.connect()
        run = self.run
        while not run.stop:
            roll = self.rng.random()
            if roll < 0.60:
                await self.write(single=True)
            elif roll < 0.70:
                await self.write(single=False)
            elif roll < 0.95:
                await self.read_points()
            else:
                await self.read_flood()
        self.client.close()

    async def write(self, single):
        run = self.run
        if single:
            points = [self.rng.randrange(common.POINTS)]
        else:
            first = self.rng.randrange(common.POINTS - 1)
            points = list(range(first, min(common.POINTS, first + self.rng.randint(2, 4))))
        values = [self.next_value(point) for point in points]
        run.write_requests += 1
        abandon = self.rng.random() < self.run.args.abandon_rate
        if abandon:
            await self.abandon(points, values, single)
            return
        t0 = now()
        try:
            if single:
                result = await self.client.write_register(points[0], values[0], device_id=1)
            else:
                result = await self.client.write_registers(points[0], values, device_id=1)
            outcome = result.exception_code if result.isError() else "ok"
        except (ModbusException, OSError, asyncio.TimeoutError) as error:
            outcome = f"noreply:{type(error).__name__}"
        t1 = now()
        run.writes.append((tuple(points), tuple(values), t0, t1, outcome))
        if isinstance(outcome, str) and outcome.startswith("noreply"):
            await self.connect()
        elif outcome == 0x0A:
            await asyncio.sleep(0.05)  # the broker is away: a master's retry interval

    async def abandon(self, points, values, single):
        """Hang up in the middle of a request: the bridge is left with a write nobody awaits."""
        run = self.run
        variant = self.rng.choices(["close_client", "reset_after_send", "half_frame"], [6, 2, 2])[0]
        t0 = now()
        if variant == "close_client" or not single:
            delay = self.rng.uniform(0, 0.3)
            if single:
                task = asyncio.ensure_future(self.client.write_register(points[0], values[0], device_id=1))
            else:
                task = asyncio.ensure_future(self.client.write_registers(points[0], values, device_id=1))
            done, _ = await asyncio.wait([task], timeout=delay)
            if done:  # the reply won the race: an ordinary write
                try:
                    result = task.result()
                    outcome = result.exception_code if result.isError() else "ok"
                except (ModbusException, OSError, asyncio.TimeoutError) as error:
                    outcome = f"noreply:{type(error).__name__}"
                run.writes.append((tuple(points), tuple(values), t0, now(), outcome))
                if outcome != "ok" and isinstance(outcome, str):
                    await self.connect()
                return
            self.client.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.client = None
            run.abandoned.append(("close_client", tuple(points), tuple(values), t0))
            run.counters["fault: master hung up mid-request (close_client)"] += 1
            await self.connect()
            return
        frame = mbap_fc6(self.rng.randrange(65536), points[0], values[0])
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", run.port)
            sock = writer.get_extra_info("socket")
            if variant == "half_frame":
                writer.write(frame[: self.rng.randint(1, len(frame) - 1)])
            else:
                writer.write(frame)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await writer.drain()
            writer.close()
        except OSError:
            pass
        run.abandoned.append((variant, tuple(points), tuple(values), t0))
        run.counters[f"fault: master hung up mid-request ({variant})"] += 1

    async def read_points(self):
        first = self.rng.randrange(common.POINTS)
        count = self.rng.randint(1, min(10, common.POINTS - first))
        t0 = now()
        try:
            result = await self.client.read_holding_registers(first, count=count, device_id=1)
            outcome = result.exception_code if result.isError() else tuple(result.registers)
        except (ModbusException, OSError, asyncio.TimeoutError) as error:
            outcome = f"noreply:{type(error).__name__}"
        self.run.reads.append((first, count, t0, now(), outcome))
        if isinstance(outcome, str):
            await self.connect()

    async def read_flood(self):
        first = self.rng.randrange(common.FLOOD_POINTS)
        count = self.rng.randint(1, min(20, common.FLOOD_POINTS - first))
        t0 = now()
        try:
            result = await self.client.read_input_registers(first, count=count, device_id=1)
            outcome = result.exception_code if result.isError() else tuple(result.registers)
        except (ModbusException, OSError, asyncio.TimeoutError) as error:
            outcome = f"noreply:{type(error).__name__}"
        self.run.flood_reads.append((first, count, t0, now(), outcome))
        if isinstance(outcome, str):
            await self.connect()


# --- the bridge -------------------------------------------------------------------------------


def bridge_yaml(broker_port, modbus_port):
    lines = [
        "version: 1",
        "broker:",
        f"  port: {broker_port}",
        "  host: 127.0.0.1",
        "  client_id: soak-bridge",
        "  protocol: mqtt5",
        "  keepalive: 10s",
        "  connect_timeout: 2s",
        "  operation_timeout: 2s",
        "  reconnect: { min_delay: 100ms, max_delay: 1s }",
        "modbus:",
        "  host: 127.0.0.1",
        f"  port: {modbus_port}",
        "  max_connections: 64",
        "defaults:",
        f"  ack: {{ timeout: {int(common.ACK_TIMEOUT_S * 1000)}ms }}",
        "units:",
        "  - id: 1",
        "    points:",
    ]
    for point in range(common.POINTS):
        mode = common.mode_of(point)
        lines += [
            f"      - name: p{point}",
            "        area: holding_register",
            f"        address: {point}",
            "        type: uint16",
            f"        state_topic: {common.state_topic(point)}",
            f"        command_topic: {common.command_topic(point)}",
        ]
        if mode == "correlation_id":
            lines.append("        payload: { format: json, path: value }")
            if common.uses_template(point):
                lines.append("        command_template: '{\"v\": {{value}}, \"cid\": \"{{correlation_id}}\"}'")
                lines.append("        ack: { mode: correlation_id, response_topic: 'soak/ack/+', id_field: cid }")
            else:
                lines.append("        ack: { mode: correlation_id, response_topic: 'soak/ack/+' }")
        else:
            lines.append(f"        ack: {{ mode: {mode} }}")
        if common.has_substitute(point):
            lines.append(f"        on_missing: {{ value: {common.SUBSTITUTE} }}")
    for index in range(common.FLOOD_POINTS):
        lines.append(f"      - {{ name: f{index}, area: input_register, address: {index}, type: uint16, "
                     f"state_topic: {common.flood_topic(index)}, qos: 0 }}")
    return "\n".join(lines) + "\n"


def http_get(port, path, timeout=2.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return None, ""


def wait_ready(status_port, seconds):
    deadline = now() + seconds
    while now() < deadline:
        if http_get(status_port, "/ready")[0] == 200:
            return True
        time.sleep(0.1)
    return False


def sample_process(pid):
    try:
        with open(f"/proc/{pid}/status") as file:
            rss = next(int(line.split()[1]) for line in file if line.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, fds
    except (OSError, StopIteration):
        return None


def metrics_of(text):
    values = {}
    for line in text.splitlines():
        if line.startswith("bridge_") and " " in line:
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                pass
    return values


# --- the run ----------------------------------------------------------------------------------


async def drive(args, run, broker, bridge, status_port, samples):
    seed_rng = random.Random(f"{args.seed}:broker")
    thresholds = sorted(
        int(args.writes * (0.08 + 0.8 * (index + seed_rng.uniform(0.2, 0.8)) / args.restarts))
        for index in range(args.restarts))
    plan = [(threshold, seed_rng.choice([signal.SIGKILL, signal.SIGTERM]), seed_rng.uniform(0.3, 2.0))
            for threshold in thresholds]
    masters = [Master(run, index, args.seed) for index in range(common.MASTERS)]
    tasks = [asyncio.ensure_future(master.loop()) for master in masters]
    started = now()
    last_report = started
    loop = asyncio.get_running_loop()
    # SIGINT or SIGTERM, or --max-seconds, end the load early; the checks still run.
    interrupted = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.append, sig)
    while run.write_requests < args.writes:
        if interrupted or (args.max_seconds and now() - started >= args.max_seconds):
            run.stopped_early = f"stopped after {now() - started:.0f} s ({'signal' if interrupted else '--max-seconds'})"
            break
        await asyncio.sleep(0.2)
        sample = sample_process(bridge.pid)
        if sample:
            samples.append((now() - started, run.write_requests) + sample)
        if bridge.poll() is not None:
            run.counters["bridge exited during the run"] += 1
            break
        if plan and run.write_requests >= plan[0][0]:
            _, sig, down = plan.pop(0)
            killed = now()
            broker.kill(sig)
            await asyncio.sleep(down)
            await loop.run_in_executor(None, broker.start)
            broker.outages.append((killed, now()))
            run.counters[f"broker restarts ({signal.Signals(sig).name})"] += 1
        if now() - last_report >= 15:
            last_report = now()
            elapsed = last_report - started
            print(f"soak: {elapsed:6.0f} s  writes {run.write_requests}  reads "
                  f"{len(run.reads) + len(run.flood_reads)}  ({run.write_requests / elapsed:.0f} writes/s)",
                  flush=True)
    run.stop = True
    await asyncio.wait(tasks, timeout=30)
    return now() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bridge", required=True, help="the mqtt-modbus-bridge binary")
    parser.add_argument("--writes", type=int, default=20_000, help="Modbus write requests to make")
    parser.add_argument("--seed", default=None, help="the fault schedule's seed (default: random)")
    parser.add_argument("--restarts", type=int, default=4, help="broker kills and restarts")
    parser.add_argument("--flood-rate", type=float, default=1000, help="flood messages/s between bursts")
    parser.add_argument("--abandon-rate", type=float, default=0.005, help="writes hung up mid-request")
    parser.add_argument("--max-seconds", type=float, default=0, help="end the load after this long (0: no limit)")
    parser.add_argument("--out", default=None, help="keep logs here (default: a temporary directory)")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = str(random.SystemRandom().randrange(1 << 32))
    directory = args.out or tempfile.mkdtemp(prefix="bridge-soak-")
    os.makedirs(directory, exist_ok=True)
    print(f"soak: seed {args.seed}, {args.writes} writes, {args.restarts} broker restarts, logs in {directory}",
          flush=True)

    broker_port, modbus_port, status_port = free_port(), free_port(), free_port()
    config = os.path.join(directory, "bridge.yaml")
    with open(config, "w") as file:
        file.write(bridge_yaml(broker_port, modbus_port))
    broker = Broker(directory, broker_port)
    processes = []
    failures = []
    try:
        broker.start()
        bridge_log = open(os.path.join(directory, "bridge.log"), "wb")
        bridge = subprocess.Popen([args.bridge, "run", "-c", config, "--status-listen", f"127.0.0.1:{status_port}",
                                   "--log-level", "warning"], stdout=bridge_log, stderr=bridge_log)
        processes.append(bridge)
        device_log = os.path.join(directory, "device.log")
        device = subprocess.Popen([sys.executable, os.path.join(HERE, "soak_device.py"), str(broker_port),
                                   args.seed, device_log], stdout=subprocess.PIPE,
                                  stderr=open(os.path.join(directory, "device.stderr"), "wb"))
        processes.append(device)
        if device.stdout.readline().strip() != b"ready":
            raise RuntimeError("the device did not come up (see device.stderr)")
        if not wait_ready(status_port, 60):
            raise RuntimeError("the bridge did not become ready (see bridge.log)")
        flood = subprocess.Popen([sys.executable, os.path.join(HERE, "soak_flood.py"), str(broker_port),
                                  args.seed, str(args.flood_rate)], stdout=subprocess.PIPE,
                                 stderr=open(os.path.join(directory, "flood.stderr"), "wb"))
        processes.append(flood)
        time.sleep(1.0)  # the device's retained states reach the bridge

        run = Run(args, modbus_port)
        samples = []
        duration = asyncio.run(drive(args, run, broker, bridge, status_port, samples))

        flood.send_signal(signal.SIGTERM)
        flood_line = flood.communicate(timeout=20)[0].decode().strip()
        device.send_signal(signal.SIGTERM)
        device.wait(timeout=20)
        alive = bridge.poll() is None
        health = http_get(status_port, "/health")[0]
        ready = http_get(status_port, "/ready")[0]
        metrics = metrics_of(http_get(status_port, "/metrics", timeout=10)[1])
        exit_code = None
        if alive:
            bridge.send_signal(signal.SIGTERM)
            try:
                exit_code = bridge.wait(timeout=30)
            except subprocess.TimeoutExpired:
                exit_code = "no exit within 30 s"
        failures = report(args, run, broker, device_log, samples, metrics, duration, flood_line,
                          alive, health, ready, exit_code)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        broker.stop()
    if not args.out and not failures:
        shutil.rmtree(directory, ignore_errors=True)
    sys.exit(1 if failures else 0)


# --- the checks -------------------------------------------------------------------------------


def parse_device_log(path):
    commands = {}  # correlation -> (point, value, t)
    received = {}  # (point, value) -> first time the device received its command
    positive = {}  # (point, value) -> first positive ack time
    refused = {}  # (point, value) -> (time, code)
    published = defaultdict(set)  # point -> values published on its state topic
    state_time = {}  # (point, value) -> first publish time
    bogus = Counter()
    connects = []
    with open(path) as file:
        for line in file:
            fields = line.split()
            kind = fields[0]
            if kind == "C":
                t, point, value = float(fields[1]), int(fields[2]), int(fields[3])
                received.setdefault((point, value), t)
                if fields[4] != "-":
                    commands[fields[4]] = (point, value, t)
            elif kind == "A":
                t, correlation, is_positive = float(fields[1]), fields[2], fields[3] == "1"
                key = commands.get(correlation)
                if key is None:
                    bogus["ack for an unknown correlation (device bug)"] += 1
                    continue
                if is_positive:
                    positive.setdefault(key[:2], t)
                else:
                    refused.setdefault(key[:2], (t, int(fields[4])))
            elif kind == "S":
                t, point, value = float(fields[1]), int(fields[2]), int(fields[3])
                published[point].add(value)
                state_time.setdefault((point, value), t)
            elif kind == "B":
                bogus[fields[2]] += 1
            elif kind == "K":
                connects.append(float(fields[1]))
    return received, positive, refused, published, state_time, bogus, connects


def report(args, run, broker, device_log, samples, metrics, duration, flood_line, alive, health, ready,
           exit_code):
    received, positive, refused, published, state_time, bogus, connects = parse_device_log(device_log)
    violations = defaultdict(list)
    outages = broker.outages

    def outage_near(t0, t1, grace):
        return any(killed <= t1 and up + grace >= t0 for killed, up in outages)

    # The device is away from a broker kill until it has connected again and subscribed (0.5 s).
    device_away = [(killed, min([t for t in connects if t > killed], default=float("inf")) + 0.5)
                   for killed, _ in outages]

    def device_away_during(t0, t1):
        return any(start <= t1 and t0 <= end for start, end in device_away)

    def broker_down_throughout(t0, t1):
        return any(killed + STALE_GRACE_S <= t0 and t1 <= up for killed, up in outages)

    # Writes
    outcome_counts = Counter()
    causes = Counter()
    late_margins = []  # (ack sent after the write's start, reply after it, fault) of in-time acks answered 0B
    attempted = defaultdict(set)
    for _, points, values, _ in run.abandoned:
        for point, value in zip(points, values):
            attempted[point].add(value)
    for points, values, t0, t1, outcome in run.writes:
        for point, value in zip(points, values):
            attempted[point].add(value)
        kind = "FC6" if len(points) == 1 else "FC16"
        if outcome == "ok":
            outcome_counts[f"{kind} ok"] += 1
            for point, value in zip(points, values):
                mode = common.mode_of(point)
                outcome_counts[f"point ok ({mode})"] += 1
                key = (point, value)
                if mode in ("mqtt5", "correlation_id"):
                    acked = positive.get(key)
                    if acked is None or acked > t1:
                        violations["false success: no positive ack from the device before the reply"].append(
                            (kind, point, value, t0, t1, acked, refused.get(key)))
                elif mode == "state_echo":
                    echoed = state_time.get(key)
                    if echoed is None or echoed > t1 or key not in received:
                        violations["false success: the device never echoed the value before the reply"].append(
                            (kind, point, value, t0, t1, echoed))
                elif key not in received and not device_away_during(t0, t1) \
                        and not outage_near(t0, t1 + BROKER_LOSS_WINDOW_S, 0):
                    # broker mode proves only that the broker took the command; it may lose it
                    # when killed soon after, or have no subscriber while the device reconnects.
                    violations["false success (broker mode): command lost although broker and device were up"
                               ].append((kind, point, value, t0, t1))
            continue
        if isinstance(outcome, str):
            outcome_counts[f"{kind} no reply ({outcome})"] += 1
            violations["write without a reply (timeout or connection lost)"].append((kind, points, t0, t1, outcome))
            continue
        outcome_counts[f"{kind} exception {outcome:02X}"] += 1
        keys = list(zip(points, values))
        if outcome == 0x0A:
            if outage_near(t0, t1, OUTAGE_GRACE_S):
                causes["0A: broker away"] += 1
            elif any(refused.get(key, (0, 0))[1] == 0x0A for key in keys):
                causes["0A: device refusal"] += 1
            else:
                violations["0A with no broker outage near the write"].append((kind, points, t0, t1))
        elif outcome == 0x0B:
            # One cause per write: a refusal naming 0B, else the first point not confirmed in time.
            cause = None
            if any(refused.get(key, (0, 0))[1] == 0x0B for key in keys):
                cause = "device refusal naming 0B"
            for point, value in keys if cause is None else []:
                key = (point, value)
                confirmed = (state_time if common.mode_of(point) == "state_echo" else positive).get(key)
                if key not in received:
                    cause = "command never reached the device"
                elif key in refused:
                    cause = "refused after the timeout"
                elif confirmed is None:
                    cause = "device never confirmed (drop / refuse / wrong correlation or value)"
                elif confirmed - t0 > common.ACK_TIMEOUT_S:
                    cause = "confirmation after the timeout"
                else:
                    continue
                break
            if cause is None:
                cause = "every point confirmed in time, answered 0B"
                sent = max((state_time if common.mode_of(p) == "state_echo" else positive)[(p, v)] for p, v in keys)
                late_margins.append((sent - t0, t1 - t0, [common.Decision(args.seed, p, v).fault for p, v in keys],
                                     t0, kind, keys))
                if outage_near(t0, t1, OUTAGE_GRACE_S):
                    cause += " (broker restart)"
            causes[f"0B: {cause}"] += 1
        else:
            expected = {refused[key][1] for key in keys if key in refused}
            if outcome in expected:
                causes[f"{outcome:02X}: device refusal"] += 1
            elif outcome == 6 and not any(key in received for key in keys):
                causes["06: bridge busy (max_writes_in_flight)"] += 1
            else:
                violations["exception code the device's refusals do not explain"].append(
                    (kind, keys, outcome, [refused.get(key) for key in keys]))
            for key in keys:
                if key in positive and positive[key] <= t1 and outcome not in expected:
                    violations["refusal answered although the device acknowledged"].append((kind, key, outcome))

    # Reads
    read_counts = Counter()
    allowed = {}
    for point in range(common.POINTS):
        values = set(published[point]) | {value for (p, value) in positive if p == point}
        if common.mode_of(point) == "broker":
            values |= attempted[point]
        if common.has_substitute(point):
            values.add(common.SUBSTITUTE)
        allowed[point] = values
    for first, count, t0, t1, outcome in run.reads:
        if isinstance(outcome, str):
            read_counts["FC3 no reply"] += 1
            violations["read without a reply"].append((first, count, t0, outcome))
            continue
        if isinstance(outcome, int):
            read_counts[f"FC3 exception {outcome:02X}"] += 1
            if outcome != 0x0B:
                violations["read answered with an exception other than 0B"].append((first, count, outcome))
            continue
        read_counts["FC3 values"] += 1
        down = broker_down_throughout(t0, t1)
        for offset, value in enumerate(outcome):
            point = first + offset
            if value not in allowed[point]:
                violations["read a value never published for its point"].append((point, value, t0))
            if down and not (common.has_substitute(point) and value == common.SUBSTITUTE):
                violations["live value served while the broker was down"].append((point, value, t0, t1))
            if value == common.SUBSTITUTE:
                read_counts["substitute values read"] += 1
    for first, count, t0, t1, outcome in run.flood_reads:
        if isinstance(outcome, str):
            read_counts["FC4 no reply"] += 1
            violations["read without a reply"].append((first, count, t0, outcome))
            continue
        if isinstance(outcome, int):
            read_counts[f"FC4 exception {outcome:02X}"] += 1
            if outcome != 0x0B:
                violations["read answered with an exception other than 0B"].append((first, count, outcome))
            continue
        read_counts["FC4 values"] += 1
        if broker_down_throughout(t0, t1):
            violations["live value served while the broker was down"].append((first, outcome, t0, t1))
        for offset, value in enumerate(outcome):
            topic = first + offset
            if not topic * common.FLOOD_SPAN <= value < (topic + 1) * common.FLOOD_SPAN:
                violations["read a value never published for its point"].append((f"f{topic}", value, t0))

    # Faults injected (what the device decided for every command it received)
    faults = Counter()
    for (point, value) in received:
        mode = common.mode_of(point)
        decision = common.Decision(args.seed, point, value)
        faults[f"{mode}: {decision.fault}"] += 1
    for kind, count in bogus.items():
        faults[f"wrong-correlation ack sent: {kind}"] += count

    # Resources
    flat = {}
    warm = [sample for sample in samples if sample[1] >= run.write_requests * 0.1]
    third = len(warm) // 3
    if third >= 3:
        first, last = warm[:third], warm[-third:]
        rss_first, rss_last = max(s[2] for s in first), max(s[2] for s in last)
        fd_first, fd_last = max(s[3] for s in first), max(s[3] for s in last)
        rss_limit = rss_first * 1.10 + 8 * 1024
        fd_limit = fd_first + 8
        flat = {"rss": (rss_first, rss_last, rss_limit), "fd": (fd_first, fd_last, fd_limit)}
        if rss_last > rss_limit:
            violations["RSS grew"].append(flat["rss"])
        if fd_last > fd_limit:
            violations["open file descriptors grew"].append(flat["fd"])
    else:
        violations["too few resource samples after warm-up"].append(len(warm))

    # Liveness, and that the run did what it claims
    if not alive:
        violations["bridge not alive at the end"].append(True)
    if health != 200:
        violations["bridge /health not 200 at the end"].append(health)
    if ready != 200:
        violations["bridge /ready not 200 at the end (did not reconnect?)"].append(ready)
    if exit_code != 0:
        violations["bridge did not exit cleanly (status 0) on SIGTERM"].append(exit_code)
    if len(outages) != args.restarts and not run.stopped_early:
        violations["broker restarts not all done"].append(len(outages))
    reconnects = metrics.get("bridge_mqtt_reconnects_total", -1)
    if reconnects < len(outages):
        violations["bridge reconnected fewer times than the broker restarted"].append(reconnects)
    if run.write_requests < args.writes and not run.stopped_early:
        violations["fewer writes than asked for"].append(run.write_requests)
    for mode in common.MODES:
        if outcome_counts[f"point ok ({mode})"] == 0:
            violations[f"no successful write in mode {mode}"].append(0)

    # Report
    print()
    print(f"soak: seed {args.seed}")
    if run.stopped_early:
        print(f"soak: the load was {run.stopped_early}, short of the {args.writes} writes asked for")
    print(f"soak: ran {duration:.1f} s; {run.write_requests} write requests "
          f"({run.write_requests / duration:.0f}/s), {len(run.writes)} answered, {len(run.abandoned)} hung up; "
          f"{len(run.reads)} FC3 reads, {len(run.flood_reads)} FC4 reads")
    print("soak: write outcomes:")
    for name, count in sorted(outcome_counts.items()):
        print(f"  {name:<50} {count}")
    print("soak: exception causes:")
    for name, count in sorted(causes.items()):
        print(f"  {name:<72} {count}")
    if late_margins:
        late_margins.sort()
        print(f"soak: {len(late_margins)} acks/echoes sent within the timeout but answered 0B; sent after the write "
              f"began: min {late_margins[0][0] * 1000:.0f} ms, median {late_margins[len(late_margins) // 2][0] * 1000:.0f}"
              f" ms, max {late_margins[-1][0] * 1000:.0f} ms; by fault: "
              + ", ".join(f"{k} {v}" for k, v in Counter("+".join(m[2]) for m in late_margins).most_common()))
    print("soak: reads:")
    for name, count in sorted(read_counts.items()):
        print(f"  {name:<50} {count}")
    print("soak: faults injected:")
    for name, count in sorted(faults.items()):
        print(f"  {name:<50} {count}")
    for name, count in sorted(run.counters.items()):
        print(f"  {name:<50} {count}")
    print(f"  device (re)connections                             {len(connects)}")
    print(f"  {flood_line}")
    print("soak: broker outages (s after start of the first): "
          + ", ".join(f"{up - killed:.2f} s" for killed, up in outages))
    print("soak: bridge metrics:")
    for name in sorted(metrics):
        if any(word in name for word in ("acks_total", "writes_total", "reconnects", "dropped", "connections_total",
                                         "decode_failures", "lost_connection")) and metrics[name]:
            print(f"  {name:<70} {metrics[name]:.0f}")
    if samples:
        print(f"soak: {len(samples)} RSS/FD samples (every 0.2 s); every {max(1, len(samples) // 12)}th:")
        for sample in samples[:: max(1, len(samples) // 12)]:
            print(f"  t={sample[0]:7.1f} s  writes={sample[1]:8d}  RSS={sample[2] / 1024:7.1f} MiB  fds={sample[3]}")
    if flat:
        rss, fd = flat["rss"], flat["fd"]
        print(f"soak: RSS max first third {rss[0] / 1024:.1f} MiB, last third {rss[1] / 1024:.1f} MiB "
              f"(limit {rss[2] / 1024:.1f}); FDs max first third {fd[0]}, last third {fd[1]} (limit {fd[2]})")
    print(f"soak: bridge alive at the end: {alive}; /health {health}; /ready {ready}; exit status on SIGTERM: "
          f"{exit_code}")
    checks = ["false success", "exception codes", "reads", "stale values", "replies", "liveness and exit",
              "resources flat", "reconnection", "coverage"]
    failed = sorted(violations)
    for name in failed:
        items = violations[name]
        print(f"soak: VIOLATION {name}: {len(items)}; first: {items[:5]}")
    print(f"soak: invariants: {len(failed)} violated ({', '.join(failed) if failed else 'none'}); "
          f"checked: {', '.join(checks)}")
    return failed


if __name__ == "__main__":
    main()
