#!/usr/bin/env bash
# Installs the system tools some tests use, when they are missing and apt-get can install
# them (root on Debian/Ubuntu): Chromium for the rendered-email and dashboard tests,
# docker-compose (1.29, Debian's) to validate compose.yaml offline, and Debian's prometheus
# package for promtool (checks and unit-tests deploy/prometheus; on a host with systemd the
# package also enables a Prometheus server on :9090, which the tests do not use: disable it
# with `systemctl disable --now prometheus` if unwanted). Elsewhere it only says
# what is missing; those tests then skip with the reason, or fail under REQUIRE_TOOLS=1.
set -u
missing=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get (once)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null \
    || echo "apt-get could not install ${missing[*]}; the tests that need them will say so"
else
  echo "not installed: ${missing[*]} (tests that need them skip, or fail under REQUIRE_TOOLS=1)"
fi
exit 0
