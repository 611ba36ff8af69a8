"""The Docker engine for container tests: uses a running dockerd, or starts
Debian's dockerd as root and stops it again when done (only if it started
it). Commands use Debian's docker CLI (BuildKit built in) and docker-compose.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else (shutil.which("docker") or "docker")
COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"
# docker-compose runs `docker` for some steps: Debian's first on PATH.
ENV = dict(os.environ, PATH="/usr/bin:/usr/sbin:" + os.environ.get("PATH", ""))


def engine_answers() -> bool:
    try:
        return subprocess.run([DOCKER, "info"], capture_output=True, timeout=20, env=ENV).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class DockerEngine:
    """Context manager: a Docker engine that answers, for the `with` block."""

    def __init__(self, log_dir: str = None) -> None:
        self.process = None
        self.log_dir = log_dir or tempfile.gettempdir()

    def __enter__(self) -> "DockerEngine":
        if engine_answers():
            return self
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if not os.path.exists(dockerd):
            raise RuntimeError("dockerd is missing: apt-get install docker.io (scripts/install-deps.sh)")
        self.log = open(os.path.join(self.log_dir, "dockerd.log"), "a")
        self.process = subprocess.Popen([dockerd], stdout=self.log, stderr=subprocess.STDOUT, env=ENV,
                                        start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.process.returncode}; see {self.log.name}")
            if engine_answers():
                return self
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"dockerd did not answer within 60 s; see {self.log.name}")

    def __exit__(self, *exc) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()
        self.process = None


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, env=ENV)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout
