#!/usr/bin/env bash
# Builds mod_icpquery and installs it into the httpd that `apxs` belongs to,
# like any module built with apxs. Usage: apxs/install.sh [-a] [APXS]
#   -a     also add the LoadModule line to httpd.conf (apxs -a)
#   APXS   the apxs of the target httpd (default: apxs on PATH); its headers
#          are the ones the module is built against.
set -euo pipefail
cd "$(dirname "$0")/.."
activate=()
if [ "${1:-}" = "-a" ]; then activate=(-a); shift; fi
APXS="${1:-${APXS:-apxs}}"
command -v "$APXS" >/dev/null || { echo "apxs not found: install the httpd development files (Debian: apache2-dev)" >&2; exit 1; }
APXS="$APXS" cargo build --release --locked
# apxs installs a file under the name httpd loads it by.
cp target/release/libmod_icpquery.so target/release/mod_icpquery.so
"$APXS" -i "${activate[@]}" -n icpquery target/release/mod_icpquery.so
# The command-line tool goes beside httpd's own programs.
bindir="$("$APXS" -q SBINDIR)"
install -m 755 target/release/icpquery "$bindir/icpquery"
echo "installed $("$APXS" -q LIBEXECDIR)/mod_icpquery.so and $bindir/icpquery"
