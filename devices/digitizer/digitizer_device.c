// SPDX-License-Identifier: GPL-2.0
/*
 * sring_digitizer.ko: the guest driver of the digitizer model that runs on
 * the host (devices/dma-model, `sring-dma-model`), reached through QEMU's
 * ivshmem-doorbell device (1af4:1110). Written against
 * include/sring/sring_device.h alone, like sring_edu.ko; the protocol with
 * the model is include/sring/sring_dma_model.h.
 *
 * What a digitizer's driver does with sring, at rate:
 *   - keeps queue_depth ring slots posted to the device as descriptors
 *     (sring_reserve(), then the slot's DMA segments into the descriptor
 *     ring in BAR2);
 *   - the model writes each block straight into guest RAM at those
 *     addresses and posts a completion; it raises the completion vector
 *     (MSI-X) once per coalesce_blocks completions or coalesce_timeout_us;
 *   - the interrupt handler commits the completed slots in order
 *     (sring_commit(), which syncs them for the CPU and wakes the
 *     consumer), reports blocks the model had no descriptor for
 *     (sring_drop()), and posts fresh slots;
 *   - a refused descriptor (the model's checker, an address outside guest
 *     RAM) or a model that fails ends the stream: sring_device_error();
 *   - a stop returns only once the model says STOPPED: from then on it
 *     writes nothing, so the slots it still held may go back to sring.
 *
 * The model checks every descriptor against the ring's DMA extents (its
 * "IOMMU", the checker), which the driver hands it at each start.
 *
 * For tests, the device's sysfs attribute model_fault takes the model's
 * faults (stall, burst, corrupt, fail, slow-stop) and three driver bugs on
 * purpose (stray-address, bad-segments, bad-index) that the model must
 * refuse; model_counters shows the model's counters.
 *
 * Contexts: both MSI-X handlers (threaded) and the refill timer (softirq)
 * serve the rings under dig->lock (irqsave); start, stop and sysfs run in
 * process context.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/hrtimer.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/wait.h>

#include "../../driver/sring_compat.h"
#include "sring/sring_device.h"
#include "sring/sring_dma_model.h"

#define DIGITIZER_VENDOR_ID	0x1af4	/* Red Hat, Inc.: QEMU's ivshmem */
#define DIGITIZER_DEVICE_ID	0x1110

/* ivshmem's registers in BAR0 (QEMU docs/specs/ivshmem-spec.txt). */
#define IVSHMEM_REG_DOORBELL	12
/* The model is peer 1 of the ivshmem server it runs. */
#define DIGITIZER_MODEL_PEER	1U

#define DIGITIZER_RING_MASK	(SRING_DMA_RING_ENTRIES - 1)
/* How long the model may take to answer a start, a stop or a fault. Under
 * TCG a host process answers within milliseconds; this only bounds a dead
 * model. */
#define DIGITIZER_ANSWER_MS	2000
/* A stop waits out the longest slow stop a test may ask of the model
 * (SRING_DMA_FAULT_SLOW_STOP, like an engine finishing its queue), and
 * more. */
#define DIGITIZER_STOP_MS	(SRING_MAX_FAULT_STALL_US / 1000 + DIGITIZER_ANSWER_MS)
/* The ring was full with nothing posted: look for room again after this. */
#define DIGITIZER_RETRY_NS	(500 * NSEC_PER_USEC)
/* Completions and posts per hold of dig->lock with interrupts off. */
#define DIGITIZER_BATCH		16


static unsigned long ring_size = 4 * 1024 * 1024;
module_param(ring_size, ulong, 0444);
MODULE_PARM_DESC(ring_size, "Bytes of data per ring, a power of two (default 4 MiB)");

/* Deep by default: a completion interrupt may come milliseconds late (a
 * guest whose vCPU the host preempted), and a block due with no descriptor
 * posted is lost. 128 slots of 8 KiB are 26 ms at 20 MS/s; of 64 KiB, 10 ms
 * at 400 MS/s. Never more than the ring's free space: reserve refuses. */
static unsigned int queue_depth = 128;
module_param(queue_depth, uint, 0444);
MODULE_PARM_DESC(queue_depth, "Slots kept posted to the device, 1 to 256 (default 128)");

static unsigned int coalesce_blocks = 8;
module_param(coalesce_blocks, uint, 0444);
MODULE_PARM_DESC(coalesce_blocks,
		 "Completions per interrupt, 1 (no coalescing) to 256 (default 8)");

static unsigned int coalesce_timeout_us = 1000;
module_param(coalesce_timeout_us, uint, 0444);
MODULE_PARM_DESC(coalesce_timeout_us,
		 "The latest a completion is signalled, in us, 1 to 1000000 (default 1000)");

static bool checker = true;
module_param(checker, bool, 0444);
MODULE_PARM_DESC(checker,
		 "Have the model refuse any descriptor outside the ring's DMA extents (default 1)");

/* Driver bugs on purpose (model_fault), armed for the next descriptor. */
enum digitizer_misbehaviour {
	DIGITIZER_BEHAVE,
	DIGITIZER_STRAY_ADDRESS,	/* a buffer that is not the ring's */
	DIGITIZER_BAD_SEGMENTS,		/* a descriptor of 0 segments */
	DIGITIZER_BAD_INDEX,		/* desc_prod far past desc_cons, until
					 * the stream ends */
};

