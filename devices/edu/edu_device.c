// SPDX-License-Identifier: GPL-2.0
/*
 * sring_edu.ko: a sampling device driver for QEMU's "edu" PCI device
 * (-device edu; 1234:11e8), written against include/sring/sring_device.h
 * only. It shows what a digitizer's driver does with sring: it reserves a
 * ring slot, has the device write the samples there by bus-master DMA to
 * the slot's DMA address, and commits the slot from the completion
 * interrupt (MSI).
 *
 * The edu device has a DMA engine (one transfer at a time, up to 4 KiB,
 * 28-bit addresses, about 100 ms of virtual time per transfer), a 4 KiB
 * buffer, and no converter. The driver plays the converter: for each chunk
 * of a block it writes the samples of the shared pattern
 * (include/sring/sring_pattern.h) into a staging buffer, has the engine
 * pull them into its own buffer (DMA from memory) and then push them into
 * the ring slot (DMA to memory). Only the second transfer is the one a
 * digitizer would do; both are real bus-master DMA, so the data a consumer
 * verifies went through the device, the DMA mask, the IOMMU if any and the
 * cache maintenance of the DMA API.
 *
 * The converter it plays makes 16-bit samples of one channel: u16 or s16
 * (the same pattern, read as either), nothing else; configure refuses
 * other formats and channel counts.
 *
 * Pacing: with sample_rate 0 the engine runs flat out and waits for room
 * when the ring is full. With a rate, a block is due every
 * block_samples / rate seconds, as from a converter with a fixed clock; a
 * block that is due when the ring has no free slot is made anyway and
 * dropped (sring_drop()), as a converter's FIFO would overflow. Rates the
 * engine cannot keep up with are refused by configure.
 *
 * Contexts: the interrupt handler (hard IRQ) and the pacing timer (softirq)
 * drive the engine under edu->lock; start and stop run in process context.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/hrtimer.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/math64.h>
#include <linux/module.h>
#include <linux/pci.h>

#include "../../driver/sring_compat.h"
#include "sring/sring_device.h"
#include "sring/sring_pattern.h"

#define EDU_VENDOR_ID		0x1234
#define EDU_DEVICE_ID		0x11e8

/* Registers in BAR 0 (QEMU docs/specs/edu.rst). */
#define EDU_REG_IDENT		0x00	/* 0xRRrr00ed */
#define EDU_REG_IRQ_STATUS	0x24
#define EDU_REG_IRQ_ACK		0x64
#define EDU_REG_DMA_SRC		0x80
#define EDU_REG_DMA_DST		0x88
#define EDU_REG_DMA_COUNT	0x90
#define EDU_REG_DMA_CMD		0x98
#define EDU_DMA_RUN		0x1
#define EDU_DMA_TO_MEMORY	0x2	/* device buffer -> RAM; else RAM -> device */
#define EDU_DMA_IRQ		0x4	/* raise EDU_IRQ_DMA when done */
#define EDU_IRQ_DMA		0x100
#define EDU_BUFFER_ADDR		0x40000	/* the device's buffer, in its DMA space */
#define EDU_BUFFER_SIZE		4096
/* The most one transfer moves. Not the whole buffer: QEMU 7.2 (Debian 12)
 * checks a transfer's end against the buffer's with an off-by-one and
 * aborts the machine on a transfer of exactly 4096 bytes. */
#define EDU_MAX_TRANSFER	(EDU_BUFFER_SIZE - 64)
/* The engine's speed: one transfer per 100 ms of virtual time; with margin
 * for an emulator that runs late. */
#define EDU_TRANSFER_MS		125
/* Flat out with the ring full: look for room again after this long. */
#define EDU_RETRY_NS		(10 * NSEC_PER_MSEC)
/* Stopping: the longest a transfer under way may take to finish. */
#define EDU_TIMEOUT_MS		2000

static unsigned long ring_size = 64 * 1024;
module_param(ring_size, ulong, 0444);
MODULE_PARM_DESC(ring_size, "Bytes of data per ring, a power of two (default 64 KiB)");

