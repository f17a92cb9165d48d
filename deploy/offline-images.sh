#!/usr/bin/env bash
# Every image docker-compose.yml runs, built on a machine that reaches Debian's mirror and PyPI
# but no image registry (this workplace, air-gapped CI): the Debian base (deploy/base-image.sh),
# Dockyard's image on it, and stand-ins for the official infrastructure images built from Debian
# packages (deploy/images/*.Dockerfile). Prints the variables that point compose at them:
#
#   deploy/offline-images.sh > .images.env && docker-compose --env-file .images.env up -d
#
# Grafana has no Debian package and no stand-in: it runs only where grafana/grafana-oss can be
# pulled (the `dashboards` profile). Layer caching makes a second run take seconds; FORCE=1
# rebuilds the base. Runs as root (debootstrap).
set -Eeuo pipefail
# The classic builder: this engine has no buildx (the root .dockerignore keeps .venv and .git out).
export DOCKER_BUILDKIT=0

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=${BASE_IMAGE:-dockyard/base:bookworm}
TAG=${OFFLINE_TAG:-bookworm}
# Name in the compose file's variables → image built from deploy/images/<name>.Dockerfile.
STAND_INS=(postgres rabbitmq redis prometheus haproxy)

build() {  # build IMAGE DOCKERFILE CONTEXT
  # Host network: the build steps reach Debian's mirror or PyPI, and this engine may have no
  # bridge network at all (dockerd --bridge=none).
  docker build --quiet --network host --build-arg "BASE_IMAGE=$BASE" -t "$1" -f "$2" "$3" >/dev/null
  echo "built $1" >&2
}

"$REPO/deploy/base-image.sh" "$BASE" >&2
build "${DOCKYARD_IMAGE:-dockyard:dev}" "$REPO/deploy/Dockerfile" "$REPO"
echo "DOCKYARD_IMAGE=${DOCKYARD_IMAGE:-dockyard:dev}"
for name in "${STAND_INS[@]}"; do
  image="dockyard/offline-$name:$TAG"
  build "$image" "$REPO/deploy/images/$name.Dockerfile" "$REPO/deploy/images"
  echo "${name^^}_IMAGE=$image"
done
