"""Real MQTT brokers and matid processes on loopback, for the edge tests and
benchmarks: free ports, mosquitto with persistence (and mutual TLS), matid
programs waited on until they print their start-up line, an MQTT collector,
test certificates made with openssl, valid result messages.
"""
import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from typing import Any, Callable, Sequence

import paho.mqtt.client as mqtt

# Debian installs the broker in /usr/sbin, which is not on every user's PATH.
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def scrape(port: int) -> dict[str, float]:
    """Every sample of a /metrics endpoint on loopback as {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def rss_kib(pid: int) -> int:
    """A process's resident memory."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def sanitized_build(build_dir: str) -> bool:
    """Whether build_dir was configured with a sanitizer (scripts/test.sh's
    second pass): its programs' RSS is then mostly AddressSanitizer's
    quarantine of freed memory, so RSS bounds do not apply."""
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            return re.search(r"^MATID_SANITIZE:\w+=\S", f.read(), re.M) is not None
    except OSError:
        return False


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return s.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


def make_certificates(directory: str, server_names: Sequence[str] = ("localhost",)) -> dict:
    """A CA, a server certificate for 127.0.0.1 and `server_names` (DNS), a
    client certificate, and a client certificate from another (untrusted) CA.
    Keys are readable by every user: containers running as non-root read them."""
    paths = {name: os.path.join(directory, name) for name in (
        "ca.key", "ca.crt", "server.key", "server.csr", "server.crt", "client.key", "client.csr",
        "client.crt", "rogue-ca.key", "rogue-ca.crt", "rogue.key", "rogue.csr", "rogue.crt", "san.ext")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "rogue-ca"):
        run("openssl", "req", "-x509", *ec, "-days", "2", "-subj", f"/CN=matid test {ca}",
            "-keyout", paths[f"{ca}.key"], "-out", paths[f"{ca}.crt"])
    with open(paths["san.ext"], "w") as f:
        f.write("subjectAltName=IP:127.0.0.1," + ",".join(f"DNS:{n}" for n in server_names) + "\n")
    for name, ca, cn in (("server", "ca", "127.0.0.1"), ("client", "ca", "matid-edge-test"),
                         ("rogue", "rogue-ca", "matid-edge-test")):
        run("openssl", "req", "-new", *ec, "-subj", f"/CN={cn}", "-keyout", paths[f"{name}.key"],
            "-out", paths[f"{name}.csr"])
        extra = ["-extfile", paths["san.ext"]] if name == "server" else []
        run("openssl", "x509", "-req", "-in", paths[f"{name}.csr"], "-CA", paths[f"{ca}.crt"],
            "-CAkey", paths[f"{ca}.key"], "-CAcreateserial", "-days", "2",
            "-out", paths[f"{name}.crt"], *extra)
    for path in paths.values():
        os.chmod(path, 0o644)
    return paths


class Mosquitto:
    """A mosquitto broker on a free loopback port, with persistence."""

    def __init__(self, directory: str, name: str, tls: dict = None, port: int = 0,
                 client_certificates: bool = True, passwords: dict = None,
                 settings: tuple = ()) -> None:
        """TLS with `tls`'s server files (and client certificates unless told
        otherwise); with `passwords` ({user: password}), only those users;
        `settings`: more lines of mosquitto.conf."""
        self.dir = os.path.join(directory, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {str(not passwords).lower()}",
                 "persistence true",
                 f"persistence_location {self.dir}/", "autosave_interval 1",
                 "max_queued_messages 100000",
                 # mosquitto started as root drops to user "mosquitto", which
                 # could not read our private temporary directory.
                 f"user {getpass.getuser()}", *settings]
        if tls:
            lines += [f"cafile {tls['ca.crt']}", f"certfile {tls['server.crt']}",
                      f"keyfile {tls['server.key']}",
                      f"require_certificate {str(client_certificates).lower()}"]
        if passwords:
            password_file = os.path.join(self.dir, "passwords")
            open(password_file, "w").close()
            for user, password in passwords.items():
                run("mosquitto_passwd", "-b", password_file, user, password)
            os.chmod(password_file, 0o600)
            lines.append(f"password_file {password_file}")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.process = None
        self.start()

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return  # running already (the constructor starts it)
        self.log = open(os.path.join(self.dir, "log.txt"), "a")
        self.process = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        def accepting():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        wait_for(accepting, 10, f"mosquitto on {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        self.log.close()


class Process:
    """A matid program; waits for its start-up line."""

    def __init__(self, args: Sequence[str], ready: str, log_path: str) -> None:
        self.log_path = log_path
        self.log = open(log_path, "a")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.match = wait_for(lambda: re.search(ready, self.output()), 30,
                              f"{os.path.basename(args[0])} to start")

    def output(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.log.close()
        return code


def wait_connected(client: mqtt.Client, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not client.is_connected():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Collector:
    """An MQTT client that (unless subscribe is False) subscribes to `topic`
    (camera results by default) and records every message id it sees
    (payloads may hold several JSON lines); also used to publish."""

    def __init__(self, port: int, tls: dict = None, client_id: str = "collector",
                 subscribe: bool = True, topic: str = "matid/+/results") -> None:
        self.ids = []
        self.payloads = []
        self.arrival_times = []  # time.monotonic() of each record
        self.lock = threading.Lock()
        self.client = mqtt.Client(client_id=client_id, clean_session=False)
        if tls:
            self.client.tls_set(ca_certs=tls["ca.crt"], certfile=tls["client.crt"],
                                keyfile=tls["client.key"])
        subscribed = threading.Event()
        if subscribe:
            self.client.on_connect = lambda c, u, f, rc: c.subscribe(topic, qos=1)
            self.client.on_subscribe = lambda c, u, mid, qos: subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        # Returns once the broker has acknowledged the subscription (SUBACK),
        # so that nothing published after this is missed, however slow the
        # machine; a publisher-only client once it is connected.
        ready = subscribed.wait(30) if subscribe else wait_connected(self.client, 30)
        if not ready:
            self.close()
            raise AssertionError(f"MQTT client {client_id} not "
                                 f"{'subscribed' if subscribe else 'connected'} on port {port} "
                                 "after 30 s")

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            for line in message.payload.decode().splitlines():
                record = json.loads(line)
                self.ids.append(record["message_id"])
                self.payloads.append(record)
                self.arrival_times.append(time.monotonic())

    def seen(self) -> list[str]:
        with self.lock:
            return list(self.ids)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def result_message(camera: str, seq: int) -> str:
    return json.dumps({
        "message_id": f"{camera}-testboot-{seq}", "timestamp": "2026-11-25T06:00:00.000Z",
        "camera_id": camera, "frame_seq": seq, "model": {"name": "m", "version": "1", "variant": "fp32", "sha256": "0123456789ab"},
        "predictions": [{"label": "Bag", "score": 0.9}], "top_label": "Bag", "top_score": 0.9,
        "needs_inspection": False, "latency_ms": 5.0})


def make_conveyor_video(path: str, frames: int, fps: float, size: int = 56) -> None:
    """An MJPG video of the first `frames` Fashion-MNIST test images, one per
    frame, size x size, for camera tests."""
    import cv2
    from model_export import fashion_mnist
    images, _ = fashion_mnist.load("test")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    for i in range(frames):
        writer.write(cv2.cvtColor(cv2.resize(images[i], (size, size)), cv2.COLOR_GRAY2BGR))
    writer.release()
