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


class ComposeTest(unittest.TestCase):
    def test_docker_compose_config_is_valid(self) -> None:
        env = dict(os.environ, MATID_CLOUD_ENDPOINT="example-ats.iot.eu-west-1.amazonaws.com")
        result = subprocess.run(["docker-compose", "-f", os.path.join(ROOT, "docker-compose.yml"),
                                 "config", "-q"], capture_output=True, text=True, env=env, cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_services_build_targets_that_the_dockerfile_has(self) -> None:
        with open(os.path.join(DEPLOY, "docker", "Dockerfile")) as f:
            dockerfile = f.read()
        targets = set(re.findall(r"^FROM \S+ AS (\S+)", dockerfile, re.M))
        with open(os.path.join(ROOT, "docker-compose.yml")) as f:
            compose = yaml.safe_load(f)
        self.assertEqual(set(compose["services"]),
                         {"mosquitto", "server", "camera", "bridge", "prometheus"})
        for name, service in compose["services"].items():
            self.assertIn(service["build"]["target"], targets, name)
        for source in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.M):
            self.assertTrue(os.path.exists(os.path.join(ROOT, source)), source)
        self.assertIn("USER matid", dockerfile)

    def test_server_health_check_uses_grpc_health(self) -> None:
        with open(os.path.join(ROOT, "docker-compose.yml")) as f:
            server = yaml.safe_load(f)["services"]["server"]
        self.assertIn("matid-health-probe", server["healthcheck"]["test"])


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
        self.assertEqual(set(recipes), {"com.matid.Server", "com.matid.Camera", "com.matid.Bridge"})
        for name, recipe in recipes.items():
            defined = set(recipe["ComponentConfiguration"]["DefaultConfiguration"])
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
