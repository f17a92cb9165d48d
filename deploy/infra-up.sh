#!/usr/bin/env bash
# PostgreSQL, RabbitMQ and Redis for `make up` as containers: the services of docker-compose.yml
# with deploy/compose.infra.yml over them (published on 127.0.0.1 with make up's credentials).
# deploy/provision.sh runs this when a Docker engine answers and they do not; no root needed.
#
#   deploy/infra-up.sh            start them and wait until each is healthy
#   deploy/infra-up.sh down [-v]  stop and remove them (-v: and their data)
#
# Images: the official ones by default; POSTGRES_IMAGE, RABBITMQ_IMAGE and REDIS_IMAGE (the
# environment or ./.env) select others, e.g. the stand-ins of deploy/offline-images.sh where no
# registry is reachable. INFRA_POSTGRES_PORT, INFRA_RABBITMQ_PORT and INFRA_REDIS_PORT move the
# published ports; DOCKYARD_INFRA_PROJECT names the compose project (dockyard-infra).
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SERVICES=(postgres rabbitmq redis)
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  echo "infra-up.sh: needs the Docker Compose v2 plugin or docker-compose" >&2
  exit 1
fi
compose+=(-p "${DOCKYARD_INFRA_PROJECT:-dockyard-infra}" -f docker-compose.yml
  -f deploy/compose.infra.yml)
# Compose checks the whole file, whose Dockyard services need a signing key these three never read.
export AUTH_JWT_PRIVATE_KEY=${AUTH_JWT_PRIVATE_KEY:-not-read-by-the-infrastructure}

if [ "${1:-up}" = down ]; then
  shift
  exec "${compose[@]}" down --remove-orphans "$@"
fi

echo "starting ${SERVICES[*]} as containers (compose project ${DOCKYARD_INFRA_PROJECT:-dockyard-infra})"
"${compose[@]}" up -d --no-build "${SERVICES[@]}"
deadline=$((SECONDS + ${INFRA_TIMEOUT:-180}))
for service in "${SERVICES[@]}"; do
  container=$("${compose[@]}" ps -q "$service")
  until [ "$(docker inspect --format '{{.State.Health.Status}}' "$container")" = healthy ]; do
    if ((SECONDS >= deadline)); then
      echo "infra-up.sh: $service is not healthy in time; its last log lines:" >&2
      docker logs --tail 30 "$container" >&2
      exit 1
    fi
    sleep 1
  done
  echo "$service is healthy"
done
