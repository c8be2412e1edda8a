#!/usr/bin/env python3
"""Power spectrum and envelope of one second of samples, in numpy, zero-copy.
   examples/spectrum.py [/dev/sringN]   (default: the in-process simulated device)"""
import sys, threading
import numpy as np
import sring

with sring.open(sys.argv[1]) if len(sys.argv) > 1 else sring.simulate() as ring:
    ring.configure(sample_rate=20e6, block_samples=4096, sample_format="s16")
    ring.start()
    threading.Timer(1.0, ring.stop).start()             # acquire for one second
    power, low, high = np.zeros(2049), 0, 0
    for block in ring.blocks():                          # read-only views of the ring
        x = block.samples[:, 0].astype(np.float32)      # (frames, channels): channel 0
        power += np.abs(np.fft.rfft(x)) ** 2
        low, high = min(low, x.min()), max(high, x.max())
    c = ring.counters()
print(f"{c['samples']} samples, envelope [{low:.0f}, {high:.0f}], strongest bin {np.argmax(power[1:]) + 1}; "
      f"{c['missing_samples']} lost, {c['samples_dropped']} dropped: "
      + ("every sample accounted for" if c["exact"] else "ACCOUNTING NOT EXACT"))
sys.exit(0 if c["exact"] else 1)
