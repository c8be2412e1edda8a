"""The sring test pattern in numpy, written from docs/abi.md ("The sample
pattern", "Sample formats and channels") alone, so that the tests check the
binding's arrays against something that shares no code with the C++ they
test (sring.pattern() is the C header's one-channel pattern).

    base(e) = (u16)(lo16(e) * 0x9E37) ^ chunk_mask(e >> 16, seed)
    element e = (frame * channels + channel) * components + part
"""

import numpy as np

MUL = 0x9E37
SIM_PACKED12 = 0x8000

# name: (dtype of the values, bits per sample, complex)
FORMATS = {
    "u8": (np.uint8, 8, False),
    "s8": (np.int8, 8, False),
    "u16": (np.uint16, 16, False),
    "s16": (np.int16, 16, False),
    "s32": (np.int32, 32, False),
    "f32": (np.float32, 32, False),
    "cs16": (np.int16, 32, True),
    "cf32": (np.complex64, 64, True),
    "sim-packed12": (np.uint8, 12, False),
}


def chunk_mask(chunks, seed):
    """chunk_mask() of sring_pattern.h, for an array of chunk numbers."""
    x = chunks.astype(np.uint32) * np.uint32(0x9E3779B1) + np.uint32(seed)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x85EBCA6B)
    x ^= x >> np.uint32(13)
    return (x ^ (x >> np.uint32(16))).astype(np.uint16)


def base(first_element, count, seed):
    """The 16-bit base values of elements first_element .. + count - 1."""
    e = np.arange(first_element, first_element + count, dtype=np.uint64)
    lo = (e & np.uint64(0xFFFF)).astype(np.uint32)
    values = (lo * np.uint32(MUL)).astype(np.uint16)  # mod 2^16
    if count == 0:
        return values
    chunks = e >> np.uint64(16)
    first_chunk = int(chunks[0])
    masks = chunk_mask(np.arange(first_chunk, int(chunks[-1]) + 1, dtype=np.uint64), seed)
    return values ^ masks[(chunks - np.uint64(first_chunk)).astype(np.intp)]


def frames_per_block(name, channels, block_bytes):
    return (block_bytes - 64) * 8 // (channels * FORMATS[name][1])


def payload_bytes(name, channels, frames):
    return (frames * channels * FORMATS[name][1] + 7) // 8


def expected(name, channels, first_frame, frames, seed=1):
    """What Block.samples must be for `frames` frames from `first_frame`:
    dtype and shape included (python/sring_module.cpp, docs)."""
    _, _, is_complex = FORMATS[name]
    parts = 2 if is_complex else 1
    u = base(first_frame * channels * parts, frames * channels * parts, seed)
    signed = u.view(np.int16)
    if name == "u8":
        return (u >> np.uint16(8)).astype(np.uint8).reshape(frames, channels)
    if name == "s8":
        return (u >> np.uint16(8)).astype(np.uint8).view(np.int8).reshape(frames, channels)
    if name == "u16":
        return u.reshape(frames, channels)
    if name == "s16":
        return signed.reshape(frames, channels)
    if name == "s32":
        wide = u.astype(np.uint32)
        return ((wide << np.uint32(16)) | wide).view(np.int32).reshape(frames, channels)
    if name == "f32":
        return (signed.astype(np.float32) / np.float32(32768)).reshape(frames, channels)
    if name == "cs16":
        return signed.reshape(frames, channels, 2)
    if name == "cf32":
        scaled = signed.astype(np.float32) / np.float32(32768)
        out = np.empty(frames * channels, dtype=np.complex64)
        out.real, out.imag = scaled[0::2], scaled[1::2]
        return out.reshape(frames, channels)
    if name == "sim-packed12":
        return packed12(u >> np.uint16(4))
    raise ValueError(name)


def packed12(values):
    """12-bit values two in three bytes, paired from the first; an odd last
    one in two bytes, the top half of the second zero."""
    v = values.astype(np.uint16)
    n = len(v)
    out = np.zeros((n * 12 + 7) // 8, dtype=np.uint8)
    even, odd = v[0::2], v[1::2]
    out[0::3][: len(even)] = even & 0xFF
    second = (even >> 8) & 0xF
    second[: len(odd)] |= (odd & 0xF) << 4
    out[1::3][: len(even)] = second
    out[2::3][: len(odd)] = odd >> 4
    return out
