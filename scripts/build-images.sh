#!/usr/bin/env bash
# Builds the matid container images from this checkout with BuildKit:
# matid-server, matid-camera, matid-bridge, matid-plc, matid-sparkplug,
# matid-mosquitto, matid-prometheus
# (tag MATID_IMAGE_TAG, default latest; registry prefix MATID_REGISTRY, e.g.
# "registry.plant.local:5000/"). Makes the base image first when it is missing
# (scripts/base-image.sh: pulled, or built from Debian packages offline).
# Prints each image's build time and size. Needs root and a running dockerd.
# Usage: bash scripts/build-images.sh [target ...]
# The "model" target (not built by default) packs MATID_MODEL_DIR (default
# models/fashion-mnist) as matid-model:<its folder name>, for Kubernetes.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's docker CLI has BuildKit built in; a newer CLI needs the buildx
# plugin for it, which Debian does not package.
docker_cli="${MATID_DOCKER:-$( [ -x /usr/bin/docker ] && echo /usr/bin/docker || echo docker )}"
base="${MATID_BASE_IMAGE:-debian:bookworm-slim}"
tag="${MATID_IMAGE_TAG:-latest}"
registry="${MATID_REGISTRY:-}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(server camera bridge plc sparkplug mosquitto prometheus)

MATID_DOCKER="$docker_cli" bash scripts/base-image.sh "$base"
for target in "${targets[@]}"; do
  image="${registry}matid-${target}:${tag}"
  extra=()
  if [ "$target" = model ]; then
    model_dir="${MATID_MODEL_DIR:-models/fashion-mnist}"
    [ -f "$model_dir/metadata.json" ] || { echo "build-images: no model in $model_dir (metadata.json)" >&2; exit 1; }
    image="${registry}matid-model:$(basename "$model_dir")"
    extra=(--build-arg MODEL_DIR="$model_dir")
  fi
  start=$(date +%s)
  DOCKER_BUILDKIT=1 "$docker_cli" build --progress=plain "${extra[@]}" \
    --build-arg BASE_IMAGE="$base" --build-arg BUILD_JOBS="${MATID_JOBS:-2}" \
    -f deploy/docker/Dockerfile --target "$target" -t "$image" . \
    >"${MATID_IMAGE_LOG_DIR:-/tmp}/matid-image-$target.log" 2>&1 || {
      tail -n 40 "${MATID_IMAGE_LOG_DIR:-/tmp}/matid-image-$target.log" >&2
      echo "build-images: $image failed (log: ${MATID_IMAGE_LOG_DIR:-/tmp}/matid-image-$target.log)" >&2
      exit 1
    }
  size=$("$docker_cli" image inspect -f '{{.Size}}' "$image")
  echo "build-images: $image built in $(( $(date +%s) - start ))s, $(( size / 1000000 )) MB"
done
# Images replaced by this build leave dangling layers behind: remove matid's.
"$docker_cli" image prune -f --filter label=org.opencontainers.image.vendor=matid >/dev/null