struct sring_digitizer {
	struct pci_dev *pdev;
	void __iomem *regs;		/* BAR0: ivshmem's registers */
	struct sring_dma_bar2 *bar;	/* BAR2, memory shared with the model */
	struct sring_ring *ring;
	int irq_completion;
	int irq_state;
	wait_queue_head_t state_wait;	/* a state change, a fault taken */
	struct hrtimer retry;		/* refill when the ring was full */
	struct mutex fault_lock;	/* one fault request at a time */
	u64 fault_seq;			/* under fault_lock */
	void *stray;			/* DIGITIZER_STRAY_ADDRESS's buffer */
	/* The model did not stop: no new start. Set and read by ops->stop
	 * and ops->start, which sring serialises under the ring's mutex. */
	bool dead;

	spinlock_t lock;
	/* Under lock. */
	bool running;
	bool confirmed;			/* the model acknowledged this START */
	u32 control_seq;		/* BAR2's, which only we write */
	u32 block_samples;
	u64 next_sample;		/* first sample of the next block due */
	u64 desc_prod;			/* BAR2's, which only we write */
	u64 comp_cons;			/* BAR2's, which only we write */
	u64 desc_done;			/* descriptors completed, OK or refused */
	/* Ring position of the slot each posted descriptor fills, by index. */
	u64 posted_position[SRING_DMA_RING_ENTRIES];
	enum digitizer_misbehaviour misbehave;
};

static void digitizer_ring_doorbell(struct sring_digitizer *dig, u32 vector)
{
	/* A posted MMIO write: ordered after the store-releases before it
	 * (writel orders prior memory writes before the device write). */
	writel((DIGITIZER_MODEL_PEER << 16) | vector,
	       dig->regs + IVSHMEM_REG_DOORBELL);
}

static u32 digitizer_model_state(struct sring_digitizer *dig)
{
	/* Pairs with the model's store-release of state: the final indexes
	 * and counters of a stopped stream are visible after it. */
	return smp_load_acquire(&dig->bar->state);
}

/* Writes a control word and returns its sequence number. */
static u32 digitizer_control(struct sring_digitizer *dig, u32 control)
{
	lockdep_assert_held(&dig->lock);
	/* Pairs with the model's load-acquire of control before it reads
	 * the configuration, the windows and the indexes. */
	smp_store_release(&dig->bar->control, control);
	/* Pairs with the model's load-acquire of control_seq, made before it
	 * loads control: it acknowledges this seq only having seen this
	 * control word or a newer one. */
	smp_store_release(&dig->bar->control_seq, ++dig->control_seq);
	digitizer_ring_doorbell(dig, SRING_DMA_DOORBELL_CONTROL);
	return dig->control_seq;
}

/* Whether the model acted on control word @seq or a later one. */
static bool digitizer_acked(struct sring_digitizer *dig, u32 seq)
{
	/* Pairs with the model's store-release of control_ack after it
	 * published the state that control word led to. */
	return (s32)(smp_load_acquire(&dig->bar->control_ack) - seq) >= 0;
}

/*
 * Waits until the model acted on control word @seq. The state interrupt
 * wakes us; we look every 10 ms too, since an interrupt is only a hint
 * (and one raised before a START was taken would be lost otherwise).
 */
static bool digitizer_wait_ack(struct sring_digitizer *dig, u32 seq,
			       unsigned int ms)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(ms);

	while (!digitizer_acked(dig, seq)) {
		if (time_after(jiffies, deadline))
			return false;
		wait_event_timeout(dig->state_wait, digitizer_acked(dig, seq),
				   msecs_to_jiffies(10));
	}
	return true;
}

/*
 * The stream is over for the driver (sring ended it, or the model failed):
 * no more commits, and the model is told to stop at once, so it writes no
 * more into slots sring has discarded. ops->stop waits for the stop.
 */
static void digitizer_end(struct sring_digitizer *dig)
{
	lockdep_assert_held(&dig->lock);
	dig->running = false;
	digitizer_control(dig, SRING_DMA_CONTROL_STOP);
}

static void digitizer_fail(struct sring_digitizer *dig, const char *why, u64 a,
			   u64 b)
{
	dev_err_ratelimited(&dig->pdev->dev, "%s (%llu, %llu): stream failed\n",
			    why, a, b);
	sring_device_error(dig->ring);
	digitizer_end(dig);
}

/* Posts free slots until queue_depth are with the device, at most
 * @budget of them; true if the budget ran out first. */
