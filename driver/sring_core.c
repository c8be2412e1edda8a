// SPDX-License-Identifier: GPL-2.0
/*
 * sring: a zero-copy ring of physically contiguous pages between a sampling
 * device and user space. Device drivers register rings through
 * include/sring/sring_device.h; each ring is a char device (/dev/sringN)
 * whose layout and ioctls are in include/sring/sring_abi.h.
 *
 * A ring lives from sring_register() to the last close after
 * sring_unregister(): open files hold a reference on its struct device (a
 * mapping holds its file), so a device that goes away while a consumer has
 * the ring mapped leaves the memory valid, unreachable by the device, until
 * the consumer is done. Open files also hold sring.ko (fops.owner).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/genalloc.h>
#include <linux/idr.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/kernel.h>
#include <linux/log2.h>
#include <linux/math64.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "sring_compat.h"
#include "sring_internal.h"

static unsigned long reserved_base;
module_param(reserved_base, ulong, 0444);
MODULE_PARM_DESC(reserved_base,
		 "Physical address of a region reserved at boot (memmap=SIZE$BASE) that rings registered with SRING_RING_RESERVED_MEMORY are carved from (default 0: none)");

static unsigned long reserved_size;
module_param(reserved_size, ulong, 0444);
MODULE_PARM_DESC(reserved_size, "Size of the reserved region in bytes (default 0)");

static unsigned long long initial_position;
module_param(initial_position, ullong, 0444);
MODULE_PARM_DESC(initial_position,
		 "Head and tail after load and reset, for testing long runs, e.g. near 2^32 or 2^63 (default 0)");

/* SRING_MAX_SAMPLE_RATE and SRING_MAX_FLUSH_TIMEOUT_US: sring_abi.h. */
#define SRING_DEFAULT_FLUSH_US		2000

struct sring_file {
	struct sring_ring *ring;
	bool consumer;		/* holds the ring's consumer role */
};

static struct class *sring_class;
static dev_t sring_devt;
static DEFINE_IDA(sring_minors);
/* The reserved region, when there is one: rings are carved from it. */
static struct gen_pool *sring_reserved_pool;

static const char *sring_state_name(u32 state)
{
	switch (state) {
	case SRING_STATE_STOPPED:
		return "stopped";
	case SRING_STATE_RUNNING:
		return "running";
	case SRING_STATE_OVERRUN_STOPPED:
		return "overrun-stopped";
	case SRING_STATE_FAILED:
		return "failed";
	case SRING_STATE_REMOVED:
		return "removed";
	}
	return "unknown";
}

