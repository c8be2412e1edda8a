/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sring internals shared by the char device and registration
 * (sring_core.c) and the producer core (sring_producer.c). Device drivers
 * see only include/sring/sring_device.h.
 *
 * Memory of one ring:
 *
 *   prod_page  one zeroed page, struct sring_producer_page; mapped read-only
 *   cons_page  one zeroed page, struct sring_consumer_page; mapped read-write
 *              by the consumer. Everything in it is user-controlled: read it
 *              once (READ_ONCE/smp_load_acquire), validate, never index with it.
 *   data       ring_size bytes in chunks (sring_memory.c): high-order page
 *              allocations below the device's DMA mask, down to single
 *              pages, or one part of a region reserved at boot. The kernel
 *              maps them with vmap()/vmap_pfn() followed by their first
 *              SRING_MIRROR_OVERLAP() bytes again (data_mirror), so the
 *              header and the CPU's view of every slot are contiguous. The
 *              device sees the ring once, as DMA extents of a streaming
 *              scatter-gather mapping that lives from register to
 *              unregister; a slot is as many pieces as extents it crosses.
 *
 * Lifetime: struct sring_ring embeds the struct device of /dev/sringN; the
 * cdev is its child (cdev_device_add) and every open file holds a reference,
 * so the ring and its memory outlive unregister until the last file (and
 * with it the last mapping) is gone: sring_ring_release() frees them.
 *
 * Locking:
 *   ring->lock (mutex)      configuration, start/stop/reset, the consumer
 *                           role, eventfd replacement, ring->gone; process
 *                           context only. ops are called under it.
 *   ring->read_lock (mutex) read()'s look at the ring, its copy and its
 *                           tail store, so that two read()s never
 *                           interleave and a RESET (which takes it
 *                           first) never lands inside a copy.
 *                           Order: read_lock, then ring->lock (read()
 *                           itself never takes ring->lock).
 *   ring->prod_lock (spin)  producer state. The device API may be called
 *                           from hard IRQ: everyone takes it irqsave (or
 *                           _irq in process context). Never sleep under it.
 */
#ifndef _SRING_INTERNAL_H
#define _SRING_INTERNAL_H

#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/eventfd.h>
#include <linux/hrtimer.h>
#include <linux/mutex.h>
#include <linux/scatterlist.h>
#include <linux/spinlock.h>
#include <linux/wait.h>

#include "sring/sring_abi.h"
#include "sring/sring_device.h"
#include "sring/sring_version.h"

#define SRING_DRIVER_VERSION	SRING_VERSION
#define SRING_MAX_RINGS		64
/* Block sizes the unreleased part of a ring may hold at once: a START with
 * yet another size is refused (EBUSY) until the consumer catches up. */
#define SRING_MAX_SEGMENTS	8
/* How much of the ring's start the kernel's mirror maps again after its
 * end: the longest block (at most half the ring), in whole pages (with
 * 64 KiB pages, half of the smallest ring is less than a page). */
#define SRING_MIRROR_OVERLAP(ring) \
	PAGE_ALIGN(min_t(u64, (ring)->ring_size / 2, SRING_MAX_BLOCK_BYTES))

/* Physically contiguous data: 2^order pages, at a ring offset that is a
 * multiple of its size. */
struct sring_chunk {
	struct page *page;
	unsigned int order;
};

/* A run of the ring contiguous for the device; extents tile the ring. */
struct sring_dma_extent {
	u64 offset;		/* in the ring */
	u64 bytes;
	dma_addr_t addr;
};

struct sring_ring {
	struct device dev;		/* /dev/sringN; its release frees us */
	struct cdev cdev;
	int minor;
	struct device *parent;		/* the registering device; ref held */
	const struct sring_device_ops *ops;
	void *priv;
	u32 params_flags;		/* SRING_RING_* */
	/* The driver's own formats (sring_ring_params.formats), copied at
	 * register: constant until the last close. */
	struct sring_device_format formats[SRING_MAX_DEVICE_FORMATS];
	unsigned int nr_formats;

	/* Ring memory: constant from register to the last close. */
	struct page *prod_page;
	struct page *cons_page;
	struct sring_producer_page *kprod;
	struct sring_consumer_page *kcons;
	struct sring_chunk *chunks;	/* SRING_MEM_PAGES, in ring order */
	unsigned long nr_chunks;
	phys_addr_t data_phys;		/* SRING_MEM_RESERVED: the region part */
	void *data_mirror;		/* ring_size + SRING_MIRROR_OVERLAP() */
	u64 ring_size;
	u32 memory_kind;		/* enum sring_memory_kind */
	u32 max_block_bytes;		/* slots fit SRING_SLOT_MAX_SEGMENTS */
	struct sg_table sgt;		/* the chunks, mapped for the device */
	dma_addr_t dma_handle;		/* SRING_MEM_RESERVED, for the device */
	struct sring_dma_extent *extents;	/* the device's view */
	unsigned int nr_extents;
	bool dma_mapped;		/* until unregister; under prod_lock */

