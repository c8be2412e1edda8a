// SPDX-License-Identifier: GPL-2.0
/*
 * The producer side of an sring ring, behind the device API of
 * include/sring/sring_device.h: reserve hands the device free space, commit
 * writes the block header, applies the overrun policy, publishes head, and
 * wakes the consumer only when it asked for it. The user-space twin is
 * simulator/sim_device.cpp; the two follow the same steps and the same
 * ordering.
 *
 * Everything here runs under ring->prod_lock, taken irqsave: the device API
 * may be called from a hard IRQ handler.
 */
#include <linux/atomic.h>
#include <linux/dma-mapping.h>
#include <linux/export.h>
#include <linux/ktime.h>
#include <linux/math64.h>
#include <linux/minmax.h>
#include <linux/poll.h>
#include <linux/string.h>
#include <linux/timekeeping.h>

#include "sring_compat.h"
#include "sring_internal.h"
#include "sring/sring_pattern.h"

/* Upper bound on compare-and-swap rounds against a consumer that keeps
 * moving tail (or scribbles on it) while we reclaim: softirq must not spin. */
#define SRING_RECLAIM_ATTEMPTS	64

/* The flush timer runs again at least this long after it fired, whatever
 * flush_timeout_us says (0 included): it must not spin in softirq while a
 * consumer lags without asking for a wake-up. */
#define SRING_FLUSH_MIN_PERIOD_NS	(100 * NSEC_PER_USEC)

void sring_counter_add(__u64 *counter, u64 by)
{
	/* Only the producer writes the counters (under prod_lock); readers in
	 * user space load them with relaxed ordering: they are statistics. */
	WRITE_ONCE(*counter, READ_ONCE(*counter) + by);
}

static struct sring_block_header *sring_block_at(struct sring_ring *ring,
						 u64 pos)
{
	return ring->data_mirror + (pos & (ring->ring_size - 1));
}

/*
 * The device made a block: it takes the next sequence number and frame
 * indices whether it is written or lost, so that blocks_produced and
 * samples_produced (frames, as every sample count of ABI 1.4) always equal
 * the sequence and first_sample of the next block (docs/abi.md,
 * "Counters").
 */
static void sring_block_made(struct sring_ring *ring, u32 frames)
{
	ring->sequence++;
	ring->next_sample += frames;
	sring_counter_add(&ring->kprod->blocks_produced, 1);
	sring_counter_add(&ring->kprod->samples_produced, frames);
}

/* An overrun episode starts at the first loss after a block that fit. */
static void sring_note_overrun(struct sring_ring *ring)
{
	if (!ring->in_overrun)
		sring_counter_add(&ring->kprod->overruns, 1);
	ring->in_overrun = true;
}

void sring_producer_reset(struct sring_ring *ring, u64 position)
{
	struct sring_producer_page *kprod = ring->kprod;

	lockdep_assert_held(&ring->prod_lock);
	ring->head = position;
	ring->reserved = position;
	ring->last_tail = position;
	ring->reset_position = position;
	ring->segments[0].start = position;
	ring->segments[0].block_bytes = ring->config.block_bytes;
	ring->nr_segments = 1;
	ring->has_run = false;
	WRITE_ONCE(ring->ended, false);
	ring->sequence = 0;
	ring->next_sample = 0;
	ring->pending_lost = 0;
	ring->pending_overrun = false;
	ring->in_overrun = false;
	/* The caller cancelled the flush timer. */
	ring->flush_pending = false;
	ring->corrupt_blocks = 0;
	ring->reclaim_races = 0;
	ring->read_pinned = false;
	ring->bytes_read = 0;

	WRITE_ONCE(kprod->blocks_produced, 0);
	WRITE_ONCE(kprod->samples_produced, 0);
	WRITE_ONCE(kprod->blocks_dropped, 0);
	WRITE_ONCE(kprod->samples_dropped, 0);
	WRITE_ONCE(kprod->overruns, 0);
	WRITE_ONCE(kprod->wakeups, 0);
	WRITE_ONCE(kprod->bad_tails, 0);
	WRITE_ONCE(kprod->high_water, 0);
	/* Tail first: a consumer that sees the new head must not pair it with
	 * an old tail that would look more than a ring behind. */
	smp_store_release(&ring->kcons->tail, position);
	smp_store_release(&kprod->head, position);
}

