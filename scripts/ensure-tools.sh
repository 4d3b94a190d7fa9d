#!/usr/bin/env bash
# Make sure the offline deployment checks have their tools: promtool and prometheus from
# Debian's `prometheus` package (kubectl, kubernetes-validate and jsonschema come from the
# venv's `test` extra). Does nothing when promtool is already there. The package's own
# daemon is kept from starting (policy-rc.d): the tests start their own Prometheus on a
# free loopback port with a throwaway storage path.
set -euo pipefail
say() { echo "tools: $*"; }

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  say "promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}') is there"
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  say "promtool is missing and this is not a Debian machine where we are root;" \
      "install Prometheus' promtool yourself (the promtool tests skip without it)" >&2
  exit 0
fi
say "installing Debian's prometheus package (for promtool)"
policy=/usr/sbin/policy-rc.d
ours=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && ours=1
fi
cleanup() { if [[ $ours == 1 ]]; then rm -f "$policy"; fi; }
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# no systemd here and policy-rc.d said no, but if a daemon came up anyway, stop it
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
say "promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}') installed"
