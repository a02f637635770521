#!/usr/bin/env bash
# Runs every Go fuzz target in the module for FUZZTIME (default 3s) each.
# Go runs one fuzz target per invocation, hence the loop.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-3s}
status=0
while IFS=: read -r file name; do
	pkg="$(dirname "$file")"
	echo "fuzz $pkg $name ($FUZZTIME)"
	if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" "$pkg" >/tmp/fuzz-$$.log 2>&1; then
		cat /tmp/fuzz-$$.log
		status=1
	fi
done < <(grep -rEo --include='*_test.go' '^func (Fuzz[A-Za-z0-9_]+)' . | sed -E 's/func //' | grep -v '^./node_modules' | sort)
rm -f /tmp/fuzz-$$.log
exit $status
