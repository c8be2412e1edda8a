// SPDX-License-Identifier: GPL-2.0
/*
 * sring_sim.ko: the simulated sampling device, in the kernel. A driver like
 * any other: it registers its rings through include/sring/sring_device.h
 * and uses nothing else of sring. On an hrtimer it completes blocks of the
 * shared sample pattern (include/sring/sring_pattern.h) at the configured
 * rate, the way a digitizer's DMA completion interrupt would: reserve a
 * slot, fill it (with the CPU: SRING_RING_CPU_FILL), commit it; with no
 * slot free, the block it made is dropped. With queue_depth > 1 it keeps
 * that many slots reserved ahead, as a descriptor-based engine does.
 *
 * It makes every standard format and its own 12-bit packed one
 * (SRING_FMT_SIM_PACKED12, declared to sring as a device format), with any
 * number of channels: the pattern defines them all. The rate counts frames
 * (one sample of each channel) per second, as a converter's clock does.
 *
 * The timer runs in softirq context (HRTIMER_MODE_ABS_SOFT): the work per
 * tick is bounded. sim->lock guards the simulator's own state against the
 * fault-injection ioctl.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/err.h>
#include <linux/hrtimer.h>
#include <linux/ktime.h>
#include <linux/math64.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/slab.h>

#include "../../driver/sring_compat.h"
#include "sring/sring_device.h"
#include "sring/sring_pattern.h"

static unsigned int nr_rings = 1;
module_param(nr_rings, uint, 0444);
MODULE_PARM_DESC(nr_rings, "Number of simulated devices, one ring each (default 1, at most 16)");

static unsigned long ring_size = 4UL << 20;
module_param(ring_size, ulong, 0444);
MODULE_PARM_DESC(ring_size,
		 "Bytes of data per ring, a power of two of at least 64 KiB, up to the available memory less 1/16 of the RAM (default 4 MiB)");

static unsigned int queue_depth = 1;
module_param(queue_depth, uint, 0444);
MODULE_PARM_DESC(queue_depth,
		 "Slots reserved ahead, as a descriptor-based DMA engine queues them, 1 to 16 (default 1)");

static unsigned int late_commit_ms;
module_param(late_commit_ms, uint, 0444);
MODULE_PARM_DESC(late_commit_ms,
		 "Testing: in stop, wait this long, then try to commit a held slot, as a completion that races the stop would; sring must refuse it (default 0: off)");

static unsigned int bad_declaration;
module_param(bad_declaration, uint, 0444);
MODULE_PARM_DESC(bad_declaration,
		 "Testing: declare the device formats wrongly, which sring must refuse at register: 1 a format outside the device range, 2 one of 0 bits, 3 one twice, 4 more than sring takes (default 0: off)");

static bool reserved;
module_param(reserved, bool, 0444);
MODULE_PARM_DESC(reserved,
		 "Carve the rings from sring.ko's reserved region (reserved_base, reserved_size) instead of pages (default 0)");

#define SRING_SIM_MAX_DEVICES		16
/* Bounds on blocks and on bytes per tick, so one tick cannot hog the
 * softirq (64 blocks of 1 MiB in a format filled value by value would take
 * tens of milliseconds); what is left is made at the next tick. */
#define SRING_SIM_MAX_BLOCKS_PER_TICK	64
#define SRING_SIM_MAX_BYTES_PER_TICK	(4U << 20)
/* Shortest timer period: blocks due within it complete together, as DMA
 * completions coalesced by an interrupt moderation timer would. */
#define SRING_SIM_MIN_PERIOD_NS		(50 * NSEC_PER_USEC)
#define SRING_SIM_MAX_STALL_US		SRING_MAX_FAULT_STALL_US
#define SRING_SIM_MAX_FAULT_BLOCKS	SRING_MAX_FAULT_BLOCKS
#define SRING_SIM_MAX_QUEUE_DEPTH	16

struct sring_sim {
	struct sring_ring *ring;
	struct hrtimer timer;
	spinlock_t lock;
	/* Copied at start, constant while running. */
	struct sring_config config;
	u32 block_frames;		/* of a full slot: sring_slot_frames() */
	/* Under lock. */
	ktime_t start;
	u64 blocks_made;	/* since start: the pacing schedule */
	u64 next_sample;	/* index of the next frame the "ADC" makes */
	ktime_t stall_until;
	u32 burst_blocks;
	/* Slots reserved ahead, oldest first: the "descriptor queue". */
	struct sring_slot queue[SRING_SIM_MAX_QUEUE_DEPTH];
	unsigned int queue_first;
	unsigned int queued;
	/* From our start to our stop, under the ring's mutex: also after the
	 * stream ended by itself (an overrun stop), until sring stops us. */
	bool engine_on;
};

