// SPDX-License-Identifier: GPL-2.0
/*
 * The simulated sampling device, in the kernel: on an hrtimer it completes
 * blocks of the shared sample pattern (include/sring/sring_pattern.h) at the
 * configured rate, the way a digitizer's DMA completion interrupt would, and
 * hands each to the producer core (driver/sring_producer.c). It is built
 * into sring.ko (see driver/Makefile) so that it drives the ring through the
 * same internal calls a real device driver would make.
 *
 * The timer runs in softirq context (HRTIMER_MODE_ABS_SOFT): the work per
 * tick is bounded, and it takes ring->prod_lock with plain spin_lock() while
 * process context takes it with spin_lock_bh().
 */
#include <linux/hrtimer.h>
#include <linux/ktime.h>
#include <linux/math64.h>

#include "../../driver/sring_compat.h"
#include "../../driver/sring_internal.h"

/* Bound on blocks per tick, so one tick cannot hog the softirq. */
#define SRING_SIM_MAX_BLOCKS_PER_TICK	64
/* Shortest timer period: blocks due within it complete together, as DMA
 * completions coalesced by an interrupt moderation timer would. */
#define SRING_SIM_MIN_PERIOD_NS		(50 * NSEC_PER_USEC)
#define SRING_SIM_MAX_STALL_US		(10 * USEC_PER_SEC)
#define SRING_SIM_MAX_FAULT_BLOCKS	1024

/* When block k (counting from 0 at start) completes, relative to start. */
static u64 sring_sim_due_ns(const struct sring_ring *ring, u64 k)
{
	u64 samples = (ring->config.block_bytes - SRING_BLOCK_HEADER_SIZE) / 2;

	/* (k + 1) * samples * 1e9 overflows 64 bits after days: use the
	 * 128-bit intermediate of mul_u64_u64_div_u64(). */
	return mul_u64_u64_div_u64((k + 1) * samples, NSEC_PER_SEC,
				   ring->config.sample_rate);
}

static enum hrtimer_restart sring_sim_tick(struct hrtimer *timer)
{
	struct sring_ring *ring = container_of(timer, struct sring_ring,
					       sim_timer);
	ktime_t now = ktime_get();
	bool paced = ring->config.sample_rate != 0;
	enum sring_produce_result result;
	ktime_t next;
	int made = 0;

	spin_lock(&ring->prod_lock);
	if (ring->state != SRING_STATE_RUNNING) {
		spin_unlock(&ring->prod_lock);
		return HRTIMER_NORESTART;
	}
	if (ktime_before(now, ring->sim_stall_until))
		goto rearm;

	/* A burst: blocks completed ahead of the schedule. */
	while (ring->sim_burst_blocks && made < SRING_SIM_MAX_BLOCKS_PER_TICK) {
		result = sring_produce_block(ring, now);
		if (result == SRING_PRODUCED_STOPPED)
			goto stopped;
		if (result == SRING_PRODUCED_NO_SPACE)
			break;
		ring->sim_burst_blocks--;
		ring->sim_blocks_made++;
		made++;
	}
	while (made < SRING_SIM_MAX_BLOCKS_PER_TICK) {
		if (paced && ktime_before(now, ktime_add_ns(ring->sim_start,
				sring_sim_due_ns(ring, ring->sim_blocks_made))))
			break;
		result = sring_produce_block(ring, now);
		if (result == SRING_PRODUCED_STOPPED)
			goto stopped;
		if (result == SRING_PRODUCED_NO_SPACE)
			break;
		ring->sim_blocks_made++;
		made++;
	}
	sring_producer_poll_flush(ring, now);

rearm:
	next = ktime_add_ns(now, SRING_SIM_MIN_PERIOD_NS);
	if (paced) {
		ktime_t due = ktime_add_ns(ring->sim_start,
				sring_sim_due_ns(ring, ring->sim_blocks_made));

		if (ktime_after(due, next))
			next = due;
	}
	if (ktime_before(next, ring->sim_stall_until))
		next = ring->sim_stall_until;
	hrtimer_set_expires(timer, next);
	spin_unlock(&ring->prod_lock);
	return HRTIMER_RESTART;

stopped:
	spin_unlock(&ring->prod_lock);
	return HRTIMER_NORESTART;
}

void sring_sim_init(struct sring_ring *ring)
{
	hrtimer_setup(&ring->sim_timer, sring_sim_tick, CLOCK_MONOTONIC,
		      HRTIMER_MODE_ABS_SOFT);
}

/* Called with ring->lock held, after the state became RUNNING. */
void sring_sim_start(struct sring_ring *ring)
{
	ktime_t now = ktime_get();

	spin_lock_bh(&ring->prod_lock);
	ring->sim_start = now;
	ring->sim_blocks_made = 0;
	ring->sim_stall_until = 0;
	ring->sim_burst_blocks = 0;
	spin_unlock_bh(&ring->prod_lock);
	hrtimer_start(&ring->sim_timer, ktime_add_ns(now, SRING_SIM_MIN_PERIOD_NS),
		      HRTIMER_MODE_ABS_SOFT);
}

/* Called with ring->lock held, after the state left RUNNING; may sleep. */
void sring_sim_stop(struct sring_ring *ring)
{
	/* Not under prod_lock: the callback takes it. */
	hrtimer_cancel(&ring->sim_timer);
}

int sring_sim_inject(struct sring_ring *ring, const struct sring_fault *fault)
{
	if (fault->reserved0)
		return -EINVAL;
	switch (fault->kind) {
	case SRING_FAULT_STALL:
		if (fault->arg == 0 || fault->arg > SRING_SIM_MAX_STALL_US)
			return -EINVAL;
		spin_lock_bh(&ring->prod_lock);
		ring->sim_stall_until = ktime_add_us(ktime_get(), fault->arg);
		spin_unlock_bh(&ring->prod_lock);
		return 0;
	case SRING_FAULT_BURST:
	case SRING_FAULT_CORRUPT:
		if (fault->arg == 0 || fault->arg > SRING_SIM_MAX_FAULT_BLOCKS)
			return -EINVAL;
		spin_lock_bh(&ring->prod_lock);
		if (fault->kind == SRING_FAULT_BURST)
			ring->sim_burst_blocks = min_t(u32, ring->sim_burst_blocks + fault->arg,
						       SRING_SIM_MAX_FAULT_BLOCKS);
		else
			ring->corrupt_blocks = min_t(u32, ring->corrupt_blocks + fault->arg,
						     SRING_SIM_MAX_FAULT_BLOCKS);
		spin_unlock_bh(&ring->prod_lock);
		return 0;
	default:
		return -EINVAL;
	}
}
