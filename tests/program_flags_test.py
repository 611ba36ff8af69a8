#!/usr/bin/python3
"""Every program's command line as a newcomer meets it: `--help` lists every
flag the program defines (read from its source), and a default that depends
on another flag follows it instead of refusing to start."""
import os
import re
import subprocess
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD, "test_model"))
BIN = os.path.join(BUILD, "bin")

# Each program and the files holding its flags.
CLIENT_TLS = "common/client_tls_flags.cc"
PROGRAMS = {
    "matid-server": ["server/server_main.cc"],
    "matid-camera": ["client/camera/camera_main.cc", CLIENT_TLS],
    "matid-bridge": ["bridge/bridge_main.cc"],
    "matid-sparkplug": ["sparkplug/sparkplug_main.cc", CLIENT_TLS],
    "matid-classify": ["client/classify/classify_main.cc", CLIENT_TLS],
    "matid-health-probe": ["client/classify/health_probe_main.cc", CLIENT_TLS],
    "matid-admin": ["client/admin/matid_admin_main.cc", CLIENT_TLS],
    "matid-plc": ["client/plc/plc_main.cc", CLIENT_TLS],
    "matid-bench": ["bench/matid_bench.cc"],
    "matid-inprocess-bench": ["bench/inprocess_bench.cc"],
}


def defined_flags(sources: list) -> list:
    flags = []
    for source in sources:
        with open(os.path.join(ROOT, source)) as f:
            flags += re.findall(r"ABSL_FLAG\(\s*[\w:<>]+\s*,\s*(\w+)", f.read())
    return flags


class HelpTest(unittest.TestCase):
    def test_every_program_lists_all_its_flags(self) -> None:
        for program, sources in PROGRAMS.items():
            with self.subTest(program=program):
                flags = defined_flags(sources)
                self.assertGreater(len(flags), 2, sources)
                done = subprocess.run([os.path.join(BIN, program), "--help"], capture_output=True,
                                      text=True, timeout=30)
                text = done.stdout + done.stderr
                self.assertNotIn("No flags matched", text)
                self.assertIn("Usage:", text)
                missing = [f for f in flags if f"--{f} (" not in text]
                self.assertEqual(missing, [], f"{program} --help misses these flags")


class ServerFlagsTest(unittest.TestCase):
    def run_server(self, *flags: str) -> subprocess.Popen:
        return subprocess.Popen([os.path.join(BIN, "matid-server"), f"--model_dir={MODEL}",
                                 "--host=127.0.0.1", "--port=0", "--metrics_port=-1", *flags],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def test_small_queue_starts_with_the_default_batch_limit(self) -> None:
        server = self.run_server("--max_queue_size=4")
        try:
            line = ""
            while "serving" not in line:
                line = server.stdout.readline()
                self.assertTrue(line, "matid-server exited instead of serving")
        finally:
            server.terminate()
            server.communicate(timeout=30)
        self.assertEqual(server.returncode, 0)

    def test_conflicting_values_name_the_flag_to_change(self) -> None:
        server = self.run_server("--max_queue_size=4", "--max_batch_items=10")
        output, _ = server.communicate(timeout=30)
        self.assertNotEqual(server.returncode, 0)
        self.assertIn("--max_batch_items is 10", output)
        self.assertIn("--max_queue_size (4)", output)


if __name__ == "__main__":
    unittest.main(verbosity=2)
