/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sring's in-kernel API: what a sampling device's driver calls to hand its
 * data to user space through an sring ring. docs/device-api.md is the page
 * that goes with it; driver/sring_producer.c and driver/sring_core.c
 * implement it; simulator/kernel/sim_device.c (a timer "device" that fills
 * slots with the CPU), devices/edu/edu_device.c (a PCI device that fills
 * them by bus-master DMA and completes by MSI) and
 * devices/digitizer/digitizer_device.c (a digitizer model outside the guest
 * that fills posted slots at rate, completing by MSI-X) are three drivers
 * written against nothing but this header.
 *
 * A driver registers one ring per data stream against its struct device.
 * sring.ko then owns everything user space sees: the char device
 * /dev/sringN, the shared pages, mmap, ioctls, sysfs, wake-ups, the overrun
 * policy and the counters. The driver owns its hardware: sring calls its
 * ops to configure, start and stop it, and the driver moves data with
 * reserve and commit:
 *
 *   sring_reserve()  the next free slot of the ring: its position, the DMA
 *                    address and length the device may write, and the same
 *                    bytes for the CPU. Call it again for the slot after, as
 *                    far ahead as the engine queues descriptors.
 *   (the device writes the samples there on its own)
 *   sring_commit()   the oldest reserved slot is complete: sring syncs it for
 *                    the CPU, writes its header, publishes head and wakes the
 *                    consumer if it asked.
 *   sring_drop()     the device made a block for which it had no slot (the
 *                    ring was full): counted and flagged per the policy.
 *
 * Slots are block_bytes long (from the configuration, header included):
 * every slot's capacity is block_bytes - SRING_BLOCK_HEADER_SIZE bytes. A
 * block counts frames (one sample of each of the configured channels, in the
 * configured format: sring_abi.h, "Sample formats"); a full block holds
 * sring_slot_frames() of them, capacity * 8 / (channels * bits_per_sample)
 * rounded down: ask for it, never compute it from a sample size of your
 * own. The formats a ring offers are the standard ones (which the driver's
 * configure refuses where its hardware cannot make them) and those the
 * driver declares in sring_ring_params.formats. Slots are handed out in
 * ring order, and held slots count as used: the ring is
 * full when committed data plus held slots leave no room for one more.
 * Commit the oldest held slot first; commits and drops must come in the
 * order the device made the blocks (a drop while slots are held flags the
 * next block committed, whichever slot it is in).
 *
 * sring numbers the frames itself: first_sample of a block is the count of
 * frames in every block made since the reset, committed or dropped. A
 * device that generates samples (a simulator) keeps its own count in step:
 * sring_next_sample() at start, plus the frames of each successful commit
 * or drop.
 *
 * Ring sizes are powers of two; block sizes are multiples of 64 that need
 * not divide them. The ring's memory is a list of chunks (page allocations
 * of up to 4 MiB, fewer and smaller when memory is fragmented, or a region
 * reserved at boot), so a ring may be as large as the machine's memory
 * allows. The CPU sees the data contiguous (the kernel maps the chunks in
 * order, followed by the ring's first block's worth again, so no block
 * wraps); the device sees it as DMA extents: the chunks, cut to the
 * device's maximum segment size and boundary (dma_set_max_seg_size(): 64
 * KiB for PCI unless raised). A slot that crosses an extent boundary (the
 * ring's end is one) comes as several DMA segments: slot->segments[0 ..
 * nr_segments - 1], in order. sring refuses block sizes whose slots could
 * need more than SRING_SLOT_MAX_SEGMENTS (struct sring_info's
 * max_block_bytes says which fit); a device whose engine takes fewer
 * segments per transfer simply splits its transfers at them.
 *
 * Contexts:
 *   sring_register(), sring_unregister():
 *                                     process context, may sleep.
 *   sring_reserve(), sring_commit(), sring_drop(), sring_device_error(),
 *   sring_ring_running(), sring_next_sample(), sring_get_config(),
 *   sring_slot_frames(), sring_config_frames(), sring_priv(),
 *   sring_minor(), sring_dma_extents():
 *                                     any context, hard IRQ included; they
 *                                     never sleep. They serialise on the
 *                                     ring's producer lock (irqsave); the
 *                                     order of reserves, commits and drops
 *                                     is the driver's to keep. (PREEMPT_RT:
 *                                     that lock sleeps; call them from a
 *                                     threaded handler there.)
 *   ops->configure/start/stop/inject_fault:
 *                                     called by sring in process context
 *                                     under the ring's mutex; may sleep.
 *                                     They may be called as soon as
 *                                     /dev/sringN exists, before
 *                                     sring_register() has returned: use
 *                                     their ring argument and sring_priv().
 *
 * What happens to the slots the device holds (reserved, not committed):
 *   ring full   reserve fails with -ENOSPC; slots already reserved stay the
 *               device's and are committed normally. Under overwrite-oldest
 *               reserve first reclaims the oldest committed blocks (never a
 *               reserved slot). A block the device makes with no slot is
 *               passed to sring_drop(): counted and flagged (drop-newest,
 *               overwrite-oldest), or the end of the stream (stop policy:
 *               state OVERRUN_STOPPED, nothing lost, -EPIPE). A device that
 *               can wait instead (sample_rate 0, "flat out") may simply
 *               reserve again later.
 *   stop        sring stores the new state first, then calls ops->stop.
 *               From that moment reserve, commit and drop return -EPIPE, and
 *               every held slot is discarded: the driver forgets them (there
 *               is nothing to give back). A block not committed before the
 *               state changed was never made (no counter moves), so the
 *               end-of-stream rule of docs/abi.md stays exact.
 *   self-stop   the stream ended from the device side: -EPIPE from drop
 *               (stop policy) or commit, sring_device_error() (state
 *               FAILED), a commit out of order (-EINVAL, state FAILED). The
 *               driver stops making blocks; held slots are discarded as on
 *               a stop. sring calls ops->stop later, at the user's stop,
 *               reset or unregister, or before the next start.
 *   unregister  the same as a stop, with state REMOVED. Open files and
 *               mappings stay valid until they are closed: the consumer
 *               drains what was committed and sees the end of its stream.
 */