static struct platform_device *sring_sim_pdev;
static struct sring_sim *sring_sims;
static unsigned int sring_sims_registered;

/* When block k (counting from 0 at start) completes, relative to start. */
static u64 sring_sim_due_ns(const struct sring_sim *sim, u64 k)
{
	/* (k + 1) * frames * 1e9 overflows 64 bits after days: use the
	 * 128-bit intermediate of mul_u64_u64_div_u64(). */
	return mul_u64_u64_div_u64((k + 1) * sim->block_frames, NSEC_PER_SEC,
				   sim->config.sample_rate);
}

enum sring_sim_made { SIM_MADE, SIM_NO_SPACE, SIM_ENDED };

/*
 * Keeps queue_depth slots reserved ahead, as an engine with a descriptor
 * ring would. Returns false if the stream ended.
 */
static bool sring_sim_top_up(struct sring_sim *sim)
{
	while (sim->queued < queue_depth) {
		struct sring_slot *slot = &sim->queue[(sim->queue_first + sim->queued) %
						      SRING_SIM_MAX_QUEUE_DEPTH];
		int ret = sring_reserve(sim->ring, slot);

		if (ret == -ENOSPC)
			return true;	/* ring full: the queue stays short */
		if (ret)
			return false;
		sim->queued++;
	}
	return true;
}

/* The device makes one block: into the oldest queued slot, or dropped if
 * it has none. */
static enum sring_sim_made sring_sim_make_block(struct sring_sim *sim,
						ktime_t now)
{
	struct sring_slot *slot;

	if (!sring_sim_top_up(sim))
		return SIM_ENDED;
	if (!sim->queued) {
		if (sim->config.sample_rate == 0)
			return SIM_NO_SPACE;	/* flat out waits for room */
		if (sring_drop(sim->ring, sim->block_frames))
			return SIM_ENDED;	/* stop policy: the stream ended */
		sim->next_sample += sim->block_frames;
		return SIM_MADE;
	}
	slot = &sim->queue[sim->queue_first];
	if (sring_pattern_fill_format(slot->cpu_addr, sim->config.sample_format,
				      sim->config.channels, sim->next_sample,
				      sim->block_frames, sim->config.pattern_seed)) {
		/* A format sring should not have let through: say so, and
		 * publish nothing the pattern does not define. */
		pr_err_ratelimited("sring%d: format %#x: the pattern does not define it\n",
				   sring_minor(sim->ring), sim->config.sample_format);
		sring_device_error(sim->ring);
		return SIM_ENDED;
	}
	if (sring_commit(sim->ring, slot->position, sim->block_frames, now, 0))
		return SIM_ENDED;
	sim->queue_first = (sim->queue_first + 1) % SRING_SIM_MAX_QUEUE_DEPTH;
	sim->queued--;
	sim->next_sample += sim->block_frames;
	return SIM_MADE;
}

static enum hrtimer_restart sring_sim_tick(struct hrtimer *timer)
{
	struct sring_sim *sim = container_of(timer, struct sring_sim, timer);
	bool paced = sim->config.sample_rate != 0;
	enum sring_sim_made made_one;
	ktime_t now = ktime_get();
	ktime_t next;
	int made = 0, most;

	spin_lock(&sim->lock);
	most = clamp_t(u32, SRING_SIM_MAX_BYTES_PER_TICK / sim->config.block_bytes,
		       1, SRING_SIM_MAX_BLOCKS_PER_TICK);
	if (ktime_before(now, sim->stall_until))
		goto rearm;

