#!/bin/bash
# The whole test suite, from a fresh Debian 12 machine: installs what is
# missing, then runs the host tests plain, under ASan+UBSan and (the
# threaded ones) under TSan, then the QEMU tests of the kernel module.
# Ends with one line: "sring: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh || { echo "sring: setup failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0; failed=0
record() {  # record NAME TOTAL FAILED
  echo "== $1: $(( $2 - $3 )) passed, $3 failed"
  passed=$((passed + $2 - $3)); failed=$((failed + $3))
}

run_bazel_tests() {  # run_bazel_tests NAME QUERY BAZEL_ARGS...
  local name="$1" query="$2"; shift 2
  local targets
  targets=$(bazel query "$query" 2>/dev/null) || { record "$name" 1 1; return; }
  echo "== $name: bazel test $*"
  bazel test --nocache_test_results "$@" $targets 2>&1 | grep -vE '^\[[0-9,]+ / [0-9,]+\]|^(Loading|Analyzing):' | tail -n 25
  local testlogs
  testlogs=$(bazel info "$@" bazel-testlogs 2>/dev/null)
  read -r total bad < <(scripts/count_tests.sh "$testlogs" $targets)
  record "$name" "$total" "$bad"
}

run_bazel_tests "host tests" 'tests(//...)'
run_bazel_tests "host tests (ASan+UBSan)" 'tests(//...)' --config=asan
run_bazel_tests "threaded tests (TSan)" 'attr(tags, concurrent, tests(//...))' --config=tsan

echo "== packaging: install, pkg-config, man pages, modinfo, DKMS"
out=$(tests/packaging/packaging_test.sh 2>&1)
echo "$out" | tail -n 40
summary=$(echo "$out" | grep -E '^packaging: [0-9]+ passed, [0-9]+ failed' | tail -n1)
if [ -n "$summary" ]; then
  p=$(echo "$summary" | awk '{print $2}'); f=$(echo "$summary" | awk '{print $4}')
  record "packaging" $((p + f)) "$f"
else
  record "packaging" 1 1
fi

if [ -x tests/qemu/run-qemu-tests.sh ]; then
  echo "== kernel module under QEMU"
  out=$(tests/qemu/run-qemu-tests.sh 2>&1); rc=$?
  echo "$out" | tail -n 60
  summary=$(echo "$out" | grep -E '^qemu: [0-9]+ passed, [0-9]+ failed' | tail -n1)
  if [ -n "$summary" ]; then
    p=$(echo "$summary" | awk '{print $2}'); f=$(echo "$summary" | awk '{print $4}')
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    record "QEMU scenarios" $((p + f)) "$f"
  else
    record "QEMU scenarios" 1 1
  fi
fi

echo "sring: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
