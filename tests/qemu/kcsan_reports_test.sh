#!/bin/bash
# tests/qemu/kcsan-reports.awk decides which KCSAN reports are sring's: a
# report of ours fails the KCSAN boot, the others are left to the rest of
# the kernel. Checked on tests/qemu/testdata/kcsan-reports.log, with the
# host's awk and with busybox's (the guest's), which must agree:
#   1. a timer interrupt that landed while sring_sim filled a block and
#      raced in the scheduler (a real report from the KCSAN boot): not ours;
#   2. sring_sim_tick run from a softirq at the interrupt's exit: ours;
#   3. the kernel's wait-queue code, reached from sring_commit_block on one
#      side and sring_poll on the other: ours;
#   4. an interrupt landing on sring_ioctl, sring in "locks held": not ours;
#   5. compaction inside our alloc_pages() racing with kswapd (a real
#      report from the bigring boot): not ours;
#   6. a race at unknown origin (one stack) in sring_ioctl, under KCSAN's
#      own __tsan_read8 frame: ours;
#   7. a reordered write in sring_commit ("write (marked, reordered)",
#      with its "+-> reordered to:" line) against epoll's read: ours.
# And the log cut or mixed: a report that lost its opening line, one with
# a line of the guest's output between "=====" and its title, one that
# lost its closing line: each is still found, and nothing after it lost.
set -uo pipefail
awk_script=$1
sample=$2
failures=0
check() {  # check WHAT EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAIL: $1: expected [$2], got [$3]"; failures=$((failures + 1)); fi
}
awks=(awk)
if command -v busybox >/dev/null; then awks+=("busybox awk"); else echo "FAIL: no busybox (the guest's awk)"; failures=$((failures + 1)); fi
for a in "${awks[@]}"; do
  check "$a: count" "4 3" "$($a -v mode=count -f "$awk_script" "$sample")"
  check "$a: ours are reports 2, 3, 6 and 7" \
    "data-race in sring_sim_tick [sring_sim] / sring_sim_stop [sring_sim]|data-race in __wake_up_common / add_wait_queue|data-race in sring_ioctl [sring]|data-race in sring_commit [sring] / ep_poll_callback" \
    "$($a -v mode=ours -f "$awk_script" "$sample" | sed -n 's/.*BUG: KCSAN: //p' | paste -sd'|')"
  check "$a: ours are printed whole" 8 \
    "$($a -v mode=ours -f "$awk_script" "$sample" | grep -c '^\[ *[0-9.]*\] =\{60,\}$')"
  filtered=$($a -v mode=filter -f "$awk_script" "$sample")
  check "$a: filter names the others in one line each" \
    "data-race in __hrtimer_run_queues / hrtimer_active)|data-race in tick_irq_enter / tick_nohz_idle_got_tick)|data-race in __reset_isolation_suitable / update_cached_migrate)" \
    "$(echo "$filtered" | sed -n "s/^(a KCSAN report on code other than sring's: //p" | paste -sd'|')"
  check "$a: filter keeps every other line" \
    "some line before|an ordinary line of ours, kept by every filter|the last line" \
    "$(echo "$filtered" | grep -E 'some line before|an ordinary line|the last line' | sed 's/^\[[^]]*\] //; s/^sring_sim: //' | paste -sd'|')"
  check "$a: filter keeps ours whole" 4 "$(echo "$filtered" | grep -c 'Reported by Kernel Concurrency Sanitizer')"
  check "$a: filter ends with its end line" "(end of the kernel log)" "$(echo "$filtered" | tail -n1)"
  # A log that lost a report's opening line (line 2), that has the guest's
  # output between a report's "=====" and its title, or that lost a
  # report's closing line: the same reports are found.
  check "$a: a report cut at its start is still found" "4 3" \
    "$(sed '2d' "$sample" | $a -v mode=count -f "$awk_script")"
  check "$a: a line between a report's opening and its title loses nothing" "4 3" \
    "$(sed '/BUG: KCSAN: data-race in sring_ioctl/i SCENARIO PASS: a line of the guest' "$sample" | $a -v mode=count -f "$awk_script")"
  check "$a: a report that lost its closing line is still found, and the next" "4 3" \
    "$(awk '/Reported by/ { n++ } !(n == 2 && /^\[ *[0-9.]+\] =+$/ && !done2) { print; next } { done2 = 1 }' "$sample" |
       $a -v mode=count -f "$awk_script")"
  check "$a: a report whose title was lost opens nothing" "3 3" \
    "$(grep -v 'BUG: KCSAN: data-race in sring_ioctl' "$sample" | $a -v mode=count -f "$awk_script")"
done
[ "$failures" -eq 0 ] && echo "kcsan_reports_test: all passed" || echo "kcsan_reports_test: $failures failed"
exit $((failures != 0))
