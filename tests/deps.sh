#!/usr/bin/env bash
# Installs the Debian packages that building, the demo and the tests need,
# when they are missing: httpd and its headers, Squid, clang for bindgen,
# node to run the generated PAC files, iproute2 for the multicast test's
# network namespace, prometheus for promtool (tests/metrics.rs checks the
# metrics page with it), chromium for the status page's layout
# (tests/status_html.rs). Arguments are more packages to install the same
# way (bench/run.sh adds wrk).
set -euo pipefail
packages=(apache2 apache2-dev squid libclang-dev nodejs iproute2 prometheus chromium "$@")
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