/* The edu engine drops address bits above its dma_mask property (28 bits
 * by default): a narrower one (-device edu,dma_mask=0xffffff) makes the
 * ring come from ZONE_DMA, which tests that sring honours the mask. */
static bool reserved;
module_param(reserved, bool, 0444);
MODULE_PARM_DESC(reserved,
		 "Carve the ring from sring.ko's reserved region, mapped for the device with dma_map_resource() (default 0)");

static unsigned int dma_bits = 28;
module_param(dma_bits, uint, 0444);
MODULE_PARM_DESC(dma_bits, "Address bits of the edu DMA engine, 24 to 64 (default 28, as QEMU's edu; more needs -device edu,dma_mask=...)");

enum edu_phase {
	EDU_IDLE,		/* no block under way */
	EDU_TO_DEVICE,		/* staging buffer -> device buffer */
	EDU_TO_RING,		/* device buffer -> ring slot: the digitizer's DMA */
};

struct sring_edu {
	struct pci_dev *pdev;
	void __iomem *mmio;
	struct sring_ring *ring;
	int irq;
	void *staging;			/* one chunk of samples, coherent */
	dma_addr_t staging_dma;

	spinlock_t lock;
	struct hrtimer timer;		/* pacing, retry when full */
	/* Under lock. */
	bool running;
	struct sring_config config;	/* copied at start */
	u32 block_samples;		/* of a full slot: sring_slot_frames() */
	ktime_t start;
	u64 blocks_made;		/* since start: the pacing schedule */
	u64 next_sample;		/* first sample of the next block made */
	enum edu_phase phase;
	struct sring_slot slot;
	u32 done_bytes;			/* of the block under way, in the ring */
	u32 chunk_bytes;		/* the transfer in flight */
};

static u32 edu_block_capacity_bytes(const struct sring_config *config)
{
	return config->block_bytes - SRING_BLOCK_HEADER_SIZE;
}

/* Two transfers per chunk of at most EDU_MAX_TRANSFER bytes, and one more
 * chunk for a slot in two DMA segments (the ring's end, or a boundary
 * between its 64 KiB extents). A slot in more segments (a block over 64 KiB,
 * a ring of single pages) takes a chunk more per segment: the rate check
 * assumes one split, so a rate near the limit may then lose blocks
 * (counted). */
static u64 edu_block_ns(const struct sring_config *config)
{
	u32 chunks = DIV_ROUND_UP(edu_block_capacity_bytes(config),
				  EDU_MAX_TRANSFER) +
		     (ring_size % config->block_bytes ? 1 : 0);

	return (u64)chunks * 2 * EDU_TRANSFER_MS * NSEC_PER_MSEC;
}

static void edu_program(struct sring_edu *edu, u64 src, u64 dst, u32 count,
			u32 direction)
{
	lockdep_assert_held(&edu->lock);
	writeq(src, edu->mmio + EDU_REG_DMA_SRC);
	writeq(dst, edu->mmio + EDU_REG_DMA_DST);
	writeq(count, edu->mmio + EDU_REG_DMA_COUNT);
	/* The register writes above reach the device before the command:
	 * MMIO writes to one device are ordered (writeq is not relaxed). */
	writeq(EDU_DMA_RUN | EDU_DMA_IRQ | direction, edu->mmio + EDU_REG_DMA_CMD);
}

/* The DMA segment of the slot that holds byte @done of its samples, and
 * how far into it that byte is. */
static const struct sring_dma_segment *
edu_segment_at(const struct sring_slot *slot, u32 done, u32 *into)
{
	unsigned int i = 0;

	while (i + 1 < slot->nr_segments && done >= slot->segments[i].bytes)
		done -= slot->segments[i++].bytes;
	*into = done;
	return &slot->segments[i];
}

