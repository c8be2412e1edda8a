/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * sring: the contract between the ring's producer (the kernel driver and its
 * simulated device, or the user-space simulator) and its consumer (ringlib).
 *
 * One header for the kernel module, the C++ library and the tools: only
 * fixed-width fields, one ioctl magic, every offset pinned by a static assert
 * at the bottom. The kernel trusts nothing a consumer can write here.
 *
 * Memory layout of a ring, as seen through mmap() of the device (all offsets
 * are byte offsets for mmap's last argument; page_size is the kernel's):
 *
 *   offset 0              producer page   read-only  (struct sring_producer_page)
 *   offset page_size      consumer page   read-write (struct sring_consumer_page)
 *   offset 2 * page_size  data, mapped twice back to back: map 2 * ring_size
 *
 *        data_offset                 + ring_size                 + 2 * ring_size
 *        +---------------------------+---------------------------+
 *        | page 0 | page 1 | ... | n | page 0 | page 1 | ... | n |
 *        +---------------------------+---------------------------+
 *        the same physical pages twice: a block that starts near the end of
 *        the first copy simply runs on into the second, so no block and no
 *        span of blocks ever wraps and nothing needs padding or copying.
 *
 * Positions are free-running 64-bit byte counters (never masked in shared
 * memory): data of position p lives at data + (p & (ring_size - 1)).
 *   used  = head - tail            (0 <= used <= ring_size, else corrupt)
 *   full  when head + block_bytes - tail > ring_size
 *
 * Ordering (each access in the code names its partner; docs/abi.md says the
 * same in C11 terms for consumers in other languages):
 *   producer: write block; smp_store_release(head)      pairs with consumer's
 *             smp_load_acquire(head) before it reads the block.
 *   consumer: read block; smp_store_release(tail)       pairs with producer's
 *             smp_load_acquire(tail) before it overwrites the space.
 *   wake-ups: producer stores head, smp_mb(), reads need_wakeup;
 *             consumer stores need_wakeup, smp_mb(), reads head.
 *             Either the producer sees the flag or the consumer sees the data:
 *             a wake-up cannot be lost between the two. The smp_mb() is a
 *             real full fence on every CPU, x86 included (store then load).
 *   end:      producer updates the counters, then smp_store_release(state);
 *             a consumer that load-acquires state != RUNNING then sees the
 *             final head and final counters (docs/abi.md, "End of stream").
 *
 * Accounting (exact, in every policy, docs/abi.md "Counters"):
 *   blocks_produced/samples_produced count every block the device made,
 *   written or lost: they equal the sequence/first_sample of the next block.
 *   blocks_dropped/samples_dropped count those a consumer will never see.
 *   At the end of a stream, once everything up to head is released:
 *     samples delivered + samples_dropped == samples_produced.
 */
#ifndef _UAPI_SRING_ABI_H
#define _UAPI_SRING_ABI_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define SRING_MAGIC		0x474e5253U	/* "SRNG" in memory, little endian */
#define SRING_ABI_VERSION_MAJOR	1
#define SRING_ABI_VERSION_MINOR	4	/* 1.1: counters and end of stream exact;
					 * 1.2: states FAILED and REMOVED, device
					 * flags in blocks;
					 * 1.3: tails checked as block boundaries,
					 * poll() readable at the end of a stream,
					 * faults SRING_FAULT_RECLAIM_RACE, _FAIL;
					 * 1.4: sample formats 8/32-bit, float,
					 * complex, device-owned; channels */
#define SRING_ABI_VERSION \
	((SRING_ABI_VERSION_MAJOR << 16) | SRING_ABI_VERSION_MINOR)
#define SRING_ABI_MAJOR(v)	((v) >> 16)
#define SRING_ABI_MINOR(v)	((v) & 0xffff)

/* Page numbers of the three mmap regions; multiply by page_size. */
#define SRING_PRODUCER_PGOFF	0
#define SRING_CONSUMER_PGOFF	1
#define SRING_DATA_PGOFF	2

/* Ring sizes: a power of two, at least this, and a multiple of page_size. */
#define SRING_MIN_RING_SIZE	(64U * 1024)

/* ------------------------------------------------------------------ */
/* Blocks: the data region is a stream of blocks, each a header then   */
/* samples, each starting on a SRING_BLOCK_ALIGN boundary.             */
/* ------------------------------------------------------------------ */