static const char *sring_policy_name(u32 policy)
{
	switch (policy) {
	case SRING_OVERRUN_DROP_NEWEST:
		return "drop";
	case SRING_OVERRUN_OVERWRITE_OLDEST:
		return "overwrite";
	case SRING_OVERRUN_STOP:
		return "stop";
	}
	return "unknown";
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

u32 sring_format_bits_of(const struct sring_ring *ring, u32 format)
{
	unsigned int i;

	if (format < SRING_FMT_DEVICE_FIRST)
		return sring_format_bits(format);
	for (i = 0; i < ring->nr_formats; i++)
		if (ring->formats[i].format == format)
			return ring->formats[i].bits_per_sample;
	return 0;
}

/* A 1.3 caller's zeroed field, and a 1.4 caller's 0, mean one channel. */
static u32 sring_config_channels(const struct sring_config *config)
{
	return config->channels ? config->channels : 1;
}

static int sring_validate_config(const struct sring_ring *ring,
				 const struct sring_config *config)
{
	u32 bits, channels;
	u64 frame_bytes;

	if (config->flags || config->reserved0 || config->reserved1)
		return -EINVAL;
	if (config->block_bytes < SRING_BLOCK_HEADER_SIZE + SRING_BLOCK_ALIGN ||
	    config->block_bytes % SRING_BLOCK_ALIGN ||
	    config->block_bytes > SRING_MAX_BLOCK_BYTES ||
	    config->block_bytes > ring->ring_size / 2)
		return -EINVAL;
	/* Slots of larger blocks could need more DMA segments than a slot
	 * has on this ring's memory (sring_memory.c). */
	if (config->block_bytes > ring->max_block_bytes) {
		dev_info_ratelimited(&ring->dev,
				     "blocks of %u bytes: this ring's memory takes at most %u (its DMA extents are short)\n",
				     config->block_bytes, ring->max_block_bytes);
		return -EINVAL;
	}
	if (config->overrun_policy > SRING_OVERRUN_STOP)
		return -EINVAL;
	bits = sring_format_bits_of(ring, config->sample_format);
	if (!bits) {
		dev_info_ratelimited(&ring->dev,
				     "sample format %#x: neither a standard format nor one this ring's driver declared\n",
				     config->sample_format);
		return -EINVAL;
	}
	channels = sring_config_channels(config);
	if (channels > SRING_MAX_CHANNELS)
		return -EINVAL;
	if (config->sample_rate > SRING_MAX_SAMPLE_RATE)
		return -EINVAL;
	if (config->flush_timeout_us > SRING_MAX_FLUSH_TIMEOUT_US)
		return -EINVAL;
	/* A block holds whole frames, at least one. */
	frame_bytes = sring_payload_bytes(1, channels, bits);
	if (frame_bytes > config->block_bytes - SRING_BLOCK_HEADER_SIZE) {
		dev_info_ratelimited(&ring->dev,
				     "a frame of %u channels of format %#x (%u bits each) is %llu bytes: blocks of %u bytes hold %u\n",
				     channels, config->sample_format, bits, frame_bytes,
				     config->block_bytes,
				     config->block_bytes - SRING_BLOCK_HEADER_SIZE);
		return -EINVAL;
	}
	return 0;
}

/*
 * Makes @config the ring's: ring->lock held, stopped, validated. Under
 * prod_lock too, since the producer's calls read it; then mirrored into
 * the producer page.
 */
static void sring_apply_config(struct sring_ring *ring,
			       const struct sring_config *config)
{
	spin_lock_irq(&ring->prod_lock);
	ring->config = *config;
	ring->bits_per_sample = sring_format_bits_of(ring, config->sample_format);
	spin_unlock_irq(&ring->prod_lock);
}

/* Mirrors the configuration into the producer page; ring->lock held, stopped. */
static void sring_publish_config(struct sring_ring *ring)
{
	struct sring_producer_page *kprod = ring->kprod;

	WRITE_ONCE(kprod->overrun_policy, ring->config.overrun_policy);
	WRITE_ONCE(kprod->sample_rate, ring->config.sample_rate);
	WRITE_ONCE(kprod->block_bytes, ring->config.block_bytes);
	WRITE_ONCE(kprod->sample_format, ring->config.sample_format);
	WRITE_ONCE(kprod->pattern_seed, ring->config.pattern_seed);
	WRITE_ONCE(kprod->channels, ring->config.channels);
	WRITE_ONCE(kprod->bits_per_sample, ring->bits_per_sample);
}

static bool sring_running(struct sring_ring *ring)
{
	return READ_ONCE(ring->state) == SRING_STATE_RUNNING;
}

/* Stops the flush timer: nothing runs, and the next publish after a start
 * arms it again. Not under prod_lock: its callback takes it. */
static void sring_cancel_flush(struct sring_ring *ring)
{
	hrtimer_cancel(&ring->flush_timer);
	spin_lock_irq(&ring->prod_lock);
	ring->flush_pending = false;
	spin_unlock_irq(&ring->prod_lock);
}

/* Once per start: a device that ended the stream by itself (overrun stop,
 * error) is stopped at the next stop, reset, start or unregister. */
static void sring_stop_device(struct sring_ring *ring)
{
	lockdep_assert_held(&ring->lock);
	if (ring->device_stopped)
		return;
	ring->ops->stop(ring);
	ring->device_stopped = true;
}

/*
 * Ends the stream with @state (STOPPED, or REMOVED at unregister) if it is
 * running, then stops the device: the state comes first, so that no commit
 * lands after a consumer saw the end (docs/abi.md, "End of stream"). The
 * device is stopped also when it ended the stream by itself (overrun stop,
 * error): ops->stop quiesces its engine either way. A stop always wakes
 * waiters, which must look at the state again.
 */
static void sring_stop(struct sring_ring *ring, u32 state)
{
	lockdep_assert_held(&ring->lock);
	spin_lock_irq(&ring->prod_lock);
	if (ring->state == SRING_STATE_RUNNING || state == SRING_STATE_REMOVED)
		sring_producer_end(ring, state);
	else
		sring_producer_wake(ring);
	spin_unlock_irq(&ring->prod_lock);
	sring_stop_device(ring);
	sring_cancel_flush(ring);
}

static int sring_start(struct sring_ring *ring)
{
	bool had_run;
	int ret;

	lockdep_assert_held(&ring->lock);
	/* It may have ended the last stream by itself: quiesce it first. */
	sring_stop_device(ring);
	/* A device that ended the stream by itself left its flush timer to
	 * end on its own: stop it; it runs again below if data is waiting. */
	sring_cancel_flush(ring);
	spin_lock_irq(&ring->prod_lock);
	/* The block size changes only here. */
	ret = sring_begin_segment(ring);
	if (ret) {
		spin_unlock_irq(&ring->prod_lock);
		return ret;
	}
	ring->reserved = ring->head;
	had_run = ring->has_run;
	ring->has_run = true;
	sring_producer_set_state(ring, SRING_STATE_RUNNING);
	/* Data from before the start may still be unreleased: a consumer
	 * asleep below its watermark is owed its flush, device stalled or
	 * not. */
	if (sring_accepted_tail(ring) != ring->head)
		sring_arm_flush(ring);
	spin_unlock_irq(&ring->prod_lock);
	ring->device_stopped = false;
	ret = ring->ops->start(ring);
	if (ret) {
		/* As if it had not been asked: a stream that had not begun
		 * still waits for its start, one that had is still over. */
		spin_lock_irq(&ring->prod_lock);
		ring->has_run = had_run;
		sring_producer_end(ring, SRING_STATE_STOPPED);
		spin_unlock_irq(&ring->prod_lock);
		sring_stop_device(ring);
		sring_cancel_flush(ring);
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* File operations                                                     */
/* ------------------------------------------------------------------ */

static bool sring_take_consumer(struct sring_file *sf)
{
	if (sf->consumer)
		return true;
	if (test_and_set_bit(SRING_RING_CONSUMER, &sf->ring->flags))
		return false;
	sf->consumer = true;
	return true;
}

static int sring_open(struct inode *inode, struct file *file)
{
	struct sring_ring *ring = container_of(inode->i_cdev, struct sring_ring,
					       cdev);
	struct sring_file *sf;
	int ret;

	sf = kzalloc(sizeof(*sf), GFP_KERNEL);
	if (!sf)
		return -ENOMEM;
	sf->ring = ring;
	/* Held until release: the ring outlives its device for us. */
	get_device(&ring->dev);
	if (READ_ONCE(ring->gone)) {
		ret = -ENODEV;
		goto err_put;
	}
	/* One consumer per ring; read-only opens are monitors. */
	if ((file->f_mode & FMODE_WRITE) && !sring_take_consumer(sf)) {
		ret = -EBUSY;
		goto err_put;
	}
	file->private_data = sf;
	return nonseekable_open(inode, file);

err_put:
	put_device(&ring->dev);
	kfree(sf);
	return ret;
}

/*
 * Installs ctx (or none) as the eventfd the producer signals, and drops the
 * reference to the one it replaces. The producer only signals under
 * prod_lock: after the swap nobody uses the old context, so the put may run
 * outside the lock.
 */
static void sring_swap_eventfd(struct sring_ring *ring, struct eventfd_ctx *ctx)
{
	struct eventfd_ctx *old;

	spin_lock_irq(&ring->prod_lock);
	old = ring->eventfd;
	ring->eventfd = ctx;
	spin_unlock_irq(&ring->prod_lock);
	if (old)
		eventfd_ctx_put(old);
}

static int sring_release(struct inode *inode, struct file *file)
{
	struct sring_file *sf = file->private_data;
	struct sring_ring *ring = sf->ring;

	if (sf->consumer) {
		/* The device keeps running: a new consumer attaches and
		 * continues from the tail this one left. */
		mutex_lock(&ring->lock);
		sring_swap_eventfd(ring, NULL);
		/* The next consumer starts without this one's request and
		 * watermark (read() of a dd after a batching consumer). */
		WRITE_ONCE(ring->kcons->need_wakeup, 0);
		WRITE_ONCE(ring->kcons->wakeup_watermark, 0);
		clear_bit(SRING_RING_CONSUMER, &ring->flags);
		mutex_unlock(&ring->lock);
	}
	kfree(sf);
	put_device(&ring->dev);
	return 0;
}

static int sring_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct sring_file *sf = file->private_data;
	struct sring_ring *ring = sf->ring;
	unsigned long length = vma->vm_end - vma->vm_start;
	bool may_write = false;
	unsigned long pfn;

	/* A new mapping of a ring whose device is gone: no. Existing ones
	 * stay valid (the memory is ours until the last close). */
	if (READ_ONCE(ring->gone))
		return -ENODEV;
	switch (vma->vm_pgoff) {
	case SRING_PRODUCER_PGOFF:
		if (length != PAGE_SIZE)
			return -EINVAL;
		pfn = page_to_pfn(ring->prod_page);
		break;
	case SRING_CONSUMER_PGOFF:
		if (length != PAGE_SIZE)
			return -EINVAL;
		pfn = page_to_pfn(ring->cons_page);
		may_write = (file->f_mode & FMODE_WRITE) && sf->consumer;
		break;
	case SRING_DATA_PGOFF:
		if (length != 2 * ring->ring_size)
			return -EINVAL;
		pfn = 0;	/* chunk by chunk: sring_mmap_data() */
		break;
	default:
		return -EINVAL;
	}

	if (!may_write) {
		if (vma->vm_flags & VM_WRITE)
			return -EPERM;
		/* mprotect() must not make it writable later either. */
		vm_flags_clear(vma, VM_MAYWRITE);
	}
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);

	if (vma->vm_pgoff != SRING_DATA_PGOFF)
		return remap_pfn_range(vma, vma->vm_start, pfn, PAGE_SIZE,
				       vma->vm_page_prot);
	return sring_mmap_data(ring, vma);
}

/*
 * What poll() reports about data and the end of the stream for a consumer
 * at @tail that wants @watermark bytes, without asking for a wake-up.
 * sring_stream_ended() loads the state with acquire before we load head:
 * an ended stream's head is final, so "drained" is final too.
 */
static __poll_t sring_readiness(struct sring_ring *ring, u64 tail,
				u64 watermark)
{
	bool ended = sring_stream_ended(ring);
	bool running = sring_running(ring);
	/* Pairs with the producer's smp_store_release(head). */
	u64 used = smp_load_acquire(&ring->kprod->head) - tail;

	/* Data up to the watermark; any data once the device stopped; and at
	 * the end of a drained stream, readable as any end of file is: read()
	 * returns 0 there and must not be waited for. */
	if (used >= watermark || (used && !running) || (!used && ended))
		return EPOLLIN | EPOLLRDNORM;
	return 0;
}

static __poll_t sring_poll(struct file *file, poll_table *wait)
{
	struct sring_file *sf = file->private_data;
	struct sring_ring *ring = sf->ring;
	__poll_t mask = 0, ready;
	bool refused;
	u64 watermark, tail;

	if (READ_ONCE(ring->gone))
		mask |= EPOLLHUP;	/* no more data after what is there */
	/* The tail as the producer takes it (what read() copies from): a
	 * refused one is the consumer's to find out about. */
	spin_lock_irq(&ring->prod_lock);
	tail = sring_take_tail(ring, &refused);
	spin_unlock_irq(&ring->prod_lock);
	if (refused)
		mask |= EPOLLIN | EPOLLRDNORM | EPOLLERR;
	if (!sf->consumer) {
		/*
		 * A monitor never writes the consumer page: it sleeps on its
		 * own queue, which every publish and state change wakes while
		 * it has sleepers. The full barrier pairs with theirs
		 * (sring_wake_monitors()): either they see us queued, or we
		 * see their change.
		 */
		poll_wait(file, &ring->monitor_waitq, wait);
		smp_mb();
		return mask | sring_readiness(ring, tail, 1);
	}
	poll_wait(file, &ring->waitq, wait);
	watermark = clamp_t(u64, READ_ONCE(ring->kcons->wakeup_watermark), 1,
			    ring->ring_size / 2);
	/*
	 * need_wakeup set: the consumer waits for the watermark (or the flush
	 * timeout, which clears the flag when it signals). Not set: any data.
	 */
	ready = sring_readiness(ring, tail,
				READ_ONCE(ring->kcons->need_wakeup) ? watermark : 1);
	if (ready)
		return mask | ready;
	/*
	 * Nothing to report: a poller wants to be woken, and only a signal
	 * wakes the wait queue, so ask for one (also while stopped before a
	 * start: the first blocks then wake it), then look again. The full
	 * barrier pairs with the producer's smp_mb() between storing head or
	 * state and reading need_wakeup.
	 */
	WRITE_ONCE(ring->kcons->need_wakeup, 1);
	smp_mb();
	return mask | sring_readiness(ring, tail, watermark);
}

/*
 * Copies [pos, pos + bytes) of the ring to user space, in two pieces where it
 * wraps: the kernel's mirror repeats one block, not the ring. Returns what
 * was not copied, as copy_to_user().
 */
static unsigned long sring_copy_out(struct sring_ring *ring, char __user *buf,
				    u64 pos, u64 bytes)
{
	u64 offset = pos & (ring->ring_size - 1);
	u64 first = min(bytes, ring->ring_size - offset);
	unsigned long uncopied;

	uncopied = copy_to_user(buf, ring->data_mirror + offset, first);
	if (uncopied || first == bytes)
		return uncopied + (bytes - first);
	return copy_to_user(buf + first, ring->data_mirror, bytes - first);
}

/*
 * read(): the copy path, for dd and cat, and the baseline zero-copy is
 * measured against. Copies as many whole blocks as fit; returns 0 at the end
 * of a drained stream, and waits for the stream to begin before the first
 * start; -EINVAL if the buffer cannot hold one block; -EIO if, in overwrite
 * mode, the shared tail was written behind our back. One read() at a time
 * per ring (read_lock, also taken by RESET): the tail it stores is always
 * the one it copied from plus what it copied.
 */
static ssize_t sring_read(struct file *file, char __user *buf, size_t count,
			  loff_t *ppos)
{
	struct sring_file *sf = file->private_data;
	struct sring_ring *ring = sf->ring;
	unsigned long uncopied;
	u64 head, tail, bytes;
	bool ended;
	ssize_t ret;

	if (!sring_take_consumer(sf))
		return -EBUSY;
	for (;;) {
		if (mutex_lock_interruptible(&ring->read_lock))
			return -ERESTARTSYS;
		spin_lock_irq(&ring->prod_lock);
		tail = sring_accepted_tail(ring);
		head = ring->head;
		/* Under the lock every state change takes after the last
		 * head: an ended, drained stream stays drained. */
		ended = sring_stream_ended(ring);
		/*
		 * Under the producer's lock, which it holds while it makes a
		 * block: the headers between tail and head are whole. Under
		 * overwrite-oldest, pin what we are about to copy: until we
		 * release it the producer drops new blocks instead of taking
		 * these back (counted and flagged as any drop), so a slow
		 * copy can neither be torn nor starved by a full ring.
		 */
		bytes = head != tail ? sring_whole_blocks(ring, tail, head, count) : 0;
		ring->read_pinned = bytes != 0;
		spin_unlock_irq(&ring->prod_lock);

		if (head != tail) {
			if (!bytes) {
				mutex_unlock(&ring->read_lock);
				return -EINVAL;
			}
			uncopied = sring_copy_out(ring, buf, tail, bytes);
			spin_lock_irq(&ring->prod_lock);
			ring->read_pinned = false;
			if (uncopied) {
				ret = -EFAULT;
			} else if (ring->config.overrun_policy !=
				   SRING_OVERRUN_OVERWRITE_OLDEST) {
				/* Pairs with the producer's
				 * smp_load_acquire(tail): the copy is done
				 * before the space may be reused. */
				smp_store_release(&ring->kcons->tail, tail + bytes);
				ret = bytes;
			} else if (cmpxchg(&ring->kcons->tail, tail, tail + bytes) == tail) {
				/* Fully ordered, as the producer's CAS. It
				 * could not move tail while we held the pin:
				 * a failure means the consumer page was
				 * written behind our back. */
				ret = bytes;
			} else {
				ret = -EIO;
			}
			if (ret > 0)
				ring->bytes_read += bytes;
			spin_unlock_irq(&ring->prod_lock);
			mutex_unlock(&ring->read_lock);
			return ret;
		}
		mutex_unlock(&ring->read_lock);
		if (ended)
			return 0;
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		/* Ask for a wake-up, then look again (the producer stores
		 * head or state, smp_mb(), reads need_wakeup). */
		WRITE_ONCE(ring->kcons->need_wakeup, 1);
		smp_mb();
		ret = wait_event_interruptible(ring->waitq,
			smp_load_acquire(&ring->kprod->head) != tail ||
			sring_stream_ended(ring));
		if (ret)
			return ret;
	}
}

static int sring_set_eventfd(struct sring_ring *ring, int fd)
{
	struct eventfd_ctx *ctx = eventfd_ctx_fdget(fd);

	if (IS_ERR(ctx))
		return PTR_ERR(ctx);
	sring_swap_eventfd(ring, ctx);
	return 0;
}

static void sring_fill_stats(struct sring_ring *ring, struct sring_stats *stats)
{
	struct sring_producer_page *kprod = ring->kprod;

	memset(stats, 0, sizeof(*stats));
	spin_lock_irq(&ring->prod_lock);
	/* The tail as the producer takes it now, also while the device is
	 * stopped (releases after a stop count): a refused one is counted
	 * (before bad_tails is read) and the last accepted one reported. */
	stats->tail = sring_accepted_tail(ring);
	stats->blocks_produced = READ_ONCE(kprod->blocks_produced);
	stats->samples_produced = READ_ONCE(kprod->samples_produced);
	stats->blocks_dropped = READ_ONCE(kprod->blocks_dropped);
	stats->samples_dropped = READ_ONCE(kprod->samples_dropped);
	stats->overruns = READ_ONCE(kprod->overruns);
	stats->wakeups = READ_ONCE(kprod->wakeups);
	stats->bad_tails = READ_ONCE(kprod->bad_tails);
	stats->high_water = READ_ONCE(kprod->high_water);
	stats->head = ring->head;
	stats->bytes_consumed = stats->tail - ring->reset_position;
	stats->state = ring->state;
	spin_unlock_irq(&ring->prod_lock);
}

static long sring_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct sring_file *sf = file->private_data;
	struct sring_ring *ring = sf->ring;
	void __user *uarg = (void __user *)arg;
	long ret = 0;

	/* Read-only commands first: monitors may use them. */
	switch (cmd) {
	case SRING_IOC_GET_INFO: {
		struct sring_info info = {
			.abi_version = SRING_ABI_VERSION,
			.page_size = PAGE_SIZE,
			.ring_size = ring->ring_size,
			.consumer_offset = SRING_CONSUMER_PGOFF * PAGE_SIZE,
			.data_offset = SRING_DATA_PGOFF * PAGE_SIZE,
			.memory_kind = ring->memory_kind,
			.max_block_bytes = ring->max_block_bytes,
		};

		return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
	}
	case SRING_IOC_GET_CONFIG: {
		struct sring_config config;

		mutex_lock(&ring->lock);
		config = ring->config;
		mutex_unlock(&ring->lock);
		return copy_to_user(uarg, &config, sizeof(config)) ? -EFAULT : 0;
	}
	case SRING_IOC_GET_STATS: {
		struct sring_stats stats;

		sring_fill_stats(ring, &stats);
		return copy_to_user(uarg, &stats, sizeof(stats)) ? -EFAULT : 0;
	}
	case SRING_IOC_SET_EVENTFD:
	case SRING_IOC_CLEAR_EVENTFD:
	case SRING_IOC_SET_CONFIG:
	case SRING_IOC_START:
	case SRING_IOC_STOP:
	case SRING_IOC_RESET:
	case SRING_IOC_INJECT_FAULT:
		break;
	default:
		return -ENOTTY;
	}

	/*
	 * Everything else changes the ring: the consumer's alone, through a
	 * descriptor opened for writing. A read-only open that took the
	 * consumer role with read() (dd, cat) consumes, and controls nothing.
	 */
	if (!sf->consumer || !(file->f_mode & FMODE_WRITE))
		return -EPERM;

	/*
	 * A read() copying from the old stream finishes before a reset, so
	 * its tail store never lands after it. Taken before ring->lock: a
	 * copy held in a page fault for as long as user space likes delays
	 * only this RESET (interruptibly), never the ring's other users.
	 */
	if (cmd == SRING_IOC_RESET && mutex_lock_interruptible(&ring->read_lock))
		return -ERESTARTSYS;
	mutex_lock(&ring->lock);
	/* Its device is gone: nothing left to control. */
	if (ring->gone) {
		ret = -ENODEV;
		goto out;
	}
	switch (cmd) {
	case SRING_IOC_SET_EVENTFD: {
		__s32 fd;

		if (get_user(fd, (__s32 __user *)uarg)) {
			ret = -EFAULT;
			break;
		}
		ret = sring_set_eventfd(ring, fd);
		break;
	}
	case SRING_IOC_CLEAR_EVENTFD:
		sring_swap_eventfd(ring, NULL);
		break;
	case SRING_IOC_SET_CONFIG: {
		struct sring_config config;

		if (copy_from_user(&config, uarg, sizeof(config))) {
			ret = -EFAULT;
			break;
		}
		if (sring_running(ring)) {
			ret = -EBUSY;
			break;
		}
		ret = sring_validate_config(ring, &config);
		if (ret)
			break;
		/* Stored, and shown to the device, as what it means. */
		config.channels = sring_config_channels(&config);
		/* A device that ended the stream by itself (stop policy,
		 * failure) is stopped before it is reconfigured. */
		sring_stop_device(ring);
		if (ring->ops->configure)
			ret = ring->ops->configure(ring, &config);
		if (ret)
			break;
		sring_apply_config(ring, &config);
		sring_publish_config(ring);
		break;
	}
	case SRING_IOC_START:
		if (sring_running(ring)) {
			ret = -EBUSY;
			break;
		}
		ret = sring_start(ring);
		break;
	case SRING_IOC_STOP:
		sring_stop(ring, SRING_STATE_STOPPED);
		break;
	case SRING_IOC_RESET:
		if (sring_running(ring)) {
			ret = -EBUSY;
			break;
		}
		/* The device may still be finishing a block that saw RUNNING
		 * (its commit then fails): quiesce it before the reset. */
		sring_stop_device(ring);
		hrtimer_cancel(&ring->flush_timer);
		spin_lock_irq(&ring->prod_lock);
		sring_producer_reset(ring, initial_position &
				     ~(u64)(SRING_BLOCK_ALIGN - 1));
		sring_producer_set_state(ring, SRING_STATE_STOPPED);
		spin_unlock_irq(&ring->prod_lock);
		break;
	case SRING_IOC_INJECT_FAULT: {
		struct sring_fault fault;

		if (copy_from_user(&fault, uarg, sizeof(fault))) {
			ret = -EFAULT;
			break;
		}
		ret = sring_producer_inject(ring, &fault);
		break;
	}
	}
out:
	mutex_unlock(&ring->lock);
	if (cmd == SRING_IOC_RESET)
		mutex_unlock(&ring->read_lock);
	return ret;
}

