#!/usr/bin/env python3
"""Connection-abuse check of the Modbus listener, run against the real bridge program.

Starts a mosquitto broker and `mqtt-modbus-bridge run` on free loopback ports, publishes the
values of ten holding registers, and measures well-behaved masters (each its own process, one
request at a time, every reply checked byte for byte) first alone, then while each kind of abuse
runs beside them:

  connect-flood  connection attempts far above `max_connections`, as fast as they go
  slowloris      200 clients sending one byte per second
  non-reader     clients that pipeline requests and never read a reply
  half-open      clients whose process is stopped (SIGSTOP) with requests and replies in flight

A scenario passes when every reply the masters got was right, no master lost its connection,
and their p99 stayed within max(2 x baseline p99, baseline p99 + allowance) (the allowance,
2 ms by default, keeps a loaded 2-core CI machine from failing on scheduler noise). The
non-reader scenario also bounds the bridge's resident memory, and the half-open scenario checks
that the idle timeout closes the stopped clients' connections. See docs/testing.md.

Only the standard library; only 127.0.0.1. Roles (`--role master` and the abuse roles) run as
separate processes so that no GIL is shared with the measuring master.
"""

import argparse
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

UNIT = 1
REGISTERS = 10
VALUES = [1000 + 7 * i for i in range(REGISTERS)]


# ---------------------------------------------------------------------------------------------
# Modbus frames


def read_request(transaction, address=0, count=REGISTERS):
    return struct.pack(">HHHBBHH", transaction, 0, 6, UNIT, 0x03, address, count)


def expected_reply(transaction, address=0, count=REGISTERS):
    body = bytes([0x03, 2 * count]) + b"".join(struct.pack(">H", v) for v in VALUES[address : address + count])
    return struct.pack(">HHHB", transaction, 0, len(body) + 1, UNIT) + body


def receive_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed by the server")
        data += chunk
    return data


def receive_frame(sock):
    header = receive_exactly(sock, 7)
    length = struct.unpack(">H", header[4:6])[0]
    return header + receive_exactly(sock, length - 1)


def connect(port, timeout=5.0):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


# ---------------------------------------------------------------------------------------------
# Roles (each runs in its own process)


def role_master(args):
    """One request at a time, paced; every reply checked. Prints a JSON summary."""
    deadline = time.monotonic() + args.seconds
    latencies = []
    errors = []
    disconnects = 0
    transaction = random.randrange(0, 65536)
    sock = connect(args.port, timeout=2.0)
    # Connected before the abuse starts, as a plant's masters are; measuring starts on "go".
    # Until then it polls twice a second (its connection must not look idle), checked but
    # not measured.
    # A master's first request follows its connection at once (until then, at the limit, the
    # connection is among the first to make room: docs/design.md §3.10).
    first = True
    while first or not select.select([sys.stdin], [], [], 0.5)[0]:
        transaction = (transaction + 1) & 0xFFFF
        try:
            sock.sendall(read_request(transaction))
            if receive_frame(sock) != expected_reply(transaction):
                errors.append(f"transaction {transaction}: wrong reply before measuring")
        except (OSError, ConnectionError) as error:
            print(json.dumps({"latencies_ns": [], "errors": [f"before measuring: {error!r}"], "error_count": 1, "disconnects": 1}))
            return
        if first:
            print("connected", flush=True)
            first = False
    sys.stdin.readline()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        transaction = (transaction + 1) & 0xFFFF
        address = transaction % REGISTERS
        count = REGISTERS - address
        try:
            start = time.perf_counter_ns()
            sock.sendall(read_request(transaction, address, count))
            reply = receive_frame(sock)
            latencies.append(time.perf_counter_ns() - start)
            if reply != expected_reply(transaction, address, count):
                errors.append(f"transaction {transaction}: got {reply.hex()}")
        except (OSError, ConnectionError) as error:
            disconnects += 1
            errors.append(f"transaction {transaction}: {error!r}")
            try:
                sock.close()
                sock = connect(args.port, timeout=2.0)
            except OSError as again:
                errors.append(f"reconnect: {again!r}")
                time.sleep(0.1)
        time.sleep(args.interval)
    sock.close()
    latencies.sort()
    print(json.dumps({"latencies_ns": latencies, "errors": errors[:20], "error_count": len(errors), "disconnects": disconnects}))


