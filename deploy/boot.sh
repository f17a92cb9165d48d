#!/bin/sh
# Container entry point, after microblog-api's boot.sh: migrate this container's service schema
# (DOCKYARD_MIGRATE, e.g. "auth"), then become the command so it receives signals directly.
# The roles and schemas themselves are created once by the compose file's db-bootstrap job.
set -eu

if [ -n "${DOCKYARD_MIGRATE:-}" ]; then
    attempt=1
    # The database may still be recovering after its healthcheck first passes: retry a little.
    # shellcheck disable=SC2086  # unquoted on purpose: DOCKYARD_MIGRATE may name several services
    until dockyard db migrate $DOCKYARD_MIGRATE; do
        if [ "$attempt" -ge 5 ]; then
            echo "boot.sh: migrating $DOCKYARD_MIGRATE failed $attempt times; giving up" >&2
            exit 1
        fi
        echo "boot.sh: migration failed, retrying in 5s ($attempt/5)" >&2
        attempt=$((attempt + 1))
        sleep 5
    done
fi

exec "$@"
