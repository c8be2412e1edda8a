/* SPDX-License-Identifier: MIT */
/*
 * libsring: the stable C API over an sring ring, what other languages bind
 * to. One struct sring_consumer is one consumer of one ring: /dev/sringN (opened as
 * its consumer), or a ring file with the eventfd its producer signals.
 *
 *   struct sring_consumer *ring;
 *   if (sring_open("/dev/sring0", &ring) < 0) ...
 *   sring_configure(ring, &config); sring_start(ring);
 *   while (!sring_end_of_stream(ring)) {
 *     if (sring_consume(ring, on_block, &state, SRING_ALL) == 0)
 *       sring_wait(ring, -1);
 *   }
 *   sring_get_counters(ring, &counters);   counters.exact: every sample accounted for
 *   sring_close(ring);
 *
 * Build: cc app.c $(pkg-config --cflags --libs libsring). Soname
 * libsring.so.1: the major number changes only when this header does in an
 * incompatible way. Functions return 0 (or a count) on success and a
 * negative errno on failure; sring_last_error() says why in a sentence.
 * A struct sring_consumer belongs to one thread at a time; the blocks of
 * sring_peek() may be read from any thread until the owning thread
 * releases them.
 *
 * Sample formats and channels (ABI 1.4, docs/abi.md "Sample formats"): a
 * block holds header.sample_count *frames*, one sample of each channel,
 * interleaved. struct sring_block says how to read them (format, channels,
 * bits_per_sample, frames) and where (payload, payload_bytes); the old
 * samples pointer is there only for the 16-bit formats (u16, s16). A
 * device's configuration takes channels in struct sring_config (0 means 1).
 */
#ifndef SRING_SRING_H
#define SRING_SRING_H

#include <stdint.h>

#include "sring/sring_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sring_consumer;

#define SRING_ALL UINT64_MAX

/* One snapshot of a stream's accounting (docs/abi.md). Every "samples"
 * here counts frames (one sample of each channel), as the header does. */
struct sring_counters {
	/* What this consumer was given. */
	uint64_t blocks;
	uint64_t samples;
	/* Missing between the blocks given (the loss rule), and after the last
	 * one at the end of the stream. */
	uint64_t missing_blocks;
	uint64_t missing_samples;
	/* The producer's counters. */
	uint64_t blocks_produced;
	uint64_t samples_produced;
	uint64_t blocks_dropped;
	uint64_t samples_dropped;
	/* Read, then taken back by the producer (overwrite-oldest): not given. */
	uint64_t overwritten_while_read;
	uint32_t state;		/* enum sring_state */
	/* At the end of a stream: 1 if missing == dropped, exactly. */
	uint32_t exact;
};

/*
 * Called for each block, in order, with the validated copy of its header
 * and its samples in place (valid until the callback returns). lost_before:
 * samples (frames) missing right before it. Return 0 to go on, anything
 * else to stop after this block (it counts as given).
 *
 * samples is that of struct sring_block (below): the block's 16-bit values
 * for u16 and s16 (header->sample_count * channels of them), NULL for every
 * other format. A callback for any format is an sring_block_view_fn, given
 * to sring_consume_blocks().
 */
typedef int (*sring_block_fn)(const struct sring_block_header *header,
			      const uint16_t *samples, uint64_t lost_before,
			      void *user);

/*
 * Opening and attaching: if the producer has made nothing yet (a fresh or
 * reset ring), the consumer's accounting starts at sample 0, so a loss
 * before its first block counts; otherwise it starts at the first block it
 * is given (it attached mid-stream).
 */
/* Opens a device (/dev/sringN) as its consumer, with an eventfd to wait on. */
int sring_open(const char *path, struct sring_consumer **ring);
/* Attaches to a ring file (or device) fd; event_fd is the eventfd its
 * producer signals, or -1 (then sring_wait() polls). Takes both fds. */
int sring_attach_fd(int ring_fd, int event_fd, struct sring_consumer **ring);
void sring_close(struct sring_consumer *ring);
/* Why the last call on this ring failed; never NULL. With NULL: why this
 * thread's last sring_open(), sring_attach_fd() or sring_parse_format()
 * failed. */
const char *sring_last_error(const struct sring_consumer *ring);

/* Device control (-EOPNOTSUPP on a ring file). A reset starts the stream
 * anew at sample 0. sring_configure() and sring_reset() are -EBUSY while
 * blocks from sring_peek() are held: a reset maps the ring anew (the held
 * samples pointers would dangle) and a new overrun policy could take held
 * blocks back. */
int sring_configure(struct sring_consumer *ring, const struct sring_config *config);
int sring_start(struct sring_consumer *ring);
int sring_stop(struct sring_consumer *ring);
int sring_reset(struct sring_consumer *ring);

/* Gives the blocks available now (up to max_blocks; blocks that arrive
 * meanwhile wait for the next call) to fn, and releases them. Returns how
 * many were given (0: none available now) or a negative errno; -EBUSY
 * while blocks from sring_peek() are held (release them first: the two
 * would otherwise give the same blocks twice). */
int64_t sring_consume(struct sring_consumer *ring, sring_block_fn fn, void *user,
		      uint64_t max_blocks);
/*
 * Batch mode: the blocks as an array instead of a callback, for a caller
 * that works on several at once or hands them to other code (the shape of
 * liburing's io_uring_peek_batch_cqe() and io_uring_cq_advance()):
 *
 *   struct sring_block blocks[64];
 *   int64_t n = sring_peek(ring, blocks, 64);
 *   ... work on blocks[0 .. n) ...
 *   sring_release(ring, n);
 *
 * Nothing moves until sring_release(): a block is held, its samples stay in
 * place and the producer cannot reuse its space, from the sring_peek() that
 * gave it until the sring_release() that covers it. sring_wait() waits for
 * blocks beyond those held, and the stream does not end until they are
 * released. Accounting is that of
 * sring_consume(): a block counts as given (struct sring_counters) when it
 * is released, and the losses are the same.
 *
 * Not under SRING_OVERRUN_OVERWRITE_OLDEST (-EOPNOTSUPP): there the
 * producer may take back and rewrite any block a consumer has not released,
 * so the samples of a held block could change while the caller reads them.
 * sring_consume() is made for that policy: it releases each block right
 * after its callback and does not count one that was taken back.
 */