#define SRING_BLOCK_MAGIC	0x4b4c4253U	/* "SBLK" */
#define SRING_BLOCK_ALIGN	64U
#define SRING_BLOCK_HEADER_SIZE	64U
/* Largest block a producer may write: header included. */
#define SRING_MAX_BLOCK_BYTES	(1U << 20)
/* Upper bounds on a configuration (SRING_IOC_SET_CONFIG refuses more): a
 * 16-bit stream at 1 GS/s is far beyond any device this transport is for;
 * 10 s of flush timeout is forever. */
#define SRING_MAX_SAMPLE_RATE		1000000000ULL
#define SRING_MAX_FLUSH_TIMEOUT_US	10000000U
/* Bounds on an injected fault's arg (SRING_IOC_INJECT_FAULT refuses more,
 * on every device): a stall of at most 10 s, at most 1024 blocks. */
#define SRING_MAX_FAULT_STALL_US	10000000U
#define SRING_MAX_FAULT_BLOCKS		1024U

/* Block flags. */
/* The producer dropped samples right before this block instead of writing
 * them (drop-newest, or overwrite-oldest when nothing could be reclaimed);
 * lost_samples says how many. Blocks reclaimed after they were written
 * (overwrite-oldest) are not flagged: they show only as a jump in
 * first_sample and sequence, which is what a consumer counts. */
#define SRING_BLOCK_F_GAP	(1U << 0)
/* ...and they were lost because the ring was full (an overrun). */
#define SRING_BLOCK_F_OVERRUN	(1U << 1)
/* Reserved: never set (ABI 1.0 declared it but no producer set it). The end
 * of a stream is state != RUNNING and head, see docs/abi.md. */
#define SRING_BLOCK_F_RESERVED2	(1U << 2)
/* Bits 16 to 31 belong to the device driver that made the block (a trigger,
 * a saturated input, ...): sring passes them through and never sets them.
 * Its documentation says what they mean; 0 from the simulated devices. */
#define SRING_BLOCK_F_DEVICE_MASK	0xffff0000U

/*
 * Sample formats (docs/abi.md, "Sample formats"). Everything is little
 * endian. A complex sample is I then Q. A block holds sample_count *frames*:
 * one sample of each of `channels` channels, interleaved (frame 0 channel 0,
 * frame 0 channel 1, ...). The payload of a block is
 * sring_payload_bytes(sample_count, channels, bits_per_sample) bytes.
 */
enum sring_sample_format {
	SRING_FMT_U16 = 1,	/* 16-bit unsigned */
	SRING_FMT_S16 = 2,	/* 16-bit two's complement */
	/* 1.4 */
	SRING_FMT_U8 = 3,	/* 8-bit unsigned */
	SRING_FMT_S8 = 4,	/* 8-bit two's complement */
	SRING_FMT_S32 = 5,	/* 32-bit two's complement */
	SRING_FMT_F32 = 6,	/* IEEE 754 binary32 */
	SRING_FMT_CS16 = 7,	/* complex: I, Q, each 16-bit two's complement */
	SRING_FMT_CF32 = 8,	/* complex: I, Q, each IEEE 754 binary32 */
};
#define SRING_FMT_LAST_STANDARD	SRING_FMT_CF32
/* 1.4: formats from here to 0xffff belong to the device driver (a 12-bit
 * packed converter, a vendor's framing): sring checks only their size, which
 * the driver declares (bits_per_sample, below); the driver's documentation
 * says what they are. 0x8000 is the simulated devices' own 12-bit packed
 * format (SRING_FMT_SIM_PACKED12, sring_pattern.h): a driver numbers its
 * own from 0x8001. */
#define SRING_FMT_DEVICE_FIRST	0x8000U
#define SRING_FMT_DEVICE_LAST	0xffffU

/* 1.4: the most channels in a frame. */
#define SRING_MAX_CHANNELS	256U

/* Bits of one sample of one channel in a standard format (a complex sample:
 * I and Q together); 0 for anything else. */
static inline __u32 sring_format_bits(__u32 format)
{
	switch (format) {
	case SRING_FMT_U8:
	case SRING_FMT_S8:
		return 8;
	case SRING_FMT_U16:
	case SRING_FMT_S16:
		return 16;
	case SRING_FMT_S32:
	case SRING_FMT_F32:
	case SRING_FMT_CS16:
		return 32;
	case SRING_FMT_CF32:
		return 64;
	default:
		return 0;
	}
}

/* Values per sample: 2 (I, Q) for the complex formats, else 1. */
static inline __u32 sring_format_components(__u32 format)
{
	return format == SRING_FMT_CS16 || format == SRING_FMT_CF32 ? 2 : 1;
}

/* Bytes of samples in a block of @frames frames: whole bytes, rounded up
 * (a packed format may end in a partial byte). */