static const struct file_operations sring_fops = {
	.owner = THIS_MODULE,
	.open = sring_open,
	.release = sring_release,
	.read = sring_read,
	.poll = sring_poll,
	.mmap = sring_mmap,
	.unlocked_ioctl = sring_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	/* No .llseek: nonseekable_open() makes lseek() fail with ESPIPE on
	 * every kernel (no_llseek is gone since 6.12). */
};

/* ------------------------------------------------------------------ */
/* sysfs: /sys/class/sring/sringN/, one read-only value per file       */
/* ------------------------------------------------------------------ */

static struct sring_ring *to_sring_ring(struct device *dev)
{
	return container_of(dev, struct sring_ring, dev);
}

#define SRING_COUNTER_ATTR(name, field)					\
static ssize_t name##_show(struct device *dev,				\
			   struct device_attribute *attr, char *buf)	\
{									\
	struct sring_ring *ring = to_sring_ring(dev);			\
									\
	return sysfs_emit(buf, "%llu\n",				\
			  (unsigned long long)READ_ONCE(ring->kprod->field)); \
}									\
static DEVICE_ATTR_RO(name)

SRING_COUNTER_ATTR(blocks_produced, blocks_produced);
SRING_COUNTER_ATTR(samples_produced, samples_produced);
SRING_COUNTER_ATTR(blocks_dropped, blocks_dropped);
SRING_COUNTER_ATTR(samples_dropped, samples_dropped);
SRING_COUNTER_ATTR(overruns, overruns);
SRING_COUNTER_ATTR(wakeups, wakeups);
SRING_COUNTER_ATTR(bad_tails, bad_tails);
SRING_COUNTER_ATTR(high_water, high_water);
SRING_COUNTER_ATTR(head, head);
SRING_COUNTER_ATTR(sample_rate, sample_rate);
SRING_COUNTER_ATTR(block_bytes, block_bytes);
/* 1.4: the layout, as numbers (ringstat names them). */
SRING_COUNTER_ATTR(sample_format, sample_format);
SRING_COUNTER_ATTR(channels, channels);
SRING_COUNTER_ATTR(bits_per_sample, bits_per_sample);