	struct mutex lock;
	unsigned long flags;		/* SRING_RING_* bits below */
	bool gone;			/* unregistered; under lock */
	bool device_stopped;		/* ops->stop ran since ops->start; under lock */
	/* Under lock to change, and under prod_lock too: the producer reads
	 * them (a commit's capacity check and header). channels is never 0
	 * here (a user's 0 is stored as 1); bits_per_sample is that of
	 * config.sample_format (sring_format_bits_of()). */
	struct sring_config config;
	u32 bits_per_sample;

	spinlock_t prod_lock;
	/* Producer state, under prod_lock. */
	u32 state;
	u64 head;
	u64 reserved;		/* end of the slots given to the device */
	u64 last_tail;		/* last valid tail read from cons_page */
	u64 reset_position;	/* head and tail after the last reset */
	/* Where the blocks between the last accepted tail and head begin,
	 * one segment per block size, oldest first: the size changes only at
	 * a start, so a position in a segment is a block boundary iff it is a
	 * whole number of blocks from the segment's start. sring knows its
	 * boundaries without reading a header (sring_tail_valid()). */
	struct sring_segment {
		u64 start;
		u32 block_bytes;
	} segments[SRING_MAX_SEGMENTS];
	unsigned int nr_segments;	/* at least 1 */
	bool has_run;		/* started since the last reset */
	bool ended;		/* has_run and not RUNNING, or REMOVED:
				 * sring_stream_ended() */
	u64 sequence;
	u64 next_sample;
	u64 pending_lost;
	bool pending_overrun;
	bool in_overrun;
	/* The flush timer is queued (or its callback about to look): it runs
	 * while unreleased data is in the ring, and signals a consumer that
	 * asked for a wake-up below its watermark within flush_timeout_us. */
	bool flush_pending;
	struct hrtimer flush_timer;
	u32 corrupt_blocks;	/* fault injection: blocks left to corrupt */
	u32 reclaim_races;	/* fault injection: reclaims left to race */
	bool read_pinned;	/* read() is copying from tail: no reclaim */
	struct eventfd_ctx *eventfd;
	u64 bytes_read;		/* through read() */

	struct mutex read_lock;
	wait_queue_head_t waitq;	/* the consumer's poll() and blocking read() */
	/* Monitors' poll(): woken on every publish and state change while
	 * someone sleeps there, without touching the consumer page. */
	wait_queue_head_t monitor_waitq;
};

#define SRING_RING_CONSUMER	0	/* flags bit: a consumer holds the ring */

/* sring_memory.c: chunks, mirror, mappings. */
int sring_alloc_ring_memory(struct sring_ring *ring);
void sring_free_ring_memory(struct sring_ring *ring);
void sring_unmap_for_device(struct sring_ring *ring);
int sring_mmap_data(struct sring_ring *ring, struct vm_area_struct *vma);
unsigned int sring_dma_pieces(const struct sring_ring *ring, u64 pos, u32 len,
			      struct sring_dma_segment *pieces,
			      unsigned int max);
void sring_sync_pieces(struct sring_ring *ring,
		       const struct sring_dma_segment *pieces, unsigned int n,
		       bool for_device);
ssize_t sring_memory_show(struct sring_ring *ring, char *buf);
/* sring_core.c: the region reserved at boot. */
phys_addr_t sring_reserved_alloc(u64 size);
void sring_reserved_free(phys_addr_t phys, u64 size);

/* sring_core.c: bits of one sample of one channel in @format, a standard
 * one or the driver's own; 0 if the ring does not offer it. */
u32 sring_format_bits_of(const struct sring_ring *ring, u32 format);

/* sring_producer.c: the producer core behind the device API. */
void sring_producer_init(struct sring_ring *ring);
void sring_producer_reset(struct sring_ring *ring, u64 position);
void sring_producer_wake(struct sring_ring *ring);
void sring_producer_set_state(struct sring_ring *ring, u32 state);
void sring_producer_end(struct sring_ring *ring, u32 state);
u64 sring_accepted_tail(struct sring_ring *ring);
u64 sring_take_tail(struct sring_ring *ring, bool *refused);
void sring_arm_flush(struct sring_ring *ring);
int sring_begin_segment(struct sring_ring *ring);
bool sring_stream_ended(struct sring_ring *ring);
u64 sring_whole_blocks(struct sring_ring *ring, u64 tail, u64 head,
		       size_t count);
void sring_counter_add(__u64 *counter, u64 by);
int sring_producer_inject(struct sring_ring *ring,
			  const struct sring_fault *fault);

#endif /* _SRING_INTERNAL_H */
