/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sring internals shared by the char device (sring_main.c), the producer
 * core (sring_producer.c) and the simulated sampling device
 * (simulator/kernel/sring_sim.c).
 *
 * Memory of one ring:
 *
 *   prod_page  one zeroed page, struct sring_producer_page; mapped read-only
 *   cons_page  one zeroed page, struct sring_consumer_page; mapped read-write
 *              by the consumer. Everything in it is user-controlled: read it
 *              once (READ_ONCE/smp_load_acquire), validate, never index with it.
 *   data       ring_size bytes, physically contiguous (high-order pages, or a
 *              region reserved at boot). The kernel maps it twice back to back
 *              with vmap_pfn() (data_mirror), exactly as user space sees it, so
 *              the producer writes every block in one piece too.
 *
 * Locking:
 *   ring->lock (mutex)      configuration, start/stop/reset, the consumer
 *                           role, eventfd replacement; process context only.
 *   ring->prod_lock (spin)  producer state: taken by the simulated device's
 *                           hrtimer callback (softirq) and with _bh from
 *                           process context. Never sleep under it.
 */
#ifndef _SRING_INTERNAL_H
#define _SRING_INTERNAL_H

#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/eventfd.h>
#include <linux/hrtimer.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>

#include "sring/sring_abi.h"

#include "sring/sring_version.h"

#define SRING_DRIVER_VERSION	SRING_VERSION
#define SRING_MAX_RINGS		16

enum sring_produce_result {
	SRING_PRODUCED_WRITTEN,
	SRING_PRODUCED_DROPPED,		/* ring full, drop-newest */
	SRING_PRODUCED_STOPPED,		/* ring full, stop policy */
	SRING_PRODUCED_NO_SPACE,	/* ring full, flat out: retry later */
};

struct sring_ring {
	int index;
	struct device *dev;
	struct cdev cdev;

	/* Ring memory: constant from module load to unload. */
	struct page *prod_page;
	struct page *cons_page;
	struct sring_producer_page *kprod;
	struct sring_consumer_page *kcons;
	struct page *data_pages;	/* high-order allocation, or NULL */
	phys_addr_t data_phys;		/* start of the data, either kind */
	void *data_mirror;		/* 2 * ring_size, vmap_pfn() */
	u64 ring_size;
	u32 memory_kind;		/* enum sring_memory_kind */

	struct mutex lock;
	unsigned long flags;		/* SRING_RING_* bits */
	struct sring_config config;	/* under lock; producer copies at start */

	spinlock_t prod_lock;
	/* Producer state, under prod_lock. */
	u32 state;
	u64 head;
	u64 last_tail;		/* last valid tail read from cons_page */
	u64 oldest;		/* first block not reclaimed (overwrite mode) */
	u64 reset_position;	/* head and tail after the last reset */
	u64 sequence;
	u64 next_sample;
	u64 pending_lost;
	bool pending_overrun;
	bool in_overrun;
	bool unsignalled;	/* data published since the last signal */
	ktime_t unsignalled_since;
	u32 corrupt_blocks;	/* fault injection: blocks left to corrupt */
	bool read_pinned;	/* read() is copying from tail: no reclaim */
	struct eventfd_ctx *eventfd;
	u64 bytes_read;		/* through read() */

	wait_queue_head_t waitq;	/* poll() and blocking read() */

	/* The simulated sampling device (simulator/kernel/sring_sim.c). */
	struct hrtimer sim_timer;
	ktime_t sim_start;
	u64 sim_blocks_made;
	ktime_t sim_stall_until;
	u32 sim_burst_blocks;
};

#define SRING_RING_CONSUMER	0	/* flags bit: a consumer holds the ring */

/* sring_producer.c: the producer core a DMA completion would call. */
void sring_producer_reset(struct sring_ring *ring, u64 position);
enum sring_produce_result sring_produce_block(struct sring_ring *ring,
					      ktime_t now);
void sring_producer_poll_flush(struct sring_ring *ring, ktime_t now);
void sring_producer_wake(struct sring_ring *ring);
u64 sring_accepted_tail(struct sring_ring *ring);
void sring_counter_add(__u64 *counter, u64 by);

/* simulator/kernel/sring_sim.c: the simulated sampling device. */
void sring_sim_init(struct sring_ring *ring);
void sring_sim_start(struct sring_ring *ring);
void sring_sim_stop(struct sring_ring *ring);
int sring_sim_inject(struct sring_ring *ring, const struct sring_fault *fault);

#endif /* _SRING_INTERNAL_H */