/* tail, fill and bytes_consumed: the tail GET_STATS reports, the one the
 * producer accepts now. */
static ssize_t tail_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	struct sring_stats stats;

	sring_fill_stats(to_sring_ring(dev), &stats);
	return sysfs_emit(buf, "%llu\n", stats.tail);
}
static DEVICE_ATTR_RO(tail);

static ssize_t fill_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	struct sring_stats stats;

	sring_fill_stats(to_sring_ring(dev), &stats);
	return sysfs_emit(buf, "%llu\n", stats.head - stats.tail);
}
static DEVICE_ATTR_RO(fill);

static ssize_t bytes_consumed_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	struct sring_ring *ring = to_sring_ring(dev);
	struct sring_stats stats;

	sring_fill_stats(ring, &stats);
	return sysfs_emit(buf, "%llu\n", stats.bytes_consumed);
}
static DEVICE_ATTR_RO(bytes_consumed);

static ssize_t state_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	struct sring_ring *ring = to_sring_ring(dev);

	return sysfs_emit(buf, "%s\n", sring_state_name(READ_ONCE(ring->state)));
}
static DEVICE_ATTR_RO(state);

static ssize_t overrun_policy_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	struct sring_ring *ring = to_sring_ring(dev);

	return sysfs_emit(buf, "%s\n",
			  sring_policy_name(READ_ONCE(ring->kprod->overrun_policy)));
}
static DEVICE_ATTR_RO(overrun_policy);