/* A header we wrote, still intact below head? */
static bool sring_block_sane(struct sring_ring *ring, u64 pos)
{
	const struct sring_block_header *block = sring_block_at(ring, pos);
	u32 total = READ_ONCE(block->total_bytes);

	return READ_ONCE(block->magic) == SRING_BLOCK_MAGIC &&
	       total >= SRING_BLOCK_HEADER_SIZE + SRING_BLOCK_ALIGN &&
	       total % SRING_BLOCK_ALIGN == 0 && total <= ring->head - pos;
}

/*
 * The segment of blocks that @pos (between the last accepted tail and
 * head) lies in: the newest one that starts at or before it.
 */
static const struct sring_segment *sring_segment_of(const struct sring_ring *ring,
						    u64 pos)
{
	unsigned int i = ring->nr_segments - 1;

	while (i > 0 && ring->head - ring->segments[i].start < ring->head - pos)
		i--;
	return &ring->segments[i];
}

/* The end of @seg's blocks: the next segment's start, or head. */
static u64 sring_segment_end(const struct sring_ring *ring,
			     const struct sring_segment *seg)
{
	return seg == &ring->segments[ring->nr_segments - 1] ? ring->head :
							       seg[1].start;
}

/*
 * Is @tail, read from the consumer page, one the consumer may store
 * (docs/abi.md, "struct sring_consumer_page")? It must lie between the
 * last tail we accepted and head, and be a block boundary: head, or the
 * start of a block we wrote. Boundaries come from our own records, never
 * from the consumer or from memory it could reach: every segment's blocks
 * are of one size from its start. O(segments), whatever the tail.
 */
static bool sring_tail_valid(struct sring_ring *ring, u64 tail)
{
	const struct sring_segment *seg;
	u64 rem;

	if (tail == ring->last_tail)
		return true;
	if (tail - ring->last_tail > ring->head - ring->last_tail ||
	    tail % SRING_BLOCK_ALIGN)
		return false;
	if (tail == ring->head)
		return true;
	seg = sring_segment_of(ring, tail);
	div64_u64_rem(tail - seg->start, seg->block_bytes, &rem);
	return rem == 0;
}

/*
 * A START: blocks from head on have the configured size. A new size opens
 * a segment, after the segments the consumer is done with are forgotten;
 * when the ring would hold more sizes at once than we keep, the start is
 * refused (-EBUSY) until the consumer catches up or the ring is reset.
 */
int sring_begin_segment(struct sring_ring *ring)
{
	struct sring_segment *last;
	unsigned int done = 0;
	u64 tail;

	lockdep_assert_held(&ring->prod_lock);
	last = &ring->segments[ring->nr_segments - 1];
	if (ring->config.block_bytes == last->block_bytes)
		return 0;
	if (last->start == ring->head) {	/* none of its blocks was made */
		last->block_bytes = ring->config.block_bytes;
		return 0;
	}
	tail = sring_accepted_tail(ring);
	while (done + 1 < ring->nr_segments &&
	       ring->head - ring->segments[done + 1].start >= ring->head - tail)
		done++;	/* the consumer is past segment done */
	if (done) {
		memmove(ring->segments, ring->segments + done,
			(ring->nr_segments - done) * sizeof(ring->segments[0]));
		ring->nr_segments -= done;
	}
	if (ring->nr_segments == SRING_MAX_SEGMENTS)
		return -EBUSY;
	ring->segments[ring->nr_segments].start = ring->head;
	ring->segments[ring->nr_segments].block_bytes = ring->config.block_bytes;
	ring->nr_segments++;
	return 0;
}

static void sring_refuse_tail(struct sring_ring *ring, u64 tail)
{
	sring_counter_add(&ring->kprod->bad_tails, 1);
	dev_info_ratelimited(&ring->dev,
			     "consumer tail %llu is not a block boundary in [%llu, %llu]; ignored\n",
			     tail, ring->last_tail, ring->head);
}

