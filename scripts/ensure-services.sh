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

start_rabbitmq() {
  # every queue and connection holds one of the broker's file handles, and at its limit it
  # hangs rather than refuses; Debian's wrapper su's to rabbitmq with a soft limit of 1024,
  # which about 15 tenants' queues and services fill: start it as rabbitmq at the hard limit
  if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
    su rabbitmq -s /bin/sh -c 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; rabbitmq-server -detached'
  else
    rabbitmq-server -detached
  fi
  wait_for 90 rabbitmq port_open "$AMQP_HOST" 5672
}

# The local broker's TLS listener (5671) for department systems, as a county runs it: a county
# CA, a server certificate it signed, and mutual TLS (no client certificate from this CA, no
# connection). The CA lives at a stable path so tests can issue department certificates from it
# (`onegrid tenant certs --ca-dir`); its key stays root-only. RabbitMQ 3.10 reads
# /etc/rabbitmq/conf.d/*.conf after rabbitmq.conf, so the listener is a snippet of its own.
TLS_DIR=${ONEGRID_LOCAL_CA_DIR:-/etc/rabbitmq/tls}
TLS_CONF=/etc/rabbitmq/conf.d/60-onegrid-tls.conf
ensure_local_tls() {
  [ -w /etc/rabbitmq ] || return 0  # not ours to configure (no root): 5671 stays as it is
  mkdir -p "$TLS_DIR" /etc/rabbitmq/conf.d
  if [ ! -s "$TLS_DIR/ca.pem" ] || [ ! -s "$TLS_DIR/ca.key" ]; then
    say "making the local county CA in $TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/O=OneGrid/CN=OneGrid local county CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" 2>/dev/null
    rm -f "$TLS_DIR/server.pem"
  fi
  if [ ! -s "$TLS_DIR/server.pem" ]; then
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=OneGrid/CN=localhost" \
      -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$TLS_DIR/server.ext"
    openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
      -CAcreateserial -days 825 -extfile "$TLS_DIR/server.ext" -out "$TLS_DIR/server.pem" 2>/dev/null
    rm -f "$TLS_DIR/server.csr" "$TLS_DIR/server.ext"
  fi
  chmod 0755 "$TLS_DIR"; chmod 0600 "$TLS_DIR/ca.key"; chmod 0644 "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem"
  if id rabbitmq >/dev/null 2>&1; then chown root:rabbitmq "$TLS_DIR/server.key"; fi
  chmod 0640 "$TLS_DIR/server.key"
  local want
  want=$(cat <<CONF
# written by OneGrid's scripts/ensure-services.sh: mutual TLS for department systems
listeners.ssl.local = 127.0.0.1:5671
ssl_options.cacertfile = $TLS_DIR/ca.pem
ssl_options.certfile = $TLS_DIR/server.pem
ssl_options.keyfile = $TLS_DIR/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
CONF
)
  if [ "$(cat "$TLS_CONF" 2>/dev/null)" != "$want" ]; then
    say "writing $TLS_CONF"
    printf '%s\n' "$want" >"$TLS_CONF"
  fi
}

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
  if local_host "$AMQP_HOST"; then
    ensure_local_tls
    if [ -f "$TLS_CONF" ] && ! port_open "$AMQP_HOST" 5671; then
      # the listener is only read at boot: one restart, the first time (connections drop)
      say "restarting rabbitmq once for its TLS listener on 5671"
      rabbitmqctl shutdown >/dev/null
      start_rabbitmq
    fi
  fi
elif local_host "$AMQP_HOST"; then
  say "starting rabbitmq-server (takes a few seconds)"
  ensure_local_tls
  start_rabbitmq
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
if local_host "$AMQP_HOST" && [ -f "$TLS_CONF" ]; then
  wait_for 30 "rabbitmq TLS listener" port_open "$AMQP_HOST" 5671
  say "rabbitmq TLS listener at $AMQP_HOST:5671 is up (county CA $TLS_DIR/ca.pem)"
fi
