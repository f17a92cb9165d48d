#!/usr/bin/env bash
# Build a Debian base image without a registry: debootstrap a minimal bookworm root with Python
# and what Dockyard's image needs at run time, then `docker import` it. For machines that reach
# Debian's package mirror but no image registry (this workplace, air-gapped CI):
#
#   deploy/base-image.sh [IMAGE]          (default dockyard/base:bookworm)
#   docker build --build-arg BASE_IMAGE=dockyard/base:bookworm -f deploy/Dockerfile -t dockyard .
#
# Idempotent: an image that exists already is kept (pass FORCE=1 to rebuild). Runs as root.
set -Eeuo pipefail

IMAGE=${1:-dockyard/base:bookworm}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the runtime stage needs: Python with venv (the build stage makes the virtualenv),
# libmagic (python-magic), CA certificates (S3 over TLS), tini (PID 1 that reaps and forwards).
PACKAGES=python3,python3-venv,libmagic1,ca-certificates,tini

if [ -z "${FORCE:-}" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE exists (FORCE=1 rebuilds it)"
  exit 0
fi
command -v debootstrap >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap </dev/null
}

root=$(mktemp -d /var/tmp/dockyard-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debootstrap $SUITE (minbase + $PACKAGES) into $root"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR"
# The image trusts what this host trusts: a TLS-inspecting proxy's CA on the way to PyPI, say
# (the build stage installs requirements.lock from the index this host reaches).
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
# Smaller and reproducible: no package lists, caches or logs in the image.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/* "$root"/tmp/*
tar --numeric-owner -C "$root" -c . |
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    - "$IMAGE"
docker run --rm --network none "$IMAGE" python3 -c 'import sys, venv; print("python", sys.version.split()[0])'
echo "built $IMAGE"