static ssize_t ring_size_show(struct device *dev, struct device_attribute *attr,
			      char *buf)
{
	struct sring_ring *ring = to_sring_ring(dev);

	return sysfs_emit(buf, "%llu\n", ring->ring_size);
}
static DEVICE_ATTR_RO(ring_size);

static ssize_t memory_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	struct sring_ring *ring = to_sring_ring(dev);

	return sring_memory_show(ring, buf);
}
static DEVICE_ATTR_RO(memory);

static ssize_t consumer_show(struct device *dev, struct device_attribute *attr,
			     char *buf)
{
	struct sring_ring *ring = to_sring_ring(dev);

	return sysfs_emit(buf, "%d\n",
			  test_bit(SRING_RING_CONSUMER, &ring->flags) ? 1 : 0);
}
static DEVICE_ATTR_RO(consumer);

static ssize_t version_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%s\n", SRING_DRIVER_VERSION);
}
static DEVICE_ATTR_RO(version);

static ssize_t abi_version_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d.%d\n", SRING_ABI_VERSION_MAJOR,
			  SRING_ABI_VERSION_MINOR);
}
static DEVICE_ATTR_RO(abi_version);

static struct attribute *sring_attrs[] = {
	&dev_attr_blocks_produced.attr,
	&dev_attr_samples_produced.attr,
	&dev_attr_blocks_dropped.attr,
	&dev_attr_samples_dropped.attr,
	&dev_attr_overruns.attr,
	&dev_attr_wakeups.attr,
	&dev_attr_bad_tails.attr,
	&dev_attr_high_water.attr,
	&dev_attr_head.attr,
	&dev_attr_tail.attr,
	&dev_attr_fill.attr,
	&dev_attr_bytes_consumed.attr,
	&dev_attr_sample_rate.attr,
	&dev_attr_block_bytes.attr,
	&dev_attr_sample_format.attr,
	&dev_attr_channels.attr,
	&dev_attr_bits_per_sample.attr,
	&dev_attr_state.attr,
	&dev_attr_overrun_policy.attr,
	&dev_attr_ring_size.attr,
	&dev_attr_memory.attr,
	&dev_attr_consumer.attr,
	&dev_attr_version.attr,
	&dev_attr_abi_version.attr,
	NULL,
};
ATTRIBUTE_GROUPS(sring);

