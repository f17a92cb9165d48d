#!/bin/sh
# The default user comes from RABBITMQ_DEFAULT_USER/PASS (created on the first boot only) and may
# connect from other containers: the built-in guest may only use loopback.
set -eu
{
    echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
    echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
    echo "loopback_users = none"
    echo "listeners.tcp.default = 5672"
    echo "management.tcp.port = 15672"
} > /etc/rabbitmq/rabbitmq.conf
exec "$@"
