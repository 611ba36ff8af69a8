#!/usr/bin/python3
"""Checks the deployment files without a container engine or a cluster:
docker-compose config, the Dockerfile's targets and COPY sources, the
Kubernetes objects' references to each other (names, ports, labels), the
Greengrass recipes' configuration references, and the AWS JSON files."""
import glob
import json
import os
import re
import shutil
import subprocess
import unittest

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(ROOT, "deploy")


def load_all(path: str) -> list:
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def compose_config(*files: str, env: dict = None) -> dict:
    """docker-compose's own view of the files (variables resolved), with a
    clean environment: no MATID_* setting, as on a new box."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MATID_")}
    clean.update(env or {})
    args = ["docker-compose"]
    for name in files or ("docker-compose.yml",):
        args += ["-f", os.path.join(ROOT, name)]
    result = subprocess.run(args + ["config"], capture_output=True, text=True, env=clean, cwd=ROOT)
    if result.returncode != 0:
        raise AssertionError(result.stderr)
    return yaml.safe_load(result.stdout)


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration)
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


def flag(command: list, name: str) -> str:
    for arg in command:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"--{name} not in {command}")


class ComposeTest(unittest.TestCase):
    def test_config_is_valid_without_any_setting(self) -> None:
        config = compose_config()
        self.assertEqual(set(config["services"]), {"mosquitto", "server", "camera", "bridge",
                                                   "prometheus", "plc", "sparkplug"})
        with open(os.path.join(ROOT, "docker-compose.yml")) as f:
            self.assertNotIn("version", yaml.safe_load(f))  # obsolete key

    def test_services_build_targets_that_the_dockerfile_has(self) -> None:
        with open(os.path.join(DEPLOY, "docker", "Dockerfile")) as f:
            dockerfile = f.read()
        targets = set(re.findall(r"^FROM \S+ AS (\S+)", dockerfile, re.M))
        for name, service in compose_config()["services"].items():
            self.assertIn(service["build"]["target"], targets, name)
        for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+)", dockerfile, re.M):
            if "$" in source:  # a build argument: the model folder, chosen at build time
                continue
            self.assertTrue(os.path.exists(os.path.join(ROOT, source)), source)
        # The build stage configures the top CMakeLists.txt with tests off:
        # every other folder it adds must be copied in.
        with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
            folders = set(re.findall(r"^\s*add_subdirectory\((\w+)\)", f.read(), re.M)) - {"tests"}
        copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.M))
        self.assertEqual(folders - copied, set(), "folders the image build needs but does not copy")

    def test_ports_are_published_on_loopback_unless_asked(self) -> None:
        for env, address in (({}, "127.0.0.1"), ({"MATID_BIND_ADDRESS": "0.0.0.0"}, "0.0.0.0")):
            for name, service in compose_config(env=env)["services"].items():
                for port in service.get("ports", []):
                    host_ip = port["host_ip"] if isinstance(port, dict) else port.rsplit(":", 2)[0]
                    self.assertEqual(host_ip, address, (name, port))

    def test_logs_are_bounded_and_stop_grace_covers_each_drain(self) -> None:
        services = compose_config()["services"]
        for name, service in services.items():
            self.assertEqual(service["logging"]["driver"], "json-file", name)
            self.assertIn("max-size", service["logging"]["options"], name)
            self.assertIn("max-file", service["logging"]["options"], name)
            self.assertIn("stop_grace_period", service, name)
        server = services["server"]
        drain = float(flag(server["command"], "drain_grace_seconds")) + 0.5  # + lame duck
        self.assertGreaterEqual(seconds(server["stop_grace_period"]), drain)
        camera = services["camera"]
        self.assertGreaterEqual(seconds(camera["stop_grace_period"]),
                                float(flag(camera["command"], "drain_seconds")))

    def test_plant_outputs_are_opt_in_profiles(self) -> None:
        services = compose_config()["services"]
        for name in ("plc", "sparkplug"):
            self.assertEqual(services[name].get("profiles"), [name], name)
        for name in ("mosquitto", "server", "camera", "bridge", "prometheus"):
            self.assertNotIn("profiles", services[name], name)
        # Modbus inside the container listens on every interface of its own
        # network; the host publishes it on loopback unless told.
        self.assertIn("--modbus_host=0.0.0.0", services["plc"]["command"])
        self.assertTrue(all(p.startswith("127.0.0.1:") for p in services["plc"]["ports"]),
                        services["plc"]["ports"])
        sparkplug = compose_config(env={"MATID_PLANT_MQTT_HOST": "scada.plant"})["services"]
        self.assertIn("--plant_host=scada.plant", sparkplug["sparkplug"]["command"])

    def test_camera_device_is_an_opt_in_override(self) -> None:
        self.assertNotIn("devices", compose_config()["services"]["camera"])
        camera = compose_config("docker-compose.yml", "deploy/compose/camera-device.yml")["services"]["camera"]
        self.assertEqual(len(camera["devices"]), 1)
        self.assertIn("video", camera["group_add"])

    def test_repository_override_serves_a_repository_with_events_and_keeps_the_drain(self) -> None:
        server = compose_config("docker-compose.yml",
                                "deploy/compose/repository.yml")["services"]["server"]
        command = server["command"]
        self.assertEqual(flag(command, "model_repository"), "/repository")
        self.assertEqual(flag(command, "events_mqtt_host"), "mosquitto")
        self.assertEqual(flag(command, "box_id"), "matid-edge-1")  # the bridge's default thing
        self.assertEqual(flag(command, "default_model"), "")  # the only model
        self.assertNotIn("--model_dir", " ".join(command))
        self.assertGreaterEqual(seconds(server["stop_grace_period"]),
                                float(flag(command, "drain_grace_seconds")) + 0.5)
        targets = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in server["volumes"]]
        self.assertIn("/repository", targets)

    def test_images_run_as_non_root_with_health_checks(self) -> None:
        with open(os.path.join(DEPLOY, "docker", "Dockerfile")) as f:
            stages = re.split(r"^FROM ", f.read(), flags=re.M)[1:]
        by_name = {re.match(r"\S+ AS (\S+)", stage).group(1): stage for stage in stages}
        for target in ("server", "camera", "bridge", "mosquitto", "prometheus", "plc", "sparkplug"):
            self.assertRegex(by_name[target], r"(?m)^USER (?!root|0)", target)
            self.assertRegex(by_name[target], r"(?m)^HEALTHCHECK ", target)
        self.assertIn("matid-health-probe", by_name["server"].split("HEALTHCHECK", 1)[1])


K8S = os.path.join(DEPLOY, "k8s")
# Volume types the "restricted" Pod Security Standard allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}


def validate_against_schemas(objects: list) -> subprocess.CompletedProcess:
    """deploy/k8s/validate: the Kubernetes API schemas of npm's kubernetes-models."""
    return subprocess.run(["node", os.path.join(K8S, "validate", "validate.js")],
                          input=json.dumps(objects), capture_output=True, text=True, timeout=60)


