#!/usr/bin/python3
"""The speed suite's tools keep working and report what happened: the
matid-bench load generator against a real matid-server (every mode, errors
by status code, the server's split read from /metrics), the in-process
ceiling with pipelines side by side, and bench/summarize.py's arithmetic on
their real output. Behaviour only: no figure is compared with a speed.
Loopback only; every step is bounded in time and requests."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

BUILD_DIR = os.environ.get("MATID_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "build"))
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD_DIR, "test_model"))

from tests.edge_harness import Process  # noqa: E402

STEP = ["--step_seconds=0.5", "--warmup_seconds=0.1", "--max_requests=300"]


def binary(name: str) -> str:
    return os.path.join(BUILD_DIR, "bin", name)


class Server:
    """matid-server on free loopback ports with the test model."""

    def __init__(self, log_path: str, *flags: str) -> None:
        self.process = Process(
            [binary("matid-server"), f"--model_dir={MODEL}", "--host=127.0.0.1", "--port=0",
             "--metrics_host=127.0.0.1", "--metrics_port=0", "--threads=1", *flags],
            r"serving grpc_port=(\d+) metrics_port=(\d+)", log_path)
        self.port = int(self.process.match.group(1))
        self.metrics_port = int(self.process.match.group(2))

    def bench(self, json_path: str, *flags: str) -> dict:
        subprocess.run([binary("matid-bench"), f"--server=127.0.0.1:{self.port}",
                        f"--metrics_port={self.metrics_port}",
                        f"--server_pid={self.process.process.pid}", f"--json={json_path}",
                        *STEP, *flags], check=True, capture_output=True, timeout=60)
        with open(json_path) as f:
            return json.load(f)

    def stop(self) -> int:
        return self.process.stop()


class BenchToolsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="matid-bench-tools-")

    def tearDown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def check_ok_step(self, step: dict, images_per_request: int) -> None:
        self.assertEqual(step["errors"], {}, step)
        self.assertGreater(step["requests"], 0)
        self.assertLessEqual(step["requests"], 300)
        self.assertEqual(step["images"], step["requests"] * images_per_request)
        self.assertGreater(step["images_per_second"], 0)
        self.assertLessEqual(step["p50_ms"], step["p90_ms"])
        self.assertLessEqual(step["p90_ms"], step["p99_ms"])
        self.assertLessEqual(step["p99_ms"], step["max_ms"])
        # The server's side, read from its /metrics and /proc.
        self.assertGreaterEqual(step["server_mean_batch_size"], 1)
        self.assertGreater(step["server_inference_ms_per_batch"], 0)
        self.assertGreater(step["server_cpu_ms_per_image"], 0)

    def test_every_mode_against_a_real_server(self) -> None:
        server = Server(self.path("server.log"), "--max_batch_size=8")
        try:
            unary = server.bench(self.path("unary.json"), "--concurrency=1,4")
            self.assertEqual([s["concurrency"] for s in unary["steps"]], [1, 4])
            for step in unary["steps"]:
                self.check_ok_step(step, 1)
            batch = server.bench(self.path("batch.json"), "--mode=batch", "--batch_size=4",
                                 "--concurrency=2")
            self.check_ok_step(batch["steps"][0], 4)
            stream = server.bench(self.path("stream.json"), "--mode=stream", "--concurrency=2")
            self.check_ok_step(stream["steps"][0], 1)
            open_loop = server.bench(self.path("open.json"), "--rate=200")
            self.assertEqual(open_loop["steps"][0]["errors"], {})
            self.assertGreater(open_loop["steps"][0]["images"], 0)
        finally:
            self.assertEqual(server.stop(), 0)

    def test_refusals_are_reported_by_code(self) -> None:
        # Random-noise 64x64 PNGs are ~4 KiB: all over a 100-byte limit.
        server = Server(self.path("server.log"), "--max_encoded_bytes=100")
        try:
            run = server.bench(self.path("refused.json"), "--synthetic=64x64x1", "--concurrency=2")
            step = run["steps"][0]
            self.assertGreater(step["requests"], 0)
            self.assertEqual(step["images"], 0)
            self.assertEqual(step["errors"], {"INVALID_ARGUMENT": step["requests"]})
        finally:
            self.assertEqual(server.stop(), 0)

    def test_inprocess_pipelines_side_by_side(self) -> None:
        out = self.path("inprocess.json")
        subprocess.run([binary("matid-inprocess-bench"), f"--model_dir={MODEL}", "--threads=1",
                        "--pipelines=2", "--batch_sizes=1,4", "--seconds=0.3", f"--json={out}"],
                       check=True, capture_output=True, timeout=60)
        with open(out) as f:
            run = json.load(f)
        self.assertEqual(run["pipelines"], 2)
        self.assertEqual([b["batch"] for b in run["batches"]], [1, 4])
        for b in run["batches"]:
            self.assertGreater(b["forward_images_per_second"], 0)
            self.assertGreater(b["pipeline_images_per_second"], 0)
            self.assertGreater(b["pipeline_cpu_ms_per_image"], 0)
        self.assertEqual(run["best_pipeline_images_per_second"],
                         max(b["pipeline_images_per_second"] for b in run["batches"]))
        self.assertGreater(run["single_image_p50_ms"], 0)

    def test_summary_of_a_round(self) -> None:
        """summarize.py on one interleaved round built from real tool output,
        named as bench/run.sh names it."""
        results = self.path("results")
        os.mkdir(results)
        for name, pipelines in (("pair-fmnist-t2-r1", 1), ("pair-fmnist-t1-p2-r1", 2)):
            subprocess.run([binary("matid-inprocess-bench"), f"--model_dir={MODEL}",
                            f"--pipelines={pipelines}", "--threads=1", "--batch_sizes=4",
                            "--seconds=0.3", f"--json={results}/run-inprocess-{name}.json"],
                           check=True, capture_output=True, timeout=60)
        server = Server(self.path("server.log"), "--inference_workers=2", "--max_batch_size=16")
        try:
            served = server.bench(f"{results}/run-served-pair-fmnist-t1-w2-batch16-r1.json",
                                  "--concurrency=1,8")
            batch_rpc = server.bench(
                f"{results}/run-served-pair-fmnist-t1-w2-batch16-batchrpc-r1.json",
                "--mode=batch", "--batch_size=16", "--concurrency=2")
        finally:
            self.assertEqual(server.stop(), 0)
        summary_run = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "summarize.py"),
                                      results], check=True, capture_output=True, text=True,
                                     timeout=60)
        self.assertIn("fmnist, 1 interleaved rounds", summary_run.stdout)
        with open(os.path.join(results, "summary.json")) as f:
            rounds = json.load(f)["fmnist-rounds"]["rounds"]
        self.assertEqual(len(rounds), 1)
        inproc = []
        for name in ("pair-fmnist-t2-r1", "pair-fmnist-t1-p2-r1"):
            with open(f"{results}/run-inprocess-{name}.json") as f:
                inproc.append(json.load(f))
        ceiling = max(r["best_pipeline_images_per_second"] for r in inproc)
        best = max(s["images_per_second"] for s in served["steps"])
        c1 = next(s["p50_ms"] for s in served["steps"] if s["concurrency"] == 1)
        single = min(r["single_image_p50_ms"] for r in inproc)
        self.assertAlmostEqual(rounds[0]["served_over_inprocess"], best / ceiling)
        self.assertAlmostEqual(rounds[0]["c1_p50_minus_inprocess_ms"], c1 - single)
        self.assertAlmostEqual(rounds[0]["batchrpc_over_inprocess"],
                               batch_rpc["steps"][0]["images_per_second"] / ceiling)


if __name__ == "__main__":
    unittest.main(verbosity=2)
