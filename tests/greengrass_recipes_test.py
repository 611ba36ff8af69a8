#!/usr/bin/python3
"""The Greengrass recipes' lifecycle scripts, run as the nucleus would run
them: every recipe variable substituted ({artifacts:path}, {work:path},
{configuration:/...}, {iot:thingName}), each script run with `sh -c`, in
dependency order. Install runs twice (it must be idempotent); then the
broker, the server, the bridge (to a mutual-TLS mosquitto standing in for
AWS IoT Core) and the camera (a short video) run from their Run scripts, and
every result reaches the cloud stand-in; the optional Sparkplug node births
at a plant broker and publishes a DDATA per result; the server stops through its
Shutdown script, draining, with exit code 0.
Needs root for the Install scripts (as the nucleus runs them: RequiresPrivilege).
Like the nucleus, the test runs every step without RequiresPrivilege as an
unprivileged component user of its own (ggc_user's stand-in), owning the
component's work and artifact folders: a component that needs root at run
time, or a file only root can write, fails here as it would on a box. The
server then writes version_policy.json into the model folder the privileged
Model install made, and the bridge reads the device key only through the
copy its install made for it. Every listener binds loopback by default.
"""
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import unittest

import paho.mqtt.client as mqtt
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("MATID_BUILD_DIR", os.path.join(ROOT, "build"))
MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD, "test_model"))
RECIPES = os.path.join(ROOT, "deploy", "greengrass")
THING = "test-thing"
from model_export import repository  # noqa: E402
from tests.edge_harness import (Collector, Mosquitto, free_port, make_certificates,  # noqa: E402
                          make_conveyor_video, wait_for)  # noqa: E402

VARIABLE = re.compile(r"\{(\w+):([^}]*)\}")
COMPONENT_USER = "matid-gg-test"  # the simulated nucleus' component user (ggc_user)


