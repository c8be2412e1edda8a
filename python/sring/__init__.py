"""sring: consume an sring ring from Python, its blocks as numpy views.

    import numpy as np, sring
    with sring.open("/dev/sring0") as ring:          # or sring.simulate(...)
        ring.configure(sample_rate=20e6, block_samples=4096, sample_format="cs16", channels=2)
        ring.start()
        for block in ring.blocks():                  # ends at the end of the stream
            x = block.samples                        # read-only view of the ring
            ...
        print(ring.counters())                       # exact: every sample accounted for

block.samples has one row per frame and one column per channel, whatever
the channel count (one channel is shape (frames, 1)): uint8, int8, uint16,
int16, int32, float32 or complex64 for u8, s8, u16, s16, s32, f32 and cf32;
int16 of shape (frames, channels, 2), I then Q, for cs16 (numpy has no
complex int16: x.astype(np.float32).view(np.complex64)[..., 0] converts);
uint8 payload bytes for a device's own format. block.array(dtype) checks
the dtype (sring.FormatMismatch, a ValueError, if it is not the samples').

A view keeps its block's ring space from being given back to the producer:
keep block.samples.copy() of what you keep beyond the loop. Under the
overwrite-oldest policy samples are checked copies. Waits release the GIL;
Ctrl-C raises KeyboardInterrupt, and leaving the `with` stops the device.

From sring-publish over ZeroMQ (docs/streaming.md), with the same accounting:

    for block in sring.subscribe("tcp://host:5555", pattern="pull"):
        ...                                          # block.samples: a read-only copy
"""

from ._sring import (  # noqa: F401  (the public API)
    SRING_ABI_VERSION,
    Block,
    Blocks,
    FormatMismatch,
    Ring,
    connect,
    open,
    pattern,
    simulate,
    subscribe,
    Subscriber,
)

__all__ = ["SRING_ABI_VERSION", "Block", "Blocks", "FormatMismatch", "Ring", "connect", "open", "pattern",
           "simulate", "subscribe", "Subscriber"]