static bool digitizer_refill(struct sring_digitizer *dig, unsigned int budget)
{
	u64 prod = dig->desc_prod;
	bool more = false;
	struct sring_slot slot;
	unsigned int i;
	int ret;

	lockdep_assert_held(&dig->lock);
	/*
	 * An entry may be rewritten once its descriptor has completed: the
	 * model copied it out before it published the completion, which we
	 * load-acquired (comp_prod). With at most queue_depth <= entries
	 * posted, entry prod & mask belongs to a completed descriptor.
	 */
	while (prod - dig->desc_done < queue_depth) {
		struct sring_dma_desc *desc = &dig->bar->desc[prod & DIGITIZER_RING_MASK];

		if (budget-- == 0) {
			more = true;
			break;
		}
		ret = sring_reserve(dig->ring, &slot);
		if (ret == -ENOSPC)
			break;
		if (ret) {		/* the ring left RUNNING */
			digitizer_end(dig);
			return false;
		}
		/* Plain stores: published by the store-release of desc_prod. */
		desc->tag = slot.position;
		desc->nr_segments = slot.nr_segments;
		desc->reserved0 = 0;
		for (i = 0; i < slot.nr_segments; i++) {
			desc->segments[i].addr = slot.segments[i].addr;
			desc->segments[i].bytes = slot.segments[i].bytes;
			desc->segments[i].reserved0 = 0;
		}
		/* A bug on purpose, in this one descriptor. */
		if (dig->misbehave == DIGITIZER_STRAY_ADDRESS) {
			desc->nr_segments = 1;
			desc->segments[0].addr = virt_to_phys(dig->stray);
			desc->segments[0].bytes = slot.capacity;
			dig->misbehave = DIGITIZER_BEHAVE;
		} else if (dig->misbehave == DIGITIZER_BAD_SEGMENTS) {
			desc->nr_segments = 0;
			dig->misbehave = DIGITIZER_BEHAVE;
		}
		dig->posted_position[prod & DIGITIZER_RING_MASK] = slot.position;
		prod++;
	}
	if (prod != dig->desc_prod || dig->misbehave == DIGITIZER_BAD_INDEX) {
		u64 published = prod;

		/* Sticky until the stream ends (digitizer_halt()): a correct
		 * index published at the next refill must not undo the bug
		 * before the model has looked. */
		if (dig->misbehave == DIGITIZER_BAD_INDEX)
			published += 1000 * SRING_DMA_RING_ENTRIES;
		dig->desc_prod = prod;
		/* Pairs with the model's load-acquire of desc_prod before it
		 * reads the entries filled above. */
		smp_store_release(&dig->bar->desc_prod, published);
		digitizer_ring_doorbell(dig, SRING_DMA_DOORBELL_DESC);
	}
	/* Nothing posted and no room: no completion will come to refill
	 * (flat out, the model makes nothing without a descriptor). */
	if (prod == dig->desc_done && dig->running)
		hrtimer_start(&dig->retry, ns_to_ktime(DIGITIZER_RETRY_NS),
			      HRTIMER_MODE_REL_SOFT);
	return more;
}

/* One completion entry, in the order the model made the blocks. */
static void digitizer_complete(struct sring_digitizer *dig,
			       const struct sring_dma_completion *c)
{
	u32 flags = c->flags;
	u64 expected;
	u32 i;

	if (c->first_sample != dig->next_sample || c->samples != dig->block_samples) {
		digitizer_fail(dig, "completion out of step with the stream",
			       c->first_sample, dig->next_sample);
		return;
	}
	if (flags & SRING_DMA_COMP_DROPPED) {
		/* Bounded by the protocol: each is a call here, under dig->lock. */
		if (c->blocks == 0 || c->blocks > SRING_DMA_MAX_DROP_RUN) {
			digitizer_fail(dig, "drop report of a bad count", c->blocks, 0);
			return;
		}
		for (i = 0; i < c->blocks; i++) {
			/* -EPIPE: the stop policy ended the stream. */
			if (sring_drop(dig->ring, c->samples)) {
				digitizer_end(dig);
				return;
			}
			dig->next_sample += c->samples;
		}
		return;
	}
	if (dig->desc_done == dig->desc_prod || c->blocks != 1) {
		digitizer_fail(dig, "completion with no descriptor posted or of several blocks",
			       c->tag, c->blocks);
		return;
	}
	expected = dig->posted_position[dig->desc_done & DIGITIZER_RING_MASK];
	if (c->tag != expected) {
		digitizer_fail(dig, "completion of an unexpected descriptor", c->tag,
			       expected);
		return;
	}
	dig->desc_done++;
	if (flags & SRING_DMA_COMP_ERROR) {
		/* Nothing was written and sring cannot skip a slot. */
		dev_err(&dig->pdev->dev,
			"the model refused the descriptor of position %llu (error %u)\n",
			c->tag, c->error);
		sring_device_error(dig->ring);
		digitizer_end(dig);
		return;
	}
	if (!(flags & SRING_DMA_COMP_OK)) {
		digitizer_fail(dig, "completion with unknown flags", flags, 0);
		return;
	}
	/* The model's timestamp is the host's clock: stamp with ours. */
	if (sring_commit(dig->ring, expected, c->samples, ktime_get(), 0)) {
		digitizer_end(dig);
		return;
	}
	dig->next_sample += c->samples;
}

/*
 * Everything the model published: completions in order, then its state
 * (a model that failed or stopped on its own is reported after the blocks
 * it completed before, so they stay committed), then fresh descriptors.
 */
static bool digitizer_serve(struct sring_digitizer *dig, unsigned int budget)
{
	struct sring_dma_completion c;
	unsigned int done = 0;
	bool more;
	u32 state;
	u64 prod;

	lockdep_assert_held(&dig->lock);
	if (!dig->running)
		return false;
	/* State first: the model publishes its last completions before the
	 * state that ends the stream, so the load of comp_prod below sees
	 * every one of them. */
	state = digitizer_model_state(dig);
	/* Pairs with the model's store-release of comp_prod after it wrote
	 * the entries and, for OK ones, the samples into guest RAM. */
	prod = smp_load_acquire(&dig->bar->comp_prod);
	if (prod - dig->comp_cons > SRING_DMA_RING_ENTRIES) {
		digitizer_fail(dig, "completion index out of range", prod,
			       dig->comp_cons);
		return false;
	}
	while (dig->running && dig->comp_cons != prod && done++ < budget) {
		/* One copy, checked in the copy: the entry is shared memory. */
		memcpy(&c, &dig->bar->comp[dig->comp_cons & DIGITIZER_RING_MASK],
		       sizeof(c));
		dig->comp_cons++;
		digitizer_complete(dig, &c);
	}
	/* Pairs with the model's load-acquire of comp_cons before it reuses
	 * the entries read above. */
	smp_store_release(&dig->bar->comp_cons, dig->comp_cons);
	if (!dig->running)
		return false;
	/* Completions left for the next batch: fresh descriptors meanwhile;
	 * the state is for when they are all in. */
	if (dig->comp_cons != prod) {
		digitizer_refill(dig, budget);
		return true;
	}
	/* Before the START is acknowledged the state may still be the one
	 * before it; after, anything but RUNNING ends the stream. */
	if (dig->confirmed && state != SRING_DMA_STATE_RUNNING) {
		dev_err(&dig->pdev->dev, "the model %s (error %u)\n",
			state == SRING_DMA_STATE_FAILED ? "failed" : "stopped on its own",
			READ_ONCE(dig->bar->error));
		sring_device_error(dig->ring);
		digitizer_end(dig);
		return false;
	}
	more = digitizer_refill(dig, budget);
	return more;
}