u64 sring_take_tail(struct sring_ring *ring, bool *refused)
{
	/*
	 * Pairs with the consumer's store_release(tail): its reads of the
	 * blocks below tail are done before we reuse their space. The value is
	 * the consumer's to write: anything sring_tail_valid() refuses is
	 * counted and ignored, and is never used to index memory.
	 */
	u64 tail = smp_load_acquire(&ring->kcons->tail);
	bool bad;

	lockdep_assert_held(&ring->prod_lock);
	bad = !sring_tail_valid(ring, tail);
	if (refused)
		*refused = bad;
	if (bad) {
		sring_refuse_tail(ring, tail);
		return ring->last_tail;
	}
	ring->last_tail = tail;
	return tail;
}

u64 sring_accepted_tail(struct sring_ring *ring)
{
	return sring_take_tail(ring, NULL);
}

/*
 * Bytes of whole blocks in [tail, head) that fit in @count, for read();
 * tail is an accepted tail, so a boundary. From our segments, without
 * reading a header: O(segments), with interrupts off.
 */
u64 sring_whole_blocks(struct sring_ring *ring, u64 tail, u64 head,
		       size_t count)
{
	const struct sring_segment *seg = sring_segment_of(ring, tail);
	u64 pos = tail, left = count, bytes, rem;

	lockdep_assert_held(&ring->prod_lock);
	while (pos != head) {
		bytes = min_t(u64, sring_segment_end(ring, seg) - pos, left);
		div64_u64_rem(bytes, seg->block_bytes, &rem);
		bytes -= rem;
		pos += bytes;
		left -= bytes;
		if (pos != sring_segment_end(ring, seg))
			break;	/* the next block does not fit */
		seg++;
	}
	return pos - tail;
}

/*
 * Not RUNNING after a start (stopped, overrun-stopped, failed), or removed:
 * once the ring is drained nothing more comes until a new start, so read()
 * returns 0 and poll() reports the ring readable. Stopped without a start
 * since the reset is not an end: a consumer waits for the stream to begin.
 * One word, set with the state (sring_producer_set_state()): lockless
 * readers (poll(), wait conditions) never pair a state with another
 * moment's has_run. Loaded with acquire before the caller loads head:
 * pairs with the release there, after the last head, so an ended stream's
 * head is final.
 */
bool sring_stream_ended(struct sring_ring *ring)
{
	return smp_load_acquire(&ring->ended);
}

static void sring_signal(struct sring_ring *ring)
{
	/*
	 * Take the consumer's request and signal once: a consumer that asks
	 * again after this gets the next signal; one already awake loses
	 * nothing. xchg() is fully ordered.
	 */
	if (!xchg(&ring->kcons->need_wakeup, 0))
		return;
	if (ring->eventfd)
		sring_eventfd_signal(ring->eventfd);
	wake_up_interruptible_poll(&ring->waitq, EPOLLIN | EPOLLRDNORM);
	sring_counter_add(&ring->kprod->wakeups, 1);
}

/* Monitors sleep on their own queue. The caller issued a full barrier
 * after the change they look for (head, state), which pairs with the one
 * in sring_poll() after poll_wait(): either we see the sleeper, or it sees
 * the change. */
static void sring_wake_monitors(struct sring_ring *ring)
{
	if (waitqueue_active(&ring->monitor_waitq))
		wake_up_interruptible_poll(&ring->monitor_waitq,
					   EPOLLIN | EPOLLRDNORM);
}

void sring_producer_wake(struct sring_ring *ring)
{
	/*
	 * A state change (stop, overrun stop): waiters must look again. The
	 * state store comes before the flag load, and a release store then
	 * an unlock and lock order nothing before a load: pairs with the
	 * consumer's smp_mb() between arming need_wakeup and re-reading state
	 * and head. Either it sees the new state or we see its flag.
	 */
	smp_mb();
	if (READ_ONCE(ring->kcons->need_wakeup))
		sring_signal(ring);
	else
		wake_up_interruptible_poll(&ring->waitq, EPOLLIN | EPOLLRDNORM);
	sring_wake_monitors(ring);
}

static u64 sring_flush_period_ns(const struct sring_ring *ring)
{
	return max_t(u64, (u64)ring->config.flush_timeout_us * NSEC_PER_USEC,
		     SRING_FLUSH_MIN_PERIOD_NS);
}

/*
 * Unreleased data is in the ring: keep the flush timer running, also when
 * nobody asks for a wake-up now. A consumer arms need_wakeup in its own
 * memory, unseen by us, and may do so after a publish and sleep below its
 * watermark: the timer answers it within flush_timeout_us
 * (sring_flush_expired()). Called after a publish, and at a start that
 * finds data unreleased.
 */
