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
 */
#ifndef _UAPI_SRING_PATTERN_H
#define _UAPI_SRING_PATTERN_H

#include <linux/types.h>

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

#endif /* _UAPI_SRING_PATTERN_H */
