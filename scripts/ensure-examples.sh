#!/usr/bin/env bash
# The integrators' examples (examples/): node's amqplib from the vendored package-lock.json
# (npm ci), and the Go example built with Debian's Go and its amqp091-go package (GOPATH
# mode: no module proxy is needed). Installs node, npm and Go from Debian's packages when
# they are missing and this is a Debian machine where we are root; else says what is missing
# (tests/integration/test_examples.py then skips that language and says why).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "examples: $*"; }
GOCODE=/usr/share/gocode
need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v go >/dev/null 2>&1 || need+=(golang-go)
[[ -d $GOCODE/src/github.com/rabbitmq/amqp091-go ]] || need+=(golang-github-rabbitmq-amqp091-go-dev)
if ((${#need[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    say "missing ${need[*]} and this is not a Debian machine where we are root: install them yourself" >&2
  fi
fi
if command -v npm >/dev/null 2>&1; then
  (cd examples/node && npm ci --no-audit --no-fund --silent)
  say "node $(node --version), amqplib $(node -p 'require("./examples/node/node_modules/amqplib/package.json").version')"
fi
if command -v go >/dev/null 2>&1 && [[ -d $GOCODE/src/github.com/rabbitmq/amqp091-go ]]; then
  mkdir -p run/examples
  (cd examples/go && GO111MODULE=off GOPATH=$GOCODE GOCACHE="$PWD/../../run/examples/gocache" \
    go build -o ../../run/examples/onegrid-example .)
  say "$(go version | awk '{print $3}'): run/examples/onegrid-example"
fi
