# Sorts the KCSAN reports of a kernel log (the guest's dmesg, or the host's
# copy of the console) into sring's and the rest of the kernel's. Run by
# the guest's busybox awk and by the host's awk alike, so one rule decides.
#
# A report has one access stack ("race at unknown origin") or two. Only
# the frames above a stack's first interrupt entry (asm_sysvec_*,
# asm_common_interrupt, asm_exc_*) are the access's own: below it is
# whatever the interrupt happened to land on. A report is sring's when
#   - the access itself is in our modules ([sring], [sring_sim],
#     [sring_edu], [sring_digitizer]): the top frame of a stack, past
#     KCSAN's own instrumentation frames (an inlined kernel helper, such
#     as list_add, shows as its caller, which is then ours); or
#   - both stacks pass through our modules: two of our calls race inside
#     the kernel API they share (a wait queue woken while sring
#     re-initialises it, say), which is our misuse of that API.
# Not ours: a timer interrupt that lands while sring_sim fills a block
# and races inside the scheduler; compaction run by our alloc_pages()
# racing with kswapd; a name of ours in the "locks held" lines. The second
# rule can blame us for a race of the scheduler's between two of our
# syscalls; that fails loudly and is read by a person, never passes quietly.
#
#   awk -v mode=filter -f kcsan-reports.awk LOG   the log, each report of the
#       rest of the kernel replaced by one line naming it, sring's whole,
#       and last the line "(end of the kernel log)"
#   awk -v mode=ours -f kcsan-reports.awk LOG     only sring's reports, whole
#   awk -v mode=count -f kcsan-reports.awk LOG    "OURS OTHERS"
function frame_is_ours(line) {
  return line ~ /\+0x[0-9a-f]+\/0x[0-9a-f]+ \[sring[a-z_]*\]/
}
function is_report_ours(    n, lines, i, l, in_stack, cut, top_seen, stacks, through, top_ours) {
  n = split(blk, lines, "\n")
  stacks = 0; through = 0; top_ours = 0; in_stack = 0
  for (i = 1; i <= n; i++) {
    l = lines[i]
    sub(/\r$/, "", l)
    # "read to 0x... of 8 bytes by task 12 on cpu 0:", "read-write (marked)
    # to ...", "write (marked, reordered) to ...", "assert no writes to ...",
    # "race at unknown origin, with read to ..." (6.1's get_access_type()
    # in kernel/kcsan/report.c): a stack starts.
    if (l ~ /(read|write|read-write|assert no accesses|assert no writes)( \([a-z, ]+\))? to 0x[0-9a-f]+ of [0-9]+ bytes by /) {
      in_stack = 1; cut = 0; top_seen = 0; stacks++; continue
    }
    if (!in_stack) continue
    # A line with nothing after the timestamp ends the stack.
    if (l ~ /^(\[ *[0-9.]+\] )? *$/) { in_stack = 0; continue }
    if (cut) continue
    if (l ~ / (asm_sysvec_[a-z_]+|asm_common_interrupt|asm_exc_[a-z_]+)\+0x/) { cut = 1; continue }
    if (!top_seen && l !~ / (__tsan_|kcsan_|__kcsan_)[a-z0-9_]*\+0x/) {
      top_seen = 1
      if (frame_is_ours(l)) top_ours = 1
    }
    if (frame_is_ours(l)) through = or_bit(through, stacks)
  }
  return top_ours || (stacks == 2 && through == 3)
}
# busybox awk and mawk have no or(): stack 1 is bit 1, stack 2 bit 2.
function or_bit(mask, stack) {
  if (stack == 1 && mask % 2 == 0) return mask + 1
  if (stack == 2 && mask < 2) return mask + 2
  return mask
}
function title_of(b) {
  if (match(b, /KCSAN: [^\n]*/)) return substr(b, RSTART + 7, RLENGTH - 7)
  return "?"
}
function close_report() {
  if (is_report_ours()) {
    n_ours++
    if (mode == "filter" || mode == "ours") print blk
  } else {
    n_others++
    if (mode == "filter") print "(a KCSAN report on code other than sring's: " title_of(blk) ")"
  }
  blk = ""; inblk = 0
}
function flush_held() {
  if (held != "" && mode == "filter") print held
  held = ""
}
# A KCSAN report is "=====", "BUG: KCSAN: ...", ..., "=====". It starts at
# its title (with the "=====" just before it, when that is the line before),
# so a line of something else between the two (the console mixes in the
# guest's own output) loses nothing. It ends at the next "=====", at the
# next title if its closing line was lost, or at the end of the log. A
# title lost from the log opens nothing, so the rest of the log is read as
# it is. Other "=====" blocks (KASAN, UBSAN) pass through as they are.
/BUG: KCSAN: / {
  if (inblk) close_report()
  inblk = 1
  blk = (held != "" ? held "\n" : "") $0
  held = ""
  next
}
/==================================================================/ {
  if (inblk) { blk = blk "\n" $0; close_report(); next }
  flush_held()
  held = $0
  next
}
inblk { blk = blk "\n" $0; next }
{ flush_held(); if (mode == "filter") print }
END {
  if (inblk) close_report()
  flush_held()
  if (mode == "count") print n_ours + 0, n_others + 0
  # Says the whole log went through: a reader that gets no such line knows
  # the filter failed (guest-init.sh kernel_log()).
  if (mode == "filter") print "(end of the kernel log)"
}
