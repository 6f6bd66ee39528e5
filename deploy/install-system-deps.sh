#!/usr/bin/env bash
# Installs the system packages the product needs, only those that are missing
# (Debian/Ubuntu, apt-get):
#   - Java 17+ and Maven: Apache Kafka from Maven Central;
#   - prometheus (prometheus, promtool) and prometheus-alertmanager (alertmanager, amtool):
#     the native stack of `make run`, the tests of its configuration, and the alerts
#     service's notification tests, which run the real Alertmanager;
#   - openssl: the tests' throwaway TLS certificate for ingest's HTTPS endpoint.
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
{ command -v prometheus-alertmanager && command -v amtool; } >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "Installing missing system packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "error: need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Debian starts the packages' own services on 9090 and 9093, the ports `make run` uses:
# charter runs its own instances, so stop and disable the ones just installed.
for package in prometheus prometheus-alertmanager; do
  [[ " ${missing[*]} " == *" ${package} "* ]] || continue
  if [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now "${package}.service" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/${package}" ]; then
    $SUDO "/etc/init.d/${package}" stop >/dev/null 2>&1 || true
  fi
done
