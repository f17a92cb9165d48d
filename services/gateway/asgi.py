"""ASGI entry point: `services.gateway.asgi:app`, the public app alone (tests, benchmarks).

Serve it with `python -m services.gateway.server` (or `python -m services.gateway.asgi`): that
also runs the internal listener, bounds request headers, and never believes a forwarded
address from an unconfigured proxy. Plain `uvicorn services.gateway.asgi:app` trusts
X-Forwarded-For from 127.0.0.1 unless given `--no-proxy-headers`.
"""

from services.gateway.app import create_app

app = create_app()

if __name__ == "__main__":
    import sys

    from services.gateway.server import main

    sys.exit(main())
