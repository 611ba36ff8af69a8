#!/usr/bin/python3
"""matid-plc with a PLC simulated by python3-pymodbus (Debian's), a real
matid-server and a real mosquitto: 200 triggers at a fixed rate each get
their result with the matching sequence and OK/NG by the trigger's recipe;
a trigger while busy is counted and answered busy; a killed server gives
an error code, then results again once it is back; a PLC that never
acknowledges still gets every result; writes to the box's registers and
peers outside the allow-list are refused. Every result also reaches MQTT
with its trigger's part id."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from pymodbus.client import ModbusTcpClient

from tests.edge_harness import Collector, Mosquitto, Process, free_port, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD, "test_model"))

# The register map, version 1 (client/plc/register_map.h, docs/plc.md).
MAP_VERSION, STATUS, HEARTBEAT, RESULT_SEQ, RESULT_STATE, CLASS_INDEX, SCORE, NEEDS_INSPECTION, \
    ERROR_CODE, MODEL_VERSION, BUSY_TRIGGERS, BUSY_SEQ, TRIGGERS_ACCEPTED = range(13)
TRIGGER, RECIPE, PART_HIGH, PART_LOW, ACK = range(20, 25)
READY, BUSY = 1, 2
NONE, OK, NG, ERROR = 0, 1, 2, 3
SERVER_UNAVAILABLE, TIMEOUT = 1, 2
# The test model is untrained: its top scores are about 0.12, mostly for
# Shirt and Trouser. A threshold under them leaves OK/NG to the recipes,
# and each recipe accepts one of those two, so a run has both.
THRESHOLD = 0.1
RECIPES = {0: {"Ankle boot", "Sneaker", "Trouser"}, 2: {"Shirt", "T-shirt/top", "Pullover"}}


def model_labels() -> list[str]:
    with open(os.path.join(MODEL, "metadata.json")) as f:
        return json.load(f)["labels"]


class Plc:
    """The PLC's side of the handshake, as ladder logic would do it."""

    def __init__(self, port: int) -> None:
        self.client = ModbusTcpClient("127.0.0.1", port=port, timeout=5)
        if not self.client.connect():
            raise AssertionError(f"no Modbus connection to port {port}")

    def read(self) -> list[int]:
        response = self.client.read_holding_registers(0, 25, slave=1)
        if response.isError():
            raise AssertionError(f"read refused: {response}")
        return response.registers

    def trigger(self, seq: int, recipe: int = 0, part_id: int = 0) -> None:
        response = self.client.write_registers(
            TRIGGER, [seq, recipe, part_id >> 16, part_id & 0xFFFF], slave=1)
        if response.isError():
            raise AssertionError(f"trigger refused: {response}")

    def ack(self, seq: int) -> None:
        self.client.write_register(ACK, seq, slave=1)

    def result(self, seq: int, timeout: float = 10) -> list[int]:
        """The registers once the result of trigger `seq` is there."""
        def answered():
            registers = self.read()
            return registers if registers[RESULT_SEQ] == seq and registers[STATUS] == READY else None
        return wait_for(answered, timeout, f"the result of trigger {seq}", interval=0.002)

    def close(self) -> None:
        self.client.close()


class PlcTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="matid-plc-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.images = os.path.join(self.tmp, "images")
        subprocess.run([sys.executable, "-m", "model_export.fashion_mnist", "--split", "test",
                        "--count", "60", "--out", self.images],
                       cwd=ROOT, check=True, capture_output=True)
        with open(os.path.join(self.tmp, "recipes.json"), "w") as f:
            json.dump({"recipes": [{"id": 2, "name": "tops", "accepted": sorted(RECIPES[2])}]}, f)
        self.broker = Mosquitto(self.tmp, "broker")
        self.broker.start()
        self.addCleanup(self.broker.stop)
        self.server_port = free_port()
        self.server = self.start_server()

    def start_server(self) -> Process:
        server = Process([os.path.join(BUILD, "bin", "matid-server"), f"--model_dir={MODEL}",
                          "--host=127.0.0.1", f"--port={self.server_port}", "--metrics_port=-1",
                          "--threads=1"],
                         r"serving grpc_port=(\d+)", os.path.join(self.tmp, "server.log"))
        self.addCleanup(server.stop)
        return server

    def start_plc(self, *extra: str, server: str = "") -> tuple[Process, int]:
        port = free_port()
        station = Process([os.path.join(BUILD, "bin", "matid-plc"), f"--source={self.images}",
                           "--loop", f"--server={server or f'127.0.0.1:{self.server_port}'}",
                           f"--modbus_port={port}", f"--mqtt_port={self.broker.port}",
                           "--accepted_classes=" + ",".join(sorted(RECIPES[0])),
                           f"--recipes={os.path.join(self.tmp, 'recipes.json')}",
                           f"--inspection_threshold={THRESHOLD}", "--metrics_port=-1", *extra],
                          r"matid-plc: modbus://", os.path.join(self.tmp, f"plc-{port}.log"))
        self.addCleanup(station.stop)
        return station, port

    def connect(self, port: int) -> Plc:
        plc = Plc(port)
        self.addCleanup(plc.close)
        return plc

    def test_every_trigger_gets_its_result_by_recipe_then_errors_while_the_server_is_down(
            self) -> None:
        collector = Collector(self.broker.port, client_id="plc-results")
        self.addCleanup(collector.close)
        _, port = self.start_plc("--station_id=station-7")
        plc = self.connect(port)
        labels = model_labels()
        self.assertEqual(plc.read()[MAP_VERSION], 1)
        wait_for(lambda: plc.read()[STATUS] == READY, 10, "the box to be ready")

        expected = {}  # trigger seq -> (part id, recipe, registers)
        period = 1 / 20  # triggers at 20 Hz, as a line's PLC would
        next_trigger = time.monotonic()
        for seq in range(1, 201):
            time.sleep(max(0.0, next_trigger - time.monotonic()))
            next_trigger += period
            recipe, part_id = (0, 1000000 + seq) if seq % 2 else (2, 70000 + seq)
            plc.trigger(seq, recipe, part_id)
            registers = plc.result(seq)
            plc.ack(seq)
            expected[seq] = (part_id, recipe, registers)
            label = labels[registers[CLASS_INDEX]]
            confident = registers[SCORE] >= THRESHOLD * 1000
            self.assertEqual(registers[NEEDS_INSPECTION], 0 if confident else 1)
            self.assertEqual(registers[RESULT_STATE],
                             OK if label in RECIPES[recipe] and confident else NG,
                             f"trigger {seq}: {label} score {registers[SCORE]} recipe {recipe}")
            self.assertEqual(registers[ERROR_CODE], 0)
        states = {registers[RESULT_STATE] for _, _, registers in expected.values()}
        self.assertEqual(states, {OK, NG}, "the run had both OK and NG parts")
        self.assertEqual(plc.read()[TRIGGERS_ACCEPTED], 200)
        self.assertEqual(plc.read()[BUSY_TRIGGERS], 0)

        # Every result reached MQTT with its trigger's part id and recipe.
        wait_for(lambda: len(collector.seen()) >= 200, 30, "200 results on MQTT")
        with collector.lock:
            messages = {m["trigger"]["seq"]: m for m in collector.payloads}
        self.assertEqual(sorted(messages), list(range(1, 201)))
        for seq, (part_id, recipe, registers) in expected.items():
            message = messages[seq]
            self.assertEqual(message["camera_id"], "station-7")
            self.assertEqual(message["trigger"], {"part_id": part_id, "seq": seq, "recipe": recipe})
            self.assertEqual(message["top_label"], labels[registers[CLASS_INDEX]])
            self.assertEqual(round(message["top_score"] * 1000), registers[SCORE])

        # The server is killed: the next trigger gets an error code, not a stale OK.
        self.server.stop(9)
        plc.trigger(201)
        registers = plc.result(201)
        self.assertEqual(registers[RESULT_STATE], ERROR)
        self.assertEqual(registers[ERROR_CODE], SERVER_UNAVAILABLE)
        self.assertEqual(registers[CLASS_INDEX], 0xFFFF)

        # Back: triggers get classified results again.
        self.server = self.start_server()
        seq = 202

        def classified_again():
            nonlocal seq
            seq += 1
            plc.trigger(seq)
            return plc.result(seq)[RESULT_STATE] in (OK, NG)
        wait_for(classified_again, 30, "results after the server's restart", interval=0.2)

    def test_a_trigger_while_busy_is_counted_and_answered_busy(self) -> None:
        # A "server" that accepts connections and never answers: every
        # inspection runs to its deadline.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        _, port = self.start_plc("--inspection_timeout_ms=1500",
                                 server=f"127.0.0.1:{silent.getsockname()[1]}")
        plc = self.connect(port)
        wait_for(lambda: plc.read()[STATUS] == READY, 10, "the box to be ready")
        plc.trigger(1)
        plc.trigger(2)  # well inside the first inspection's 1.5 s
        registers = plc.read()
        self.assertEqual(registers[STATUS], BUSY)
        self.assertEqual(registers[BUSY_TRIGGERS], 1)
        self.assertEqual(registers[BUSY_SEQ], 2)
        self.assertEqual(registers[RESULT_STATE], NONE, "no result before the inspection ends")
        registers = plc.result(1)
        self.assertEqual(registers[RESULT_STATE], ERROR)
        self.assertEqual(registers[ERROR_CODE], TIMEOUT)
        self.assertEqual(registers[TRIGGERS_ACCEPTED], 1)

    def test_a_plc_that_never_acknowledges_still_gets_every_result(self) -> None:
        _, port = self.start_plc()
        plc = self.connect(port)
        wait_for(lambda: plc.read()[STATUS] == READY, 10, "the box to be ready")
        for seq in range(1, 21):
            plc.trigger(seq)
            self.assertIn(plc.result(seq)[RESULT_STATE], (OK, NG))
        # The last result stays while the heartbeat goes on.
        first = plc.read()
        wait_for(lambda: plc.read()[HEARTBEAT] != first[HEARTBEAT], 5, "a heartbeat")
        later = plc.read()
        self.assertEqual(later[RESULT_SEQ:ERROR_CODE + 1], first[RESULT_SEQ:ERROR_CODE + 1])
        plc.ack(20)
        self.assertEqual(plc.read()[RESULT_STATE], NONE)

    def test_writes_to_the_box_registers_and_strangers_are_refused(self) -> None:
        _, port = self.start_plc()
        plc = self.connect(port)
        refused = plc.client.write_register(RESULT_STATE, OK, slave=1)
        self.assertTrue(refused.isError())
        self.assertEqual(refused.exception_code, 2)  # illegal data address
        self.assertEqual(plc.read()[RESULT_STATE], NONE)

        _, guarded = self.start_plc("--allowed_peers=192.0.2.10")
        stranger = ModbusTcpClient("127.0.0.1", port=guarded, timeout=2, retries=0)
        self.addCleanup(stranger.close)
        stranger.connect()
        with self.assertRaises(Exception):
            response = stranger.read_holding_registers(0, 25, slave=1)
            if response.isError():
                raise RuntimeError(str(response))

    def test_bad_flags_name_the_flag(self) -> None:
        program = os.path.join(BUILD, "bin", "matid-plc")
        for flags, named in ((["--accepted_classes=Bag", "--modbus_host=plc.local"],
                              "--modbus_host"),
                             (["--accepted_classes="], "--accepted_classes"),
                             (["--accepted_classes=Bag", "--inspection_timeout_ms=0"],
                              "--inspection_timeout_ms"),
                             (["--accepted_classes=Bag", "--no_such_flag"], "no_such_flag")):
            done = subprocess.run([program, f"--source={self.images}", "--metrics_port=-1",
                                   *flags],
                                  capture_output=True, text=True, timeout=30)
            self.assertNotEqual(done.returncode, 0, flags)
            self.assertIn(named, done.stderr, flags)


if __name__ == "__main__":
    unittest.main(verbosity=2)