/* ------------------------------------------------------------------ */
/* Ring memory                                                         */
/* ------------------------------------------------------------------ */

/* A part of the region reserved at boot, or 0. */
phys_addr_t sring_reserved_alloc(u64 size)
{
	return sring_reserved_pool ? gen_pool_alloc(sring_reserved_pool, size) : 0;
}

void sring_reserved_free(phys_addr_t phys, u64 size)
{
	gen_pool_free(sring_reserved_pool, phys, size);
}

/* ------------------------------------------------------------------ */
/* Registration: the device API                                        */
/* ------------------------------------------------------------------ */

/* The last reference is gone: no file, no mapping, no device. */
static void sring_ring_release(struct device *dev)
{
	struct sring_ring *ring = to_sring_ring(dev);

	hrtimer_cancel(&ring->flush_timer);
	if (ring->eventfd)
		eventfd_ctx_put(ring->eventfd);
	sring_free_ring_memory(ring);
	kfree(ring);
}

/* The driver's own formats: in the device range, sized, none twice. */
static int sring_check_device_formats(struct device *dev,
				      const struct sring_ring_params *params)
{
	const struct sring_device_format *formats = params->formats;
	unsigned int i, j;

	if (params->nr_formats > SRING_MAX_DEVICE_FORMATS ||
	    (params->nr_formats && !formats)) {
		dev_err(dev, "sring: %u device formats: at most %u, in an array\n",
			params->nr_formats, SRING_MAX_DEVICE_FORMATS);
		return -EINVAL;
	}
	for (i = 0; i < params->nr_formats; i++) {
		if (formats[i].format < SRING_FMT_DEVICE_FIRST ||
		    formats[i].format > SRING_FMT_DEVICE_LAST ||
		    !formats[i].bits_per_sample ||
		    formats[i].bits_per_sample > SRING_DEVICE_FORMAT_MAX_BITS) {
			dev_err(dev, "sring: device format %#x of %u bits: must be %#x to %#x, of 1 to %u bits\n",
				formats[i].format, formats[i].bits_per_sample,
				SRING_FMT_DEVICE_FIRST, SRING_FMT_DEVICE_LAST,
				SRING_DEVICE_FORMAT_MAX_BITS);
			return -EINVAL;
		}
		for (j = 0; j < i; j++) {
			if (formats[j].format == formats[i].format) {
				dev_err(dev, "sring: device format %#x declared twice\n",
					formats[i].format);
				return -EINVAL;
			}
		}
	}
	return 0;
}