/* Converts and moves the next chunk of the block into the device. */
static void edu_next_chunk(struct sring_edu *edu)
{
	u32 capacity = edu_block_capacity_bytes(&edu->config);
	u32 chunk = min_t(u32, capacity - edu->done_bytes, EDU_MAX_TRANSFER);
	const struct sring_dma_segment *segment;
	u32 into;

	/* A slot comes in as many DMA segments as ring extents it crosses:
	 * a chunk never crosses from one to the next. */
	segment = edu_segment_at(&edu->slot, edu->done_bytes, &into);
	chunk = min_t(u32, chunk, segment->bytes - into);
	edu->chunk_bytes = chunk;
	/* The converter: samples of the pattern, by their index. */
	sring_pattern_fill(edu->staging, edu->next_sample + edu->done_bytes / 2,
			   chunk / 2, edu->config.pattern_seed);
	edu->phase = EDU_TO_DEVICE;
	edu_program(edu, edu->staging_dma, EDU_BUFFER_ADDR, chunk, 0);
}

/* The device's address in the slot for the chunk under way. */
static dma_addr_t edu_chunk_target(const struct sring_edu *edu)
{
	u32 into;
	const struct sring_dma_segment *segment =
		edu_segment_at(&edu->slot, edu->done_bytes, &into);

	return segment->addr + into;
}

static void edu_arm(struct sring_edu *edu, ktime_t when)
{
	hrtimer_start(&edu->timer, when, HRTIMER_MODE_ABS_SOFT);
}

static ktime_t edu_due(const struct sring_edu *edu, u64 k)
{
	return ktime_add_ns(edu->start,
			    mul_u64_u64_div_u64(k * edu->block_samples,
						NSEC_PER_SEC,
						edu->config.sample_rate));
}

/* A block is due: into a free slot, or dropped if there is none. */
static void edu_begin_block(struct sring_edu *edu)
{
	int ret;

	lockdep_assert_held(&edu->lock);
	ret = sring_reserve(edu->ring, &edu->slot);
	if (ret == -ENOSPC && edu->config.sample_rate == 0) {
		edu_arm(edu, ktime_add_ns(ktime_get(), EDU_RETRY_NS));
		return;
	}
	if (ret == -ENOSPC) {
		/* Made with nowhere to go: lost and counted, or the end of
		 * the stream under the stop policy. */
		if (sring_drop(edu->ring, edu->block_samples)) {
			edu->running = false;
			return;
		}
		edu->next_sample += edu->block_samples;
		edu->blocks_made++;
		edu_arm(edu, edu_due(edu, edu->blocks_made + 1));
		return;
	}
	if (ret) {
		edu->running = false;	/* the ring left RUNNING */
		return;
	}
	edu->done_bytes = 0;
	edu_next_chunk(edu);
}

static void edu_block_done(struct sring_edu *edu)
{
	ktime_t now = ktime_get();

	edu->phase = EDU_IDLE;
	if (sring_commit(edu->ring, edu->slot.position, edu->block_samples,
			 now, 0)) {
		edu->running = false;
		return;
	}
	edu->next_sample += edu->block_samples;
	edu->blocks_made++;
	if (edu->config.sample_rate == 0 ||
	    !ktime_before(now, edu_due(edu, edu->blocks_made + 1)))
		edu_begin_block(edu);
	else
		edu_arm(edu, edu_due(edu, edu->blocks_made + 1));
}

static irqreturn_t edu_interrupt(int irq, void *data)
{
	struct sring_edu *edu = data;
	unsigned long flags;
	u32 status;

	status = readl(edu->mmio + EDU_REG_IRQ_STATUS);
	if (status != ~0U && !(status & EDU_IRQ_DMA))
		return IRQ_NONE;
	if (status != ~0U)
		writel(EDU_IRQ_DMA, edu->mmio + EDU_REG_IRQ_ACK);

	spin_lock_irqsave(&edu->lock, flags);
	/* Stopped (edu_stop, or after unregister): the ring is not ours to
	 * touch; the transfer that raised this was the last. */
	if (!edu->running) {
		edu->phase = EDU_IDLE;
		goto out;
	}
	if (status == ~0U) {
		/* All ones: the device is gone from the bus. */
		edu->running = false;
		sring_device_error(edu->ring);
		goto out;
	}
	/* A completion signalled before a stop and delivered after the next
	 * start: the transfer this run programmed is still under way. */
	if (readq(edu->mmio + EDU_REG_DMA_CMD) & EDU_DMA_RUN)
		goto out;
	switch (edu->phase) {
	case EDU_TO_DEVICE:
		/* The chunk is in the device: now the digitizer's part. */
		edu->phase = EDU_TO_RING;
		edu_program(edu, EDU_BUFFER_ADDR, edu_chunk_target(edu),
			    edu->chunk_bytes, EDU_DMA_TO_MEMORY);
		break;
	case EDU_TO_RING:
		edu->done_bytes += edu->chunk_bytes;
		if (edu->done_bytes < edu_block_capacity_bytes(&edu->config))
			edu_next_chunk(edu);
		else
			edu_block_done(edu);
		break;
	case EDU_IDLE:
		break;
	}
out:
	spin_unlock_irqrestore(&edu->lock, flags);
	return IRQ_HANDLED;
}