#ifndef _SRING_DEVICE_H
#define _SRING_DEVICE_H

#include <linux/device.h>
#include <linux/dma-mapping.h>
#include <linux/ktime.h>
#include <linux/types.h>

#include "sring/sring_abi.h"

struct sring_ring;

/*
 * The most DMA segments one slot is given in. A slot of L bytes on DMA
 * extents of at least E bytes needs at most 1 + DIV_ROUND_UP(L - 1, E), so
 * 16 lets blocks of the largest size (1 MiB) through where extents are at
 * least 128 KiB, up to 960 KiB with PCI's default 64 KiB maximum segment
 * (dma_set_max_seg_size() raises it), and up to 60 KiB on a ring made of
 * single pages. The ring's extents are its chunks, cut to the device's
 * maximum segment size and boundary, or merged by an IOMMU.
 */
#define SRING_SLOT_MAX_SEGMENTS	16

/* A contiguous piece of a slot for the device. */
struct sring_dma_segment {
	dma_addr_t addr;
	u32 bytes;
};

/* A free part of the ring, for the device to fill with one block. */
struct sring_slot {
	u64 position;		/* ring position of the block; commit with it */
	/* Where the device writes the samples (after sring's header), in
	 * ring order: capacity bytes in nr_segments pieces. nr_segments is 0
	 * for rings registered with SRING_RING_CPU_FILL. */
	u32 nr_segments;
	struct sring_dma_segment segments[SRING_SLOT_MAX_SEGMENTS];
	/* The same bytes, contiguous, for the CPU (a driver that fills by
	 * PIO or a simulator); they never need splitting. */
	void *cpu_addr;
	u32 capacity;		/* the most a commit may hold */
};