void sring_arm_flush(struct sring_ring *ring)
{
	lockdep_assert_held(&ring->prod_lock);
	if (ring->flush_pending)
		return;
	ring->flush_pending = true;
	hrtimer_start(&ring->flush_timer,
		      ns_to_ktime((u64)ring->config.flush_timeout_us * NSEC_PER_USEC),
		      HRTIMER_MODE_REL_SOFT);
}

static void sring_publish(struct sring_ring *ring, u64 new_head, u64 tail)
{
	struct sring_producer_page *kprod = ring->kprod;
	u64 watermark;

	/* Pairs with the consumer's load_acquire(head): the block is visible
	 * before the head that covers it. */
	smp_store_release(&kprod->head, new_head);
	ring->head = new_head;
	if (new_head - tail > READ_ONCE(kprod->high_water))
		WRITE_ONCE(kprod->high_water, new_head - tail);

	sring_arm_flush(ring);

	/*
	 * Pairs with the consumer's smp_mb() between setting need_wakeup and
	 * re-reading head: either it sees our head, or we see its flag. Also
	 * the barrier sring_wake_monitors() needs.
	 */
	smp_mb();
	sring_wake_monitors(ring);
	if (!READ_ONCE(ring->kcons->need_wakeup))
		return;
	/* The watermark is user-controlled: clamp it so that no value can
	 * silence the ring (the flush timeout covers anything below it). */
	watermark = clamp_t(u64, READ_ONCE(ring->kcons->wakeup_watermark), 1,
			    ring->ring_size / 2);
	if (new_head - tail >= watermark)
		sring_signal(ring);
}

/*
 * Runs every flush period while unreleased data is in the ring and the
 * device runs: a consumer that asked for a wake-up (need_wakeup set, by
 * poll(), read() or in user space) and still has data to take is signalled,
 * whatever its watermark. Once tail reaches head it stops, and the next
 * publish starts it again.
 */
static enum hrtimer_restart sring_flush_expired(struct hrtimer *timer)
{
	struct sring_ring *ring = container_of(timer, struct sring_ring,
					       flush_timer);
	enum hrtimer_restart ret = HRTIMER_NORESTART;
	unsigned long irqflags;
	bool unreleased;

	spin_lock_irqsave(&ring->prod_lock, irqflags);
	if (!ring->flush_pending)
		goto out;	/* stopped or reset while we waited for the lock */
	smp_mb();	/* as in sring_publish(): head store before flag load */
	/* The tail as we accept it: a refused one releases nothing. */
	unreleased = sring_accepted_tail(ring) != ring->head;
	if (unreleased && READ_ONCE(ring->kcons->need_wakeup))
		sring_signal(ring);
	if (unreleased && ring->state == SRING_STATE_RUNNING) {
		hrtimer_forward_now(timer, ns_to_ktime(sring_flush_period_ns(ring)));
		ret = HRTIMER_RESTART;
	} else {
		ring->flush_pending = false;
	}
out:
	spin_unlock_irqrestore(&ring->prod_lock, irqflags);
	return ret;
}

void sring_producer_init(struct sring_ring *ring)
{
	spin_lock_init(&ring->prod_lock);
	hrtimer_setup(&ring->flush_timer, sring_flush_expired, CLOCK_MONOTONIC,
		      HRTIMER_MODE_REL_SOFT);
}

/*
 * Overwrite-oldest: take blocks back from the consumer until the next block
 * fits. The consumer releases with a compare-and-swap on tail too, so
 * whoever moves tail first owns the block: if we win, the consumer's CAS
 * fails and it discards what it read. Returns false if nothing could be
 * reclaimed (then the block is dropped instead); *reclaimed says whether
 * any block was taken (the consumer may have made room by itself).
 */
