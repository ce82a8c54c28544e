"""What the soak's processes agree on: the point layout, the value ranges, the fault decisions.

Every process of the soak (the driver with its masters, the simulated device, the telemetry
flood) imports this module, so the bridge configuration, the device and the checks cannot drift
apart. Fault decisions are a pure function of (seed, point, value): the same seed gives the same
fault for the same command in every run, whatever the timing (docs/soak.md).
"""
import random

POINTS = 100
FLOOD_POINTS = 200
FLOOD_SPAN = 300  # flood topic t publishes only values t*300 ... t*300+299
MASTERS = 16

MODES = ("mqtt5", "correlation_id", "state_echo", "broker")
ACK_TIMEOUT_S = 0.4

# Value ranges of the writable points (uint16 holding registers 0...99), disjoint so that every
# value names who produced it:
#   master m writes m + 16 k, k < MAX_WRITES_PER_MASTER_POINT     0 ... 63999
#   the device starts at INITIAL_BASE + point                       64000 ... 64099
#   the device's wrong echoes (state_echo) are WRONG_BASE + n       64100 ... 65499
#   the missing-value substitute                                    65535
MAX_WRITES_PER_MASTER_POINT = 4000
INITIAL_BASE = 64000
WRONG_BASE = 64100
WRONG_SPAN = 1400
SUBSTITUTE = 65535

# The exception codes the bridge passes on from a refusal (design.md §4.1); any other is 04.
BRIDGE_ANSWERS = {1, 2, 3, 4, 6, 10, 11}


def mode_of(point):
    return MODES[point % len(MODES)]


def has_substitute(point):
    """Points whose on_missing is a substitute value instead of exception 0B."""
    return point % 10 == 9


def uses_template(point):
    """correlation_id points that carry the id through a command template at `cid`."""
    return mode_of(point) == "correlation_id" and point % 8 == 5


def command_topic(point):
    return f"soak/p/{point}/set"


def state_topic(point):
    return f"soak/p/{point}/state"


def ack_topic(point):
    return f"soak/ack/{point}"


def flood_topic(index):
    return f"soak/flood/{index}"


def mapped_code(code):
    """The exception a refusal naming `code` must be answered with."""
    return code if code in BRIDGE_ANSWERS else 4


# Fault kinds, with their weights per mode. "ok" is a prompt, positive acknowledgement.
FAULTS = {
    "mqtt5": [("ok", 70), ("delay", 6), ("drop", 3), ("duplicate", 5), ("reorder", 5),
              ("refuse", 6), ("wrong_correlation", 5)],
    "correlation_id": [("ok", 70), ("delay", 6), ("drop", 3), ("duplicate", 5), ("reorder", 5),
                       ("refuse", 6), ("wrong_correlation", 5)],
    # state_echo has no refusal message: "refuse" echoes the old value, "wrong_correlation"
    # echoes a value that is not the written one.
    "state_echo": [("ok", 72), ("delay", 6), ("drop", 3), ("duplicate", 5), ("reorder", 5),
                   ("refuse", 5), ("wrong_correlation", 4)],
    # The bridge does not wait for the device in broker mode; the device only applies or not.
    "broker": [("ok", 90), ("drop", 10)],
}

REFUSAL_FORMS = {
    "mqtt5": ["ok_false", "error_field", "code_field", "user_error", "user_code", "plain_text"],
    "correlation_id": ["ok_false", "error_field", "code_field"],
}
REFUSAL_CODES = [1, 2, 3, 4, 6, 10, 11, 5, 8, 99, 255]


class Decision:
    """What the device does with one command: the fault and its parameters."""

    __slots__ = ("fault", "delay", "second_delay", "form", "code", "positive_form", "wrong_kind",
                 "then_correct", "applies")

    def __init__(self, seed, point, value):
        rng = random.Random(f"{seed}:{point}:{value}")
        mode = mode_of(point)
        kinds, weights = zip(*FAULTS[mode])
        self.fault = rng.choices(kinds, weights)[0]
        # delay: mostly within the ack timeout, a quarter after it (a late ack).
        self.delay = rng.uniform(0.005, ACK_TIMEOUT_S * 0.6) if rng.random() < 0.75 \
            else rng.uniform(ACK_TIMEOUT_S * 1.05, ACK_TIMEOUT_S * 2)
        self.second_delay = rng.uniform(0.0, 0.05)
        forms = REFUSAL_FORMS.get(mode, ["ok_false"])
        self.form = rng.choice(forms)
        self.code = rng.choice(REFUSAL_CODES)
        self.positive_form = rng.choice(["empty", "ok_true", "plain_ok", "json_empty"])
        self.wrong_kind = rng.choice(["garbage", "mutated", "missing", "stale", "malformed"])
        self.then_correct = rng.random() < 0.5
        self.applies = rng.random() < 0.5  # a dropped command may still have been applied

    def expected_refusal_code(self):
        """The code a refusal of this form must be answered with."""
        if self.form in ("code_field", "user_code"):
            return mapped_code(self.code)
        return 4