def role_connect_flood(args):
    """Opens connections at `rate` a second (0: as fast as it can), holding the newest `hold`
    and closing the oldest; none of them sends anything."""
    held = []
    attempts = 0
    started = time.monotonic()
    while True:
        if args.rate > 0:
            ahead = attempts / args.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", args.port))
            held.append(sock)
            attempts += 1
        except OSError:
            time.sleep(0.01)
        while len(held) > args.hold:
            held.pop(0).close()


def role_slowloris(args):
    """`clients` connections, each sending one byte of a valid request per second; reconnects."""
    frame = read_request(1)
    clients = []  # [socket, position]

    def open_client():
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(1.0)
            sock.connect(("127.0.0.1", args.port))
            sock.setblocking(False)
            return [sock, 0]
        except OSError:
            return None

    for _ in range(args.clients):
        client = open_client()
        if client:
            clients.append(client)
    while True:
        tick = time.monotonic()
        for index, client in enumerate(clients):
            sock, position = client
            try:
                try:
                    while sock.recv(4096):  # replies and EOF: drained, never waited for
                        pass
                    raise ConnectionError("closed")
                except BlockingIOError:
                    pass
                sock.send(frame[position : position + 1])
                client[1] = (position + 1) % len(frame)
            except (OSError, ConnectionError):
                sock.close()
                clients[index] = open_client() or [socket.socket(), 0]
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))


def role_non_reader(args):
    """`clients` connections pipelining 125-register reads and never reading; reconnects."""
    batch = b"".join(read_request(i, 0, REGISTERS) for i in range(200))

    def flood():
        while True:
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect(("127.0.0.1", args.port))
                while True:
                    sock.sendall(batch)
            except OSError:
                time.sleep(0.05)

    for _ in range(args.clients):
        threading.Thread(target=flood, daemon=True).start()
    while True:
        time.sleep(1)


