/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sring's in-kernel API: what a sampling device's driver calls to hand its
 * data to user space through an sring ring. docs/device-api.md is the page
 * that goes with it; driver/sring_producer.c and driver/sring_core.c
 * implement it; simulator/kernel/sim_device.c (a timer "device" that fills
 * slots with the CPU) and devices/edu/edu_device.c (a PCI device that fills
 * them by bus-master DMA and completes by MSI) are two drivers written
 * against nothing but this header.
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
 * Slots are block_bytes long (from the configuration, header included) and
 * are handed out in ring order; commits and drops must come in the same
 * order as the device made the blocks. A slot never straddles the end of
 * the ring in the device's address space: ring sizes are powers of two and
 * block sizes a multiple of 64 that need not divide them, so a slot that
 * would cross the end is never handed out as one range; the slot says
 * where it splits (dma_addr/bytes and dma_addr2/bytes2), and the CPU sees
 * it contiguous through the kernel's mirror of the ring.
 *
 * Contexts:
 *   sring_register(), sring_unregister(), sring_get_config():
 *                                     process context, may sleep.
 *   sring_reserve(), sring_commit(), sring_drop(), sring_device_error(),
 *   sring_ring_running():
 *                                     any context, hard IRQ included; they
 *                                     never sleep. They serialise on the
 *                                     ring's producer lock (irqsave); the
 *                                     order of reserves, commits and drops
 *                                     is the driver's to keep.
 *   ops->configure/start/stop/inject_fault:
 *                                     called by sring in process context
 *                                     under the ring's mutex; may sleep.
 *
 * What happens to the slots the device holds (reserved, not committed):
 *   ring full   reserve fails with -ENOSPC; slots already reserved stay the
 *               device's and are committed normally. Under overwrite-oldest
 *               reserve first reclaims the oldest committed blocks (never a
 *               reserved slot). A block the device makes with no slot is
 *               passed to sring_drop(): counted and flagged (drop-newest,
 *               overwrite-oldest), or the end of the stream (stop policy:
 *               state OVERRUN_STOPPED, nothing lost).
 *   stop        sring stores the new state first, then calls ops->stop.
 *               From that moment commit returns -EPIPE and the slot is
 *               discarded: a block not committed before the state changed
 *               was never made (no counter moves), so the end-of-stream
 *               rule of docs/abi.md stays exact. ops->stop must return only
 *               when the device writes no more to any slot.
 *   error       sring_device_error(): the same as a stop, with state FAILED.
 *               The device stops making blocks by itself; sring calls
 *               ops->stop at the next stop, reset or unregister.
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

/* A free part of the ring, for the device to fill with one block. */
struct sring_slot {
	u64 position;		/* ring position of the block; commit with it */
	/* Where the device writes the samples (after sring's header), in up
	 * to two pieces: bytes2 is 0 unless the slot wraps the ring's end.
	 * DMA_MAPPING_ERROR for rings registered with SRING_RING_CPU_FILL. */
	dma_addr_t dma_addr;
	u32 bytes;
	dma_addr_t dma_addr2;
	u32 bytes2;
	/* The same bytes, contiguous, for the CPU (a driver that fills by
	 * PIO or a simulator); they never need splitting. */
	void *cpu_addr;
	u32 capacity;		/* bytes + bytes2: the most a commit may hold */
};

struct sring_device_ops {
	/*
	 * Optional. The user asks for @config (already checked against the
	 * ring); return 0 to accept it or -EINVAL/-EOPNOTSUPP if the device
	 * cannot do it. The ring is stopped.
	 */
	int (*configure)(struct sring_ring *ring,
			 const struct sring_config *config);
	/*
	 * Required. The ring is RUNNING, empty of reservations, and its
	 * configuration is the one sring_get_config() returns. Start the
	 * engine; on error the ring goes back to STOPPED.
	 */
	int (*start)(struct sring_ring *ring);
	/*
	 * Required. Stop the engine; return only once the device writes no
	 * more to any slot and calls neither commit nor drop again. Called
	 * for every stop: user request, overrun stop, device error, reset
	 * and unregister; also when the device already stopped by itself.
	 */
	void (*stop)(struct sring_ring *ring);
	/* Optional: enum sring_fault_kind, for testing. -EOPNOTSUPP if not. */
	int (*inject_fault)(struct sring_ring *ring,
			    const struct sring_fault *fault);
};

/* struct sring_ring_params.flags */
/* The device fills slots with the CPU: no DMA mapping is made, and slots
 * carry only cpu_addr. */
#define SRING_RING_CPU_FILL		(1U << 0)
/* Carve the ring from the region reserved at boot (sring.ko's
 * reserved_base/reserved_size), for rings larger than a page allocation. */
#define SRING_RING_RESERVED_MEMORY	(1U << 1)

struct sring_ring_params {
	u64 ring_size;		/* bytes of data, a power of two >= 64 KiB */
	u32 flags;		/* SRING_RING_* */
	const struct sring_device_ops *ops;
	void *priv;		/* the driver's, from sring_priv() */
};

/*
 * Makes a ring for @dev: memory the device can reach under its DMA mask
 * (dma_get_mask()), mapped for it with the DMA API, and /dev/sringN.
 * Returns the ring or an ERR_PTR: -EINVAL (bad params), -ENOMEM (no memory
 * below the mask), -ENOSPC (no free minor or reserved space).
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
/* Index of the first sample of the next block the device makes: where a
 * device that generates samples (a simulator) continues after a start. */
u64 sring_next_sample(struct sring_ring *ring);
bool sring_ring_running(struct sring_ring *ring);

/* 0 and *slot, or -ENOSPC (ring full), -EPIPE (not running). */
int sring_reserve(struct sring_ring *ring, struct sring_slot *slot);

/* Bits of struct sring_block_header.flags a driver may set in a commit. */
#define SRING_COMMIT_FLAGS	SRING_BLOCK_F_DEVICE_MASK

/*
 * The slot at @position (the oldest reserved) holds @samples samples
 * (at most capacity / 2), completed at @timestamp (CLOCK_MONOTONIC).
 * Returns 0, -EPIPE if the ring left RUNNING (the slot is discarded), or
 * -EINVAL for a position out of order or a bad count (a driver bug: the
 * stream is failed).
 */
int sring_commit(struct sring_ring *ring, u64 position, u32 samples,
		 ktime_t timestamp, u32 flags);

/*
 * The device made a block of @samples samples with no slot for it.
 * Returns 0 if it was counted as lost, -EPIPE if the stream ended (stop
 * policy: the device must make no more blocks) or was not running.
 */
int sring_drop(struct sring_ring *ring, u32 samples);

/* The device failed: the stream ends with state SRING_STATE_FAILED. */
void sring_device_error(struct sring_ring *ring);

#endif /* _SRING_DEVICE_H */