static inline __u64 sring_payload_bytes(__u64 frames, __u32 channels,
					__u32 bits_per_sample)
{
	return (frames * channels * bits_per_sample + 7) / 8;
}

struct sring_block_header {
	__u32 magic;		/* SRING_BLOCK_MAGIC */
	__u32 total_bytes;	/* header + samples + padding, multiple of 64 */
	__u64 sequence;		/* +1 per block the device made, lost or not;
				 * 0 for the first block after a reset */
	__u64 first_sample;	/* index of the first sample since reset */
	__u64 timestamp_ns;	/* CLOCK_MONOTONIC when the block completed */
	__u64 lost_samples;	/* samples dropped just before this one (F_GAP) */
	__u32 sample_count;	/* frames in this block (1.4: a frame is one
				 * sample of each channel) */
	__u16 sample_format;	/* enum sring_sample_format */
	__u16 bytes_per_sample;	/* bits_per_sample / 8, 0 if not whole */
	__u32 flags;		/* SRING_BLOCK_F_* */
	__u16 channels;		/* 1.4: channels per frame; 0 from a 1.3
				 * producer, meaning 1 */
	__u16 bits_per_sample;	/* 1.4: bits of one sample of one channel;
				 * 0 from a 1.3 producer: 8 * bytes_per_sample */
	__u64 reserved1;	/* zero */
};

/* ------------------------------------------------------------------ */
/* Shared pages                                                        */
/* ------------------------------------------------------------------ */

enum sring_overrun_policy {
	/* Ring full: the new block is dropped and counted, the next block that
	 * fits carries F_GAP|F_OVERRUN. The default: a device cannot wait. */
	SRING_OVERRUN_DROP_NEWEST = 0,
	/* Ring full: the oldest blocks are reclaimed (flight recorder). The
	 * producer moves the consumer's tail forward with a compare-and-swap;
	 * a consumer whose own compare-and-swap of tail fails knows that the
	 * blocks it was reading were overwritten. */
	SRING_OVERRUN_OVERWRITE_OLDEST = 1,
	/* Ring full: the device stops (state SRING_STATE_OVERRUN_STOPPED). */
	SRING_OVERRUN_STOP = 2,
};

enum sring_state {
	SRING_STATE_STOPPED = 0,
	SRING_STATE_RUNNING = 1,
	SRING_STATE_OVERRUN_STOPPED = 2,
	/* 1.2: the device reported an error and stopped. */
	SRING_STATE_FAILED = 3,
	/* 1.2: the device is gone (unbound, hot-unplugged, its driver
	 * unloaded). The mappings stay valid until closed; ioctls that act on
	 * the device fail with ENODEV. */
	SRING_STATE_REMOVED = 4,
};

/*
 * Written only by the producer; mapped read-only into consumers. Identity
 * and configuration fields are written before the device starts and change
 * only while it is stopped; head and counters change while it runs.
 */
struct sring_producer_page {
	/* Identity: constant for the life of the ring. */
	__u32 magic;		/* SRING_MAGIC */
	__u32 abi_version;	/* SRING_ABI_VERSION of the producer */
	__u32 page_size;	/* producer's page size in bytes */
	__u32 reserved0;
	__u64 ring_size;	/* bytes of data, a power of two */
	__u64 consumer_offset;	/* mmap offset of the consumer page */
	__u64 data_offset;	/* mmap offset of the data (map 2 * ring_size) */
	/* Configuration: changes only while stopped. */
	__u32 state;		/* enum sring_state */
	__u32 overrun_policy;	/* enum sring_overrun_policy */
	__u64 sample_rate;	/* samples per second; 0: as fast as possible */
	__u32 block_bytes;	/* bytes per block, header included */
	__u32 sample_format;	/* enum sring_sample_format */
	__u32 pattern_seed;	/* seed of the sample pattern (sring_pattern.h) */
	__u16 channels;		/* 1.4: channels per frame (0 before 1.4: 1) */
	__u16 bits_per_sample;	/* 1.4: bits of one sample of one channel
				 * (0 before 1.4: 16) */
	__u8 pad0[128 - 72];

	/* Offset 128, its own cache lines: the producer position. */
	__u64 head;		/* store-release by the producer */
	__u8 pad1[128 - 8];

	/* Offset 256: counters, monotonic between resets, written only by the
	 * producer, read with relaxed loads. */
	__u64 blocks_produced;	/* blocks the device made, written or lost */
	__u64 samples_produced;	/* samples in them: first_sample of the next */
	__u64 blocks_dropped;	/* of those, never seen: dropped or reclaimed */
	__u64 samples_dropped;	/* samples in the blocks_dropped */
	__u64 overruns;		/* episodes: first loss after a block that fit */
	__u64 wakeups;		/* consumer wake-up requests answered */
	__u64 bad_tails;	/* tails read from the consumer page and refused */
	__u64 high_water;	/* largest head - tail seen, bytes */
};