/* One batch under the lock; true if there is more to do. */
static bool digitizer_serve_batch(struct sring_digitizer *dig)
{
	unsigned long flags;
	bool more;

	spin_lock_irqsave(&dig->lock, flags);
	more = digitizer_serve(dig, DIGITIZER_BATCH);
	spin_unlock_irqrestore(&dig->lock, flags);
	return more;
}

/* In the interrupt threads: batch after batch, with a chance to schedule
 * (and for RCU to see a quiescent state) between them. */
static void digitizer_serve_all(struct sring_digitizer *dig)
{
	while (digitizer_serve_batch(dig))
		cond_resched();
}

/*
 * Threaded handlers (IRQF_ONESHOT): a pass may commit and post 128 slots,
 * each with its DMA syncs. It goes in batches of DIGITIZER_BATCH, each
 * under dig->lock with interrupts off, and may schedule between them: a
 * guest that cannot keep up (the debug kernel under emulation) falls behind
 * and counts its losses instead of holding a CPU with interrupts off, which
 * stalled RCU there. Interrupts that came meanwhile are one more pass: the
 * indexes say what is new.
 */
static irqreturn_t digitizer_completion_irq(int irq, void *data)
{
	digitizer_serve_all(data);
	return IRQ_HANDLED;
}

static irqreturn_t digitizer_state_irq(int irq, void *data)
{
	struct sring_digitizer *dig = data;

	digitizer_serve_all(dig);
	wake_up(&dig->state_wait);
	return IRQ_HANDLED;
}

/* Softirq: one batch; more is the next interrupt's or the timer's. */
static enum hrtimer_restart digitizer_retry_expired(struct hrtimer *timer)
{
	digitizer_serve_batch(container_of(timer, struct sring_digitizer, retry));
	return HRTIMER_NORESTART;
}

/*
 * Stops the model and waits until it acknowledged the STOP: from then on
 * it writes nothing into guest RAM. Then takes the indexes back: every
 * completion is dropped (their slots were discarded by sring) and
 * desc_prod is set to the model's desc_cons (it abandoned what was
 * posted; and a bad index of ours is undone). Those two come from outside
 * but only ever pick a position in a ring (masked): nothing to check.
 */
static int digitizer_halt(struct sring_digitizer *dig, unsigned int ms)
{
	struct sring_dma_bar2 *bar = dig->bar;
	u32 seq;

	/* Always a STOP of our own, also when the state reads STOPPED: a
	 * START we gave up waiting for may not have been taken yet. */
	spin_lock_irq(&dig->lock);
	seq = digitizer_control(dig, SRING_DMA_CONTROL_STOP);
	spin_unlock_irq(&dig->lock);
	if (!digitizer_wait_ack(dig, seq, ms))
		return -ETIMEDOUT;
	if (digitizer_model_state(dig) != SRING_DMA_STATE_STOPPED)
		return -EIO;	/* a model that breaks the protocol */
	spin_lock_irq(&dig->lock);
	/* After the acquire of control_ack: the model's final indexes. */
	dig->comp_cons = READ_ONCE(bar->comp_prod);
	dig->desc_prod = READ_ONCE(bar->desc_cons);
	dig->desc_done = dig->desc_prod;
	if (dig->misbehave == DIGITIZER_BAD_INDEX)
		dig->misbehave = DIGITIZER_BEHAVE;
	/* Pairs with the model's load-acquires at the next start. */
	smp_store_release(&bar->comp_cons, dig->comp_cons);
	smp_store_release(&bar->desc_prod, dig->desc_prod);
	spin_unlock_irq(&dig->lock);
	return 0;
}

static int digitizer_configure(struct sring_ring *ring,
			       const struct sring_config *config)
{
	struct sring_digitizer *dig = sring_priv(ring);
	u64 max_rate = READ_ONCE(dig->bar->max_sample_rate);

	/* The model writes the pattern's 16-bit values, one channel: u16, or
	 * the same values read as s16. */
	if ((config->sample_format != SRING_FMT_U16 &&
	     config->sample_format != SRING_FMT_S16) || config->channels != 1) {
		dev_info_ratelimited(&dig->pdev->dev,
				     "format %#x with %u channels: the model makes 16-bit samples (u16, s16) of one channel only\n",
				     config->sample_format, config->channels);
		return -EINVAL;
	}
	if (config->sample_rate > max_rate) {
		dev_info(&dig->pdev->dev,
			 "%llu samples/s: the model was started with --max-rate %llu\n",
			 config->sample_rate, max_rate);
		return -EINVAL;
	}
	return 0;
}

/*
 * The ring's DMA extents, merged where contiguous, as the checker's
 * windows: the model refuses any descriptor outside them.
 */
static int digitizer_write_windows(struct sring_digitizer *dig,
				   struct sring_ring *ring)
{
	struct sring_dma_window *windows = dig->bar->windows;
	struct sring_dma_segment *extents;
	unsigned int n, i, nr = 0;

