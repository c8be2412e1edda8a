/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * The sample pattern every sring producer writes: each 16-bit sample is a
 * function of its 64-bit index since the last reset and a 32-bit seed, so a consumer
 * can verify every sample it sees, and tell a lost or shifted one, with no
 * side channel. Shared by the kernel's simulated device, the user-space
 * simulator and ringlib's verifier.
 *
 *   sample(i) = (u16)(lo16(i) * SRING_PATTERN_MUL) ^ chunk_mask(i >> 16, seed)
 *
 * SRING_PATTERN_MUL is odd, so within one 65536-sample chunk every sample is
 * distinct and any shift of less than 65536 is caught; chunk_mask changes
 * with every chunk, so a shift by a whole chunk is caught too. Within a chunk
 * the pattern is an arithmetic progression in 16-bit lanes: generating and
 * verifying it vectorise.
 *
 * Formats and channels (ABI 1.4): the pattern is a stream of 16-bit base
 * values, one per *element*: a real sample is one element, a complex one
 * two (I, then Q). Frame f, channel c, component k is element
 *
 *   e = (f * channels + c) * components + k
 *
 * and its value is sring_pattern_value(sring_pattern_sample(e, seed), format):
 * the base value itself for the 16-bit formats (so one channel of u16 or s16
 * is the pattern of ABI 1.0, unchanged), its high byte for the 8-bit ones,
 * the base value twice for s32 (high half, low half), the base value read as
 * s16 and divided by 32768 for f32 (exact in binary32: [-1, 1)), its high 12
 * bits for SRING_FMT_SIM_PACKED12. Every element of every format is checked
 * from its index alone.
 */
#ifndef _UAPI_SRING_PATTERN_H
#define _UAPI_SRING_PATTERN_H

#include <linux/types.h>

#include "sring/sring_abi.h"

#define SRING_PATTERN_MUL	0x9E37U
#define SRING_PATTERN_CHUNK	65536U

/* The xor mask shared by all samples of chunk (index >> 16). */
static inline __u16 sring_pattern_chunk_mask(__u64 chunk, __u32 seed)
{
	__u32 x = (__u32)chunk * 0x9E3779B1U + seed;

	x ^= x >> 15;
	x *= 0x85EBCA6BU;
	x ^= x >> 13;
	return (__u16)(x ^ (x >> 16));
}

static inline __u16 sring_pattern_sample(__u64 index, __u32 seed)
{
	/* Multiply in 32 bits: a u16 would be promoted to int and overflow. */
	__u32 lo = (__u32)(__u16)index;

	return (__u16)(lo * SRING_PATTERN_MUL) ^
	       sring_pattern_chunk_mask(index >> 16, seed);
}

/* Fill count samples starting at index first. */
static inline void sring_pattern_fill(__u16 *dst, __u64 first, __u32 count,
				      __u32 seed)
{
	while (count) {
		__u64 chunk = first >> 16;
		__u32 in_chunk = SRING_PATTERN_CHUNK - (__u32)(__u16)first;
		__u32 n = count < in_chunk ? count : in_chunk;
		__u16 mask = sring_pattern_chunk_mask(chunk, seed);
		__u16 value = (__u16)((__u32)(__u16)first * SRING_PATTERN_MUL);
		__u32 k;

		/* An arithmetic progression mod 2^16: vectorises. */
		for (k = 0; k < n; k++) {
			dst[k] = value ^ mask;
			value = (__u16)(value + SRING_PATTERN_MUL);
		}
		dst += n;
		first += n;
		count -= n;
	}
}

/* The simulated devices' own format (sring_sim.ko, sring-sim), in the
 * device range of sring_abi.h: 12-bit unsigned samples packed two in three
 * bytes in element order: byte 0 = s0 bits 0-7, byte 1 = s0 bits 8-11 |
 * s1 bits 0-3 << 4, byte 2 = s1 bits 4-11 (the layout of many converters'
 * FIFOs). A block's elements are paired from its first; an odd last one
 * takes two bytes, the upper half of the second zero. bits_per_sample 12. */
#define SRING_FMT_SIM_PACKED12		0x8000U
#define SRING_FMT_SIM_PACKED12_BITS	12U

/* The bit pattern of binary32 (base read as s16) / 32768, with integer
 * arithmetic only (the kernel has no FPU here): exact, as binary32 holds
 * every 16-bit integer scaled by a power of two. */
static inline __u32 sring_pattern_f32_bits(__u16 base)
{
	__s32 value = (__s16)base;
	__u32 sign = value < 0 ? 0x80000000U : 0;
	__u32 magnitude = value < 0 ? (__u32)-value : (__u32)value;
	__u32 msb;

	if (!magnitude)
		return 0;
	msb = 31 - (__u32)__builtin_clz(magnitude);	/* 0 to 15 */
	/* magnitude * 2^-15 = 1.m * 2^(msb - 15) */
	return sign | ((127 + msb - 15) << 23) |
	       ((magnitude << (23 - msb)) & 0x7fffffU);
}

