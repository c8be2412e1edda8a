#!/bin/bash
# Streaming over ZeroMQ between network namespaces on one machine: the
# publisher in one, workers and monitors in others, joined by veth pairs, so
# that the traffic crosses real TCP over (virtual) links that can be cut.
# One run carries complex 16-bit samples of two channels (cs16 x 2): the
# layout crosses the wire and every value is verified.
# Root only (ip netns); skips with a message otherwise. Ends with one line
# "netns: N passed, N failed".
#
#   tests/net/netns_test.sh BIN_DIR     BIN_DIR holds sring-publish and sring-subscribe
set -uo pipefail
bin=${1:?usage: netns_test.sh BIN_DIR}
publish="$bin/sring-publish"; subscribe="$bin/sring-subscribe"
if [ "$(id -u)" -ne 0 ]; then
  echo "netns: SKIPPED: needs root for ip netns and veth pairs"
  exit 0
fi
for tool in "$publish" "$subscribe"; do
  [ -x "$tool" ] || { echo "netns: $tool is missing"; echo "netns: 0 passed, 1 failed"; exit 1; }
done

tag="sr$$"
pub_ns="${tag}pub"; worker_ns=("${tag}w1" "${tag}w2")
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  ip netns del "$pub_ns" 2>/dev/null
  for ns in "${worker_ns[@]}"; do ip netns del "$ns" 2>/dev/null; done
  [ -n "${KEEP_NETNS_LOGS:-}" ] && cp -r "$work" /tmp/netns-logs; rm -rf "$work"
}
trap cleanup EXIT

# Publisher side 10.77.N.1 on veth pN, worker N at 10.77.N.2.
ip netns add "$pub_ns" && ip -n "$pub_ns" link set lo up || { echo "netns: cannot create namespaces"; echo "netns: 0 passed, 1 failed"; exit 1; }
for i in 1 2; do
  ns=${worker_ns[$((i - 1))]}
  ip netns add "$ns"
  ip link add "${tag}p$i" netns "$pub_ns" type veth peer name "${tag}w$i" netns "$ns"
  ip -n "$pub_ns" addr add "10.77.$i.1/24" dev "${tag}p$i"; ip -n "$pub_ns" link set "${tag}p$i" up
  ip -n "$ns" addr add "10.77.$i.2/24" dev "${tag}w$i"; ip -n "$ns" link set "${tag}w$i" up; ip -n "$ns" link set lo up
done

passed=0; failed=0
verdict() {  # verdict NAME OK(0/1) DETAIL
  if [ "$2" -eq 0 ]; then echo "NETNS PASS $1"; passed=$((passed + 1)); else echo "NETNS FAIL $1: $3"; failed=$((failed + 1)); fi
}
field() {  # field FILE PREFIX KEY: the value of KEY= on the last PREFIX line
  grep "^$2: .*$3=" "$1" | tail -n1 | tr ' ' '\n' | grep "^$3=" | cut -d= -f2
}
worker() {  # worker N LOG ARGS...: sring-subscribe in worker namespace N, in the background
  local n=$1 log=$2; shift 2
  ip netns exec "${worker_ns[$((n - 1))]}" "$subscribe" --connect "tcp://10.77.$n.1:5555" --timeout 30 "$@" >"$log" 2>&1 &
  pids+=($!); last_pid=$!
}
publisher() {  # publisher LOG ARGS...: in the foreground
  local log=$1; shift
  timeout 120 ip netns exec "$pub_ns" "$publish" --sim --bind tcp://*:5555 "$@" >"$log" 2>&1
}
# The sums over the workers' logs: received + dropped at the ring + unsent == produced.
check_sum() {  # check_sum NAME PUBLOG WORKERLOG...
  local name=$1 pub=$2; shift 2
  local unit recv total produced dropped unsent log
  for unit in blocks samples; do
    total=0
    for log in "$@"; do
      recv=$(grep '^subscribe: blocks=' "$log" | tail -n1 | tr ' ' '\n' | grep "^$unit=" | cut -d= -f2)
      [ -n "$recv" ] || { verdict "$name" 1 "no figures in $log: $(tail -n3 "$log")"; return; }
      total=$((total + recv))
    done
    produced=$(field "$pub" publish "produced_$unit"); dropped=$(field "$pub" publish "dropped_$unit")
    unsent=$(field "$pub" publish "unsent_$unit")
    [ -n "$produced" ] || { verdict "$name" 1 "no publisher figures: $(tail -n3 "$pub")"; return; }
    if [ $((total + dropped + unsent)) -ne "$produced" ]; then
      verdict "$name" 1 "$unit: received $total + dropped $dropped + unsent $unsent != produced $produced"; return
    fi
  done
  verdict "$name" 0 ""
}
show() { for f in "$@"; do echo "--- $f"; cat "$f"; done; }