	/* A burst: blocks completed ahead of the schedule. */
	while (sim->burst_blocks && made < most) {
		made_one = sring_sim_make_block(sim, now);
		if (made_one == SIM_ENDED)
			goto ended;
		if (made_one == SIM_NO_SPACE)
			break;
		sim->burst_blocks--;
		sim->blocks_made++;
		made++;
	}
	while (made < most) {
		if (paced && ktime_before(now, ktime_add_ns(sim->start,
				sring_sim_due_ns(sim, sim->blocks_made))))
			break;
		made_one = sring_sim_make_block(sim, now);
		if (made_one == SIM_ENDED)
			goto ended;
		if (made_one == SIM_NO_SPACE)
			break;
		sim->blocks_made++;
		made++;
	}

rearm:
	next = ktime_add_ns(now, SRING_SIM_MIN_PERIOD_NS);
	if (paced) {
		ktime_t due = ktime_add_ns(sim->start,
				sring_sim_due_ns(sim, sim->blocks_made));

		if (ktime_after(due, next))
			next = due;
	}
	if (ktime_before(next, sim->stall_until))
		next = sim->stall_until;
	hrtimer_set_expires(timer, next);
	spin_unlock(&sim->lock);
	return HRTIMER_RESTART;

ended:
	/* The ring left RUNNING (a stop, an overrun stop): sring calls our
	 * stop, which waits for this callback to return. */
	spin_unlock(&sim->lock);
	return HRTIMER_NORESTART;
}

static int sring_sim_start(struct sring_ring *ring)
{
	struct sring_sim *sim = sring_priv(ring);
	ktime_t now = ktime_get();

	spin_lock_bh(&sim->lock);
	/* START may come before sring_register() has returned to init. */
	sim->ring = ring;
	sring_get_config(ring, &sim->config);
	sim->block_frames = sring_slot_frames(ring);
	/* The pattern continues where the ring's stream is. */
	sim->next_sample = sring_next_sample(ring);
	sim->start = now;
	sim->blocks_made = 0;
	sim->stall_until = 0;
	sim->burst_blocks = 0;
	/* Slots held at the last stop were discarded by sring. */
	sim->queue_first = 0;
	sim->queued = 0;
	spin_unlock_bh(&sim->lock);
	sim->engine_on = true;
	hrtimer_start(&sim->timer, ktime_add_ns(now, SRING_SIM_MIN_PERIOD_NS),
		      HRTIMER_MODE_ABS_SOFT);
	return 0;
}

static void sring_sim_stop(struct sring_ring *ring)
{
	struct sring_sim *sim = sring_priv(ring);

	/* Waits for a running tick: after it, no reserve or commit. */
	hrtimer_cancel(&sim->timer);
	sim->engine_on = false;
	if (late_commit_ms && sim->queued) {
		/* The test of sring's side of the contract: the state already
		 * says the stream ended, so this block must not be published. */
		int ret;

		msleep(late_commit_ms);
		ret = sring_commit(ring, sim->queue[sim->queue_first].position,
				   sim->block_frames, ktime_get(), 0);
		pr_info("sring%d: late commit after the stop: %d\n",
			sring_minor(ring), ret);
	}
}

/*
 * Any configuration sring accepted suits the simulated device: sring offers
 * the standard formats and the one it declared, and the pattern defines
 * them all (so sring's own refusal of other formats is what the tests see).
 * But only while its engine is off (docs/device-api.md: configure runs on a
 * stopped device): a real one may be reprogramming its registers. Refusing
 * here makes the core's side of that contract testable.
 */
static int sring_sim_configure(struct sring_ring *ring,
			       const struct sring_config *config)
{
	struct sring_sim *sim = sring_priv(ring);

	if (sim->engine_on) {
		pr_err("sring%d: configure while the engine runs: stop first\n",
		       sring_minor(ring));
		return -EBUSY;
	}
	return 0;
}

/*
 * Its own format, besides the standard ones: 12-bit samples, packed. On
 * the stack of init (sring copies it at register), or declared wrongly on
 * purpose (bad_declaration). Returns how many.
 */
static unsigned int sring_sim_declare(struct sring_device_format *formats)
{
	unsigned int i;

	formats[0].format = SRING_FMT_SIM_PACKED12;
	formats[0].bits_per_sample = SRING_FMT_SIM_PACKED12_BITS;
	switch (bad_declaration) {
	case 1:
		formats[0].format = SRING_FMT_CS16;
		return 1;
	case 2:
		formats[0].bits_per_sample = 0;
		return 1;
	case 3:
		formats[1] = formats[0];
		return 2;
	case 4:
		for (i = 1; i <= SRING_MAX_DEVICE_FORMATS; i++) {
			formats[i].format = SRING_FMT_SIM_PACKED12 + i;
			formats[i].bits_per_sample = 8;
		}
		return SRING_MAX_DEVICE_FORMATS + 1;
	default:
		return 1;
	}
}