struct sring_device_ops {
	/*
	 * Optional. The user asks for @config, already checked by sring:
	 * block_bytes a multiple of 64, at least 128, at most 1 MiB, half
	 * the ring and what SRING_SLOT_MAX_SEGMENTS allows on its memory; a
	 * known policy; a standard format or one of the driver's own
	 * (sring_ring_params.formats); channels 1 to SRING_MAX_CHANNELS (a
	 * 0 from the user arrives here as 1); at least one frame per block;
	 * sample_rate (frames per second) at most 1 GS/s (0: as fast as
	 * possible); flush_timeout_us at most 10 s. Return 0 to accept it or
	 * -EINVAL/-EOPNOTSUPP if the device cannot do it: refuse every
	 * format and channel count the hardware cannot make (sring offers
	 * all the standard formats; a driver without configure must make
	 * them all). The ring is stopped and so is the device: stop has run
	 * since the last start, also when the stream ended by itself. Also
	 * called at register for the default configuration
	 * (sring_ring_params.default_config): refusing it fails the register.
	 * sring_config_frames() gives the frames a full block holds under
	 * @config.
	 */
	int (*configure)(struct sring_ring *ring,
			 const struct sring_config *config);
	/*
	 * Required. The ring is RUNNING, empty of reservations, and its
	 * configuration is the one sring_get_config() returns. Start the
	 * engine. An error goes back to the user's START and the ring to
	 * STOPPED (ops->stop is called).
	 */
	int (*start)(struct sring_ring *ring);
	/*
	 * Required. Stop the engine; return only once the device writes no
	 * more to any slot and the driver calls none of reserve, commit and
	 * drop again until the next start. Called once after each start: at
	 * the user's stop, a reset, unregister, or before the next start if
	 * the stream ended by itself (see "self-stop" above). Never for a
	 * ring that was not started.
	 */
	void (*stop)(struct sring_ring *ring);
	/* Optional: stalls and bursts (enum sring_fault_kind), for testing.
	 * NULL: the ioctl fails with -EOPNOTSUPP. Corrupting blocks is sring's. */
	int (*inject_fault)(struct sring_ring *ring,
			    const struct sring_fault *fault);
};

/* struct sring_ring_params.flags */
/* The device fills slots with the CPU: no DMA mapping is made, the DMA mask
 * does not limit where the memory comes from, and slots carry only
 * cpu_addr. */
#define SRING_RING_CPU_FILL		(1U << 0)
/* Carve the ring from the region reserved at boot (sring.ko's
 * reserved_base/reserved_size): one physically contiguous range, for
 * devices that cannot take a scatter-gather list. */
#define SRING_RING_RESERVED_MEMORY	(1U << 1)

/*
 * A sample format of the driver's own (a 12-bit packed converter, a
 * vendor's framing), in the device range of sring_abi.h
 * (SRING_FMT_DEVICE_FIRST to SRING_FMT_DEVICE_LAST). sring knows only its
 * size: @bits_per_sample bits per sample of one channel, 1 to
 * SRING_DEVICE_FORMAT_MAX_BITS (what the block header's field holds); a
 * block of F frames of C channels holds sring_payload_bytes(F, C, bits)
 * bytes. The driver's documentation says what the bits mean.
 */
struct sring_device_format {
	u32 format;
	u32 bits_per_sample;
};

/* The most formats a driver may declare, and the widest sample. */
#define SRING_MAX_DEVICE_FORMATS	16
#define SRING_DEVICE_FORMAT_MAX_BITS	0xffffU

struct sring_ring_params {
	u64 ring_size;		/* bytes of data, a power of two >= 64 KiB */
	u32 flags;		/* SRING_RING_* */
	const struct sring_device_ops *ops;
	void *priv;		/* the driver's, from sring_priv() */
	/* Optional: what START runs with until the user sets a configuration
	 * (checked like one, configure included, against the memory the ring
	 * got: on fragmented memory a large default block may not fit a
	 * slot's segments, and the register fails with a message saying
	 * so). NULL: 20 MS/s, 8 KiB blocks, drop-newest, U16, one channel,
	 * seed 1, 2 ms flush timeout. */
	const struct sring_config *default_config;
	/* Optional: the driver's own formats, which SET_CONFIG then accepts
	 * besides the standard ones: nr_formats (at most
	 * SRING_MAX_DEVICE_FORMATS) entries, each in the device range, of 1 to
	 * SRING_DEVICE_FORMAT_MAX_BITS bits, none twice. Copied at register
	 * (the array may live on the stack); a bad one fails the register
	 * with -EINVAL and a message saying which. */
	const struct sring_device_format *formats;
	unsigned int nr_formats;
};

