#!/usr/bin/env bash
# Make sure the RabbitMQ (with its management API) and Redis that OneGrid talks to are up.
# Local services are started when they are down; remote ones (other hosts in AMQP_HOST /
# REDIS_HOST) are only checked. Idempotent: a second run changes nothing.
set -euo pipefail
AMQP_HOST=${AMQP_HOST:-127.0.0.1}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}
local_host() { [[ "$1" == 127.* || "$1" == localhost || "$1" == ::1 ]]; }
say() { echo "services: $*"; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "services: $what did not come up in ${limit}s" >&2; return 1
}
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

if port_open "$REDIS_HOST" "$REDIS_PORT"; then
  say "redis at $REDIS_HOST:$REDIS_PORT is up"
elif local_host "$REDIS_HOST"; then
  say "starting redis-server on $REDIS_PORT"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/onegrid.log
  wait_for 20 redis port_open "$REDIS_HOST" "$REDIS_PORT"
else
  echo "services: redis at $REDIS_HOST:$REDIS_PORT is not reachable" >&2; exit 1
fi

if port_open "$AMQP_HOST" 5672; then
  say "rabbitmq at $AMQP_HOST:5672 is up"
elif local_host "$AMQP_HOST"; then
  say "starting rabbitmq-server (takes a few seconds)"
  # every queue and connection holds one of the broker's file handles, and at its limit it
  # hangs rather than refuses; Debian's wrapper su's to rabbitmq with a soft limit of 1024,
  # which about 15 tenants' queues and services fill: start it as rabbitmq at the hard limit
  if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
    su rabbitmq -s /bin/sh -c 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; rabbitmq-server -detached'
  else
    rabbitmq-server -detached
  fi
  wait_for 90 rabbitmq port_open "$AMQP_HOST" 5672
else
  echo "services: rabbitmq at $AMQP_HOST:5672 is not reachable" >&2; exit 1
fi

if ! port_open "$AMQP_HOST" 15672; then
  if local_host "$AMQP_HOST"; then
    say "enabling rabbitmq_management"
    rabbitmq-plugins enable rabbitmq_management >/dev/null
    wait_for 60 "rabbitmq management API" port_open "$AMQP_HOST" 15672
  else
    echo "services: the management API at $AMQP_HOST:15672 is not reachable" >&2; exit 1
  fi
fi
say "rabbitmq management API at $AMQP_HOST:15672 is up"