static bool sring_reclaim_oldest(struct sring_ring *ring, u64 needed_head,
				 u64 *tail, bool *reclaimed)
{
	u64 size = ring->ring_size;
	/* The tail as it is in shared memory: the CAS must expect exactly it.
	 * Pairs with the consumer's release of tail (store or CAS). */
	u64 in_memory = smp_load_acquire(&ring->kcons->tail);
	int attempt;

	/* read() is copying the oldest blocks (sring_read()): they stay,
	 * and the new block is dropped instead. */
	if (ring->read_pinned)
		return false;

	for (attempt = 0; attempt < SRING_RECLAIM_ATTEMPTS; attempt++) {
		const struct sring_block_header *victim;
		u64 victim_end, seen;

		/* Decide from the tail we CAS from, so that a block released
		 * a moment ago is never counted as lost. A bad one is counted
		 * and replaced by our CAS. */
		if (sring_tail_valid(ring, in_memory))
			ring->last_tail = in_memory;
		else
			sring_refuse_tail(ring, in_memory);
		*tail = ring->last_tail;
		if (needed_head - *tail <= size)
			return true;

		/*
		 * The oldest block is the one at the accepted tail, a block
		 * boundary (sring_tail_valid()). Its header is our own (user
		 * space maps data read-only), checked anyway: one that does
		 * not check out is not reclaimed, the new block is dropped.
		 */
		if (*tail == ring->head || !sring_block_sane(ring, *tail))
			return false;
		victim = sring_block_at(ring, *tail);
		victim_end = *tail + victim->total_bytes;

		if (unlikely(ring->reclaim_races)) {
			/* Fault injection (SRING_FAULT_RECLAIM_RACE): the
			 * consumer releases this very block right now, between
			 * our load and our CAS, as its CAS would. */
			ring->reclaim_races--;
			cmpxchg(&ring->kcons->tail, in_memory, victim_end);
		}
		/* Fully ordered: pairs with the consumer's CAS (acq_rel). */
		seen = cmpxchg(&ring->kcons->tail, in_memory, victim_end);
		if (seen != in_memory) {
			in_memory = seen;	/* it moved: look again */
			continue;
		}
		/* It was made (and counted in blocks_produced) when it was
		 * written; now it is lost too. Its header is our own: the
		 * consumer maps data read-only. */
		sring_counter_add(&ring->kprod->blocks_dropped, 1);
		sring_counter_add(&ring->kprod->samples_dropped,
				  victim->sample_count);
		sring_note_overrun(ring);
		*reclaimed = true;
		ring->last_tail = victim_end;
		in_memory = victim_end;
	}
	return false;
}

/*
 * The one place the state changes: ours (read without the lock by
 * sring_ring_running() and sysfs) and the producer page's. The page's store
 * comes after every head and counter store before it: pairs with the
 * consumer's load_acquire(state) (docs/abi.md, "End of stream").
 */
void sring_producer_set_state(struct sring_ring *ring, u32 state)
{
	lockdep_assert_held(&ring->prod_lock);
	WRITE_ONCE(ring->state, state);
	smp_store_release(&ring->ended, state == SRING_STATE_REMOVED ||
			  (state != SRING_STATE_RUNNING && ring->has_run));
	smp_store_release(&ring->kprod->state, state);
}

/*
 * The stream ends: a consumer that load-acquires the new state sees the
 * final head and counters. Slots the device still holds are discarded:
 * nothing in them was made.
 */
void sring_producer_end(struct sring_ring *ring, u32 state)
{
	lockdep_assert_held(&ring->prod_lock);
	ring->reserved = ring->head;
	sring_producer_set_state(ring, state);
	sring_producer_wake(ring);
}

int sring_reserve(struct sring_ring *ring, struct sring_slot *slot)
{
	unsigned long irqflags;
	bool reclaimed = false;
	u64 tail, samples_at;
	u32 need, len;
	int ret = 0;

	spin_lock_irqsave(&ring->prod_lock, irqflags);
	if (ring->state != SRING_STATE_RUNNING) {
		ret = -EPIPE;
		goto out;
	}
	need = ring->config.block_bytes;
	tail = sring_accepted_tail(ring);
	if (ring->reserved + need - tail > ring->ring_size) {
		/* Only committed blocks can be taken back, never a slot the
		 * device holds. */
		if (ring->config.overrun_policy != SRING_OVERRUN_OVERWRITE_OLDEST ||
		    !sring_reclaim_oldest(ring, ring->reserved + need, &tail,
					  &reclaimed)) {
			ret = -ENOSPC;
			goto out;
		}
	}
	/* The episode lasts while every block costs a loss. */
	if (!reclaimed)
		ring->in_overrun = false;

	samples_at = ring->reserved + SRING_BLOCK_HEADER_SIZE;
	len = need - SRING_BLOCK_HEADER_SIZE;
	memset(slot, 0, sizeof(*slot));
	slot->position = ring->reserved;
	slot->cpu_addr = (u8 *)sring_block_at(ring, ring->reserved) +
			 SRING_BLOCK_HEADER_SIZE;
	slot->capacity = len;
	if (ring->dma_mapped) {
		slot->nr_segments = sring_dma_pieces(ring, samples_at, len,
						     slot->segments,
						     SRING_SLOT_MAX_SEGMENTS);
		if (!slot->nr_segments) {
			/* Configuration checks make this impossible: never
			 * hand the device a slot it would overrun. */
			sring_producer_end(ring, SRING_STATE_FAILED);
			ret = -EPIPE;
			goto out;
		}
		sring_sync_pieces(ring, slot->segments, slot->nr_segments, true);
	}
	ring->reserved += need;
out:
	spin_unlock_irqrestore(&ring->prod_lock, irqflags);
	return ret;
}
EXPORT_SYMBOL_GPL(sring_reserve);

