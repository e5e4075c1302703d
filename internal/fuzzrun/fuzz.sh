#!/bin/bash
# fuzz.sh FUZZTIME GO TAGS pkg:Target... runs each fuzz target for FUZZTIME.
#
# A target fails the run when go test fails for a reason other than Go's fuzz-coordinator shutdown
# race (go.dev/issue/75804, fixed in Go 1.27: a loaded machine's worker misses the -fuzztime
# deadline and the target reports a bare "context deadline exceeded" with no failing input). That
# failure is only forgiven when no new input was written to the target's testdata/fuzz/ and the
# corpus then replays clean; a real crasher is written there, fails the run, and is committed with
# its fix so that plain `go test` replays it from then on.
set -u
fuzztime=$1 gobin=$2 tags=$3
shift 3
status=0
for t in "$@"; do
	pkg=${t%%:*} fn=${t##*:}
	corpus="$pkg/testdata/fuzz/$fn"
	before=$(ls "$corpus" 2>/dev/null | sort)
	echo "fuzz $pkg $fn ($fuzztime)"
	out=$(mktemp)
	$gobin test $tags -run '^$' -fuzz "^$fn\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	after=$(ls "$corpus" 2>/dev/null | sort)
	if [ "$rc" -ne 0 ]; then
		if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$out" && ! grep -q 'Failing input written' "$out" &&
			$gobin test $tags -count=1 -run "^$fn\$" "$pkg" >/dev/null 2>&1; then
			echo "fuzz $pkg $fn: Go's coordinator missed its own deadline (go.dev/issue/75804) with no failing input, and the corpus replays clean: not a finding"
		else
			echo "fuzz $pkg $fn: FAILED (a failing input, if one was found, is in $corpus)"
			status=1
		fi
	fi
	rm -f "$out"
done
exit $status