def component_user() -> pwd.struct_passwd:
    """The component user, made (a system user, no home, no shell) when missing."""
    try:
        return pwd.getpwnam(COMPONENT_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", COMPONENT_USER], check=True)
        return pwd.getpwnam(COMPONENT_USER)


def load_recipes() -> dict:
    recipes = {}
    for path in glob.glob(os.path.join(RECIPES, "*.yaml")):
        with open(path) as f:
            recipe = yaml.safe_load(f)
        recipes[recipe["ComponentName"]] = recipe
    return recipes


class Component:
    """One recipe on a simulated core device: its artifacts and work folders,
    its configuration (defaults + the test's merge), its lifecycle scripts."""

    def __init__(self, recipe: dict, root: str, configuration: dict,
                 user: pwd.struct_passwd) -> None:
        self.name = recipe["ComponentName"]
        self.user = user
        self.lifecycle = recipe["Manifests"][0]["Lifecycle"]
        self.artifacts = os.path.join(root, "packages", "artifacts", self.name, recipe["ComponentVersion"])
        self.work = os.path.join(root, "work", self.name)
        os.makedirs(self.artifacts, exist_ok=True)
        os.makedirs(self.work, exist_ok=True)
        for folder in (self.artifacts, self.work):  # the nucleus gives them to the component's user
            os.chown(folder, user.pw_uid, user.pw_gid)
        self.configuration = dict(recipe["ComponentConfiguration"]["DefaultConfiguration"])
        self.configuration.update(configuration)
        self.process = None
        self.log_path = os.path.join(root, f"{self.name}.log")

    def script(self, step: str) -> str:
        def value(match):
            namespace, key = match.group(1), match.group(2)
            if namespace == "configuration":
                return str(self.configuration[key.lstrip("/")])
            if (namespace, key) == ("artifacts", "path"):
                return self.artifacts
            if (namespace, key) == ("work", "path"):
                return self.work
            if (namespace, key) == ("iot", "thingName"):
                return THING
            raise AssertionError(f"{self.name}: unknown recipe variable {match.group(0)}")
        return VARIABLE.sub(value, self.lifecycle[step]["Script"])

    def identity(self, step: str) -> dict:
        """Root for a privileged step; the component's user otherwise."""
        if self.lifecycle[step].get("RequiresPrivilege"):
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def run_step(self, step: str) -> subprocess.CompletedProcess:
        timeout = self.lifecycle[step].get("Timeout", 120)
        return subprocess.run(["sh", "-c", self.script(step)], capture_output=True, text=True,
                              timeout=timeout, cwd=self.work, **self.identity(step))

    def start(self) -> None:
        self.log = open(self.log_path, "a")
        self.process = subprocess.Popen(["sh", "-c", self.script("Run")], stdout=self.log,
                                        stderr=subprocess.STDOUT, cwd=self.work,
                                        **self.identity("Run"))

    def output(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def stop(self) -> int:
        """Shutdown script if there is one, then SIGTERM, as the nucleus does."""
        if self.process is None:
            return 0
        try:
            if "Shutdown" in self.lifecycle:
                self.run_step("Shutdown")
        finally:  # whatever the Shutdown script did, the process ends here
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait(timeout=10)
            self.log.close()
            self.process = None
        return code


@unittest.skipUnless(os.geteuid() == 0, "Install scripts need root (RequiresPrivilege)")
class GreengrassLifecycleTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="matid-greengrass-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        os.chmod(self.tmp, 0o755)  # /greengrass/v2 is reachable by the component user
        self.recipes = load_recipes()
        self.user = component_user()

    def component(self, name: str, configuration: dict, artifacts: dict) -> Component:
        component = Component(self.recipes[name], self.tmp, configuration, self.user)
        for file_name, source in artifacts.items():
            target = os.path.join(component.artifacts, file_name)
            shutil.copy(source, target)
            os.chown(target, self.user.pw_uid, self.user.pw_gid)  # Permission: OWNER
        self.addCleanup(component.stop)
        return component

    def test_lifecycle_scripts_install_run_and_shut_down(self) -> None:
        os.makedirs(os.path.join(self.tmp, "certs"))
        tls = make_certificates(os.path.join(self.tmp, "certs"))
        os.chmod(os.path.join(self.tmp, "certs"), 0o755)
        os.chmod(tls["client.key"], 0o600)  # the device key: root's alone, as on a core device
        cloud = Mosquitto(self.tmp, "cloud", tls=tls)
        self.addCleanup(cloud.stop)
        collector = Collector(cloud.port, tls=tls, client_id="gg-cloud-consumer")
        self.addCleanup(collector.close)

        # Two model versions, as `model_export publish` writes them, each
        # packed as a com.matid.Model artifact.
        published = os.path.join(self.tmp, "published")
        model_tars = []
        for _ in range(2):
            version = repository.publish(MODEL, published, "test")
            model_tar = os.path.join(self.tmp, f"model-version-{version}.tar.gz")
            with tarfile.open(model_tar, "w:gz") as tar:
                tar.add(os.path.join(published, "test", str(version)), arcname=".")
            model_tars.append(model_tar)
        models_dir = os.path.join(self.tmp, "var-lib-matid-models")
        frames = 30
        video = os.path.join(self.tmp, "line.avi")
        make_conveyor_video(video, frames, fps=10)

        mqtt_port, grpc_port = free_port(), free_port()
        bin_dir = os.path.join(BUILD, "bin")
        broker = self.component("com.matid.Mosquitto",
                                {"Port": str(mqtt_port), "DisableSystemService": "false"}, {})
        model = self.component("com.matid.Model",
                               {"Repository": models_dir, "ModelName": "test", "Version": "1",
                                "ServerUser": COMPONENT_USER},
                               {"model-version.tar.gz": model_tars[0]})
        server = self.component(
            "com.matid.Server",
            {"Repository": models_dir, "PollSeconds": "1", "Port": str(grpc_port),
             "MetricsPort": str(free_port()), "Threads": "1", "EventsMqttPort": str(mqtt_port)},
            {"matid-server": os.path.join(bin_dir, "matid-server"),
             "matid-admin": os.path.join(bin_dir, "matid-admin")})
        bridge = self.component(
            "com.matid.Bridge",
            {"CloudEndpoint": "127.0.0.1", "CloudPort": str(cloud.port), "RootCa": tls["ca.crt"],
             "Certificate": tls["client.crt"], "PrivateKey": tls["client.key"],
             "LocalPort": str(mqtt_port), "MetricsPort": str(free_port()),
             "RunUser": COMPONENT_USER},
            {"matid-bridge": os.path.join(bin_dir, "matid-bridge")})
        camera = self.component(
            "com.matid.Camera",
            {"Source": video, "CameraId": "gg-cam", "Server": f"127.0.0.1:{grpc_port}",
             "MqttPort": str(mqtt_port), "MetricsPort": str(free_port()),
             "VideoUser": "matid-no-such-user"},
            {"matid-camera": os.path.join(bin_dir, "matid-camera")})
        # The optional Sparkplug node, to a plant broker of its own.
        plant = Mosquitto(self.tmp, "plant")
        self.addCleanup(plant.stop)
        plant_data = PlantSubscriber(plant.port)
        self.addCleanup(plant_data.close)
        sparkplug = self.component(
            "com.matid.Sparkplug",
            {"PlantHost": "127.0.0.1", "PlantPort": str(plant.port), "Node": "gg-box",
             "Server": f"127.0.0.1:{grpc_port}", "LocalPort": str(mqtt_port),
             "MetricsPort": str(free_port())},
            {"matid-sparkplug": os.path.join(bin_dir, "matid-sparkplug")})
        ordered = [model, broker, server, bridge, sparkplug, camera]

        # Every artifact a script names is one the recipe lists.
        for component in ordered:
            recipe = self.recipes[component.name]
            listed = {uri["URI"].rsplit("/", 1)[1] for uri in recipe["Manifests"][0].get("Artifacts", [])}
            used = set(re.findall(r"\{artifacts:path\}/([\w.\-]+)", yaml.safe_dump(component.lifecycle)))
            tools = {"matid-admin"} if component.name == "com.matid.Server" else set()  # for operators
            self.assertEqual(used | tools, listed, component.name)

        for attempt in (1, 2):  # the second run finds everything in place
            for component in ordered:
                done = component.run_step("Install")
                self.assertEqual(done.returncode, 0,
                                 f"{component.name} Install (run {attempt}): {done.stdout}{done.stderr}")

        broker.start()
        wait_for(lambda: subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(mqtt_port),
                                         "-t", "$SYS/broker/uptime", "-C", "1", "-W", "2"],
                                        capture_output=True).returncode == 0, 20, "the local broker")
        server.start()
        wait_for(lambda: "serving grpc_port" in server.output(), 60, "matid-server to serve")
        bridge.start()
        wait_for(lambda: "local broker 127.0.0.1" in bridge.output() and "connected" in bridge.output(),
                 30, "the bridge to connect to the local broker")
        sparkplug.start()
        wait_for(lambda: "spBv1.0/matid/NBIRTH/gg-box" in plant_data.topics(), 30,
                 "the Sparkplug node's NBIRTH at the plant broker")
        camera.start()
        try:
            wait_for(lambda: len({p["frame_seq"] for p in collector.payloads}) >= frames, 90,
                     "every result at the cloud stand-in")
        except AssertionError as error:
            raise AssertionError(f"{error}; the components said:\n" + "\n".join(
                f"{c.name}: {c.output()[-1500:]}" for c in (camera, bridge, broker))) from None
        wait_for(lambda: plant_data.topics().count("spBv1.0/matid/DDATA/gg-box/gg-cam") >= frames,
                 30, "a DDATA per result at the plant broker")
        self.assertEqual(sorted({p["frame_seq"] for p in collector.payloads}), list(range(frames)))
        self.assertEqual(camera.process.wait(timeout=60), 0, camera.output())
        # The bridge is a client of its own at the cloud: thing name + suffix.
        self.assertIn(f"as {THING}-matid-bridge", cloud_log(cloud))

        # A new model version deployed: com.matid.Model's next version installs
        # it, and the running server (not restarted: SOFT dependency) swaps
        # it in by polling.
        self.assertEqual(sorted(os.listdir(os.path.join(models_dir, "test"))), ["1"])
        server_pid = server.process.pid
        model_v2 = self.component("com.matid.Model",
                                  {"Repository": models_dir, "ModelName": "test", "Version": "2",
                                   "ServerUser": COMPONENT_USER},
                                  {"model-version.tar.gz": model_tars[1]})
        done = model_v2.run_step("Install")
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        # Every local user of a box shares loopback: admin is on the
        # component's socket only.
        admin = lambda target: subprocess.run(  # noqa: E731
            [os.path.join(bin_dir, "matid-admin"), f"--server={target}", "list"],
            capture_output=True, text=True, timeout=30)
        refused = admin(f"127.0.0.1:{grpc_port}")
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("--admin_socket", refused.stderr)
        listed = lambda: admin(f"unix:{os.path.join(server.work, 'admin.sock')}").stdout  # noqa: E731
        wait_for(lambda: re.search(r"test\s+2\s+AVAILABLE\s+yes", listed()) and
                 not re.search(r"test\s+1\s", listed()), 30, "version 2 to serve alone")
        self.assertEqual(server.process.pid, server_pid)
        self.assertIn("model test version 2: AVAILABLE", server.output())
        # The server, as the component user, writes the model's policy into
        # the folder the privileged Model install made.
        pinned = subprocess.run(
            [os.path.join(bin_dir, "matid-admin"),
             f"--server=unix:{os.path.join(server.work, 'admin.sock')}", "pin", "test", "1"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(pinned.returncode, 0, pinned.stderr + server.output()[-2000:])
        policy = os.path.join(models_dir, "test", "version_policy.json")
        self.assertEqual(os.stat(policy).st_uid, self.user.pw_uid)
        # Every component's process runs as the component user, not root,
        # and every listener is on loopback only.
        for component in (broker, server, bridge, sparkplug):
            self.assertEqual(os.stat(f"/proc/{component.process.pid}").st_uid, self.user.pw_uid,
                             component.name)
        listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
        for port in (grpc_port, mqtt_port, int(server.configuration["MetricsPort"]),
                     int(bridge.configuration["MetricsPort"]),
                     int(sparkplug.configuration["MetricsPort"])):
            local = [line.split()[3] for line in listening.splitlines()
                     if line.split()[3].endswith(f":{port}")]
            self.assertEqual(len(local), 1, f"port {port}: {local}")
            self.assertIn(local[0], (f"127.0.0.1:{port}", f"[::ffff:127.0.0.1]:{port}"),
                          f"port {port} is not on loopback only")

        self.assertEqual(server.stop(), 0, server.output())
        self.assertIn("received, draining", server.output())
        self.assertIn("matid-server: stopped", server.output())
        for component in (sparkplug, bridge, broker):
            component.stop()


class PlantSubscriber:
    """Every topic published under spBv1.0/ at a plant broker, in order."""

    def __init__(self, port: int) -> None:
        self.seen = []
        self.client = mqtt.Client(client_id="plant-host")
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc: c.subscribe("spBv1.0/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, qos: subscribed.set()
        self.client.on_message = lambda c, u, message: self.seen.append(message.topic)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(30):
            raise AssertionError("plant subscriber not subscribed")

    def topics(self) -> list:
        return list(self.seen)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def cloud_log(broker: Mosquitto) -> str:
    with open(os.path.join(broker.dir, "log.txt")) as f:
        return f.read()


if __name__ == "__main__":
    unittest.main(verbosity=2)