/* A block made with nowhere to go: lost, counted, flagged on the next. */
static void sring_lose_block(struct sring_ring *ring, u32 frames)
{
	sring_note_overrun(ring);
	ring->pending_overrun = true;
	ring->pending_lost += frames;
	sring_block_made(ring, frames);
	sring_counter_add(&ring->kprod->blocks_dropped, 1);
	sring_counter_add(&ring->kprod->samples_dropped, frames);
}

int sring_drop(struct sring_ring *ring, u32 frames)
{
	unsigned long irqflags;
	int ret = 0;

	spin_lock_irqsave(&ring->prod_lock, irqflags);
	if (ring->state != SRING_STATE_RUNNING) {
		ret = -EPIPE;
	} else if (ring->config.overrun_policy == SRING_OVERRUN_STOP) {
		/* The device stops instead of making this block: nothing is
		 * lost, the stream just ends. */
		sring_note_overrun(ring);
		sring_producer_end(ring, SRING_STATE_OVERRUN_STOPPED);
		ret = -EPIPE;
	} else {
		sring_lose_block(ring, frames);
	}
	spin_unlock_irqrestore(&ring->prod_lock, irqflags);
	return ret;
}
EXPORT_SYMBOL_GPL(sring_drop);

int sring_commit(struct sring_ring *ring, u64 position, u32 frames,
		 ktime_t timestamp, u32 flags)
{
	struct sring_block_header *block;
	u32 need, channels, bits;
	unsigned long irqflags;
	u64 payload_bytes;
	u8 *payload;
	int ret = 0;

	spin_lock_irqsave(&ring->prod_lock, irqflags);
	if (ring->state != SRING_STATE_RUNNING) {
		ret = -EPIPE;	/* discarded: the stream ended before it */
		goto out;
	}
	need = ring->config.block_bytes;
	channels = ring->config.channels;
	bits = ring->bits_per_sample;
	/* Whatever the format: the frames' bytes fit the slot. */
	payload_bytes = sring_payload_bytes(frames, channels, bits);
	if (position != ring->head || ring->reserved - ring->head < need ||
	    frames == 0 || payload_bytes > need - SRING_BLOCK_HEADER_SIZE ||
	    (flags & ~SRING_COMMIT_FLAGS)) {
		dev_err_ratelimited(&ring->dev,
				    "commit of %u frames at %llu (flags %#x) out of order or too large: head %llu, reserved %llu; stream failed\n",
				    frames, position, flags, ring->head,
				    ring->reserved);
		sring_producer_end(ring, SRING_STATE_FAILED);
		ret = -EINVAL;
		goto out;
	}

	/* The device's writes are visible to the CPU before anyone reads
	 * them, the header included. */
	if (ring->dma_mapped) {
		struct sring_dma_segment pieces[SRING_SLOT_MAX_SEGMENTS];
		unsigned int n;

		n = sring_dma_pieces(ring, position + SRING_BLOCK_HEADER_SIZE,
				     need - SRING_BLOCK_HEADER_SIZE, pieces,
				     ARRAY_SIZE(pieces));
		sring_sync_pieces(ring, pieces, n, false);
	}
	block = sring_block_at(ring, position);
	payload = (u8 *)block + SRING_BLOCK_HEADER_SIZE;
	if (ring->corrupt_blocks) {
		/* One byte in the middle of the payload, as a bad transfer
		 * would: the first byte of one value, so exactly one value
		 * is wrong in every format (the simulator does the same). */
		ring->corrupt_blocks--;
		payload[sring_corrupt_byte(frames, channels, bits,
					   sring_format_components(ring->config.sample_format))] ^= 0x5a;
	}
	block->magic = SRING_BLOCK_MAGIC;
	block->total_bytes = need;
	block->sequence = ring->sequence;
	block->first_sample = ring->next_sample;
	block->timestamp_ns = ktime_to_ns(timestamp);
	block->lost_samples = ring->pending_lost;
	block->sample_count = frames;
	block->sample_format = ring->config.sample_format;
	block->bytes_per_sample = bits % 8 ? 0 : bits / 8;
	block->flags = flags |
		       (ring->pending_lost ? SRING_BLOCK_F_GAP : 0) |
		       (ring->pending_overrun ? SRING_BLOCK_F_OVERRUN : 0);
	block->channels = channels;
	block->bits_per_sample = bits;
	block->reserved1 = 0;

	sring_block_made(ring, frames);
	ring->pending_lost = 0;
	ring->pending_overrun = false;
	sring_publish(ring, position + need, sring_accepted_tail(ring));
out:
	spin_unlock_irqrestore(&ring->prod_lock, irqflags);
	return ret;
}
EXPORT_SYMBOL_GPL(sring_commit);

