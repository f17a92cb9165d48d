# Offline stand-in for the `mher/flower:2.0` image: Celery Flower from PyPI in a virtualenv on the
# Debian base (deploy/offline-images.sh), `celery` on the PATH, run as an unprivileged user.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ARG FLOWER_VERSION=2.0.1
RUN set -eu; \
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv /opt/flower; \
    /opt/flower/bin/pip install --no-cache-dir --disable-pip-version-check "flower==${FLOWER_VERSION}"; \
    useradd --system --uid 10002 --no-create-home --home-dir /tmp flower
ENV PATH=/opt/flower/bin:$PATH
USER flower
EXPOSE 5555
CMD ["celery", "flower"]