/*
 * Written by the consumer (and, in overwrite-oldest mode only, tail by the
 * producer's compare-and-swap). The kernel validates every value it reads.
 */
struct sring_consumer_page {
	__u64 tail;		/* store-release by the consumer */
	__u32 need_wakeup;	/* 1: signal the eventfd when data is ready */
	__u32 reserved0;
	__u64 wakeup_watermark;	/* bytes of data that make it "ready" */
	__u64 reserved1[5];
};

/* ------------------------------------------------------------------ */
/* ioctls on the device                                                */
/* ------------------------------------------------------------------ */

#define SRING_IOC_MAGIC		0xB8

enum sring_memory_kind {
	SRING_MEM_PAGES = 0,	/* page allocations (chunks of up to 4 MiB) */
	SRING_MEM_RESERVED = 1,	/* region reserved at boot (memmap=) */
};

struct sring_info {
	__u32 abi_version;
	__u32 page_size;
	__u64 ring_size;
	__u64 consumer_offset;
	__u64 data_offset;
	__u32 memory_kind;	/* enum sring_memory_kind */
	/* The largest block_bytes SET_CONFIG takes on this ring: at most
	 * SRING_MAX_BLOCK_BYTES and half the ring, less for a DMA device
	 * whose slots must fit in 16 DMA segments (960 KiB with 64 KiB
	 * segments, 60 KiB on a ring of single pages). */
	__u32 max_block_bytes;
	__u64 reserved[4];
};

struct sring_config {
	__u64 sample_rate;	/* samples/s; 0: as fast as possible */
	__u32 block_bytes;	/* header included, multiple of 64 */
	__u32 overrun_policy;	/* enum sring_overrun_policy */
	__u32 sample_format;	/* enum sring_sample_format */
	__u32 pattern_seed;
	__u32 flush_timeout_us;	/* wake a waiting consumer below watermark */
	__u32 flags;		/* zero */
	__u32 channels;		/* 1.4: 1 to SRING_MAX_CHANNELS; 0 means 1 (a
				 * 1.3 caller's zeroed reserved field) */
	__u32 reserved0;	/* zero */
	__u64 reserved1;	/* zero */
};

struct sring_stats {
	__u64 blocks_produced;
	__u64 samples_produced;
	__u64 blocks_dropped;
	__u64 samples_dropped;
	__u64 overruns;
	__u64 wakeups;
	__u64 bad_tails;
	__u64 high_water;
	__u64 head;
	__u64 tail;		/* last tail the producer accepted */
	__u64 bytes_consumed;	/* through mmap releases and read() */
	__u32 state;
	__u32 reserved0;
	__u64 reserved[4];
};

enum sring_fault_kind {
	SRING_FAULT_STALL = 1,	  /* produce nothing for arg microseconds */
	SRING_FAULT_BURST = 2,	  /* produce arg blocks at once */
	SRING_FAULT_CORRUPT = 3,  /* flip a sample in the next arg blocks */
	/* 1.3, for tests of the overwrite-oldest race: at each of the next arg
	 * reclaims, between the producer's load of tail and its
	 * compare-and-swap, the core releases the oldest block itself, as a
	 * consumer would (a CAS of tail to that block's end). */
	SRING_FAULT_RECLAIM_RACE = 4,
	/* 1.3: the device reports an error now, as its driver would with
	 * sring_device_error(): a running stream ends FAILED. arg: 1. */
	SRING_FAULT_FAIL = 5,
};

struct sring_fault {
	__u32 kind;		/* enum sring_fault_kind */
	__u32 reserved0;
	__u64 arg;
};

#define SRING_IOC_GET_INFO	_IOR(SRING_IOC_MAGIC, 0x00, struct sring_info)
#define SRING_IOC_SET_EVENTFD	_IOW(SRING_IOC_MAGIC, 0x01, __s32)
#define SRING_IOC_CLEAR_EVENTFD	_IO(SRING_IOC_MAGIC, 0x02)
#define SRING_IOC_SET_CONFIG	_IOW(SRING_IOC_MAGIC, 0x03, struct sring_config)
#define SRING_IOC_GET_CONFIG	_IOR(SRING_IOC_MAGIC, 0x04, struct sring_config)
#define SRING_IOC_START		_IO(SRING_IOC_MAGIC, 0x05)
#define SRING_IOC_STOP		_IO(SRING_IOC_MAGIC, 0x06)
#define SRING_IOC_GET_STATS	_IOR(SRING_IOC_MAGIC, 0x07, struct sring_stats)
#define SRING_IOC_RESET		_IO(SRING_IOC_MAGIC, 0x08)
#define SRING_IOC_INJECT_FAULT	_IOW(SRING_IOC_MAGIC, 0x09, struct sring_fault)