static int sring_sim_inject(struct sring_ring *ring,
			    const struct sring_fault *fault)
{
	struct sring_sim *sim = sring_priv(ring);

	switch (fault->kind) {
	case SRING_FAULT_STALL:
		if (fault->arg == 0 || fault->arg > SRING_SIM_MAX_STALL_US)
			return -EINVAL;
		spin_lock_bh(&sim->lock);
		sim->stall_until = ktime_add_us(ktime_get(), fault->arg);
		spin_unlock_bh(&sim->lock);
		return 0;
	case SRING_FAULT_BURST:
		if (fault->arg == 0 || fault->arg > SRING_SIM_MAX_FAULT_BLOCKS)
			return -EINVAL;
		spin_lock_bh(&sim->lock);
		sim->burst_blocks = min_t(u32, sim->burst_blocks + fault->arg,
					  SRING_SIM_MAX_FAULT_BLOCKS);
		spin_unlock_bh(&sim->lock);
		return 0;
	default:
		return -EINVAL;
	}
}

static const struct sring_device_ops sring_sim_ops = {
	.configure = sring_sim_configure,
	.start = sring_sim_start,
	.stop = sring_sim_stop,
	.inject_fault = sring_sim_inject,
};

static void sring_sim_unregister_all(void)
{
	while (sring_sims_registered)
		sring_unregister(sring_sims[--sring_sims_registered].ring);
}

static int __init sring_sim_init(void)
{
	struct sring_ring_params params = {
		.ring_size = ring_size,
		.flags = SRING_RING_CPU_FILL |
			 (reserved ? SRING_RING_RESERVED_MEMORY : 0),
		.ops = &sring_sim_ops,
	};
	struct sring_device_format formats[SRING_MAX_DEVICE_FORMATS + 1];
	unsigned int i;
	int ret;

	if (queue_depth == 0 || queue_depth > SRING_SIM_MAX_QUEUE_DEPTH) {
		pr_err("queue_depth=%u: must be 1 to %d\n", queue_depth,
		       SRING_SIM_MAX_QUEUE_DEPTH);
		return -EINVAL;
	}
	if (nr_rings == 0 || nr_rings > SRING_SIM_MAX_DEVICES) {
		pr_err("nr_rings=%u: must be 1 to %d\n", nr_rings,
		       SRING_SIM_MAX_DEVICES);
		return -EINVAL;
	}
	params.formats = formats;
	params.nr_formats = sring_sim_declare(formats);
	sring_sims = kcalloc(nr_rings, sizeof(*sring_sims), GFP_KERNEL);
	if (!sring_sims)
		return -ENOMEM;
	/* The "hardware" the rings belong to, as a PCI function would be. */
	sring_sim_pdev = platform_device_register_simple("sring_sim",
							 PLATFORM_DEVID_NONE,
							 NULL, 0);
	if (IS_ERR(sring_sim_pdev)) {
		ret = PTR_ERR(sring_sim_pdev);
		goto err_free;
	}
	for (i = 0; i < nr_rings; i++) {
		struct sring_sim *sim = &sring_sims[i];

		spin_lock_init(&sim->lock);
		hrtimer_setup(&sim->timer, sring_sim_tick, CLOCK_MONOTONIC,
			      HRTIMER_MODE_ABS_SOFT);
		params.priv = sim;
		sim->ring = sring_register(&sring_sim_pdev->dev, &params);
		if (IS_ERR(sim->ring)) {
			ret = PTR_ERR(sim->ring);
			pr_err("ring %u: cannot register: %d\n", i, ret);
			goto err_unregister;
		}
		sring_sims_registered++;
	}
	pr_info("%u simulated device(s), rings of %lu bytes (%s)\n", nr_rings,
		ring_size, reserved ? "reserved region" : "pages");
	return 0;

err_unregister:
	sring_sim_unregister_all();
	platform_device_unregister(sring_sim_pdev);
err_free:
	kfree(sring_sims);
	return ret;
}

static void __exit sring_sim_exit(void)
{
	/* Consumers still attached see state "removed" and drain. */
	sring_sim_unregister_all();
	platform_device_unregister(sring_sim_pdev);
	kfree(sring_sims);
}

module_init(sring_sim_init);
module_exit(sring_sim_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("sring developers");
MODULE_DESCRIPTION("Simulated sampling device for sring: a timer that fills ring slots with a verifiable pattern");
