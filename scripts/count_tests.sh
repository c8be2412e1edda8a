#!/bin/bash
# Sums test cases from the JUnit XML that Bazel wrote for the given targets.
# usage: count_tests.sh TESTLOGS_DIR TARGET... ; prints "TOTAL FAILED".
set -euo pipefail
logs="$1"; shift
total=0; failed=0
for target in "$@"; do
  path="${target#//}"; path="${path/://}"
  xml="$logs/$path/test.xml"
  if [ ! -f "$xml" ]; then failed=$((failed + 1)); total=$((total + 1)); continue; fi
  # The first <testsuites ...> or <testsuite ...> element carries the totals.
  read -r t f e < <(grep -m1 -oE '<testsuites? [^>]*' "$xml" |
    awk '{ t=f=e=0
           for (i = 1; i <= NF; i++) {
             split($i, kv, "=")
             gsub(/"/, "", kv[2])
             if (kv[1] == "tests") t = kv[2]
             if (kv[1] == "failures") f = kv[2]
             if (kv[1] == "errors") e = kv[2]
           }
           print t, f, e }')
  total=$((total + t)); failed=$((failed + f + e))
done
echo "$total $failed"