struct sring_block {
	/* The validated copy of the block's header: it cannot change, and it
	 * stays valid as long as this struct does. */
	struct sring_block_header header;
	/* The samples as 16-bit values, in place in the ring, for the formats
	 * whose values are 16-bit (u16, s16): frames * channels of them. NULL
	 * for every other format, so that code written for ABI 1.0's u16 rings
	 * fails at once instead of misreading 8-bit, 32-bit or complex data;
	 * payload is the same memory for every format. */
	const uint16_t *samples;
	/* Samples (frames) missing right before this block, as in
	 * sring_block_fn. */
	uint64_t lost_before;
	/* 1.4: the samples' bytes in place, in any format: payload_bytes of
	 * them, sring_payload_bytes(frames, channels, bits_per_sample) (whole
	 * bytes, rounded up). Frame f, channel c is value f * channels + c:
	 *   u8 uint8_t, s8 int8_t, u16 uint16_t, s16 int16_t, s32 int32_t,
	 *   f32 float, cs16 two int16_t (I, Q), cf32 two float (I, Q);
	 * a device's own format (>= SRING_FMT_DEVICE_FIRST) is what its
	 * driver documents. Valid until the block is released (the callback
	 * returns, for sring_consume_blocks()). Aligned to 64 bytes. */
	const void *payload;
	uint64_t payload_bytes;
	/* The block's layout, as the header says it (a 1.3 producer's zero
	 * channels and bits_per_sample read as 1 and 8 * bytes_per_sample). */
	uint64_t frames;		/* header.sample_count */
	uint32_t format;		/* enum sring_sample_format, or a device's */
	uint32_t channels;		/* 1 to SRING_MAX_CHANNELS */
	uint32_t bits_per_sample;	/* of one sample of one channel */
	uint32_t reserved0;		/* zero */
	/* (1.4 added the fields from payload on: a caller's array of
	 * struct sring_block must be built against this header.) */
};

/*
 * sring_consume() for any format: fn gets each block as a struct sring_block
 * (the one of batch mode), in order, valid until fn returns. Return 0 to go
 * on, anything else to stop after this block (it counts as given). Returns
 * what sring_consume() returns.
 */
typedef int (*sring_block_view_fn)(const struct sring_block *block, void *user);
int64_t sring_consume_blocks(struct sring_consumer *ring, sring_block_view_fn fn,
			     void *user, uint64_t max_blocks);

/* Fills blocks[] with the oldest blocks not yet released that are available
 * now (one look at the ring: blocks that arrive meanwhile wait for the next
 * call), at most max_blocks, and holds them. Blocks held from an earlier
 * sring_peek() come first again, and stay held even if max_blocks is now
 * smaller: peeking again without releasing gives the same blocks (and
 * maybe more). A block whose header does not validate ends the batch
 * before it; only if it is the first is that an error (-EPROTO). Returns
 * how many blocks were given (0: none available now, or max_blocks is 0)
 * or a negative errno: -EOPNOTSUPP under overwrite-oldest (above). */
int64_t sring_peek(struct sring_consumer *ring, struct sring_block *blocks,
		   uint64_t max_blocks);
/* Releases the oldest count blocks held (peeked and not yet released):
 * they count as given, their samples and payload pointers are no longer
 * valid, and the producer may reuse their space. The rest stay held, their
 * entries in blocks[] still valid. count 0 does nothing. Returns 0, or
 * -EINVAL if count is more than are held, or -ESTALE if the producer took some of
 * them back before they were released: possible only if a ring file's
 * producer restarted under overwrite-oldest while they were held. Then
 * those blocks are not counted as given (overwritten_while_read; their
 * samples may have changed while read), their loss shows as missing, and
 * no block stays held. */
int sring_release(struct sring_consumer *ring, uint64_t count);

/* Sleeps until data or the end of the stream: 1, or 0 if timeout_ns passed
 * (timeout_ns < 0: no timeout), or a negative errno. */
int sring_wait(struct sring_consumer *ring, int64_t timeout_ns);
/* 1 once the producer stopped and everything up to its last block was
 * consumed (then sring_get_counters() is final), else 0. */
int sring_end_of_stream(struct sring_consumer *ring);
int sring_get_counters(struct sring_consumer *ring, struct sring_counters *counters);
uint64_t sring_ring_size(const struct sring_consumer *ring);

/*
 * Sample format names, as the tools take them (--format): "u8", "s8",
 * "u16", "s16", "s32", "f32", "cs16", "cf32", and "sim-packed12" for the
 * simulated devices' own SRING_FMT_SIM_PACKED12 (sring_pattern.h).
 * sring_format_name()
 * returns a static string, or NULL for a format it does not know (another
 * device's own: its driver names it). sring_parse_format() takes those
 * names, or a number (decimal or 0x hex, 1 to 0xffff) for a device's own
 * format: 0 and *format set, or -EINVAL and *format untouched (then
 * sring_last_error(NULL) says why).
 * sring_format_bits() (sring_abi.h) gives a standard format's bits.
 */
const char *sring_format_name(uint32_t format);
int sring_parse_format(const char *name, uint32_t *format);

#ifdef __cplusplus
}
#endif

#endif /* SRING_SRING_H */
