"""gunicorn settings shared by the auth, files and tasks services; bind and app come per command."""

import os

from shared.config import ServerTlsSettings

# One process per service: each worker would build its own app (engine pool, JWKS cache,
# Redis client), and threads already overlap the I/O these services wait on.
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Idle keep-alive connections wait in gthread's poller, not in a thread, so keeping them open
# for clients that reuse connections (the gateway) costs little.
keepalive = 15
timeout = 30
graceful_timeout = 10
# gunicorn 27's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl), which
# the three services would fight over; they are managed by signals (supervisord, docker) instead.
control_socket_disable = True

# HTTPS when TLS_CERT_FILE and TLS_KEY_FILE are set (the gateway then trusts TLS_CA_FILE).
_tls = ServerTlsSettings()
if _tls.CERT_FILE:
    certfile = _tls.CERT_FILE
    keyfile = _tls.KEY_FILE