echo "== PUSH to two worker namespaces: every sample verified, the shares add up"
worker 1 "$work/push-w1.log" --pattern push; w1=$last_pid
worker 2 "$work/push-w2.log" --pattern push; w2=$last_pid
publisher "$work/push-pub.log" --pattern push --wait-peers 2 --duration 2 --rate 20M; pub_rc=$?
wait "$w1"; r1=$?; wait "$w2"; r2=$?
show "$work/push-pub.log" "$work/push-w1.log" "$work/push-w2.log"
verdict "push: publisher and both workers exit 0" $(( pub_rc != 0 || r1 != 0 || r2 != 0 )) "rc $pub_rc $r1 $r2"
check_sum "push: received + dropped + unsent == produced over two workers" "$work/push-pub.log" "$work/push-w1.log" "$work/push-w2.log"
s1=$(field "$work/push-w1.log" subscribe samples); s2=$(field "$work/push-w2.log" subscribe samples)
verdict "push: both workers got a share" $(( ${s1:-0} == 0 || ${s2:-0} == 0 )) "shares ${s1:-none} ${s2:-none}"

echo "== complex 16-bit, two channels: the layout crosses the wire, every value verified"
worker 1 "$work/cs16-w1.log" --pattern push; w1=$last_pid
publisher "$work/cs16-pub.log" --pattern push --wait-peers 1 --duration 1 --rate 5M --format cs16 --channels 2; pub_rc=$?
wait "$w1"; r1=$?
show "$work/cs16-pub.log" "$work/cs16-w1.log"
verdict "cs16 x 2: publisher and worker exit 0" $(( pub_rc != 0 || r1 != 0 )) "rc $pub_rc $r1"
fmt=$(field "$work/cs16-w1.log" subscribe format); ch=$(field "$work/cs16-w1.log" subscribe channels)
[ "$fmt" = cs16 ] && [ "$ch" = 2 ]; verdict "cs16 x 2: the worker saw cs16, 2 channels" $? "format=${fmt:-none} channels=${ch:-none}"
s=$(field "$work/cs16-w1.log" subscribe samples); v=$(field "$work/cs16-w1.log" subscribe values)
c=$(field "$work/cs16-w1.log" subscribe corrupted)
verdict "cs16 x 2: 4 values per frame verified (I, Q of 2 channels), none corrupted" \
  $(( ${s:-0} == 0 || ${v:-0} != 4 * ${s:-0} || ${c:-1} != 0 )) "samples=${s:-none} values=${v:-none} corrupted=${c:-none}"
check_sum "cs16 x 2: received + dropped + unsent == produced" "$work/cs16-pub.log" "$work/cs16-w1.log"

echo "== PUB/SUB: a monitor killed and restarted mid-stream counts its gap"
worker 1 "$work/sub-first.log" --pattern pub; first=$last_pid
ip netns exec "$pub_ns" "$publish" --sim --bind tcp://*:5555 --pattern pub --wait-peers 1 --duration 3 --rate 20M \
  >"$work/sub-pub.log" 2>&1 &
pub_pid=$!; pids+=($pub_pid)
sleep 1.2; kill -9 "$first"; sleep 0.5
worker 1 "$work/sub-again.log" --pattern pub; again=$last_pid
wait "$pub_pid"; pub_rc=$?; wait "$again"; r=$?
show "$work/sub-pub.log" "$work/sub-again.log"
verdict "pub/sub: the restarted monitor's accounting is exact (exit 0)" $(( pub_rc != 0 || r != 0 )) "rc $pub_rc $r"
gap=$(field "$work/sub-again.log" subscribe transit_lost_samples)
verdict "pub/sub: the restarted monitor counted the gap before it" $(( ${gap:-0} == 0 )) "transit_lost_samples=${gap:-none}"

echo "== a slow worker: back-pressure shows as drops at the ring, counted"
worker 1 "$work/slow-w1.log" --pattern push --slow-us 3000 --hwm 8; w1=$last_pid
publisher "$work/slow-pub.log" --pattern push --wait-peers 1 --duration 2 --rate 20M --hwm 8 --ring-size 512K; pub_rc=$?
wait "$w1"; r1=$?
show "$work/slow-pub.log" "$work/slow-w1.log"
verdict "slow: publisher and worker exit 0" $(( pub_rc != 0 || r1 != 0 )) "rc $pub_rc $r1"
dropped=$(field "$work/slow-pub.log" publish dropped_samples)
verdict "slow: the ring dropped (back-pressure reached the producer)" $(( ${dropped:-0} == 0 )) "dropped_samples=${dropped:-none}"
check_sum "slow: received + dropped + unsent == produced" "$work/slow-pub.log" "$work/slow-w1.log"

echo "== a link cut (ip link set DEV down) and restored mid-stream"
worker 1 "$work/cut-w1.log" --pattern push; w1=$last_pid
ip netns exec "$pub_ns" "$publish" --sim --bind tcp://*:5555 --pattern push --wait-peers 1 --duration 4 --rate 20M \
  >"$work/cut-pub.log" 2>&1 &
pub_pid=$!; pids+=($pub_pid)
sleep 1; ip -n "$pub_ns" link set "${tag}p1" down; sleep 1.5; ip -n "$pub_ns" link set "${tag}p1" up
wait "$pub_pid"; pub_rc=$?; wait "$w1"; r1=$?
show "$work/cut-pub.log" "$work/cut-w1.log"
verdict "cut: publisher and worker exit 0" $(( pub_rc != 0 || r1 != 0 )) "rc $pub_rc $r1"
check_sum "cut: received + dropped + unsent == produced" "$work/cut-pub.log" "$work/cut-w1.log"

echo "netns: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