	n = sring_dma_extents(ring, NULL, 0);
	if (!n)
		return -EIO;
	extents = kvmalloc_array(n, sizeof(*extents), GFP_KERNEL);
	if (!extents)
		return -ENOMEM;
	n = min(n, sring_dma_extents(ring, extents, n));
	for (i = 0; i < n; i++) {
		if (nr && windows[nr - 1].addr + windows[nr - 1].bytes == extents[i].addr) {
			windows[nr - 1].bytes += extents[i].bytes;
			continue;
		}
		if (nr == SRING_DMA_MAX_WINDOWS) {
			dev_err(&dig->pdev->dev,
				"the ring has more than %u separate DMA extents: load with checker=0\n",
				SRING_DMA_MAX_WINDOWS);
			kvfree(extents);
			return -E2BIG;
		}
		windows[nr].addr = extents[i].addr;
		windows[nr].bytes = extents[i].bytes;
		nr++;
	}
	kvfree(extents);
	dig->bar->config.nr_windows = nr;
	return 0;
}

static int digitizer_start(struct sring_ring *ring)
{
	struct sring_digitizer *dig = sring_priv(ring);
	struct sring_dma_config *cfg = &dig->bar->config;
	struct sring_config config;
	u64 first_sample;
	u32 seq, state, error;
	int ret;

	if (dig->dead) {
		dev_err(&dig->pdev->dev,
			"the model did not stop at the last stop: no new stream (reload the driver)\n");
		return -EIO;
	}
	/* START may come before sring_register() has returned to probe. */
	dig->ring = ring;
	sring_get_config(ring, &config);
	first_sample = sring_next_sample(ring);
	/* A fault may have failed the model since the last stop. */
	if (digitizer_model_state(dig) != SRING_DMA_STATE_STOPPED) {
		ret = digitizer_halt(dig, DIGITIZER_ANSWER_MS);
		if (ret)
			return ret;
	}
	/* Plain stores while the model is STOPPED: published by the
	 * store-release of control below. */
	cfg->sample_rate = config.sample_rate;
	cfg->first_sample = first_sample;
	cfg->block_bytes = config.block_bytes;
	cfg->pattern_seed = config.pattern_seed;
	cfg->coalesce_blocks = coalesce_blocks;
	cfg->coalesce_timeout_us = coalesce_timeout_us;
	cfg->flags = checker ? SRING_DMA_CFG_CHECKER : 0;
	cfg->nr_windows = 0;
	if (checker) {
		ret = digitizer_write_windows(dig, ring);
		if (ret)
			return ret;
	}

	spin_lock_irq(&dig->lock);
	dig->block_samples = sring_slot_frames(ring);
	dig->next_sample = first_sample;
	dig->running = true;
	dig->confirmed = false;
	/* The first blocks find their descriptors waiting. */
	digitizer_refill(dig, queue_depth);
	seq = digitizer_control(dig, SRING_DMA_CONTROL_START);
	spin_unlock_irq(&dig->lock);

	/* On failure sring calls digitizer_stop(), whose STOP the model
	 * sees instead of this START if it has not got to it yet. */
	if (!digitizer_wait_ack(dig, seq, DIGITIZER_ANSWER_MS)) {
		dev_err(&dig->pdev->dev, "the model did not answer START in %d ms\n",
			DIGITIZER_ANSWER_MS);
		return -ETIMEDOUT;
	}
	/*
	 * Refused means the model failed the START itself (its config or
	 * windows) or never left STOPPED for it. A model found STOPPED after
	 * our own STOP since (a stop-policy ring that filled before this
	 * look: seen at 400 MS/s on a loaded host), or FAILED later in the
	 * stream (served below), did start.
	 */
	spin_lock_irq(&dig->lock);
	state = digitizer_model_state(dig);
	error = READ_ONCE(dig->bar->error);
	if ((state == SRING_DMA_STATE_FAILED &&
	     (error == SRING_DMA_ERR_BAD_CONFIG || error == SRING_DMA_ERR_BAD_WINDOW)) ||
	    (state == SRING_DMA_STATE_STOPPED && dig->control_seq == seq)) {
		spin_unlock_irq(&dig->lock);
		dev_err(&dig->pdev->dev, "the model refused the start (state %u, error %u)\n",
			state, error);
		return -EINVAL;
	}
	dig->confirmed = true;
	/* A state interrupt served before this would have let a failure
	 * that came meanwhile pass: look once more. */
	digitizer_serve(dig, SRING_DMA_RING_ENTRIES);
	spin_unlock_irq(&dig->lock);
	return 0;
}

/*
 * Returns once the model writes no more into guest RAM: it may still be
 * filling the slots posted to it (a DMA engine finishing its queue), and
 * those go back to sring, to be handed to a consumer or freed, as soon as
 * this returns.
 */
static void digitizer_stop(struct sring_ring *ring)
{
	struct sring_digitizer *dig = sring_priv(ring);

	spin_lock_irq(&dig->lock);
	dig->running = false;
	dig->confirmed = false;
	spin_unlock_irq(&dig->lock);
	hrtimer_cancel(&dig->retry);
	if (digitizer_halt(dig, DIGITIZER_STOP_MS)) {
		/*
		 * A real device would get a function reset here. The model
		 * cannot be made to stop: say so loudly and start no stream
		 * on it again. (Not pci_clear_master(): the model ignores it,
		 * and MSI-X, a bus-master write, would stop reaching us.)
		 */
		dev_err(&dig->pdev->dev,
			"the model did not stop within %d ms: it may still write into the ring's memory\n",
			DIGITIZER_STOP_MS);
		dig->dead = true;
	}
	synchronize_irq(dig->irq_completion);
	synchronize_irq(dig->irq_state);
}

