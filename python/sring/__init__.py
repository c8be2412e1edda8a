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

import sys as _sys

# Missing pieces are one-line ImportErrors that say what to install, not a
# traceback from inside the extension: numpy first, which every block needs
# (the extension only imports it when it makes the first array).
try:
    import numpy as _numpy  # noqa: F401
except ImportError as _error:
    raise ImportError(
        f"sring needs numpy, which this Python ({_sys.executable}) cannot import ({_error}): install "
        "python3-numpy (Debian) and use Debian's python3, or a venv of it made with --system-site-packages"
    ) from None
try:
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
except ImportError as _error:  # missing, stale, or built for another Python
    raise ImportError(
        f"sring's extension module cannot be loaded by this Python ({_sys.executable}, "
        f"{_sys.version.split()[0]}): {_error}; build it with this Python: "
        "`python3 -m pip install --no-build-isolation --no-index .` in an sring checkout (docs/python.md)"
    ) from None

try:
    from ._version import __version__  # generated from SRING_VERSION by the build
except ImportError:  # sring/ used straight from a checkout
    __version__ = "unknown"

__all__ = ["__version__", "SRING_ABI_VERSION", "Block", "Blocks", "FormatMismatch", "Ring", "connect", "open", "pattern",
           "simulate", "subscribe", "Subscriber"]
