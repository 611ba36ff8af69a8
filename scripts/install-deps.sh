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
  # pymodbus 3.0 imports serial_asyncio even for TCP; Debian only recommends it
  python3-serial-asyncio
  # Python side: training/export and the cross-language client test
  python3 python3-torch python3-torchvision python3-opencv python3-numpy
  python3-sklearn python3-matplotlib python3-grpcio python3-protobuf python3-cryptography
  python3-paho-mqtt python3-jsonschema python3-yaml python3-pyflakes
  # containers: the engine (dockerd, run as root), compose 1.29, and
  # debootstrap for the base image where Docker Hub is out of reach
  docker.io docker-compose debootstrap
  # data and tooling used by the demo and tests
  dataset-fashion-mnist prometheus openssl libssl-dev curl
  # jq: Firehose's partition query, run as Firehose runs it (athena_sql_test)
  jq
)

# Test tools from the npm registry, each in
# its folder's node_modules from its package-lock.json; quick when there:
#   deploy/k8s/validate  the Kubernetes API schemas (deploy_files_test)
#   tests/sparkplug      Eclipse Tahu's Sparkplug B codec (sparkplug_test)
# No shipped program uses them.
npm_ci_in() {  # DIR MARKER_MODULE WHAT_FAILS_WITHOUT_IT
  local dir
  dir="$(dirname "$0")/../$1"
  [ -d "$dir/node_modules/$2" ] && return 0
  if command -v npm >/dev/null; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) ||
      echo "install-deps: npm ci in $1 failed; $3" >&2
  else
    echo "install-deps: no npm: $3" >&2
  fi
}

install_npm_test_tools() {
  npm_ci_in deploy/k8s/validate kubernetes-models \
    "Kubernetes schema checks will be skipped (structural checks still run)"
  npm_ci_in tests/sparkplug sparkplug-payload "sparkplug_test will fail (it needs Tahu's decoder)"
}

# Node.js and npm for those test tools: Debian's, unless a node with its own
# npm is already installed (installing Debian's npm beside it would clash).
command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  install_npm_test_tools
  exit 0
fi

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_npm_test_tools