class KubernetesTest(unittest.TestCase):
    """The kustomize base and the mutual-TLS overlay, read as kustomize would
    (resources + namespace + images), checked structurally; rendered by
    `kubectl kustomize` too where a kubectl is installed."""

    def setUp(self) -> None:
        with open(os.path.join(K8S, "base", "kustomization.yaml")) as f:
            self.kustomization = yaml.safe_load(f)
        self.objects = {}
        for name in self.kustomization["resources"]:
            for doc in load_all(os.path.join(K8S, "base", name)):
                self.objects[(doc["kind"], doc["metadata"]["name"])] = doc
        self.deployment = self.objects[("Deployment", "matid-server")]
        self.pod = self.deployment["spec"]["template"]["spec"]
        self.server = self.pod["containers"][0]

    def test_objects_reference_each_other_consistently(self) -> None:
        labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(self.deployment["spec"]["selector"]["matchLabels"], labels)
        ports = {p["name"]: p["containerPort"] for p in self.server["ports"]}
        service = self.objects[("Service", "matid-server")]
        self.assertEqual(service["spec"]["clusterIP"], "None")  # headless: client-side balancing
        self.assertEqual(service["spec"]["selector"], labels)
        for port in service["spec"]["ports"]:
            self.assertIn(port["targetPort"], ports)
        grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
        self.assertEqual(grpc_port["appProtocol"], "grpc")
        hpa = self.objects[("HorizontalPodAutoscaler", "matid-server")]
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], "matid-server")
        pdb = self.objects[("PodDisruptionBudget", "matid-server")]
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], labels)
        self.assertLess(pdb["spec"]["minAvailable"], hpa["spec"]["minReplicas"])
        self.assertEqual(self.kustomization["namespace"], "matid")
        self.assertIn(("Namespace", "matid"), self.objects)

    def test_images_are_configurable_and_not_always_pulled(self) -> None:
        names = {image["name"] for image in self.kustomization["images"]}
        for container in self.pod["initContainers"] + self.pod["containers"]:
            self.assertIn(container["image"], names)  # kustomize sets registry and tag
            self.assertEqual(container["imagePullPolicy"], "IfNotPresent")

    def test_model_is_copied_in_by_an_init_container(self) -> None:
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        self.assertEqual(set(volumes), {"models", "admin-socket"})
        self.assertIn("emptyDir", volumes["models"])  # binds on any cluster
        init = self.pod["initContainers"][0]
        mount = init["volumeMounts"][0]
        self.assertEqual(mount["name"], "models")
        model_dir = flag(self.server["args"], "model_dir")
        server_mount = next(m for m in self.server["volumeMounts"] if m["name"] == "models")
        self.assertTrue(model_dir.startswith(server_mount["mountPath"]))
        self.assertTrue(server_mount["readOnly"])
        self.assertIn(mount["mountPath"].rstrip("/"), " ".join(init["command"]))

    def test_admin_is_on_a_socket_in_its_own_volume_not_on_the_pods_loopback(self) -> None:
        args = self.server["args"]
        self.assertEqual(flag(args, "admin_from_loopback"), "false")
        socket_dir = os.path.dirname(flag(args, "admin_socket"))
        mount = next(m for m in self.server["volumeMounts"] if m["mountPath"] == socket_dir)
        volume = next(v for v in self.pod["volumes"] if v["name"] == mount["name"])
        self.assertIn("emptyDir", volume)  # writable under readOnlyRootFilesystem

    def test_probes_separate_startup_readiness_and_a_tolerant_liveness(self) -> None:
        startup, ready, live = (self.server[p] for p in ("startupProbe", "readinessProbe", "livenessProbe"))
        self.assertGreaterEqual(startup["periodSeconds"] * startup["failureThreshold"], 120)
        # Health answers within 2 s under overload: liveness must wait longer
        # and for several periods before a restart.
        self.assertGreater(live["timeoutSeconds"], 2)
        self.assertGreaterEqual(live["periodSeconds"] * live["failureThreshold"], 60)
        self.assertNotEqual(ready, live)
        grpc_port = next(p["containerPort"] for p in self.server["ports"] if p["name"] == "grpc")
        for probe in (startup, ready, live):
            self.assertEqual(probe["grpc"]["port"], grpc_port)
        grace = self.pod["terminationGracePeriodSeconds"]
        drain = int(flag(self.server["args"], "lame_duck_ms")) / 1000 + int(
            flag(self.server["args"], "drain_grace_seconds"))
        self.assertGreaterEqual(grace, drain)
        self.assertIn("--max_connection_age_ms=60000", self.server["args"])

    def test_pods_meet_the_restricted_pod_security_standard(self) -> None:
        pod_security = self.pod["securityContext"]
        self.assertTrue(pod_security["runAsNonRoot"])
        self.assertNotEqual(pod_security["runAsUser"], 0)
        self.assertEqual(pod_security["seccompProfile"]["type"], "RuntimeDefault")
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            self.assertFalse(self.pod.get(key, False), key)
        for container in self.pod["initContainers"] + self.pod["containers"]:
            security = container["securityContext"]
            self.assertIs(security["allowPrivilegeEscalation"], False, container["name"])
            self.assertEqual(security["capabilities"]["drop"], ["ALL"], container["name"])
            self.assertNotIn("add", security["capabilities"])
            self.assertFalse(security.get("privileged", False))
        for volume in self.pod["volumes"]:
            self.assertLessEqual(set(volume) - {"name"}, RESTRICTED_VOLUMES, volume)
        namespace = self.objects[("Namespace", "matid")]
        self.assertEqual(namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
                         "restricted")

    def test_mtls_overlay_probes_through_tls_with_the_health_probe(self) -> None:
        patch = load_all(os.path.join(K8S, "overlays", "mtls", "server-mtls.yaml"))[0]
        container = patch["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(container["name"], self.server["name"])
        for flag_name in ("tls_cert", "tls_key", "tls_client_ca"):
            path = flag(container["args"], flag_name)
            self.assertTrue(path.startswith("/tls/"))
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertIsNone(container[probe]["grpc"])  # the built-in probe has no TLS
            command = container[probe]["exec"]["command"]
            self.assertEqual(command[0], "matid-health-probe")
            for flag_name in ("tls_ca", "tls_cert", "tls_key"):
                self.assertTrue(flag(command, flag_name).startswith("/tls/"))
        self.assertEqual(patch["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
                         "matid-server-tls")

    def test_scrape_config_matches_the_pod_annotations(self) -> None:
        with open(os.path.join(K8S, "prometheus-scrape.yml")) as f:
            job = yaml.safe_load(f)[0]
        annotations = self.deployment["spec"]["template"]["metadata"]["annotations"]
        used = set()
        for rule in job["relabel_configs"]:
            for label in rule["source_labels"]:
                match = re.fullmatch(r"__meta_kubernetes_pod_annotation_(\w+)", label)
                if match:
                    used.add(match.group(1))
        self.assertEqual(used, {re.sub(r"[^\w]", "_", key) for key in annotations})
        self.assertEqual(annotations["prometheus.io/port"],
                         str(next(p["containerPort"] for p in self.server["ports"] if p["name"] == "metrics")))
        self.assertEqual(job["kubernetes_sd_configs"][0]["namespaces"]["names"], [self.kustomization["namespace"]])
        # Debian's promtool is built without Kubernetes discovery, so the
        # address rewrite is checked here: pod IP with the declared port -> metrics port.
        address = next(r for r in job["relabel_configs"] if r.get("target_label") == "__address__")
        rewritten = re.sub("^(?:" + address["regex"] + ")$",
                           address["replacement"].replace("$", "\\"), "10.1.2.3:50051;8080")
        self.assertEqual(rewritten, "10.1.2.3:8080")

    @unittest.skipUnless(shutil.which("node") and os.path.isdir(
        os.path.join(K8S, "validate", "node_modules", "kubernetes-models")),
        "no node or no kubernetes-models (scripts/install-deps.sh installs it with npm)")
    def test_every_manifest_matches_the_kubernetes_api_schemas(self) -> None:
        documents = {"base": list(self.objects.values())}
        if shutil.which("kubectl"):  # the overlay as kustomize renders it
            rendered = subprocess.run(["kubectl", "kustomize", os.path.join(K8S, "overlays", "mtls")],
                                      capture_output=True, text=True, timeout=60)
            self.assertEqual(rendered.returncode, 0, rendered.stderr)
            documents["mtls"] = [d for d in yaml.safe_load_all(rendered.stdout) if d]
        for name, objects in documents.items():
            checked = validate_against_schemas(objects)
            self.assertEqual(checked.returncode, 0, f"{name}: {checked.stdout}{checked.stderr}")
            self.assertEqual(checked.stdout.count("ok "), len(objects), checked.stdout)
        broken = json.loads(json.dumps(self.deployment))
        broken["spec"]["replicas"] = "two"
        checked = validate_against_schemas([broken])  # the validator does catch a wrong type
        self.assertNotEqual(checked.returncode, 0)
        self.assertIn("replicas must be integer", checked.stdout)

    @unittest.skipUnless(shutil.which("kubectl"), "no kubectl: kustomize rendering not checked")
    def test_kustomize_renders_base_and_overlay(self) -> None:
        for folder in ("base", "overlays/mtls"):
            rendered = subprocess.run(["kubectl", "kustomize", os.path.join(K8S, folder)],
                                      capture_output=True, text=True, timeout=60)
            self.assertEqual(rendered.returncode, 0, rendered.stderr)
            docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
            kinds = sorted(d["kind"] for d in docs)
            self.assertEqual(kinds, ["Deployment", "HorizontalPodAutoscaler", "Namespace",
                                     "PodDisruptionBudget", "Service"], folder)
            for doc in docs:
                if doc["kind"] != "Namespace":
                    self.assertEqual(doc["metadata"]["namespace"], "matid")


class GreengrassTest(unittest.TestCase):
    def test_recipes_use_only_configuration_they_define(self) -> None:
        recipes = {}
        for path in glob.glob(os.path.join(DEPLOY, "greengrass", "*.yaml")):
            recipe = load_all(path)[0]
            recipes[recipe["ComponentName"]] = recipe
            self.assertEqual(os.path.basename(path), recipe["ComponentName"] + ".yaml")
        self.assertEqual(set(recipes), {"com.matid.Server", "com.matid.Camera", "com.matid.Bridge",
                                        "com.matid.Mosquitto", "com.matid.Model", "com.matid.Plc",
                                        "com.matid.Sparkplug"})
        # A new model version must not restart the server.
        self.assertEqual(recipes["com.matid.Server"]["ComponentDependencies"]["com.matid.Model"]
                         ["DependencyType"], "SOFT")
        for name, recipe in recipes.items():
            defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
            defined = set(defaults)
            # The nucleus does not interpolate recipe variables inside
            # configuration values unless told to (interpolateComponentConfiguration).
            for key, value in defaults.items():
                self.assertNotRegex(str(value), r"\{\w+:", f"{name}: {key}")
            for manifest in recipe["Manifests"]:
                text = json.dumps(manifest["Lifecycle"])
                used = set(re.findall(r"\{configuration:/(\w+)\}", text))
                self.assertLessEqual(used, defined, name)
                # Every program runs; the model component only installs files.
                step = "Install" if name == "com.matid.Model" else "Run"
                self.assertIn(step, manifest["Lifecycle"], name)
            for dependency in recipe.get("ComponentDependencies", {}):
                self.assertIn(dependency, recipes)


class AwsFilesTest(unittest.TestCase):
    def test_policy_and_rules_parse_and_route_the_result_topic(self) -> None:
        for path in glob.glob(os.path.join(DEPLOY, "aws", "*.json")):
            with open(path) as f:
                document = json.load(f)
            if "sql" in document:
                self.assertIn("FROM 'matid/+/results'", document["sql"], path)
                self.assertTrue(document["actions"], path)
        with open(os.path.join(DEPLOY, "aws", "iot-policy.json")) as f:
            policy = json.load(f)
        actions = {s["Action"] for s in policy["Statement"]}
        self.assertEqual(actions, {"iot:Connect", "iot:Publish"})
        # The Greengrass bridge connects as <thing>-matid-bridge, beside the nucleus.
        connect = next(s for s in policy["Statement"] if s["Action"] == "iot:Connect")
        self.assertIn("client/${iot:Connection.Thing.ThingName}-matid-bridge", " ".join(connect["Resource"]))
        # Model events go out on the box's own topic (the bridge's default cloud topic).
        publish = next(s for s in policy["Statement"] if s["Action"] == "iot:Publish")
        self.assertIn("topic/matid/${iot:Connection.Thing.ThingName}/events",
                      " ".join(publish["Resource"]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
