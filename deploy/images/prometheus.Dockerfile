# Offline stand-in for the `prom/prometheus` image, built from Debian's prometheus package
# (deploy/offline-images.sh): /bin/prometheus, its config in /etc/prometheus, data in /prometheus,
# and wget for the healthcheck (the official image has busybox's).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus wget \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
WORKDIR /prometheus
USER prometheus
EXPOSE 9090
# /bin is /usr/bin on a merged-/usr Debian, so /bin/prometheus is there already.
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
