#!/usr/bin/env bash
# Make what Dockyard needs answer on this machine: PostgreSQL, Redis and RabbitMQ on loopback (and,
# with --docker, a Docker engine and the registry-free test image). The one provisioning script:
# `.ci/run`, `make up` and `make test` all call it.
#
#   deploy/provision.sh [--tests | --docker | --docker-if-root]
#
# --docker: the Docker engine is required; --tests: that, and Debian's Chromium, which the browser
# test of examples/web drives (make test, CI); --docker-if-root: set the engine up when running
# as root, otherwise only warn when it is missing (make up: tasks then fail ENGINE_UNREACHABLE).
#
# Every step checks before it acts, so on a machine where everything answers it only says so.
# Installing or starting what is missing needs root (apt-get, pg_ctlcluster, no systemd needed);
# without root it names what is missing and how to start it, and fails.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

with_docker=
with_browser=
for arg in "$@"; do
  case $arg in
  --docker) with_docker=1 ;;
  --tests) with_docker=1 with_browser=1 ;;
  --docker-if-root)
    if [ "$(id -u)" = 0 ]; then
      with_docker=1
    elif ! docker info >/dev/null 2>&1; then
      echo "warning: no Docker engine answers; tasks will fail ENGINE_UNREACHABLE until one does" >&2
    fi
    ;;
  *)
    echo "usage: $0 [--tests | --docker | --docker-if-root]" >&2
    exit 2
    ;;
  esac
done

export DEBIAN_FRONTEND=noninteractive

step() { printf '\n==> %s\n' "$*"; }
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  "$@"
}

# wait_for NAME SECONDS COMMAND...: poll COMMAND once a second until it succeeds or time runs out.
wait_for() {
  local name=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "$name did not answer within ${seconds}s (last check: $*)" >&2
      return 1
    fi
    sleep 1
  done
  echo "$name answers"
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }
# The engine answers and has the test image .ci/docker-engine.sh builds.
docker_ready() { docker image inspect "${DOCKYARD_TEST_IMAGE:-dockyard/busybox:test}" >/dev/null 2>&1; }
amqp_port_open() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
compose_available() { docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; }

# make up where a Docker engine answers (root or not): PostgreSQL, RabbitMQ and Redis that do not
# answer start as containers of docker-compose.yml (deploy/infra-up.sh) instead of being
# installed. Not for --tests: the chaos suite restarts them on this host (pg_ctlcluster,
# rabbitmqctl); DOCKYARD_INFRA=host always installs them.
infra_in_containers=
if [ -z "$with_browser" ] && [ "${DOCKYARD_INFRA:-}" != host ] &&
  ! { port_open 5432 && port_open 5672 && port_open 6379; } &&
  docker info >/dev/null 2>&1 && compose_available; then
  step "PostgreSQL, RabbitMQ and Redis as containers (a Docker engine answers; deploy/infra-up.sh)"
  run bash deploy/infra-up.sh
  infra_in_containers=1
fi

missing=()
command -v make >/dev/null || missing+=(make)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3 python3-venv)
if [ -z "$infra_in_containers" ]; then
  { command -v pg_ctlcluster && command -v pg_isready && command -v psql; } >/dev/null ||
    missing+=(postgresql)
  compgen -G '/etc/postgresql/*/main' >/dev/null || missing+=(postgresql)
  { command -v redis-server && command -v redis-cli; } >/dev/null || missing+=(redis-server)
  { command -v rabbitmq-server && command -v rabbitmqctl; } >/dev/null || missing+=(rabbitmq-server)