/*
 * Makes a ring for @dev: memory the device can reach under its DMA mask
 * (dma_get_mask()), mapped for it with the DMA API as a scatter-gather
 * table, and /dev/sringN. Returns the ring or an ERR_PTR: -EINVAL (bad
 * params, a size that is not a power of two), -ENOMEM (not that much memory
 * below the mask: the log says how much was asked and how much was
 * available; or reserved memory beyond the mask), -ENOSPC (no free minor or
 * reserved space). The reason is also logged against @dev. On failure
 * nothing of the ring is left behind.
 */
struct sring_ring *sring_register(struct device *dev,
				  const struct sring_ring_params *params);
/*
 * Stops the ring (ops->stop), unmaps its memory from the device, removes
 * /dev/sringN and sysfs. Consumers that hold it open or mapped keep their
 * memory until they close it and see state SRING_STATE_REMOVED. After it
 * returns sring never calls the ops again.
 */
void sring_unregister(struct sring_ring *ring);

void *sring_priv(const struct sring_ring *ring);
int sring_minor(const struct sring_ring *ring);	/* N of /dev/sringN */
/* The configuration a start runs with (valid from ops->start to the next). */
void sring_get_config(struct sring_ring *ring, struct sring_config *config);
/*
 * Frames a full slot holds under the configuration a start runs with (valid
 * from ops->start to the next, as sring_get_config()): the most a commit may
 * hold, and the size of a full block for sring_drop().
 */
u32 sring_slot_frames(struct sring_ring *ring);
/*
 * The same for @config, e.g. in ops->configure for a rate check: 0 for a
 * format the ring does not offer. Channels 0 counts as 1.
 */
u32 sring_config_frames(struct sring_ring *ring,
			const struct sring_config *config);
/* Index of the first sample of the next block the device makes: where a
 * device that generates samples (a simulator) continues after a start. */
u64 sring_next_sample(struct sring_ring *ring);
/* Whether the ring is RUNNING: e.g. for a watchdog that should not report
 * an error on a stream that has ended anyway. */
bool sring_ring_running(struct sring_ring *ring);

/*
 * The ring's DMA extents, in ring order: every address the device may
 * write, as an IOMMU maps it for the device. For a device that checks its
 * own addresses or programs an address window (devices/digitizer gives
 * them to its model's checker). Fills up to @max of @extents (@max 0 and
 * NULL to count) and returns how many the ring has: 0 for a
 * SRING_RING_CPU_FILL ring or once it is unregistered. Constant from
 * register to unregister; any context.
 */
unsigned int sring_dma_extents(struct sring_ring *ring,
			       struct sring_dma_segment *extents,
			       unsigned int max);

/* 0 and *slot, or -ENOSPC (ring full), -EPIPE (not running). */
int sring_reserve(struct sring_ring *ring, struct sring_slot *slot);

/* Bits of struct sring_block_header.flags a driver may set in a commit. */
#define SRING_COMMIT_FLAGS	SRING_BLOCK_F_DEVICE_MASK

/*
 * The slot at @position (the oldest held; sring checks it) holds @frames
 * frames, 1 to sring_slot_frames() (fewer is a short block, e.g. at a
 * stop), written from the slot's start in the configured format and
 * channels, completed at @timestamp (CLOCK_MONOTONIC, when the device
 * finished it). sring writes the header: the count, format, channels and
 * sample size. Returns 0, -EPIPE if the ring left RUNNING (every held slot
 * is discarded), or -EINVAL for a position out of order, a bad count or
 * flags outside SRING_COMMIT_FLAGS (a driver bug: the stream ends with
 * state FAILED and every held slot is discarded).
 */
int sring_commit(struct sring_ring *ring, u64 position, u32 frames,
		 ktime_t timestamp, u32 flags);

/*
 * The device made a block of @frames frames (normally sring_slot_frames())
 * with no slot for it. Returns 0 if it was counted as lost, -EPIPE if the
 * stream ended (stop policy: the device must make no more blocks) or was
 * not running.
 */
int sring_drop(struct sring_ring *ring, u32 frames);

/* The device failed: the stream ends with state SRING_STATE_FAILED. */
void sring_device_error(struct sring_ring *ring);

#endif /* _SRING_DEVICE_H */