static int sring_check_ring_params(struct device *dev,
				   const struct sring_ring_params *params)
{
	u64 size = params->ring_size;

	if (!dev || !params->ops || !params->ops->start || !params->ops->stop)
		return -EINVAL;
	if (params->flags & ~(SRING_RING_CPU_FILL | SRING_RING_RESERVED_MEMORY))
		return -EINVAL;
	if (!is_power_of_2(size) || size < SRING_MIN_RING_SIZE || size < PAGE_SIZE) {
		dev_err(dev, "sring: ring size %llu: must be a power of two of at least %u\n",
			size, SRING_MIN_RING_SIZE);
		return -EINVAL;
	}
	return sring_check_device_formats(dev, params);
}

struct sring_ring *sring_register(struct device *parent,
				  const struct sring_ring_params *params)
{
	struct sring_config default_config;
	struct sring_ring *ring;
	int minor, ret;

	ret = sring_check_ring_params(parent, params);
	if (ret)
		return ERR_PTR(ret);
	minor = ida_alloc_max(&sring_minors, SRING_MAX_RINGS - 1, GFP_KERNEL);
	if (minor < 0)
		return ERR_PTR(minor);
	ring = kzalloc(sizeof(*ring), GFP_KERNEL);
	if (!ring) {
		ida_free(&sring_minors, minor);
		return ERR_PTR(-ENOMEM);
	}
	ring->minor = minor;
	ring->parent = get_device(parent);
	ring->ops = params->ops;
	ring->priv = params->priv;
	ring->params_flags = params->flags;
	ring->ring_size = params->ring_size;
	if (params->nr_formats)
		memcpy(ring->formats, params->formats,
		       params->nr_formats * sizeof(*params->formats));
	ring->nr_formats = params->nr_formats;
	ring->device_stopped = true;	/* never started */
	mutex_init(&ring->lock);
	mutex_init(&ring->read_lock);
	init_waitqueue_head(&ring->waitq);
	init_waitqueue_head(&ring->monitor_waitq);
	sring_producer_init(ring);
	if (params->default_config)
		default_config = *params->default_config;
	else
		default_config = (struct sring_config) {
			.sample_rate = 20000000,
			.block_bytes = 8192,
			.overrun_policy = SRING_OVERRUN_DROP_NEWEST,
			.sample_format = SRING_FMT_U16,
			.channels = 1,
			.pattern_seed = 1,
			.flush_timeout_us = SRING_DEFAULT_FLUSH_US,
		};

	/* From here on, put_device() frees what is set up. */
	device_initialize(&ring->dev);
	ring->dev.class = sring_class;
	ring->dev.parent = parent;
	ring->dev.devt = MKDEV(MAJOR(sring_devt), minor);
	ring->dev.groups = sring_groups;
	ring->dev.release = sring_ring_release;
	ret = dev_set_name(&ring->dev, "sring%d", minor);
	if (ret)
		goto err_put;

	ret = sring_alloc_ring_memory(ring);
	if (ret)
		goto err_put;
	/* The configuration a START without SET_CONFIG runs with: checked
	 * like any other, by us (on this memory) and by the device. Nothing
	 * reads ring->config before this: /dev/sringN comes after. */
	ret = sring_validate_config(ring, &default_config);
	default_config.channels = sring_config_channels(&default_config);
	mutex_lock(&ring->lock);
	if (!ret && ring->ops->configure)
		ret = ring->ops->configure(ring, &default_config);
	if (!ret) {
		sring_apply_config(ring, &default_config);
		sring_publish_config(ring);
	}
	mutex_unlock(&ring->lock);
	if (ret) {
		dev_err(parent, "sring: the default configuration is refused: %d\n", ret);
		goto err_put;
	}
	spin_lock_irq(&ring->prod_lock);
	sring_producer_reset(ring, initial_position & ~(u64)(SRING_BLOCK_ALIGN - 1));
	spin_unlock_irq(&ring->prod_lock);

	cdev_init(&ring->cdev, &sring_fops);
	ring->cdev.owner = THIS_MODULE;
	ret = cdev_device_add(&ring->cdev, &ring->dev);
	if (ret)
		goto err_put;
	dev_info(parent, "sring%d: %llu bytes (%s, %lu chunks)%s\n", minor,
		 ring->ring_size,
		 ring->memory_kind == SRING_MEM_RESERVED ? "reserved region" : "pages",
		 ring->chunks ? ring->nr_chunks : 1UL,
		 ring->dma_mapped ? ", mapped for DMA" : "");
	return ring;

err_put:
	sring_unmap_for_device(ring);
	put_device(ring->parent);
	ida_free(&sring_minors, minor);
	put_device(&ring->dev);
	return ERR_PTR(ret);
}
EXPORT_SYMBOL_GPL(sring_register);