/* Sends a fault request to the model and waits until it took it. */
static int digitizer_model_fault(struct sring_digitizer *dig, u32 kind, u64 arg)
{
	struct sring_dma_fault *fault = &dig->bar->fault;
	unsigned long deadline = jiffies + msecs_to_jiffies(DIGITIZER_ANSWER_MS);
	int ret = 0;

	mutex_lock(&dig->fault_lock);
	WRITE_ONCE(fault->kind, kind);
	WRITE_ONCE(fault->arg, arg);
	dig->fault_seq++;
	/* Pairs with the model's load-acquire of request_seq before it
	 * reads kind and arg. */
	smp_store_release(&fault->request_seq, dig->fault_seq);
	digitizer_ring_doorbell(dig, SRING_DMA_DOORBELL_CONTROL);
	/* No interrupt for an acknowledgement: poll, it comes within one
	 * pass of the model's loop. Pairs with its store-release. */
	while (smp_load_acquire(&fault->ack_seq) != dig->fault_seq) {
		if (time_after(jiffies, deadline)) {
			ret = -ETIMEDOUT;
			break;
		}
		usleep_range(1000, 2000);
	}
	mutex_unlock(&dig->fault_lock);
	return ret;
}

/* Stalls and bursts come from sring's fault ioctl (it checked them). */
static int digitizer_inject_fault(struct sring_ring *ring,
				  const struct sring_fault *fault)
{
	struct sring_digitizer *dig = sring_priv(ring);

	switch (fault->kind) {
	case SRING_FAULT_STALL:
		return digitizer_model_fault(dig, SRING_DMA_FAULT_STALL, fault->arg);
	case SRING_FAULT_BURST:
		return digitizer_model_fault(dig, SRING_DMA_FAULT_BURST, fault->arg);
	default:
		return -EOPNOTSUPP;
	}
}

static const struct sring_device_ops digitizer_sring_ops = {
	.configure = digitizer_configure,
	.start = digitizer_start,
	.stop = digitizer_stop,
	.inject_fault = digitizer_inject_fault,
};

/* ------------------------------------------------------------------ */
/* sysfs: the model's faults and counters, and bugs on purpose         */
/* ------------------------------------------------------------------ */

static const struct {
	const char *name;
	u32 kind;		/* a model fault, or 0 */
	enum digitizer_misbehaviour misbehave;
	bool has_arg;
} digitizer_faults[] = {
	{ "stall", SRING_DMA_FAULT_STALL, DIGITIZER_BEHAVE, true },
	{ "burst", SRING_DMA_FAULT_BURST, DIGITIZER_BEHAVE, true },
	{ "corrupt", SRING_DMA_FAULT_CORRUPT, DIGITIZER_BEHAVE, true },
	{ "fail", SRING_DMA_FAULT_FAIL, DIGITIZER_BEHAVE, false },
	{ "slow-stop", SRING_DMA_FAULT_SLOW_STOP, DIGITIZER_BEHAVE, true },
	{ "stray-address", 0, DIGITIZER_STRAY_ADDRESS, false },
	{ "bad-segments", 0, DIGITIZER_BAD_SEGMENTS, false },
	{ "bad-index", 0, DIGITIZER_BAD_INDEX, false },
};

/* "NAME" or "NAME ARG", e.g. "stall 20000" (us), "corrupt 1", "fail". */
static ssize_t model_fault_store(struct device *dev, struct device_attribute *attr,
				 const char *buf, size_t count)
{
	struct sring_digitizer *dig = dev_get_drvdata(dev);
	char name[16];
	u64 arg = 0;
	unsigned int i;
	int n, ret;

	n = sscanf(buf, "%15s %llu", name, &arg);
	if (n < 1)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(digitizer_faults); i++)
		if (!strcmp(name, digitizer_faults[i].name))
			break;
	if (i == ARRAY_SIZE(digitizer_faults) || (n == 2) != digitizer_faults[i].has_arg)
		return -EINVAL;
	if (digitizer_faults[i].has_arg &&
	    (arg == 0 || arg > (digitizer_faults[i].kind == SRING_DMA_FAULT_STALL ||
				digitizer_faults[i].kind == SRING_DMA_FAULT_SLOW_STOP ?
				SRING_MAX_FAULT_STALL_US : SRING_MAX_FAULT_BLOCKS)))
		return -EINVAL;
	if (digitizer_faults[i].kind) {
		ret = digitizer_model_fault(dig, digitizer_faults[i].kind, arg);
		return ret ? ret : count;
	}
	spin_lock_irq(&dig->lock);
	dig->misbehave = digitizer_faults[i].misbehave;
	/* Posted now if the stream runs and a descriptor is free; else at
	 * the next post. */
	if (dig->running)
		digitizer_refill(dig, queue_depth);
	spin_unlock_irq(&dig->lock);
	return count;
}
static DEVICE_ATTR_WO(model_fault);

