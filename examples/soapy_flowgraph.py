#!/usr/bin/python3
"""A GNU Radio 3.10 flowgraph reading an sring through SoapySDR, headless:

    soapy source (driver=sring) -> blocks.head -> a sink that checks every sample

    examples/soapy_flowgraph.py --args "driver=sring,sim=1" --rate 1e6 --format cf32 --samples 1000000

The sink checks every sample against the sring test pattern (docs/abi.md, "The
sample pattern"): one channel of complex samples, frame f being elements 2f (I)
and 2f+1 (Q), whose 16-bit base values sring.pattern() gives. --format is the
stream format GNU Radio asks SoapySDR for (its soapy source has only complex
ones): cf32 items are base / 32768 exactly (the cf32 format of the pattern,
and what SoapySDR's CS16 -> CF32 conversion at full scale 32768 gives), cs16
items the base values themselves.

Losses. GNU Radio's soapy source does not pass them on: on SOAPY_SDR_OVERFLOW it
writes "sO" to stderr and reads again, so the items after a gap simply follow
the ones before it, with no tag. The pattern locates them instead: every value
is a function of its index, so at a mismatch the sink looks for the index the
new values belong to (at most MAX_GAP_ELEMENTS further on) and counts the
frames in between as lost; a value no index explains is counted as bad.

The end of the stream. The soapy source returns 0 items on the module's end of
stream (and warns on other readStream errors) and is called again, so a
flowgraph whose device stops before blocks.head has its count never finishes
on its own. This one asks the module through the source's own read_setting()
("end_of_stream") and, once the sink has every sample the module delivered,
reads the module's counters the same way and stops the flowgraph: then every
sample the producer made is verified, in a gap the sink located, or made after
the last one delivered (docs/abi.md, "End of stream"), and the module's dropped
count must be exactly the sum of the last two. The same for every source
(sim=1, sim_socket=, device=). A run with no data for --idle seconds and no end
of stream is a stall, and fails.

Prints one result line and exits 0 when every sample verified and the
accounting is exact, 1 otherwise, 2 on a usage or device error.
Needs the sring Python package (PYTHONPATH) for sring.pattern().
"""

import argparse
import os
import sys
import threading
import time

import numpy as np

MUL = 0x9E37  # SRING_PATTERN_MUL (docs/abi.md): base(e) = lo16(e) * MUL ^ mask(e >> 16)
MUL_INV = pow(MUL, -1, 1 << 16)  # MUL is odd: lo16(e) = (base ^ mask) * MUL_INV
MAX_GAP_ELEMENTS = 1 << 28  # how far past a mismatch the sink looks for the stream
CONFIRM = 32  # elements that must match before a resynchronisation is believed

# GNU Radio's soapy source types, by the SoapySDR stream format they ask for.
TYPES = {"cf32": "fc32", "fc32": "fc32", "cs16": "sc16", "sc16": "sc16"}