static enum hrtimer_restart edu_timer_expired(struct hrtimer *timer)
{
	struct sring_edu *edu = container_of(timer, struct sring_edu, timer);
	unsigned long flags;

	spin_lock_irqsave(&edu->lock, flags);
	if (edu->running && edu->phase == EDU_IDLE)
		edu_begin_block(edu);
	spin_unlock_irqrestore(&edu->lock, flags);
	return HRTIMER_NORESTART;
}

static int edu_configure(struct sring_ring *ring,
			 const struct sring_config *config)
{
	struct sring_edu *edu = sring_priv(ring);
	u64 max_rate;

	/* The staging buffer holds the pattern's 16-bit values, one channel. */
	if ((config->sample_format != SRING_FMT_U16 &&
	     config->sample_format != SRING_FMT_S16) || config->channels != 1) {
		dev_info_ratelimited(&edu->pdev->dev,
				     "format %#x with %u channels: the edu converter makes 16-bit samples (u16, s16) of one channel only\n",
				     config->sample_format, config->channels);
		return -EINVAL;
	}
	max_rate = div_u64((u64)sring_config_frames(ring, config) * NSEC_PER_SEC,
			   edu_block_ns(config));
	if (config->sample_rate > max_rate) {
		dev_info(&edu->pdev->dev,
			 "%llu samples/s with %u-byte blocks: the edu engine moves at most %llu\n",
			 config->sample_rate, config->block_bytes, max_rate);
		return -EINVAL;
	}
	return 0;
}

static int edu_start(struct sring_ring *ring)
{
	struct sring_edu *edu = sring_priv(ring);

	spin_lock_irq(&edu->lock);
	/* START may come before sring_register() has returned to probe. */
	edu->ring = ring;
	sring_get_config(ring, &edu->config);
	edu->block_samples = sring_slot_frames(ring);
	edu->next_sample = sring_next_sample(ring);
	edu->start = ktime_get();
	edu->blocks_made = 0;
	edu->phase = EDU_IDLE;
	edu->running = true;
	spin_unlock_irq(&edu->lock);
	edu_arm(edu, edu->config.sample_rate ? edu_due(edu, 1) : edu->start);
	return 0;
}

/* Returns once the engine writes no more and no handler runs. */
static void edu_stop(struct sring_ring *ring)
{
	struct sring_edu *edu = sring_priv(ring);
	int waited;

	spin_lock_irq(&edu->lock);
	edu->running = false;
	spin_unlock_irq(&edu->lock);
	hrtimer_cancel(&edu->timer);
	/* A transfer under way finishes (the engine cannot be aborted); its
	 * interrupt finds us stopped. */
	for (waited = 0; waited < EDU_TIMEOUT_MS; waited += 10) {
		u64 command = readq(edu->mmio + EDU_REG_DMA_CMD);

		if (command == ~0ULL || !(command & EDU_DMA_RUN))
			break;	/* done, or the device is gone from the bus */
		msleep(10);
	}
	if (waited >= EDU_TIMEOUT_MS) {
		/* It must not write into a ring that is about to be unmapped
		 * and freed: take away its right to master the bus. */
		dev_err(&edu->pdev->dev,
			"DMA still running after %d ms: bus mastering disabled\n",
			EDU_TIMEOUT_MS);
		pci_clear_master(edu->pdev);
	}
	synchronize_irq(edu->irq);
	spin_lock_irq(&edu->lock);
	edu->phase = EDU_IDLE;
	spin_unlock_irq(&edu->lock);
}