static ssize_t model_counters_show(struct device *dev, struct device_attribute *attr,
				   char *buf)
{
	struct sring_digitizer *dig = dev_get_drvdata(dev);
	const struct sring_dma_counters *c = &dig->bar->counters;
	/* Relaxed reads of the model's counters: a snapshot, final for a
	 * stream once state (acquired first) is STOPPED or FAILED. */
	u32 state = digitizer_model_state(dig);

	return sysfs_emit(buf,
			  "state %u\nerror %u\nstart_count %u\nblocks_due %llu\nblocks_written %llu\n"
			  "blocks_dropped %llu\nsamples_written %llu\nsamples_dropped %llu\n"
			  "no_descriptor %llu\ncompletion_full %llu\ndescriptors_taken %llu\n"
			  "descriptors_refused %llu\nbad_addresses %llu\nwindow_faults %llu\n"
			  "descriptors_abandoned %llu\ninterrupts %llu\ndoorbells %llu\n"
			  "faults %llu\ncorrupted %llu\ndrops_unreported %llu\n",
			  state, READ_ONCE(dig->bar->error), READ_ONCE(dig->bar->start_count),
			  READ_ONCE(c->blocks_due), READ_ONCE(c->blocks_written),
			  READ_ONCE(c->blocks_dropped), READ_ONCE(c->samples_written),
			  READ_ONCE(c->samples_dropped), READ_ONCE(c->no_descriptor),
			  READ_ONCE(c->completion_full), READ_ONCE(c->descriptors_taken),
			  READ_ONCE(c->descriptors_refused), READ_ONCE(c->bad_addresses),
			  READ_ONCE(c->window_faults), READ_ONCE(c->descriptors_abandoned),
			  READ_ONCE(c->interrupts), READ_ONCE(c->doorbells),
			  READ_ONCE(c->faults), READ_ONCE(c->corrupted),
			  READ_ONCE(c->drops_unreported));
}
static DEVICE_ATTR_RO(model_counters);

static struct attribute *digitizer_attrs[] = {
	&dev_attr_model_fault.attr,
	&dev_attr_model_counters.attr,
	NULL,
};
ATTRIBUTE_GROUPS(digitizer);

/* ------------------------------------------------------------------ */
/* PCI                                                                 */
/* ------------------------------------------------------------------ */

/* What START runs with until the user configures: the classic
 * requirement, 20 MS/s of 16-bit samples in 8 KiB blocks. */
static const struct sring_config digitizer_default_config = {
	.sample_rate = 20000000,
	.block_bytes = 8192,
	.overrun_policy = SRING_OVERRUN_DROP_NEWEST,
	.sample_format = SRING_FMT_U16,
	.pattern_seed = 1,
	.flush_timeout_us = 2000,
};

/* BAR2 is the model's if it says so, in a layout this driver knows. */
static int digitizer_check_model(struct sring_digitizer *dig, resource_size_t len)
{
	const struct sring_dma_bar2 *bar = dig->bar;

	if (READ_ONCE(bar->magic) != SRING_DMA_MAGIC) {
		dev_info(&dig->pdev->dev,
			 "ivshmem device without the sring DMA model (magic %#x): not ours\n",
			 READ_ONCE(bar->magic));
		return -ENODEV;
	}
	if (READ_ONCE(bar->version) != SRING_DMA_VERSION ||
	    READ_ONCE(bar->layout_bytes) != sizeof(*bar) ||
	    READ_ONCE(bar->ring_entries) != SRING_DMA_RING_ENTRIES ||
	    READ_ONCE(bar->max_segments) != SRING_DMA_MAX_SEGMENTS ||
	    READ_ONCE(bar->max_windows) != SRING_DMA_MAX_WINDOWS ||
	    READ_ONCE(bar->bar2_bytes) > len) {
		dev_err(&dig->pdev->dev,
			"sring DMA model version %u, layout of %u bytes: this driver speaks version %u, %zu bytes\n",
			READ_ONCE(bar->version), READ_ONCE(bar->layout_bytes),
			SRING_DMA_VERSION, sizeof(*bar));
		return -ENODEV;
	}
	return 0;
}

static void digitizer_free_stray(void *data)
{
	struct sring_digitizer *dig = data;

	free_pages((unsigned long)dig->stray, get_order(SRING_DMA_MAX_BLOCK_BYTES));
}