/* ------------------------------------------------------------------ */
/* Layout pinned: a change here is an ABI version change.              */
/* ------------------------------------------------------------------ */

#ifdef __cplusplus
#define SRING_STATIC_ASSERT(expr, msg) static_assert(expr, msg)
#else
#define SRING_STATIC_ASSERT(expr, msg) _Static_assert(expr, msg)
#endif
#define SRING_OFFSET_IS(type, field, off) \
	SRING_STATIC_ASSERT(__builtin_offsetof(struct type, field) == (off), \
			    #type "." #field " must be at offset " #off)

SRING_STATIC_ASSERT(sizeof(struct sring_block_header) == SRING_BLOCK_HEADER_SIZE,
		    "block header is 64 bytes");
SRING_OFFSET_IS(sring_block_header, total_bytes, 4);
SRING_OFFSET_IS(sring_block_header, sequence, 8);
SRING_OFFSET_IS(sring_block_header, first_sample, 16);
SRING_OFFSET_IS(sring_block_header, timestamp_ns, 24);
SRING_OFFSET_IS(sring_block_header, lost_samples, 32);
SRING_OFFSET_IS(sring_block_header, sample_count, 40);
SRING_OFFSET_IS(sring_block_header, sample_format, 44);
SRING_OFFSET_IS(sring_block_header, bytes_per_sample, 46);
SRING_OFFSET_IS(sring_block_header, flags, 48);
SRING_OFFSET_IS(sring_block_header, channels, 52);
SRING_OFFSET_IS(sring_block_header, bits_per_sample, 54);
SRING_OFFSET_IS(sring_block_header, reserved1, 56);

SRING_OFFSET_IS(sring_producer_page, abi_version, 4);
SRING_OFFSET_IS(sring_producer_page, page_size, 8);
SRING_OFFSET_IS(sring_producer_page, ring_size, 16);
SRING_OFFSET_IS(sring_producer_page, consumer_offset, 24);
SRING_OFFSET_IS(sring_producer_page, data_offset, 32);
SRING_OFFSET_IS(sring_producer_page, state, 40);
SRING_OFFSET_IS(sring_producer_page, overrun_policy, 44);
SRING_OFFSET_IS(sring_producer_page, sample_rate, 48);
SRING_OFFSET_IS(sring_producer_page, block_bytes, 56);
SRING_OFFSET_IS(sring_producer_page, sample_format, 60);
SRING_OFFSET_IS(sring_producer_page, pattern_seed, 64);
SRING_OFFSET_IS(sring_producer_page, channels, 68);
SRING_OFFSET_IS(sring_producer_page, bits_per_sample, 70);
SRING_OFFSET_IS(sring_producer_page, head, 128);
SRING_OFFSET_IS(sring_producer_page, blocks_produced, 256);
SRING_OFFSET_IS(sring_producer_page, samples_dropped, 280);
SRING_OFFSET_IS(sring_producer_page, wakeups, 296);
SRING_OFFSET_IS(sring_producer_page, high_water, 312);
SRING_STATIC_ASSERT(sizeof(struct sring_producer_page) == 320,
		    "producer page struct is 320 bytes");

SRING_OFFSET_IS(sring_consumer_page, need_wakeup, 8);
SRING_OFFSET_IS(sring_consumer_page, wakeup_watermark, 16);
SRING_STATIC_ASSERT(sizeof(struct sring_consumer_page) == 64,
		    "consumer page struct is 64 bytes");

SRING_OFFSET_IS(sring_config, flags, 28);
SRING_OFFSET_IS(sring_config, channels, 32);
SRING_OFFSET_IS(sring_config, reserved1, 40);
SRING_STATIC_ASSERT(sizeof(struct sring_info) == 72, "sring_info is 72 bytes");
SRING_STATIC_ASSERT(sizeof(struct sring_config) == 48, "sring_config is 48 bytes");
SRING_STATIC_ASSERT(sizeof(struct sring_stats) == 128, "sring_stats is 128 bytes");
SRING_STATIC_ASSERT(sizeof(struct sring_fault) == 16, "sring_fault is 16 bytes");

#endif /* _UAPI_SRING_ABI_H */