/* The value of an element with base value @base in @format: the low
 * 8, 12, 16 or 32 bits of the result (f32: its bit pattern). */
static inline __u32 sring_pattern_value(__u16 base, __u32 format)
{
	switch (format) {
	case SRING_FMT_U8:
	case SRING_FMT_S8:
		return base >> 8;
	case SRING_FMT_S32:
		return ((__u32)base << 16) | base;
	case SRING_FMT_F32:
	case SRING_FMT_CF32:
		return sring_pattern_f32_bits(base);
	case SRING_FMT_SIM_PACKED12:
		return base >> 4;
	default:	/* U16, S16, CS16 */
		return base;
	}
}

/* Bits of one sample of one channel in the formats the pattern is defined
 * for (the standard ones and SRING_FMT_SIM_PACKED12); 0 for others. */
static inline __u32 sring_pattern_format_bits(__u32 format)
{
	if (format == SRING_FMT_SIM_PACKED12)
		return SRING_FMT_SIM_PACKED12_BITS;
	return sring_format_bits(format);
}

/*
 * The byte SRING_FAULT_CORRUPT flips in a block of @frames frames (both
 * producers): the first byte of the payload's middle value, so exactly one
 * value goes wrong in every layout. A value whose width is not whole bytes
 * (12-bit packed) is taken at an even index, whose first byte is its own.
 * @bits_per_sample covers all @components of a sample (cs16: 32, 2).
 */
static inline __u64 sring_corrupt_byte(__u64 frames, __u32 channels,
				       __u32 bits_per_sample, __u32 components)
{
	__u32 value_bits = bits_per_sample / components;
	__u64 middle = frames * channels * components / 2;

	if (value_bits % 8)
		middle &= ~(__u64)1;
	return middle * value_bits / 8;
}

/*
 * Writes the pattern's payload of a block: @frames frames of @channels
 * channels in @format, the first being frame @first_frame (the block's
 * first_sample). dst needs sring_payload_bytes(frames, channels, bits)
 * bytes. Returns 0, or -1 for a format the pattern does not define (nothing
 * written). The 16-bit formats go straight to sring_pattern_fill(); the
 * others convert batches of base values.
 */
static inline int sring_pattern_fill_format(void *dst, __u32 format,
					    __u32 channels, __u64 first_frame,
					    __u32 frames, __u32 seed)
{
	__u32 bits = sring_pattern_format_bits(format);
	__u64 per_frame = (__u64)channels * sring_format_components(format);
	__u64 element = first_frame * per_frame;
	__u64 count = frames * per_frame;
	__u8 *out = (__u8 *)dst;
	__u16 base[64];
	__u64 done = 0;

	if (!bits)
		return -1;
	if (bits == 16 || format == SRING_FMT_CS16) {
		/* u16, s16, cs16: the elements are the base values. */
		while (count) {
			__u32 n = count > 0x40000000U ? 0x40000000U : (__u32)count;

			sring_pattern_fill((__u16 *)out, element, n, seed);
			out += (__u64)n * 2;
			element += n;
			count -= n;
		}
		return 0;
	}
	/* Batches of base values, one loop per format (no switch per value:
	 * the kernel's simulated device runs this in softirq). */
	while (done < count) {
		__u32 n = count - done < 64 ? (__u32)(count - done) : 64;
		__u32 k;

		sring_pattern_fill(base, element + done, n, seed);
		switch (format) {
		case SRING_FMT_U8:
		case SRING_FMT_S8:
			for (k = 0; k < n; k++)
				out[done + k] = (__u8)(base[k] >> 8);
			break;
		case SRING_FMT_S32:
			for (k = 0; k < n; k++)
				((__u32 *)out)[done + k] =
					((__u32)base[k] << 16) | base[k];
			break;
		case SRING_FMT_F32:
		case SRING_FMT_CF32:
			for (k = 0; k < n; k++)
				((__u32 *)out)[done + k] =
					sring_pattern_f32_bits(base[k]);
			break;
		default:	/* SRING_FMT_SIM_PACKED12; done is even */
			for (k = 0; k < n; k++) {
				__u32 value = base[k] >> 4;
				__u8 *pair = out + (done + k) / 2 * 3;

				if ((done + k) % 2 == 0) {
					pair[0] = (__u8)value;
					pair[1] = (__u8)(value >> 8);
				} else {
					pair[1] |= (__u8)(value << 4);
					pair[2] = (__u8)(value >> 4);
				}
			}
			break;
		}
		done += n;
	}
	return 0;
}

#endif /* _UAPI_SRING_PATTERN_H */
