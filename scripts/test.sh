#!/bin/bash
# The whole test suite, from a fresh Debian 12 machine: installs what is
# missing, then runs the host tests plain, under ASan+UBSan and (the
# threaded ones) under TSan; the Python binding and the integrations
# (SoapySDR, GNU Radio, HDF5, pip, Prometheus); streaming, packaging,
# benchmarks, sparse; then the QEMU tests of the kernel module (the stages:
# docs/testing.md). Ends with one line: "sring: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh || { echo "sring: setup failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0; failed=0
# Every stage's full output stays here (CI keeps the workspace's files).
log_dir=${SRING_LOG_DIR:-$PWD/test-logs}
rm -rf "$log_dir"; mkdir -p "$log_dir"
failed_stages=()
record() {  # record NAME TOTAL FAILED
  echo "== $1: $(( $2 - $3 )) passed, $3 failed"
  passed=$((passed + $2 - $3)); failed=$((failed + $3))
  [ "$3" -gt 0 ] && failed_stages+=("$1: $3 failed")
  return 0
}

run_bazel_tests() {  # run_bazel_tests NAME QUERY BAZEL_ARGS...
  local name="$1" query="$2"; shift 2
  local targets testlogs rc target slug
  slug=$(echo "$name" | tr -c 'a-zA-Z0-9\n' '-')
  targets=$(bazel query "$query" 2>/dev/null) || { record "$name: bazel query" 1 1; return; }
  testlogs=$(bazel info "$@" bazel-testlogs 2>/dev/null) || { record "$name: bazel info" 1 1; return; }
  # A target that fails to build writes no test.xml: delete the old ones
  # first, so a result from an earlier run can never be counted as this one.
  for target in $targets; do
    target="${target#//}"; rm -rf "$testlogs/${target/://}"
  done
  echo "== $name: bazel test $*"
  bazel test --nocache_test_results "$@" $targets >"$log_dir/bazel-$slug.log" 2>&1
  rc=$?
  grep -vE '^\[[0-9,]+ / [0-9,]+\]|^(Loading|Analyzing):|getaddrinfo' "$log_dir/bazel-$slug.log" | tail -n 25
  read -r total bad < <(scripts/count_tests.sh "$testlogs" $targets)
  record "$name" "$total" "$bad"
  # bazel test: 0 all passed, 3 some test failed (counted above); anything
  # else (1 build failure, 4 nothing to run, ...) fails the run on its own.
  if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
    record "$name: bazel exited $rc (build failure?)" 1 1
  elif [ $rc -eq 3 ] && [ "$bad" -eq 0 ]; then
    record "$name: bazel reported failures the XML does not show" 1 1
  fi
  # Which targets failed, by name, for the recap at the end (a CI log may
  # keep only its tail).
  if [ $rc -ne 0 ]; then
    grep -E '^//.* (FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD|INCOMPLETE)' "$log_dir/bazel-$slug.log" |
      sed "s|^|$name: |" >>"$log_dir/failed-targets.txt"
    grep -E '^ERROR:' "$log_dir/bazel-$slug.log" | head -n 5 | sed "s|^|$name: |" >>"$log_dir/failed-targets.txt"
  fi
}

# The host tests of rings in 2 MiB pages (tests/huge_ring_test.cpp) need
# free huge pages. As root, reserve 64 (128 MiB) for the host test stages
# and give the old count back after them (and on any exit); the tests then
# fail, rather than skip, when the pages are missing (SRING_TEST_HUGEPAGES=1).
huge_env=()
hugepages_before=""
restore_hugepages() {
  if [ -n "$hugepages_before" ]; then
    echo "$hugepages_before" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
    hugepages_before=""
  fi
}
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/vm/nr_hugepages ]; then
  hugepages_before=$(cat /proc/sys/vm/nr_hugepages)
  trap restore_hugepages EXIT
  [ "$hugepages_before" -lt 64 ] && echo 64 >/proc/sys/vm/nr_hugepages
  echo "== 2 MiB huge pages for the host tests: $(cat /proc/sys/vm/nr_hugepages) reserved (were $hugepages_before)"
  huge_env=(--test_env=SRING_TEST_HUGEPAGES=1)
else
  echo "== not root: the host tests of rings in 2 MiB pages skip unless huge pages are free"
fi

run_bazel_tests "host tests" 'tests(//...)' "${huge_env[@]}"
run_bazel_tests "host tests (ASan+UBSan)" 'tests(//...)' --config=asan "${huge_env[@]}"
run_bazel_tests "threaded tests (TSan)" 'attr(tags, concurrent, tests(//...))' --config=tsan