fi
# python-magic (the files service's MIME detection) loads libmagic at run time.
ldconfig -p | grep 'libmagic\.so\.1 ' >/dev/null || missing+=(libmagic1)  # not -q: SIGPIPE + pipefail
# newman (tests/test_postman.py runs the Postman collection) is installed by npm ci.
{ command -v node && command -v npm; } >/dev/null || missing+=(nodejs npm)
# tests/test_web_app.py drives examples/web in Debian's Chromium (playwright-core downloads none).
if [ -n "$with_browser" ] && ! [ -x /usr/bin/chromium ]; then missing+=(chromium); fi
# tests/test_compose_stack.py starts docker-compose.yml: the Compose v2 plugin if the Docker
# client has it, else Debian's docker-compose 1.29 (which also runs it); debootstrap builds the
# images' base (deploy/base-image.sh).
if [ -n "$with_docker" ]; then
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
fi
# Whether PostgreSQL, Redis and RabbitMQ answer (containers' ports: pg_isready may be missing).
infra_answers() {
  if [ -n "$infra_in_containers" ]; then
    port_open 5432 && port_open 6379 && port_open 5672
  else
    pg_up && redis_up && amqp_port_open
  fi
}
if ((${#missing[@]} == 0)) && infra_answers && { [ -z "$with_docker" ] || docker_ready; }; then
  echo "PostgreSQL, Redis and RabbitMQ answer on loopback${with_docker:+, and so does a Docker engine}"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "Missing: ${missing[*]:-none}; not all of PostgreSQL (127.0.0.1:5432), Redis (:6379)" \
    "and RabbitMQ (:5672)${with_docker:+ and a Docker engine} answer; only root can install or start them." >&2
  echo "Run this as root once (sudo $0 ${with_docker:+--docker}), or start them yourself." >&2
  exit 1
fi

step "Installing what is missing"
if ((${#missing[@]})); then
  run apt-get update -q
  run apt-get install -y -q "${missing[@]}" </dev/null
else
  echo "all installed"
fi

# Installed here unless they run as containers (above).
if [ -z "$infra_in_containers" ]; then
  step "PostgreSQL"
  # shellcheck disable=SC2012  # the entries are version numbers such as 15
  pg_version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if pg_up; then
    echo "already accepting connections on 127.0.0.1:5432"
  elif pg_ctlcluster "$pg_version" main status >/dev/null 2>&1; then
    echo "cluster $pg_version/main is running; waiting for it to accept connections"
  else
    run pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start
  fi
  wait_for PostgreSQL 60 pg_up

  # The test suite connects over 127.0.0.1 as postgres (to provision) and as each service's role,
  # which it creates without a password: loopback TCP must be trusted for all roles. A fresh
  # Debian cluster asks for scram-sha-256 there, so put trust lines first (development and CI
  # machines only; docs/operations.md has what production does).
  hba=$(cd / && runuser -u postgres -- psql -XtAc 'SHOW hba_file')
  first_loopback_rule=$(awk '$1 ~ /^host/ && $4 == "127.0.0.1/32" { print $2, $3, $5; exit }' "$hba")
  if [ "$first_loopback_rule" = "all all trust" ]; then
    echo "$hba already trusts loopback TCP connections"
  else
    echo "making $hba trust loopback TCP connections"
    tmp=$(mktemp)
    {
      echo "# Added by .ci/run: the test suite's roles have no passwords."
      echo "host all all 127.0.0.1/32 trust"
      echo "host all all ::1/128 trust"
      cat "$hba"
    } >"$tmp"
    cat "$tmp" >"$hba"
    rm -f "$tmp"
    run pg_ctlcluster --skip-systemctl-redirect "$pg_version" main reload
    sleep 1
  fi
  run psql -X -w -h 127.0.0.1 -U postgres -d postgres -tAc 'SELECT version()'

  # The test suite runs in parallel workers (pytest-xdist), each with its own stack of services
  # and pools: Debian's default of 100 connections is too few for three of them.
  max_connections=$(psql -X -w -h 127.0.0.1 -U postgres -d postgres -tAc 'SHOW max_connections')
  if [ "$max_connections" -ge 300 ]; then
    echo "max_connections is $max_connections"
  else
    echo "raising max_connections from $max_connections to 300 (restarts PostgreSQL)"
    run psql -X -w -h 127.0.0.1 -U postgres -d postgres -tAc 'ALTER SYSTEM SET max_connections = 300'
    run pg_ctlcluster --skip-systemctl-redirect "$pg_version" main restart
    wait_for PostgreSQL 60 pg_up
  fi

  step "Redis"
  if redis_up; then
    echo "already answers PING on 127.0.0.1:6379"
  else
    mkdir -p /var/lib/redis /var/log/redis
    run redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  fi
  wait_for Redis 30 redis_up

  step "RabbitMQ"
  if amqp_port_open; then
    echo "already listening on 127.0.0.1:5672"
  elif rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    echo "node is running; waiting for it to listen on 5672"
  else
    run rabbitmq-server -detached
  fi
  wait_for "RabbitMQ (port 5672)" 180 amqp_port_open
  run timeout 180 rabbitmqctl await_startup
fi

if [ -n "$with_docker" ]; then
  step "Docker engine and the registry-free test image (tasks run in containers)"
  run bash .ci/docker-engine.sh
fi
