#!/bin/sh
# First start: a cluster whose superuser `postgres` has POSTGRES_PASSWORD, reached over TCP with
# scram-sha-256 (trust only on the container's own socket), as the official image does.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # POSTGRES_HOST_AUTH_METHOD=trust (development only) needs no password, as in the official image.
    method=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
    pwfile=$(mktemp)
    if [ "$method" = trust ]; then
        : > "$pwfile"
    else
        : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (or POSTGRES_HOST_AUTH_METHOD=trust)}"
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    fi
    if [ -s "$pwfile" ]; then pwopt="--pwfile=$pwfile"; else pwopt=; fi
    # shellcheck disable=SC2086  # pwopt is one word or none
    initdb --username=postgres $pwopt --auth-local=trust --auth-host="$method" \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all $method" >> "$PGDATA/pg_hba.conf"
    echo "initialised $PGDATA"
fi
if [ "${1:-}" = postgres ]; then
    shift
    exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"
