# Offline stand-in for the `rabbitmq:3-management` image, built from Debian's rabbitmq-server
# package (deploy/offline-images.sh). It honours what docker-compose.yml relies on from the
# official image: RABBITMQ_DEFAULT_USER/PASS, data in /var/lib/rabbitmq, the management UI on
# 15672, Prometheus metrics on 15692, rabbitmq-diagnostics for the healthcheck.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rabbitmq-server \
    && rm -rf /var/lib/apt/lists/* \
    && echo '[rabbitmq_management,rabbitmq_prometheus].' > /etc/rabbitmq/enabled_plugins \
    && chown -R rabbitmq:rabbitmq /etc/rabbitmq /var/lib/rabbitmq
COPY rabbitmq-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV HOME=/var/lib/rabbitmq RABBITMQ_LOGS=- RABBITMQ_PID_FILE=/var/lib/rabbitmq/rabbitmq.pid
USER rabbitmq
EXPOSE 5672 15672 15692
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["rabbitmq-server"]
