#!/usr/bin/env bash
# Installs everything matid needs to build, test and run, from Debian 12 (bookworm) packages only.
# Safe to run again: apt-get skips what is already there. Needs root (or sudo).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake pkg-config ccache git
  # libFuzzer (scripts/fuzz.sh), perf (bench profiling), clang-format (the cxx_format test)
  clang libclang-rt-14-dev linux-perf clang-format
  # serving core
  libtorch-dev libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libopencv-dev libabsl-dev prometheus-cpp-dev libgtest-dev libgmock-dev
  # clients: MQTT and the durable spool; Modbus TCP for the PLC (and its test PLC)
  libmosquitto-dev nlohmann-json3-dev libsqlite3-dev mosquitto mosquitto-clients
  libmodbus-dev python3-pymodbus
  # Python side: training/export and the cross-language client test
  python3 python3-torch python3-torchvision python3-opencv python3-numpy
  python3-sklearn python3-matplotlib python3-grpcio python3-protobuf
  python3-paho-mqtt python3-jsonschema python3-yaml python3-pyflakes
  # containers: the engine (dockerd, run as root), compose 1.29, and
  # debootstrap for the base image where Docker Hub is out of reach
  docker.io docker-compose debootstrap
  # data and tooling used by the demo and tests
  dataset-fashion-mnist prometheus openssl libssl-dev curl
  # jq: Firehose's partition query, run as Firehose runs it (athena_sql_test)
  jq
)

# Eclipse Tahu's Sparkplug B codec, the decoder of tests/sparkplug_test.py
# (npm registry; a test tool, no shipped program uses it).
install_sparkplug_decoder() {
  local dir="tests/sparkplug"
  [ -d "$dir/node_modules/sparkplug-payload" ] && return 0
  if command -v npm >/dev/null; then
    (cd "$(dirname "$0")/../$dir" && npm ci --no-audit --no-fund --loglevel=error) ||
      echo "install-deps: npm ci in $dir failed; sparkplug_test will fail" >&2
  else
    echo "install-deps: no npm: sparkplug_test will fail (it needs Tahu's decoder)" >&2
  fi
}

# The Kubernetes schema validator for the deploy tests (npm registry; where
# node/npm are installed). Quick when already there.
install_k8s_validator() {
  local dir="deploy/k8s/validate"
  [ -d "$dir/node_modules/kubernetes-models" ] && return 0
  if command -v npm >/dev/null; then
    (cd "$(dirname "$0")/../$dir" && npm ci --no-audit --no-fund --loglevel=error) ||
      echo "install-deps: npm ci in $dir failed; Kubernetes schema checks will be skipped" >&2
  else
    echo "install-deps: no npm: Kubernetes schema checks will be skipped (structural checks still run)"
  fi
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  install_k8s_validator
  install_sparkplug_decoder
  exit 0
fi

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_k8s_validator
install_sparkplug_decoder
