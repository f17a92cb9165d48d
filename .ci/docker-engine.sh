#!/usr/bin/env bash
# Make a Docker engine answer on this machine and build the registry-free test image
# dockyard/busybox:test. Idempotent: every step checks before it acts. Runs as root, without
# systemd. The engine gets no bridge and no iptables rules: task containers run without a
# network by default, and CI machines have no registry to pull from anyway.
set -Eeuo pipefail

export DEBIAN_FRONTEND=noninteractive
TEST_IMAGE=${DOCKYARD_TEST_IMAGE:-dockyard/busybox:test}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

step() { printf '\n==> %s\n' "$*"; }
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  "$@"
}
engine_up() { docker info >/dev/null 2>&1; }

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then
    run apt-get update -q
    apt_updated=1
  fi
  run apt-get install -y -q "$@" </dev/null
}

step "Docker engine package"
if command -v dockerd >/dev/null; then
  echo "dockerd is installed: $(command -v dockerd)"
else
  apt_install docker.io
fi

step "Docker engine process"
if engine_up; then
  echo "the engine already answers"
else
  echo "starting dockerd in the background (log: $DOCKERD_LOG)"
  mkdir -p "$(dirname "$DOCKERD_LOG")"
  # setsid: the engine must outlive this script and the shell that ran it.
  setsid dockerd --bridge=none --iptables=false >>"$DOCKERD_LOG" 2>&1 </dev/null &
  deadline=$((SECONDS + 60))
  until engine_up; do
    if ((SECONDS >= deadline)); then
      echo "dockerd did not answer within 60s; last lines of $DOCKERD_LOG:" >&2
      tail -n 30 "$DOCKERD_LOG" >&2
      exit 1
    fi
    sleep 1
  done
  echo "the engine answers"
fi
run docker version --format 'client {{.Client.Version}}, server {{.Server.Version}} (API {{.Server.APIVersion}})'

step "Test image $TEST_IMAGE"
if docker image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
  echo "$TEST_IMAGE is present"
else
  [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx static ||
    dpkg -s busybox-static >/dev/null 2>&1 || apt_install busybox-static
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  mkdir -p "$rootfs"/{bin,tmp,etc,proc,sys,dev}
  # A tmpfs mounted on /tmp takes this directory's mode: world-writable and sticky, as usual.
  chmod 1777 "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in sh ash echo sleep cat wc yes head tail dd true false tr ls rm mkdir touch \
    env id ip ifconfig printf seq kill ps grep sed awk date hostname uname nproc; do
    ln -s busybox "$rootfs/bin/$applet"
  done
  # nobody (65534) exists so that `user: 65534` resolves a name inside the container.
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' \
    >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  echo "importing a root filesystem with busybox-static as $TEST_IMAGE"
  tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/bin' - "$TEST_IMAGE"
fi
run docker run --rm --network none "$TEST_IMAGE" sh -c 'echo test image works'
