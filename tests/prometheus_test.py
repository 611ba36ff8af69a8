#!/usr/bin/python3
"""Prometheus configuration and a real Prometheus server against matid.

promtool checks deploy/prometheus/prometheus.yml, alerts.yml and rules.yml;
then a real Prometheus (Debian's package) scrapes a running matid-server on
loopback, and its HTTP API must show the target up and answer a latency
quantile query and the recording rules with data.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD, "test_model"))
PROMETHEUS_DIR = os.path.join(ROOT, "deploy", "prometheus")
from tests.edge_harness import Process, free_port  # noqa: E402


def query(port: int, expression: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    answer = json.load(urllib.request.urlopen(url, timeout=5))
    return answer["data"]["result"] if answer["status"] == "success" else []


class PrometheusConfigTest(unittest.TestCase):
    def test_promtool_accepts_config_and_rules(self) -> None:
        config = subprocess.run(["promtool", "check", "config",
                                 os.path.join(PROMETHEUS_DIR, "prometheus.yml")],
                                capture_output=True, text=True)
        self.assertEqual(config.returncode, 0, config.stdout + config.stderr)
        rules = subprocess.run(["promtool", "check", "rules",
                                os.path.join(PROMETHEUS_DIR, "alerts.yml"),
                                os.path.join(PROMETHEUS_DIR, "rules.yml")],
                               capture_output=True, text=True)
        self.assertEqual(rules.returncode, 0, rules.stdout + rules.stderr)
        self.assertIn("SUCCESS: 11 rules found", rules.stdout)  # the eleven alerts

    def test_recording_rules_follow_level_metric_operations(self) -> None:
        import yaml
        with open(os.path.join(PROMETHEUS_DIR, "rules.yml")) as f:
            groups = yaml.safe_load(f)["groups"]
        names = [rule["record"] for group in groups for rule in group["rules"]]
        self.assertTrue(names)
        for name in names:
            level, metric, operations = name.split(":")  # exactly three parts
            self.assertTrue(level and metric.startswith("matid_") and operations, name)
            self.assertNotIn("_total", metric, name)  # dropped once rated, by convention
            self.assertIn("rate", operations, name)   # every series is per second

    def test_server_error_ratio_leaves_out_callers_codes(self) -> None:
        import yaml
        with open(os.path.join(PROMETHEUS_DIR, "rules.yml")) as f:
            rules = {r["record"]: r["expr"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]}
        expr = rules["job:matid_requests_server_errors:ratio_rate5m"]
        for code in ("INVALID_ARGUMENT", "CANCELLED", "DEADLINE_EXCEEDED"):
            self.assertIn(code, expr)
        with open(os.path.join(PROMETHEUS_DIR, "alerts.yml")) as f:
            alerts = {r["alert"]: r for g in yaml.safe_load(f)["groups"] for r in g["rules"]}
        self.assertIn("job:matid_requests_server_errors:ratio_rate5m", alerts["MatidErrorRatioHigh"]["expr"])
        for name in ("MatidCameraDown", "MatidBridgeDown", "MatidCameraDroppingResults"):
            self.assertIn(name, alerts)


class PrometheusScrapesMatidTest(unittest.TestCase):
    def test_target_up_and_latency_quantile_has_data(self) -> None:
        tmp = tempfile.mkdtemp(prefix="matid-prometheus-")
        running = []
        try:
            server = Process([os.path.join(BUILD, "bin", "matid-server"), f"--model_dir={MODEL}",
                              "--host=127.0.0.1", "--port=0", "--metrics_host=127.0.0.1",
                              "--metrics_port=0", "--threads=1"],
                             r"serving grpc_port=(\d+) metrics_port=(\d+)",
                             os.path.join(tmp, "server.log"))
            running.append(server)
            grpc_port, metrics_port = server.match.group(1), server.match.group(2)
            prometheus_port = free_port()
            config = os.path.join(tmp, "prometheus.yml")
            with open(config, "w") as f:
                f.write(f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{PROMETHEUS_DIR}/rules.yml", "{PROMETHEUS_DIR}/alerts.yml"]
scrape_configs:
  - {{job_name: matid-server, static_configs: [{{targets: ["127.0.0.1:{metrics_port}"]}}]}}
""")
            running.append(Process(["prometheus", f"--config.file={config}",
                                    f"--storage.tsdb.path={tmp}/data",
                                    f"--web.listen-address=127.0.0.1:{prometheus_port}"],
                                   r"Server is ready to receive web requests",
                                   os.path.join(tmp, "prometheus.log")))
            # Traffic for the histograms: matid-classify over a few images, a few rounds.
            images = os.path.join(tmp, "images")
            subprocess.run([sys.executable, "-m", "model_export.fashion_mnist",
                            "--split", "test", "--count", "40", "--out", images],
                           cwd=ROOT, check=True, capture_output=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                subprocess.run([os.path.join(BUILD, "bin", "matid-classify"),
                                f"--server=127.0.0.1:{grpc_port}", "--format=csv", images],
                               check=True, capture_output=True)
                targets = query(prometheus_port, 'up{job="matid-server"}')
                quantile = query(prometheus_port, "histogram_quantile(0.99, sum by (le) "
                                 "(rate(matid_request_duration_seconds_bucket[10s])))")
                recorded = query(prometheus_port, "label:matid_predictions:rate5m")
                if (targets and targets[0]["value"][1] == "1" and quantile and
                        quantile[0]["value"][1] not in ("NaN", "0") and recorded):
                    break
                time.sleep(1)
            self.assertTrue(targets and targets[0]["value"][1] == "1", targets)
            self.assertTrue(quantile, "no latency quantile")
            p99 = float(quantile[0]["value"][1])
            self.assertGreater(p99, 0.0)
            self.assertLess(p99, 10.0)
            self.assertTrue(recorded, "recording rule label:matid_predictions:rate5m empty")
        finally:
            for process in reversed(running):
                process.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