static const struct sring_device_ops edu_sring_ops = {
	.configure = edu_configure,
	.start = edu_start,
	.stop = edu_stop,
};

/* What START runs with until the user configures: 4 KiB blocks at a rate
 * the engine keeps (about 4 blocks a second). */
static const struct sring_config edu_default_config = {
	.sample_rate = 4000,
	.block_bytes = 4096,
	.overrun_policy = SRING_OVERRUN_DROP_NEWEST,
	.sample_format = SRING_FMT_U16,
	.pattern_seed = 1,
	.flush_timeout_us = 2000,
};

static int edu_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct sring_ring_params params = {
		.ring_size = ring_size,
		.flags = reserved ? SRING_RING_RESERVED_MEMORY : 0,
		.ops = &edu_sring_ops,
		.default_config = &edu_default_config,
	};
	struct sring_edu *edu;
	u32 ident;
	int ret;

	edu = devm_kzalloc(&pdev->dev, sizeof(*edu), GFP_KERNEL);
	if (!edu)
		return -ENOMEM;
	edu->pdev = pdev;
	spin_lock_init(&edu->lock);
	hrtimer_setup(&edu->timer, edu_timer_expired, CLOCK_MONOTONIC,
		      HRTIMER_MODE_ABS_SOFT);

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	ret = pcim_iomap_regions(pdev, BIT(0), KBUILD_MODNAME);
	if (ret)
		return ret;
	edu->mmio = pcim_iomap_table(pdev)[0];
	ident = readl(edu->mmio + EDU_REG_IDENT);
	if ((ident & 0xff) != 0xed) {
		dev_err(&pdev->dev, "not an edu device (ident %#x)\n", ident);
		return -ENODEV;
	}
	pci_set_master(pdev);
	/* The engine's address registers are 28 bits wide (or fewer). */
	if (dma_bits < 24 || dma_bits > 64) {
		dev_err(&pdev->dev, "dma_bits=%u: must be 24 to 64\n", dma_bits);
		return -EINVAL;
	}
	ret = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(dma_bits));
	if (ret)
		return ret;
	edu->staging = dmam_alloc_coherent(&pdev->dev, EDU_BUFFER_SIZE,
					   &edu->staging_dma, GFP_KERNEL);
	if (!edu->staging)
		return -ENOMEM;

	ret = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_MSI);
	if (ret < 0)
		return ret;
	edu->irq = pci_irq_vector(pdev, 0);
	ret = request_irq(edu->irq, edu_interrupt, 0, KBUILD_MODNAME, edu);
	if (ret)
		goto err_vectors;

	params.priv = edu;
	edu->ring = sring_register(&pdev->dev, &params);
	if (IS_ERR(edu->ring)) {
		ret = PTR_ERR(edu->ring);
		goto err_irq;
	}
	pci_set_drvdata(pdev, edu);
	dev_info(&pdev->dev, "edu rev %#x: sring%d, MSI, %u-bit DMA\n",
		 ident >> 24, sring_minor(edu->ring), dma_bits);
	return 0;

err_irq:
	free_irq(edu->irq, edu);
err_vectors:
	pci_free_irq_vectors(pdev);
	return ret;
}

static void edu_remove(struct pci_dev *pdev)
{
	struct sring_edu *edu = pci_get_drvdata(pdev);

	/* Stops the engine (edu_stop) and takes the ring from the device;
	 * consumers keep what was committed and see "removed". */
	sring_unregister(edu->ring);
	free_irq(edu->irq, edu);
	pci_free_irq_vectors(pdev);
}

static const struct pci_device_id edu_ids[] = {
	{ PCI_DEVICE(EDU_VENDOR_ID, EDU_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, edu_ids);

static struct pci_driver edu_driver = {
	.name = KBUILD_MODNAME,
	.id_table = edu_ids,
	.probe = edu_probe,
	.remove = edu_remove,
};
module_pci_driver(edu_driver);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("sring developers");
MODULE_DESCRIPTION("sring device driver for QEMU's edu PCI device: ring slots filled by bus-master DMA, completed by MSI");