class PatternChecker:
    """Checks a stream of 16-bit base values (I, Q, I, Q, ...) against the
    pattern from frame `first_frame` on, locating the stream again after a gap.
    Vectorised: Python runs once per call and once per gap, numpy per value."""

    def __init__(self, pattern, first_frame=0, seed=1):
        self.pattern = pattern
        self.seed = seed
        self.next = 2 * first_frame  # the element the next value should be
        self.verified = 0  # frames that matched the pattern
        self.gaps = []  # (first missing frame, frames missing)
        self.bad = 0  # frames no index explains
        self.pending = np.empty(0, np.uint16)  # values held until a gap can be confirmed
        self.pending_ok = np.empty(0, bool)
        self._masks = {}

    def mask(self, chunk):
        # The value of element 0 of a chunk is its mask (lo16 = 0).
        if chunk not in self._masks:
            self._masks[chunk] = int(self.pattern(chunk << 16, 1, self.seed)[0])
        return self._masks[chunk]

    def feed(self, values, exact, final=False):
        """values: uint16 base values; exact: False where the item could not
        be a pattern value at all (a float that is not k / 32768)."""
        v = np.concatenate((self.pending, values))
        ok = np.concatenate((self.pending_ok, exact))
        pos = 0
        while pos + 1 < len(v):
            n = (len(v) - pos) & ~1  # whole frames
            want = self.pattern(self.next, n, self.seed)
            match = (v[pos:pos + n] == want) & ok[pos:pos + n]
            if match.all():
                self.verified += n // 2
                self.next += n
                pos += n
                continue
            bad = int(np.argmin(match)) & ~1  # the frame of the first mismatch
            self.verified += bad // 2
            self.next += bad
            pos += bad
            if len(v) - pos < CONFIRM and not final:
                break  # wait for more values before deciding what this is
            found = self.locate(v[pos:pos + CONFIRM], ok[pos:pos + CONFIRM])
            if found is None:
                self.bad += 1  # a wrong value in place: skip its frame
                self.next += 2
                pos += 2
            else:
                self.gaps.append((self.next // 2, (found - self.next) // 2))
                self.next = found
        self.pending, self.pending_ok = v[pos:].copy(), ok[pos:].copy()

    def locate(self, v, ok):
        """The first element index >= self.next, frame-aligned, whose
        pattern the values v begin with (all of them), or None."""
        if len(v) < 2 or not ok.all():
            return None
        first_chunk = self.next >> 16
        chunks = np.arange(first_chunk, first_chunk + (MAX_GAP_ELEMENTS >> 16) + 1, dtype=np.uint64)
        masks = np.array([self.mask(int(c)) for c in chunks], dtype=np.uint32)
        lo = ((int(v[0]) ^ masks) * MUL_INV) & 0xFFFF  # where v[0] sits in each chunk
        q = (((lo + 1) * MUL) & 0xFFFF) ^ masks  # and the Q value that must follow it
        e = (chunks << np.uint64(16)) | lo.astype(np.uint64)
        for cand in e[(lo % 2 == 0) & (q == v[1]) & (e > self.next)]:
            if np.array_equal(self.pattern(int(cand), len(v), self.seed), v):
                return int(cand)
        return None

    def finish(self):
        self.feed(np.empty(0, np.uint16), np.empty(0, bool), final=True)
        if len(self.pending):  # an odd value left over: half a frame
            self.bad += 1
            self.pending = self.pending[:0]


def base_values(items, stream_type):
    """The base values the items carry, and where an item cannot carry one."""
    if stream_type == "sc16":
        flat = items.reshape(-1).view(np.uint16)
        return flat, np.ones(len(flat), bool)
    f = items.view(np.float32).reshape(-1)
    scaled = f * np.float32(32768)
    # In range and a whole number: otherwise no int16 / 32768 gives it.
    exact = (scaled >= -32768) & (scaled <= 32767) & (scaled == np.floor(scaled))
    return np.where(exact, scaled, 0).astype(np.int32).astype(np.uint16), exact


def make_flowgraph(args, sring):
    from gnuradio import blocks, gr, soapy

    stream_type = TYPES[args.format]

    class VerifyingSink(gr.sync_block):
        def __init__(self):
            item = (np.int16, 2) if stream_type == "sc16" else np.complex64
            gr.sync_block.__init__(self, name="sring_verify", in_sig=[item], out_sig=None)
            self.checker = PatternChecker(sring.pattern, args.first_frame, args.seed)
            self.items = 0
            self.last_item_time = time.monotonic()

        def work(self, input_items, output_items):
            x = input_items[0]
            values, exact = base_values(x, stream_type)
            self.checker.feed(values, exact)
            self.items += len(x)
            self.last_item_time = time.monotonic()
            if args.slow_ms:
                time.sleep(args.slow_ms / 1000)  # a deliberately slow consumer: the ring overflows
            return len(x)

    tb = gr.top_block("sring_soapy")
    # The whole device string goes in `device`; GNU Radio joins it with
    # dev_args and writes every key that getSettingInfo() lists as a setting
    # (policy=, format=, ...). Its per-channel other_settings would go to
    # writeSetting(direction, channel, ...), which sring has none of.
    src = soapy.source(args.args, stream_type, 1, args.dev_args, args.stream_args, [""], [""])
    src.set_sample_rate(0, args.rate)
    head = blocks.head(gr.sizeof_gr_complex if stream_type == "fc32" else 4, args.samples)
    sink = VerifyingSink()
    tb.connect(src, head, sink)
    return tb, src, sink


def setting(src, key):
    """One of the module's read-only settings (docs/soapysdr.md) through the
    soapy source's read_setting(). GNU Radio 3.10.5 returns the value
    getSettingInfo() lists, typed (the module lists the live values: counters
    as INT, flags as BOOL), which arrives as an int or a bool; a GNU Radio that
    calls readSetting() instead gives the string."""
    value = src.read_setting(key)
    if isinstance(value, str):
        if value in ("true", "false"):
            return value == "true"
        if not value.isdigit():
            # A module that lists no live values: GNU Radio 3.10.5 cannot read them.
            sys.exit(f"soapy_flowgraph: the device gives {key}={value!r}, not a count (an sring module that "
                     "lists its counters' values in getSettingInfo() is needed)")
        return int(value)
    return value


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--args", default="driver=sring,sim=1", help="SoapySDR device arguments")
    p.add_argument("--dev-args", default="", help="more device arguments (GNU Radio's dev_args)")
    p.add_argument("--stream-args", default="", help="SoapySDR stream arguments")
    p.add_argument("--rate", type=float, default=1e6, help="samples per second (setSampleRate)")
    p.add_argument("--format", default="cf32", choices=sorted(TYPES), help="stream format: cf32 (fc32) or cs16 (sc16)")
    p.add_argument("--samples", type=int, default=1_000_000, help="samples blocks.head passes on")
    p.add_argument("--first-frame", type=int, default=0, help="index of the first sample (0 for a fresh simulator)")
    p.add_argument("--seed", type=int, default=1, help="the pattern's seed")
    p.add_argument("--idle", type=float, default=3.0,
                   help="give up after this long without data and no end of stream (s)")
    p.add_argument("--slow-ms", type=float, default=0.0, help="sleep this long in every call of the sink")
    args = p.parse_args()

    try:
        import sring
    except ImportError as e:
        print(f"soapy_flowgraph: the sring Python package is needed for its pattern ({e}); set PYTHONPATH", file=sys.stderr)
        return 2
    try:
        tb, src, sink = make_flowgraph(args, sring)
    except (RuntimeError, ValueError) as e:  # SoapySDR's and GNU Radio's refusals
        print(f"soapy_flowgraph: cannot open {args.args!r}: {e}", file=sys.stderr)
        return 2

    # The flowgraph runs in a thread of its own: when a block fails to start
    # (a refused setupStream() in the source's start(), which GNU Radio
    # reports on stderr), tb.start() never returns, and this thread must
    # still be able to give up.
    done = threading.Event()
    threading.Thread(target=lambda: (tb.run(), done.set()), daemon=True).start()
    ended = idle = False
    counters = {}
    while not done.wait(0.1):
        # The soapy source never finishes by itself when the device stops:
        # the module says when everything it had was handed out, and once
        # the sink has all of it, the flowgraph is stopped. The stream's
        # counters are read now: GNU Radio closes the stream when it stops.
        if setting(src, "end_of_stream"):
            delivered = setting(src, "samples_delivered")
            if sink.items >= delivered:
                counters = {k: setting(src, k) for k in ("samples_produced", "samples_dropped", "overflows")}
                ended = True
                break
        if time.monotonic() - sink.last_item_time > args.idle:
            idle = True  # no data for a while, and no end of stream said
            break
    threading.Thread(target=tb.stop, daemon=True).start()
    if not done.wait(10):
        # A flowgraph that never started cannot be stopped or waited for.
        print(f"soapy_flowgraph: the flowgraph did not stop ({sink.items} samples delivered); "
              "see GNU Radio's error above", flush=True)
        os._exit(1)

    c = sink.checker
    c.finish()
    lost = sum(n for _, n in c.gaps)
    # Every item delivered is verified or counted bad; none left over.
    exact = c.bad == 0 and c.verified == sink.items and not len(c.pending)
    line = (f"{c.verified} samples verified of {sink.items} delivered ({args.format}), {c.bad} bad, "
            f"{len(c.gaps)} gaps totalling {lost} lost samples, next index {c.next // 2}")
    if ended:
        # Everything was drained: docs/abi.md's end-of-stream rule, with the
        # gaps the sink found in the data against the module's counters.
        produced, dropped = counters["samples_produced"], counters["samples_dropped"]
        at_end = produced - c.next // 2
        line += (f"; stream ended: module produced {produced}, dropped {dropped} in {counters['overflows']} "
                 f"overflows, missing at end {at_end}")
        exact = exact and at_end >= 0 and dropped == lost + at_end and c.verified + dropped == produced
    elif idle:
        line += f"; stalled: nothing for {args.idle} s and no end of stream"
        exact = False
    else:
        # blocks.head ended the run, and GNU Radio closed the stream: the
        # module's counts went with it (and were not final: the source may
        # have read past the head's count). Gaps, if any, are placed by the
        # pattern alone.
        exact = exact and sink.items == args.samples
        if c.gaps:
            line += "; blocks.head's count reached, gaps located from the pattern alone"
    print(line + (": every sample verified, accounting exact" if exact else ": NOT EXACT"))
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
