#!/usr/bin/env bash
# Runs every fuzz target of the project for a while each: hack/fuzz/fuzz.sh DURATION (e.g. 5s, 5m).
# `go test` already runs each target's seed corpus (testdata/fuzz included); this explores further.
# A failing input is saved under the package's testdata/fuzz/<target>/: commit it with the fix.
set -euo pipefail
duration=${1:?usage: fuzz.sh DURATION}
cd "$(dirname "$0")/../.."
# A safety net for FuzzExtract: no file an archive writes may grow past 1 GiB, whatever it holds.
ulimit -f $((1024 * 1024))
targets=(
	./cmd/mover:FuzzParseArgs
	./internal/registry:FuzzParseReference
	./internal/mover:FuzzResultEncode
	./internal/mover:FuzzDecodeResult
	./internal/mover:FuzzExtract
	./internal/mover:FuzzSafeEntry
	./internal/controller:FuzzReferenceAllowed
	./internal/controller:FuzzMoverResultFrom
	./internal/controller:FuzzScheduleSlots
)
for t in "${targets[@]}"; do
	pkg=${t%%:*} name=${t##*:}
	echo "fuzz $pkg $name for $duration"
	go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$duration" -parallel 2
done