def role_half_open(args):
    """`clients` connections with requests in flight, then waits to be stopped (SIGSTOP)."""
    held = []
    for index in range(args.clients):
        sock = connect(args.port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        if index % 2 == 0:
            # Replies the server cannot deliver: its output to this socket blocks.
            sock.sendall(b"".join(read_request(i) for i in range(2000)))
        else:
            # Half a request: the server holds a partial frame.
            sock.sendall(read_request(1)[:5])
        held.append(sock)
    print("ready", flush=True)
    while True:
        time.sleep(1)


# ---------------------------------------------------------------------------------------------
# The harness


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(what, condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"abuse: timed out waiting for {what}")


class Harness:
    def __init__(self, bridge, workdir, policy, max_connections, idle_timeout):
        self.processes = []
        try:
            self._start(bridge, workdir, policy, max_connections, idle_timeout)
        except BaseException:
            # Not yet inside the caller's try: what was started must not outlive the run.
            self.close()
            raise

    def _start(self, bridge, workdir, policy, max_connections, idle_timeout):
        self.workdir = workdir
        self.broker_port = free_port()
        self.modbus_port = free_port()
        self.status_port = free_port()
        conf = os.path.join(workdir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {self.broker_port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
            f.write("persistence false\nlog_dest stderr\n")
            if os.getuid() == 0:
                f.write("user root\n")
        self.broker_log = open(os.path.join(workdir, "mosquitto.log"), "w")
        self.broker = self.spawn(["mosquitto", "-c", conf], stderr=self.broker_log)
        wait_until("mosquitto", lambda: socket.create_connection(("127.0.0.1", self.broker_port), 1).close() or True, 10)
        points = "\n".join(
            f"      - {{ name: r{i}, area: holding_register, address: {i}, type: uint16, state_topic: abuse/r{i} }}"
            for i in range(REGISTERS)
        )
        config = os.path.join(workdir, f"bridge-{policy}.yaml")
        with open(config, "w") as f:
            f.write(
                f"broker:\n  host: 127.0.0.1\n  port: {self.broker_port}\n  client_id: abuse-{os.getpid()}-{policy}\n"
                f"modbus:\n  host: 127.0.0.1\n  port: {self.modbus_port}\n  max_connections: {max_connections}\n"
                f"  connection_limit_policy: {policy}\n  idle_timeout: {idle_timeout}\n  shutdown_grace_period: 1s\n"
                f"units:\n  - id: {UNIT}\n    points:\n{points}\n"
            )
        for i, value in enumerate(VALUES):
            subprocess.run(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker_port), "-r", "-q", "1", "-t", f"abuse/r{i}", "-m", str(value)],
                check=True,
                timeout=10,
            )
        self.bridge_log_path = os.path.join(workdir, f"bridge-{policy}.log")
        self.bridge_log = open(self.bridge_log_path, "w")
        self.bridge = self.spawn(
            [bridge, "run", "--config", config, "--status-listen", f"127.0.0.1:{self.status_port}", "--log-level", "info"],
            stderr=self.bridge_log,
        )

        def all_values_served():
            with connect(self.modbus_port, timeout=1) as sock:
                sock.sendall(read_request(7))
                return receive_frame(sock) == expected_reply(7)

        wait_until("the bridge to serve every value", all_values_served, 60)
        wait_until("the bridge to count no connection", lambda: self.connections() == 0, 10)

    def spawn(self, command, **kwargs):
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process = subprocess.Popen(command, **kwargs)
        self.processes.append(process)
        return process

    def role(self, name, *extra, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, nice=True):
        """Starts a role. Abusers run at nice 19: on a real network the attacker's CPU is on
        another machine, and this measures the server, not how two cores are shared with it."""
        command = [sys.executable, os.path.abspath(__file__), "--role", name, "--port", str(self.modbus_port), *extra]
        return self.spawn((["nice", "-n", "19"] if nice else []) + command, stdout=stdout, stdin=stdin)

    def connections(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/health", timeout=2) as response:
            return json.load(response)["modbus_connections"]

    def rss_kib(self):
        with open(f"/proc/{self.bridge.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def masters(self, count, seconds, interval, abuse=None, warmup=1.0):
        """Connects `count` masters, then starts `abuse` (a function returning the processes
        it started) and, after `warmup` seconds, measures the masters for `seconds`. Returns
        their merged results and the abuse processes, still running."""
        runs = [
            self.role("master", "--seconds", str(seconds), "--interval", str(interval), stdout=subprocess.PIPE, stdin=subprocess.PIPE, nice=False)
            for _ in range(count)
        ]
        for run in runs:
            if run.stdout.readline().strip() != b"connected":
                raise SystemExit("abuse: a master could not connect")
        started = abuse() if abuse else []
        if abuse:
            time.sleep(warmup)
        for run in runs:
            try:
                run.stdin.write(b"go\n")
                run.stdin.flush()
            except BrokenPipeError:
                pass  # it lost its connection before measuring: reported below
        merged = {"latencies_ns": [], "errors": [], "error_count": 0, "disconnects": 0}
        for run in runs:
            out, _ = run.communicate(timeout=seconds + 60)
            if run.returncode != 0:
                merged["errors"].append(f"master exited with {run.returncode}")
                merged["error_count"] += 1
                continue
            result = json.loads(out)
            for key in ("error_count", "disconnects"):
                merged[key] += result[key]
            merged["errors"] += result["errors"]
            merged["latencies_ns"] += result["latencies_ns"]
        merged["latencies_ns"].sort()
        if self.bridge.poll() is not None:
            raise SystemExit(f"abuse: the bridge exited ({self.bridge.returncode}); log: {self.bridge_log_path}")
        return merged, started

    def stop(self, process):
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
        process.wait(timeout=10)

    def close(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.kill(process.pid, signal.SIGCONT)
                except OSError:
                    pass
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def closed_by_server(sock, timeout):
    """Whether the server closes `sock` (EOF or reset) within `timeout` seconds; replies are read and dropped."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except (socket.timeout, TimeoutError):
        return False
    return False


def served(sock, transaction):
    try:
        sock.settimeout(5)
        sock.sendall(read_request(transaction))
        return receive_frame(sock) == expected_reply(transaction)
    except (OSError, ConnectionError):
        return False


def check_policies(bridge, workdir):
    """The documented meaning of max_connections, connection_limit_policy and idle_timeout
    (examples/CONFIGURATION.md, docs/design.md §3.10), checked on the bridge program. Returns
    the failures."""
    failures = []

    def expect(condition, what):
        print(f"abuse: policy  {'ok  ' if condition else 'FAIL'} {what}", flush=True)
        if not condition:
            failures.append(f"policy: {what}")

    reject = Harness(bridge, workdir, "reject_new", 2, "1s")
    try:
        a, b = connect(reject.modbus_port), connect(reject.modbus_port)
        expect(served(a, 1) and served(b, 2), "reject_new: two connections served at max_connections 2")
        c = connect(reject.modbus_port)
        expect(closed_by_server(c, 3), "reject_new: the third is closed on arrival")
        expect(served(a, 3) and served(b, 4), "reject_new: the two others are still served")
        # idle_timeout 1s: a connection that polls every 300 ms stays; a silent one is closed.
        started = time.monotonic()
        for transaction in range(5, 12):
            time.sleep(0.3)
            served(a, transaction)
        expect(served(a, 12), "idle_timeout: a connection polling every 300 ms is kept past the 1 s timeout")
        elapsed_b = time.monotonic() - started
        expect(elapsed_b > 1.0 and closed_by_server(b, 0.5), "idle_timeout: the silent one was closed after 1 s")
        a.close()
        wait_until("the bridge to see both connections gone", lambda: reject.connections() == 0, 10)
        d = connect(reject.modbus_port)
        expect(served(d, 13), "reject_new: a slot that frees is taken by the next connection")
        silent = connect(reject.modbus_port)
        started = time.monotonic()
        closed = closed_by_server(silent, 5)
        elapsed = time.monotonic() - started
        expect(closed and 0.8 <= elapsed <= 3.0, f"idle_timeout: a connection that never sends is closed after about 1 s ({elapsed:.2f} s)")
    finally:
        reject.close()

    oldest = Harness(bridge, workdir, "close_oldest_idle", 2, "none")
    try:
        a = connect(oldest.modbus_port)
        expect(served(a, 1), "close_oldest_idle: the first connection is served")
        silent = connect(oldest.modbus_port)
        time.sleep(0.2)
        c = connect(oldest.modbus_port)
        expect(closed_by_server(silent, 3), "close_oldest_idle: at the limit, the connection that never sent a request makes room")
        expect(served(c, 2) and served(a, 3), "close_oldest_idle: the newcomer and the polling master are served")
        time.sleep(0.2)
        served(c, 4)
        d = connect(oldest.modbus_port)
        expect(closed_by_server(a, 3), "close_oldest_idle: then the connection whose last request is oldest makes room")
        expect(served(d, 5) and served(c, 6), "close_oldest_idle: the others are served")
    finally:
        oldest.close()
    return failures


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float("inf")
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role")
    parser.add_argument("--port", type=int)
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per scenario")
    parser.add_argument("--interval", type=float, default=0.002, help="master's pause between requests, seconds")
    parser.add_argument("--masters", type=int, default=2, help="well-behaved masters measured at once")
    parser.add_argument("--allowance-ms", type=float, default=2.0, help="noise floor added to the baseline p99")
    parser.add_argument("--bridge", help="the mqtt-modbus-bridge executable")
    parser.add_argument("--only", action="append", help="run only these scenarios")
    parser.add_argument("--hold", type=int, default=64)
    parser.add_argument("--rate", type=float, default=0, help="connect-flood role: attempts per second, 0 unbounded")
    parser.add_argument("--flood-rate", type=float, default=500, help="connection attempts per second of the flood, 0 unbounded")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    roles = {
        "master": role_master,
        "connect-flood": role_connect_flood,
        "slowloris": role_slowloris,
        "non-reader": role_non_reader,
        "half-open": role_half_open,
    }
    if args.role:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        roles[args.role](args)
        return

    max_connections = 32
    idle_timeout_s = 3
    workdir = tempfile.mkdtemp(prefix="modbus-abuse-")
    failures = []
    if not args.only or "policy" in args.only:
        failures += check_policies(args.bridge, workdir)
    scenarios = ["connect-flood", "slowloris", "non-reader", "half-open"]
    wanted = [name for name in (args.only or scenarios) if name in scenarios]
    if not wanted:
        finish(failures, [], workdir)
        return
    harness = Harness(args.bridge, workdir, "close_oldest_idle", max_connections, f"{idle_timeout_s}s")
    report = []

    def measure(name, limit_ns=None, abuse=None, warmup=1.0):
        """Measures the masters while `abuse` runs; stops what it started. Returns the p99."""
        result, started = harness.masters(args.masters, args.seconds, args.interval, abuse, warmup)
        for process in started:
            harness.stop(process)
        lat = result["latencies_ns"]
        p50, p99, top = percentile(lat, 0.5), percentile(lat, 0.99), (lat[-1] if lat else float("inf"))
        line = f"{name:<14} requests {len(lat):>6}  p50 {p50 / 1e6:7.3f} ms  p99 {p99 / 1e6:7.3f} ms  max {top / 1e6:8.3f} ms"
        if limit_ns is not None:
            line += f"  (limit {limit_ns / 1e6:.3f} ms)"
        print("abuse: " + line, flush=True)
        report.append(line)
        if result["error_count"] or result["disconnects"]:
            failures.append(f"{name}: {result['error_count']} errors, {result['disconnects']} disconnects: {result['errors'][:5]}")
        if len(lat) < 100:
            failures.append(f"{name}: only {len(lat)} replies")
        if limit_ns is not None and p99 > limit_ns:
            failures.append(f"{name}: p99 {p99 / 1e6:.3f} ms above the limit {limit_ns / 1e6:.3f} ms")
        return p99

    def note(line):
        print("abuse: " + line, flush=True)
        report.append(line)

    try:
        baseline = measure("baseline")
        limit = max(2 * baseline, baseline + args.allowance_ms * 1e6)

        if "connect-flood" in wanted:

            def flood():
                # Two processes, half the rate each.
                rate = str(args.flood_rate / 2)
                return [harness.role("connect-flood", "--hold", str(args.hold), "--rate", rate) for _ in range(2)]

            measure("connect-flood", limit, flood)

        if "slowloris" in wanted:
            measure("slowloris", limit, lambda: [harness.role("slowloris", "--clients", "200")], warmup=2.0)

        if "non-reader" in wanted:
            rss_before = harness.rss_kib()
            samples = []
            sampler_stop = threading.Event()

            def readers():
                def sample():
                    while not sampler_stop.wait(0.2):
                        samples.append(harness.rss_kib())

                threading.Thread(target=sample, daemon=True).start()
                return [harness.role("non-reader", "--clients", str(args.clients))]

            measure("non-reader", limit, readers)
            sampler_stop.set()
            peak = max(samples or [rss_before])
            half = samples[len(samples) // 2] if samples else rss_before
            note(f"non-reader     bridge RSS {rss_before / 1024:.1f} MiB before, peak {peak / 1024:.1f} MiB, {half / 1024:.1f} MiB half-way")
            if peak - rss_before > 64 * 1024:
                failures.append(f"non-reader: the bridge grew by {(peak - rss_before) / 1024:.1f} MiB")
            if peak - half > 16 * 1024:
                failures.append(f"non-reader: the bridge kept growing ({half / 1024:.1f} -> {peak / 1024:.1f} MiB)")

        if "half-open" in wanted:
            closed_at = []
            stopped_at = []

            def half_open():
                stopped = harness.role("half-open", "--clients", "16", stdout=subprocess.PIPE)
                if stopped.stdout.readline().strip() != b"ready":
                    failures.append("half-open: the clients did not connect")
                wait_until("16 half-open connections", lambda: harness.connections() >= 16 + args.masters, 10)
                os.kill(stopped.pid, signal.SIGSTOP)
                stopped_at.append(time.monotonic())

                # Watch for the idle timeout to close the stopped clients' connections: only
                # the masters' own are left then.
                def watch():
                    while time.monotonic() - stopped_at[0] < idle_timeout_s + 10:
                        try:
                            if harness.connections() <= args.masters:
                                closed_at.append(time.monotonic() - stopped_at[0])
                                return
                        except OSError:
                            pass
                        time.sleep(0.1)

                threading.Thread(target=watch, daemon=True).start()
                return [stopped]

            measure("half-open", limit, half_open, warmup=0.2)
            if not stopped_at:
                pass
            elif not closed_at and time.monotonic() - stopped_at[0] < idle_timeout_s + 10:
                wait_until("the idle timeout to close the stopped clients", lambda: bool(closed_at), idle_timeout_s + 10)
            if closed_at:
                note(f"half-open      the stopped clients' connections closed {closed_at[0]:.1f} s after SIGSTOP (idle timeout {idle_timeout_s} s)")
                if closed_at[0] > idle_timeout_s + 2:
                    failures.append(f"half-open: closed only after {closed_at[0]:.1f} s")
            else:
                failures.append("half-open: the idle timeout did not close the stopped clients' connections")
    finally:
        harness.close()

    finish(failures, report, workdir)


def finish(failures, report, workdir):
    if failures:
        print("abuse: FAILED", file=sys.stderr)
        for failure in failures:
            print("abuse:   " + failure, file=sys.stderr)
        print(f"abuse: logs in {workdir}", file=sys.stderr)
        sys.exit(1)
    print("abuse: every scenario within the limit")


if __name__ == "__main__":
    main()
