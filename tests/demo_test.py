#!/usr/bin/python3
"""The demo as a newcomer runs it to look around: with --keep_running the
URLs of its summary keep answering after it, until Ctrl-C stops everything
(exit 0, nothing left listening)."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD, "test_model"))


class DemoKeepRunningTest(unittest.TestCase):
    def test_urls_answer_after_the_summary_until_ctrl_c(self) -> None:
        out = tempfile.mkdtemp(prefix="matid-demo-")
        self.addCleanup(shutil.rmtree, out, ignore_errors=True)
        log_path = os.path.join(out, "..", os.path.basename(out) + ".log")
        self.addCleanup(lambda: os.path.exists(log_path) and os.remove(log_path))
        with open(log_path, "w") as log:
            demo = subprocess.Popen(["/usr/bin/python3", "-m", "scripts.edge_demo",
                                     "--model_dir", MODEL, "--frames", "20", "--out", out,
                                     "--keep_running"],
                                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                    env=dict(os.environ, MATID_BIN_DIR=os.path.join(BUILD, "bin")))
        self.addCleanup(lambda: demo.poll() is None and demo.kill())

        def output() -> str:
            with open(log_path) as f:
                return f.read()
        deadline = time.monotonic() + 180
        while "keeps running" not in output():
            self.assertIsNone(demo.poll(), output())
            self.assertLess(time.monotonic(), deadline, output())
            time.sleep(0.5)
        url = re.search(r"server metrics\s+(http://\S+/metrics)", output()).group(1)
        time.sleep(2)  # well after the summary
        page = urllib.request.urlopen(url, timeout=5).read().decode()
        self.assertIn("matid_requests_total", page)

        demo.send_signal(signal.SIGINT)  # Ctrl-C
        self.assertEqual(demo.wait(timeout=60), 0, output())
        with self.assertRaises(OSError):
            urllib.request.urlopen(url, timeout=5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
