#!/usr/bin/env bash
# Make sure the offline deployment checks have their tools: promtool and prometheus from
# Debian's `prometheus` package (kubectl, kubernetes-validate and jsonschema come from the
# venv's `test` extra). Does nothing when promtool is already there. The package's own
# daemon is kept from starting (policy-rc.d): the tests start their own Prometheus on a
# free loopback port with a throwaway storage path.
set -euo pipefail
say() { echo "tools: $*"; }

# the Redis failover test and make chaos start private Sentinels (never the packaged daemon)
if ! command -v redis-sentinel >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's redis-sentinel (for the failover test)"
    printf '#!/bin/sh\nexit 101\n' >/tmp/onegrid-policy-rc.d && chmod +x /tmp/onegrid-policy-rc.d
    [[ -e /usr/sbin/policy-rc.d ]] || cp /tmp/onegrid-policy-rc.d /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-sentinel >/dev/null
    if cmp -s /tmp/onegrid-policy-rc.d /usr/sbin/policy-rc.d; then rm -f /usr/sbin/policy-rc.d; fi
  else
    say "redis-sentinel is missing (the Redis failover test skips without it)" >&2
  fi
fi

# the command-centre page's browser test: Debian's chromium and chromium-driver, and a CJK font
# so the page's Chinese renders in its screenshots (tests/e2e/test_console_browser.py)
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1 \
  || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's chromium, chromium-driver and fonts-noto-cjk (for the browser test)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium chromium-driver fonts-noto-cjk >/dev/null
  else
    say "chromium/chromium-driver/fonts-noto-cjk are missing (the browser test skips without them)" >&2
  fi
fi

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
