#!/usr/bin/python3
"""Checks the deployment files without a container engine or a cluster:
docker-compose config, the Dockerfile's targets and COPY sources, the
Kubernetes objects' references to each other (names, ports, labels), the
Greengrass recipes' configuration references, and the AWS JSON files."""
import glob
import json
import os
import re
import subprocess
import unittest

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(ROOT, "deploy")


def load_all(path):
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
        self.assertEqual(set(config["services"]),
                         {"mosquitto", "server", "camera", "bridge", "prometheus"})
        with open(os.path.join(ROOT, "docker-compose.yml")) as f:
            self.assertNotIn("version", yaml.safe_load(f))  # obsolete key

    def test_services_build_targets_that_the_dockerfile_has(self) -> None:
        with open(os.path.join(DEPLOY, "docker", "Dockerfile")) as f:
            dockerfile = f.read()
        targets = set(re.findall(r"^FROM \S+ AS (\S+)", dockerfile, re.M))
        for name, service in compose_config()["services"].items():
            self.assertIn(service["build"]["target"], targets, name)
        for source in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.M):
            self.assertTrue(os.path.exists(os.path.join(ROOT, source)), source)

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

    def test_camera_device_is_an_opt_in_override(self) -> None:
        self.assertNotIn("devices", compose_config()["services"]["camera"])
        camera = compose_config("docker-compose.yml", "deploy/compose/camera-device.yml")["services"]["camera"]
        self.assertEqual(len(camera["devices"]), 1)
        self.assertIn("video", camera["group_add"])

    def test_images_run_as_non_root_with_health_checks(self) -> None:
        with open(os.path.join(DEPLOY, "docker", "Dockerfile")) as f:
            stages = re.split(r"^FROM ", f.read(), flags=re.M)[1:]
        by_name = {re.match(r"\S+ AS (\S+)", stage).group(1): stage for stage in stages}
        for target in ("server", "camera", "bridge", "mosquitto", "prometheus"):
            self.assertRegex(by_name[target], r"(?m)^USER (?!root|0)", target)
            self.assertRegex(by_name[target], r"(?m)^HEALTHCHECK ", target)
        self.assertIn("matid-health-probe", by_name["server"].split("HEALTHCHECK", 1)[1])


class KubernetesTest(unittest.TestCase):
    def setUp(self) -> None:
        self.objects = {}
        for path in glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml")):
            for doc in load_all(path):
                self.objects[(doc["kind"], doc["metadata"]["name"])] = doc

    def test_objects_reference_each_other_consistently(self) -> None:
        deployment = self.objects[("Deployment", "matid-server")]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(deployment["spec"]["selector"]["matchLabels"], labels)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}

        service = self.objects[("Service", "matid-server")]
        self.assertEqual(service["spec"]["clusterIP"], "None")  # headless: client-side balancing
        self.assertEqual(service["spec"]["selector"], labels)
        for port in service["spec"]["ports"]:
            self.assertIn(port["targetPort"], ports)

        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(container[probe]["grpc"]["port"], ports["grpc"])
        self.assertIn("cpu", container["resources"]["requests"])
        self.assertIn("memory", container["resources"]["requests"])

        hpa = self.objects[("HorizontalPodAutoscaler", "matid-server")]
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment")
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], "matid-server")
        pdb = self.objects[("PodDisruptionBudget", "matid-server")]
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], labels)
        self.assertLess(pdb["spec"]["minAvailable"], hpa["spec"]["minReplicas"])
        for volume in deployment["spec"]["template"]["spec"]["volumes"]:
            claim = volume["persistentVolumeClaim"]["claimName"]
            self.assertIn(("PersistentVolumeClaim", claim), self.objects)
        namespaces = {doc["metadata"].get("namespace") for doc in self.objects.values()
                      if doc["kind"] != "Namespace"}
        self.assertEqual(namespaces, {"matid"})


class GreengrassTest(unittest.TestCase):
    def test_recipes_use_only_configuration_they_define(self) -> None:
        recipes = {}
        for path in glob.glob(os.path.join(DEPLOY, "greengrass", "*.yaml")):
            recipe = load_all(path)[0]
            recipes[recipe["ComponentName"]] = recipe
            self.assertEqual(os.path.basename(path), recipe["ComponentName"] + ".yaml")
        self.assertEqual(set(recipes), {"com.matid.Server", "com.matid.Camera", "com.matid.Bridge",
                                        "com.matid.Mosquitto"})
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
                self.assertIn("Run", manifest["Lifecycle"])
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