void sring_unregister(struct sring_ring *ring)
{
	mutex_lock(&ring->lock);
	WRITE_ONCE(ring->gone, true);
	/* Consumers see REMOVED after the last block the device committed,
	 * and are woken to look. */
	sring_stop(ring, SRING_STATE_REMOVED);
	mutex_unlock(&ring->lock);
	wake_up_interruptible_poll(&ring->waitq, EPOLLHUP | EPOLLIN);
	wake_up_interruptible_poll(&ring->monitor_waitq, EPOLLHUP | EPOLLIN);

	cdev_device_del(&ring->cdev, &ring->dev);
	/* The device is stopped: it writes no more, and never will. */
	sring_unmap_for_device(ring);
	dev_info(ring->parent, "sring%d: unregistered\n", ring->minor);
	put_device(ring->parent);
	ida_free(&sring_minors, ring->minor);
	/* Open files keep the rest until they are closed. */
	put_device(&ring->dev);
}
EXPORT_SYMBOL_GPL(sring_unregister);

void *sring_priv(const struct sring_ring *ring)
{
	return ring->priv;
}
EXPORT_SYMBOL_GPL(sring_priv);

int sring_minor(const struct sring_ring *ring)
{
	return ring->minor;
}
EXPORT_SYMBOL_GPL(sring_minor);

void sring_get_config(struct sring_ring *ring, struct sring_config *config)
{
	unsigned long irqflags;

	/* irqsave: drivers call it under their own irq-safe locks. */
	spin_lock_irqsave(&ring->prod_lock, irqflags);
	*config = ring->config;
	spin_unlock_irqrestore(&ring->prod_lock, irqflags);
}
EXPORT_SYMBOL_GPL(sring_get_config);

/* Whole frames in a block of @block_bytes: payload bits over frame bits. */
static u32 sring_frames_in(u32 block_bytes, u32 channels, u32 bits)
{
	if (!bits || block_bytes <= SRING_BLOCK_HEADER_SIZE)
		return 0;
	return div_u64((u64)(block_bytes - SRING_BLOCK_HEADER_SIZE) * 8,
		       channels * bits);
}

u32 sring_slot_frames(struct sring_ring *ring)
{
	unsigned long irqflags;
	u32 frames;

	spin_lock_irqsave(&ring->prod_lock, irqflags);
	frames = sring_frames_in(ring->config.block_bytes, ring->config.channels,
				 ring->bits_per_sample);
	spin_unlock_irqrestore(&ring->prod_lock, irqflags);
	return frames;
}
EXPORT_SYMBOL_GPL(sring_slot_frames);

u32 sring_config_frames(struct sring_ring *ring,
			const struct sring_config *config)
{
	u32 channels = sring_config_channels(config);

	if (channels > SRING_MAX_CHANNELS)
		return 0;
	return sring_frames_in(config->block_bytes, channels,
			       sring_format_bits_of(ring, config->sample_format));
}
EXPORT_SYMBOL_GPL(sring_config_frames);

/* ------------------------------------------------------------------ */
/* Module load and unload                                              */
/* ------------------------------------------------------------------ */

static int sring_claim_reserved_region(void)
{
	int ret;

	if (!reserved_size) {
		if (reserved_base) {
			pr_err("reserved_base needs reserved_size\n");
			return -EINVAL;
		}
		return 0;
	}
	if (!PAGE_ALIGNED(reserved_base) || !PAGE_ALIGNED(reserved_size) ||
	    reserved_base + reserved_size < reserved_base) {
		pr_err("reserved region %#lx+%#lx: base and size must be page aligned\n",
		       reserved_base, reserved_size);
		return -EINVAL;
	}
	/* Only memory the kernel does not own: memmap=SIZE$BASE takes it out
	 * of System RAM. */
	if (region_intersects(reserved_base, reserved_size, IORESOURCE_SYSTEM_RAM,
			      IORES_DESC_NONE) != REGION_DISJOINT) {
		pr_err("reserved region overlaps System RAM: reserve it with memmap=SIZE$BASE\n");
		return -EINVAL;
	}
	if (!request_mem_region(reserved_base, reserved_size, "sring")) {
		pr_err("reserved region is in use by another driver\n");
		return -EBUSY;
	}
	sring_reserved_pool = gen_pool_create(PAGE_SHIFT, NUMA_NO_NODE);
	if (!sring_reserved_pool) {
		ret = -ENOMEM;
		goto err_release;
	}
	ret = gen_pool_add(sring_reserved_pool, reserved_base, reserved_size,
			   NUMA_NO_NODE);
	if (ret)
		goto err_destroy;
	return 0;

err_destroy:
	gen_pool_destroy(sring_reserved_pool);
	sring_reserved_pool = NULL;
err_release:
	release_mem_region(reserved_base, reserved_size);
	return ret;
}

static void sring_release_reserved_region(void)
{
	if (!sring_reserved_pool)
		return;
	gen_pool_destroy(sring_reserved_pool);
	release_mem_region(reserved_base, reserved_size);
}

static int __init sring_init(void)
{
	int ret;

	ret = sring_claim_reserved_region();
	if (ret)
		return ret;
	ret = alloc_chrdev_region(&sring_devt, 0, SRING_MAX_RINGS, "sring");
	if (ret)
		goto err_release_region;
	sring_class = sring_class_create("sring");
	if (IS_ERR(sring_class)) {
		ret = PTR_ERR(sring_class);
		goto err_unregister;
	}
	pr_info("version %s, ABI %d.%d%s\n", SRING_DRIVER_VERSION,
		SRING_ABI_VERSION_MAJOR, SRING_ABI_VERSION_MINOR,
		sring_reserved_pool ? ", with a reserved region" : "");
	return 0;

err_unregister:
	unregister_chrdev_region(sring_devt, SRING_MAX_RINGS);
err_release_region:
	sring_release_reserved_region();
	return ret;
}

/* No ring is left: every registering driver depends on this module, and
 * every open file holds it. */
static void __exit sring_exit(void)
{
	class_destroy(sring_class);
	unregister_chrdev_region(sring_devt, SRING_MAX_RINGS);
	sring_release_reserved_region();
	ida_destroy(&sring_minors);
}

module_init(sring_init);
module_exit(sring_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("sring developers");
MODULE_DESCRIPTION("Zero-copy DMA ring buffer for data acquisition: the core that sampling device drivers register rings with");
MODULE_VERSION(SRING_DRIVER_VERSION);
