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
 * A struct sring_consumer belongs to one thread at a time.
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

/* One snapshot of a stream's accounting (docs/abi.md). */
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
 * and its samples in place (header->sample_count of them, valid until the
 * callback returns). lost_before: samples missing right before it. Return 0
 * to go on, anything else to stop after this block (it counts as given).
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
/* Why the last call on this ring failed; never NULL. */
const char *sring_last_error(const struct sring_consumer *ring);

/* Device control (-EOPNOTSUPP on a ring file). A reset starts the stream
 * anew at sample 0. */
int sring_configure(struct sring_consumer *ring, const struct sring_config *config);
int sring_start(struct sring_consumer *ring);
int sring_stop(struct sring_consumer *ring);
int sring_reset(struct sring_consumer *ring);

/* Gives the blocks available now (up to max_blocks; blocks that arrive
 * meanwhile wait for the next call) to fn, and releases them. Returns how
 * many were given (0: none available now) or a negative errno. */
int64_t sring_consume(struct sring_consumer *ring, sring_block_fn fn, void *user,
		      uint64_t max_blocks);
/* Sleeps until data or the end of the stream: 1, or 0 if timeout_ns passed
 * (timeout_ns < 0: no timeout), or a negative errno. */
int sring_wait(struct sring_consumer *ring, int64_t timeout_ns);
/* 1 once the producer stopped and everything up to its last block was
 * consumed (then sring_get_counters() is final), else 0. */
int sring_end_of_stream(struct sring_consumer *ring);
int sring_get_counters(struct sring_consumer *ring, struct sring_counters *counters);
uint64_t sring_ring_size(const struct sring_consumer *ring);

#ifdef __cplusplus
}
#endif

#endif /* SRING_SRING_H */