run_pytest() {  # run_pytest NAME SLUG DIR... (with the environment set by the caller)
  local name="$1" slug="$2"; shift 2
  # Debian's python3, with the numpy, pytest, h5py, SoapySDR and GNU Radio it packages.
  /usr/bin/python3 -m pytest -q -p no:cacheprovider --junitxml="$log_dir/$slug.xml" "$@" \
    >"$log_dir/$slug.log" 2>&1
  tail -n 15 "$log_dir/$slug.log"
  if [ -s "$log_dir/$slug.xml" ]; then
    read -r total bad < <(/usr/bin/python3 - "$log_dir/$slug.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
total = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
print(total, bad)
PY
)
    record "$name" "$total" "$bad"
    [ "$total" -gt 0 ] || record "$name: no tests ran" 1 1
    grep -E '^(FAILED|ERROR) ' "$log_dir/$slug.log" | sed "s|^|$name: |" >>"$log_dir/failed-targets.txt"
  else
    record "$name: pytest wrote no results" 1 1
  fi
}

echo "== Python binding, and sring where users already work (SoapySDR, GNU Radio, HDF5, pip, Prometheus)"
py_dir=$(mktemp -d)
if scripts/build-python.sh "$py_dir" >"$log_dir/python-build.log" 2>&1 &&
   bazel build //... >>"$log_dir/python-build.log" 2>&1; then
  PYTHONPATH="$py_dir" SRING_BIN="$PWD/bazel-bin" run_pytest "Python binding (pytest)" pytest python/tests
  PYTHONPATH="$py_dir" SRING_BIN="$PWD/bazel-bin" SRING_SOURCE="$PWD" \
    run_pytest "integrations: SoapySDR, GNU Radio, HDF5, pip, Prometheus (pytest)" integrations tests/integration
else
  tail -n 40 "$log_dir/python-build.log"
  record "Python binding and integrations: build" 1 1
fi
rm -rf "$py_dir"

echo "== streaming over ZeroMQ: publisher and workers in network namespaces (root only)"
if bazel build //tools:sring-publish //tools:sring-subscribe >"$log_dir/netns-build.log" 2>&1; then
  tests/net/netns_test.sh "$PWD/bazel-bin/tools" >"$log_dir/netns.log" 2>&1
  grep -E '^NETNS |^netns:' "$log_dir/netns.log"
  summary=$(grep -E '^netns: [0-9]+ passed, [0-9]+ failed' "$log_dir/netns.log" | tail -n1)
  if [ -n "$summary" ]; then
    p=$(echo "$summary" | awk '{print $2}'); f=$(echo "$summary" | awk '{print $4}')
    record "streaming (netns)" $((p + f)) "$f"
  elif grep -q '^netns: SKIPPED' "$log_dir/netns.log"; then
    echo "== streaming (netns): skipped, not root"
  else
    tail -n 30 "$log_dir/netns.log"
    record "streaming (netns): no verdict" 1 1
  fi
else
  tail -n 30 "$log_dir/netns-build.log"
  record "streaming (netns): build" 1 1
fi

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