static int digitizer_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct sring_ring_params params = {
		.ring_size = ring_size,
		.ops = &digitizer_sring_ops,
		.default_config = &digitizer_default_config,
	};
	struct sring_digitizer *dig;
	resource_size_t bar2_len;
	int ret;

	dig = devm_kzalloc(&pdev->dev, sizeof(*dig), GFP_KERNEL);
	if (!dig)
		return -ENOMEM;
	dig->pdev = pdev;
	spin_lock_init(&dig->lock);
	mutex_init(&dig->fault_lock);
	init_waitqueue_head(&dig->state_wait);
	hrtimer_setup(&dig->retry, digitizer_retry_expired, CLOCK_MONOTONIC,
		      HRTIMER_MODE_REL_SOFT);
	/* The buffer a stray descriptor points at: never part of a ring, and
	 * large enough for any block, so the model writes only into memory
	 * of ours if its checker is off. */
	dig->stray = (void *)__get_free_pages(GFP_KERNEL | __GFP_ZERO,
					      get_order(SRING_DMA_MAX_BLOCK_BYTES));
	if (!dig->stray)
		return -ENOMEM;
	ret = devm_add_action_or_reset(&pdev->dev, digitizer_free_stray, dig);
	if (ret)
		return ret;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	ret = pcim_iomap_regions(pdev, BIT(0), KBUILD_MODNAME);
	if (ret)
		return ret;
	dig->regs = pcim_iomap_table(pdev)[0];
	bar2_len = pci_resource_len(pdev, 2);
	if (!(pci_resource_flags(pdev, 2) & IORESOURCE_MEM) ||
	    bar2_len < SRING_DMA_BAR2_MIN_SIZE) {
		dev_info(&pdev->dev, "no shared memory of %u bytes in BAR2: not ours\n",
			 SRING_DMA_BAR2_MIN_SIZE);
		return -ENODEV;
	}
	ret = pci_request_region(pdev, 2, KBUILD_MODNAME);
	if (ret)
		return ret;
	/* Cacheable: BAR2 is ordinary memory of a host process, accessed
	 * with acquire and release like any shared memory. */
	dig->bar = devm_memremap(&pdev->dev, pci_resource_start(pdev, 2), bar2_len,
				 MEMREMAP_WB);
	if (IS_ERR(dig->bar)) {
		ret = PTR_ERR(dig->bar);
		goto err_region;
	}
	ret = digitizer_check_model(dig, bar2_len);
	if (ret)
		goto err_region;
	pci_set_master(pdev);
	/* No IOMMU between the model and guest RAM: any address will do,
	 * and a segment may be as long as a ring's chunk. */
	ret = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (ret)
		goto err_region;
	ret = dma_set_max_seg_size(&pdev->dev, UINT_MAX);
	if (ret)
		goto err_region;

	ret = pci_alloc_irq_vectors(pdev, SRING_DMA_NR_VECTORS, SRING_DMA_NR_VECTORS,
				    PCI_IRQ_MSIX);
	if (ret < 0)
		goto err_region;
	dig->irq_completion = pci_irq_vector(pdev, SRING_DMA_VECTOR_COMPLETION);
	dig->irq_state = pci_irq_vector(pdev, SRING_DMA_VECTOR_STATE);
	ret = request_threaded_irq(dig->irq_completion, NULL, digitizer_completion_irq,
				   IRQF_ONESHOT, KBUILD_MODNAME "-completion", dig);
	if (ret)
		goto err_vectors;
	ret = request_threaded_irq(dig->irq_state, NULL, digitizer_state_irq,
				   IRQF_ONESHOT, KBUILD_MODNAME "-state", dig);
	if (ret)
		goto err_irq_completion;

	pci_set_drvdata(pdev, dig);
	/* Control words go on numbering from an earlier driver's (a model
	 * already acknowledged its seq). */
	dig->control_seq = READ_ONCE(dig->bar->control_seq);
	/* A model left running by an earlier driver (a crash, a forced
	 * unload) stops before anything is posted. */
	ret = digitizer_halt(dig, DIGITIZER_STOP_MS);
	if (ret) {
		dev_err(&pdev->dev, "the model does not answer\n");
		goto err_irq_state;
	}

	params.priv = dig;
	dig->ring = sring_register(&pdev->dev, &params);
	if (IS_ERR(dig->ring)) {
		ret = PTR_ERR(dig->ring);
		goto err_irq_state;
	}
	dev_info(&pdev->dev,
		 "sring DMA model: sring%d, MSI-X, %u slots posted, %u completions per interrupt or %u us, checker %s\n",
		 sring_minor(dig->ring), queue_depth, coalesce_blocks,
		 coalesce_timeout_us, checker ? "on" : "off");
	return 0;

err_irq_state:
	free_irq(dig->irq_state, dig);
err_irq_completion:
	free_irq(dig->irq_completion, dig);
err_vectors:
	pci_free_irq_vectors(pdev);
err_region:
	pci_release_region(pdev, 2);
	return ret;
}

static void digitizer_remove(struct pci_dev *pdev)
{
	struct sring_digitizer *dig = pci_get_drvdata(pdev);

	/* Stops the model (digitizer_stop) and takes the ring from the
	 * device; consumers keep what was committed and see "removed". */
	sring_unregister(dig->ring);
	free_irq(dig->irq_state, dig);
	free_irq(dig->irq_completion, dig);
	pci_free_irq_vectors(pdev);
	hrtimer_cancel(&dig->retry);
	pci_release_region(pdev, 2);
}

static const struct pci_device_id digitizer_ids[] = {
	{ PCI_DEVICE(DIGITIZER_VENDOR_ID, DIGITIZER_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, digitizer_ids);

static struct pci_driver digitizer_driver = {
	.name = KBUILD_MODNAME,
	.id_table = digitizer_ids,
	.probe = digitizer_probe,
	.remove = digitizer_remove,
	/* Created after probe, removed before remove: drvdata is set. */
	.dev_groups = digitizer_groups,
};
/* Nonsense parameters fail the load, not just each probe. */
static int __init digitizer_init(void)
{
	if (queue_depth == 0 || queue_depth > SRING_DMA_RING_ENTRIES ||
	    coalesce_blocks == 0 || coalesce_blocks > SRING_DMA_RING_ENTRIES ||
	    coalesce_timeout_us == 0 ||
	    coalesce_timeout_us > SRING_DMA_MAX_COALESCE_TIMEOUT_US) {
		pr_err("queue_depth=%u coalesce_blocks=%u coalesce_timeout_us=%u: must be 1 to %u, 1 to %u, 1 to %u\n",
		       queue_depth, coalesce_blocks, coalesce_timeout_us,
		       SRING_DMA_RING_ENTRIES, SRING_DMA_RING_ENTRIES,
		       SRING_DMA_MAX_COALESCE_TIMEOUT_US);
		return -EINVAL;
	}
	return pci_register_driver(&digitizer_driver);
}
module_init(digitizer_init);

static void __exit digitizer_exit(void)
{
	pci_unregister_driver(&digitizer_driver);
}
module_exit(digitizer_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("sring developers");
MODULE_DESCRIPTION("sring device driver for the host-side DMA model behind QEMU's ivshmem-doorbell: slots posted as descriptors, written from outside the guest, completed by MSI-X");