void sring_device_error(struct sring_ring *ring)
{
	unsigned long irqflags;

	spin_lock_irqsave(&ring->prod_lock, irqflags);
	if (ring->state == SRING_STATE_RUNNING) {
		dev_warn(&ring->dev, "the device reported an error; stream ended\n");
		sring_producer_end(ring, SRING_STATE_FAILED);
	}
	spin_unlock_irqrestore(&ring->prod_lock, irqflags);
}
EXPORT_SYMBOL_GPL(sring_device_error);

bool sring_ring_running(struct sring_ring *ring)
{
	return READ_ONCE(ring->state) == SRING_STATE_RUNNING;
}
EXPORT_SYMBOL_GPL(sring_ring_running);

u64 sring_next_sample(struct sring_ring *ring)
{
	unsigned long irqflags;
	u64 next;

	spin_lock_irqsave(&ring->prod_lock, irqflags);
	next = ring->next_sample;
	spin_unlock_irqrestore(&ring->prod_lock, irqflags);
	return next;
}
EXPORT_SYMBOL_GPL(sring_next_sample);

/*
 * Every kind and bound is checked here, the same for every device; the
 * core does what it can do itself (corrupting delivered data, as a bad DMA
 * would; racing a reclaim), stalls and bursts are the device's.
 */
int sring_producer_inject(struct sring_ring *ring,
			  const struct sring_fault *fault)
{
	u32 *left;

	if (fault->reserved0)
		return -EINVAL;
	switch (fault->kind) {
	case SRING_FAULT_STALL:
		if (fault->arg == 0 || fault->arg > SRING_MAX_FAULT_STALL_US)
			return -EINVAL;
		break;
	case SRING_FAULT_BURST:
	case SRING_FAULT_CORRUPT:
	case SRING_FAULT_RECLAIM_RACE:
		if (fault->arg == 0 || fault->arg > SRING_MAX_FAULT_BLOCKS)
			return -EINVAL;
		break;
	case SRING_FAULT_FAIL:
		if (fault->arg != 1)
			return -EINVAL;
		/* What a driver's error path does: consumers see FAILED. */
		sring_device_error(ring);
		return 0;
	default:
		return -EINVAL;
	}
	if (fault->kind == SRING_FAULT_CORRUPT ||
	    fault->kind == SRING_FAULT_RECLAIM_RACE) {
		left = fault->kind == SRING_FAULT_CORRUPT ? &ring->corrupt_blocks :
							    &ring->reclaim_races;
		spin_lock_irq(&ring->prod_lock);
		*left = min_t(u32, *left + fault->arg, SRING_MAX_FAULT_BLOCKS);
		spin_unlock_irq(&ring->prod_lock);
		return 0;
	}
	if (!ring->ops->inject_fault)
		return -EOPNOTSUPP;
	return ring->ops->inject_fault(ring, fault);
}