echo "== benchmarks: they build, and a short run of each verifies every sample (figures not judged)"
# Benchmarks are "manual" targets, outside //...: built here so they cannot
# rot. ring_bench exits 1 when a run delivers a wrong sample or inexact
# accounting; a timed figure is never a verdict (scripts/bench.sh makes them).
if bazel build //bench:ring_bench //bench:net_bench //bench:scale_bench //bench:soapy_bench >"$log_dir/bench-build.log" 2>&1; then
  record "benchmarks build" 1 0
  if bazel-bin/bench/ring_bench --rates 20,200 --runs 1 --seconds 0.2 >"$log_dir/bench-smoke.log" 2>&1 &&
     bazel-bin/bench/ring_bench --quick --runs 1 --producer both >>"$log_dir/bench-smoke.log" 2>&1 &&
     bazel-bin/bench/scale_bench --quick >>"$log_dir/bench-smoke.log" 2>&1 &&
     bazel-bin/bench/soapy_bench 1 >>"$log_dir/bench-smoke.log" 2>&1 &&
     { [ ${#huge_env[@]} -eq 0 ] || bazel-bin/bench/ring_bench --pages-sweep --rates 20 --ring-sizes 4M --runs 1 \
         --seconds 0.2 >>"$log_dir/bench-smoke.log" 2>&1; }; then
    record "benchmarks: every sample verified, accounting exact" 1 0
  else
    tail -n 30 "$log_dir/bench-smoke.log"
    record "benchmarks: every sample verified, accounting exact" 1 1
  fi
else
  tail -n 30 "$log_dir/bench-build.log"
  record "benchmarks build" 1 1
fi
restore_hugepages

echo "== sparse: make -C driver check against Debian's headers"
sparse_dir=$(mktemp -d)
mkdir -p "$sparse_dir/include" "$sparse_dir/simulator" "$sparse_dir/devices"
cp -r driver "$sparse_dir/driver"; cp -r include/sring "$sparse_dir/include/"; cp -r simulator/kernel "$sparse_dir/simulator/"
cp -r devices/edu devices/digitizer "$sparse_dir/devices/"
headers=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1)
if [ -n "$headers" ] && make -C "$sparse_dir/driver" KERNEL_SRC="$headers" check >"$log_dir/sparse.log" 2>&1 &&
   grep -q 'CHECK .*sring_core.c' "$log_dir/sparse.log" && grep -q 'CHECK .*sim_device.c' "$log_dir/sparse.log" &&
   grep -q 'CHECK .*edu_device.c' "$log_dir/sparse.log" && grep -q 'CHECK .*digitizer_device.c' "$log_dir/sparse.log" &&
   ! grep -E 'warning:|error:' "$log_dir/sparse.log"; then
  record "sparse (core, simulated device, edu and digitizer drivers)" 1 0
else
  cat "$log_dir/sparse.log"
  record "sparse (core, simulated device, edu and digitizer drivers)" 1 1
fi
rm -rf "$sparse_dir"

# One run of tests/qemu/run-qemu-tests.sh, counted as a stage. Every verdict
# reaches the log: each scenario line, each gtest case of the guest
# programs, the harness's own lines; the whole console is in
# $log_dir/SLUG.log, and a failure prints its context too.
qemu_stage() {  # qemu_stage NAME SLUG ENV... -- ARGS...: one run-qemu-tests.sh, counted as the QEMU stage
  local name="$1" slug="$2" envs=() rc summary p f
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" tests/qemu/run-qemu-tests.sh "$@" >"$log_dir/$slug.log" 2>&1
  rc=$?
  grep -E '^SCENARIO |^\[ +(OK|FAILED) +\] [A-Za-z]|^qemu:|^guest kernel|^failnth: ' "$log_dir/$slug.log"
  summary=$(grep -E '^qemu: [0-9]+ passed, [0-9]+ failed' "$log_dir/$slug.log" | tail -n1)
  if [ -n "$summary" ]; then
    p=$(echo "$summary" | awk '{print $2}'); f=$(echo "$summary" | awk '{print $4}')
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    record "$name" $((p + f)) "$f"
  else
    record "$name" 1 1
  fi
  if [ $rc -ne 0 ]; then
    echo "== $name: last 150 lines of $log_dir/$slug.log"
    tail -n 150 "$log_dir/$slug.log"
  fi
}

echo "== kernel module under QEMU"
qemu_stage "QEMU scenarios" qemu --

# The kernel checkers' boots, on the kernels scripts/build-debug-kernel.sh
# builds and caches (about 20 minutes each to build; docs/testing.md, "The kernel
# checkers"): every allocation of sring's paths failed in turn (fail-nth,
# the debug kernel) and the fuzzer there, and the scenarios where sring runs
# on both CPUs at once under the race detector (KCSAN, run-qemu-tests.sh
# --races: a report of sring's fails). Run whenever the cached kernels are
# there (a CI machine that keeps ~/.cache/sring runs them too); a machine
# without them skips them and says so.
echo "== kernel checkers under QEMU: fault injection (fail-nth) and the fuzzer on the debug kernel, KCSAN, on the cached kernels"
if scripts/build-debug-kernel.sh --check >/dev/null 2>&1; then
  qemu_stage "QEMU fail-nth (debug kernel, fault injection)" qemu-failnth SRING_KERNEL=debug -- --failnth
  qemu_stage "QEMU fuzzer (debug kernel)" qemu-fuzz-debug SRING_KERNEL=debug -- --fuzz
else
  echo "== QEMU fail-nth and the fuzzer on the debug kernel: skipped, no cached debug kernel with fault injection (scripts/build-debug-kernel.sh)"
fi
if scripts/build-debug-kernel.sh --kcsan --check >/dev/null 2>&1; then
  qemu_stage "QEMU races on KCSAN (races and dma boots)" qemu-kcsan SRING_KERNEL=kcsan -- --races
else
  echo "== QEMU on KCSAN: skipped, no cached KCSAN kernel (scripts/build-debug-kernel.sh --kcsan)"
fi

# The recap: what failed, where a CI log's tail shows it.
if [ "$failed" -ne 0 ]; then
  echo "== failed:"
  for stage in "${failed_stages[@]}"; do echo "   $stage"; done
  [ -s "$log_dir/failed-targets.txt" ] && sed 's/^/   /' "$log_dir/failed-targets.txt"
fi
echo "sring: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
