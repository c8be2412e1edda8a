/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * sring DMA model: the contract between the digitizer model that runs on the
 * host (devices/dma-model/, `sring-dma-model`) and the guest driver that will
 * drive it through QEMU's ivshmem-doorbell device (issue 24).
 *
 * The model writes samples straight into guest RAM at the DMA addresses the
 * driver posts (no vIOMMU: a DMA address is a guest-physical address), and
 * talks to the driver through one region, BAR2 of the ivshmem device, laid
 * out as struct sring_dma_bar2 below. Interrupts go both ways through
 * ivshmem's eventfds:
 *
 *   guest -> model  the driver writes (1 << 16) | v to BAR0 offset 12
 *                   (Doorbell, peer 1 = the model):
 *                     v = SRING_DMA_DOORBELL_DESC:    descriptors posted
 *                     v = SRING_DMA_DOORBELL_CONTROL: control or fault written
 *   model -> guest  MSI-X vector v of the guest:
 *                     v = SRING_DMA_VECTOR_COMPLETION: completions posted
 *                     v = SRING_DMA_VECTOR_STATE:      state changed
 *
 * Interrupts coalesce (an eventfd is a counter, and the model itself raises
 * the completion vector once per SRING_DMA_CFG coalesce_blocks completions
 * or coalesce_timeout_us): a driver never counts interrupts, it reads the
 * indexes below. A doorbell is a hint too: the model also reads the
 * descriptor producer index whenever a block is due.
 *
 * One header for the guest's kernel module and the host's C++: fixed-width
 * fields, every struct explicitly padded, its size and offsets pinned by
 * static asserts at the bottom. Nothing here depends on the page size: BAR2
 * is at least SRING_DMA_BAR2_MIN_SIZE bytes, a power of two (ivshmem's BAR
 * must be one), and the layout sits at its offset 0.
 *
 * The guest should map BAR2 cacheable (memremap(..., MEMREMAP_WB)): the
 * protocol is plain acquire/release on ordinary memory shared with a host
 * process; an uncached or write-combining mapping breaks no rule below but
 * makes every poll of an index a bus access.
 *
 * Rings and who writes what (all indexes are free-running 64-bit counters,
 * never masked in shared memory: entry of index i is entry[i & (N - 1)],
 * N = SRING_DMA_RING_ENTRIES; producer - consumer is 0..N, anything else is
 * the other side's bug and is treated as such):
 *
 *   descriptors  driver fills desc[prod & (N-1)], then
 *                smp_store_release(desc_prod)       pairs with the model's
 *                load-acquire(desc_prod) before it reads the entries.
 *                model copies the entry out, then
 *                store-release(desc_cons)          pairs with the driver's
 *                smp_load_acquire(desc_cons) before it overwrites the entry.
 *                desc_cons moving says only "entry read": the block is done
 *                when its completion is published.
 *   completions  model writes comp[prod & (N-1)] (and, for an OK block, the
 *                samples into guest RAM before it), then
 *                store-release(comp_prod)          pairs with the driver's
 *                smp_load_acquire(comp_prod) before it reads the entry and
 *                the samples.
 *                driver reads the entries, then
 *                smp_store_release(comp_cons)      pairs with the model's
 *                load-acquire(comp_cons) before it reuses the entry.
 *   control      driver writes config and windows (plain), then
 *                smp_store_release(control)        pairs with the model's
 *                load-acquire(control) before it reads config and windows;
 *                then smp_store_release(control_seq, + 1): pairs with the
 *                model's load-acquire(control_seq), which it makes before
 *                it loads control.
 *   control_ack  model acts on control (a state change published first),
 *                then store-release(control_ack = the control_seq it
 *                loaded)                           pairs with the driver's
 *                smp_load_acquire(control_ack): once it equals the seq the
 *                driver wrote, state says the outcome of that control word
 *                (RUNNING or FAILED for START, STOPPED for STOP), never an
 *                older one's. A STOP that a slow stop is still finishing is
 *                acknowledged at STOPPED.
 *   state        model writes counters and error (relaxed), publishes the
 *                rings' final indexes, then
 *                store-release(state)              pairs with the driver's
 *                smp_load_acquire(state): a driver that sees STOPPED or
 *                FAILED sees the final indexes and counters.
 *   faults       driver writes fault.kind and fault.arg, then
 *                smp_store_release(fault.request_seq) pairs with the model's
 *                load-acquire; the model store-releases fault.ack_seq when
 *                it has taken the request.
 *
 * Each index has a cache line of its own, so the two sides never write the
 * same line (no false sharing between the guest's vCPU and the model),
 * except the fault mailbox: one line for a request and its acknowledgement,
 * which are rare.
 *
 * Lifetime of a stream:
 *   1. state is STOPPED. The driver drains the completion ring
 *      (comp_cons = comp_prod), writes config and, in checker mode, the DMA
 *      windows, posts descriptors if it has any, store-releases control =
 *      START and rings SRING_DMA_DOORBELL_CONTROL.
 *   2. The model checks the configuration. Refused: state FAILED with
 *      error = SRING_DMA_ERR_BAD_CONFIG (or _BAD_WINDOW, _BAD_INDEX), no
 *      block made. Taken: state RUNNING, start_count + 1. It paces blocks
 *      at sample_rate from then on; block k of the stream covers samples
 *      first_sample + k * samples .. + samples - 1, written or not, like
 *      the kernel's simulated device (the pattern stays verifiable from the
 *      index alone, across drops).
 *   3. The driver writes control = STOP and waits until control_ack is
 *      that write's control_seq (then state is STOPPED). The
 *      model stops taking descriptors, publishes what it completed, sets
 *      desc_cons = desc_prod (every descriptor still posted is abandoned,
 *      none will be written) and then state STOPPED. Only then may the
 *      driver give the slots of those descriptors back to sring: a model
 *      that could still write into them would scribble over memory that
 *      sring hands to a consumer or frees. STOPPED may come late: a real
 *      engine finishes the transfer it is in, and with
 *      SRING_DMA_FAULT_SLOW_STOP armed the model stays RUNNING after the
 *      STOP for up to SRING_MAX_FAULT_STALL_US, still writing blocks into
 *      posted descriptors and posting their completions, exactly so that
 *      a test can prove the driver does not return from its stop early.
 *   4. FAILED (bad config, an injected failure, a driver index out of
 *      range) stops the model the same way; the driver acknowledges with
 *      control = STOP, which brings state to STOPPED.
 *   The model acts on the level of control, not on edges: a driver that
 *   gave up waiting for a START writes STOP, and whenever the model gets
 *   to control it sees STOP (and acknowledges it) rather than the START.
 */
#ifndef _UAPI_SRING_DMA_MODEL_H
#define _UAPI_SRING_DMA_MODEL_H

#include <linux/types.h>

#define SRING_DMA_MAGIC		0x444d5253U	/* "SRMD" in memory */
#define SRING_DMA_VERSION	2U	/* 2: 256-entry rings, BAR2 of 128 KiB */

/* Entries of the descriptor ring and of the completion ring (power of two).
 * 256: at 400 MS/s in 64 KiB blocks, 64 posted descriptors are 5 ms of
 * blocks, less than a host may keep a guest's vCPU from its interrupt. */
#define SRING_DMA_RING_ENTRIES	256U
/* Segments per descriptor: one sring slot (SRING_SLOT_MAX_SEGMENTS). */
#define SRING_DMA_MAX_SEGMENTS	16U
/* DMA windows the driver may register (its ring's extents, merged where
 * contiguous: what an IOMMU would map for the device). */
#define SRING_DMA_MAX_WINDOWS	1024U
/* Bounds the model enforces on a configuration (_ERR_BAD_CONFIG). */
#define SRING_DMA_MIN_BLOCK_BYTES	128U
#define SRING_DMA_MAX_BLOCK_BYTES	(1U << 20)
#define SRING_DMA_BLOCK_ALIGN		64U
#define SRING_DMA_MAX_COALESCE_TIMEOUT_US	1000000U
/* The most blocks one DROPPED completion reports: a driver calls
 * sring_drop() once per block, so it may bound its work per entry. */
#define SRING_DMA_MAX_DROP_RUN		65536U
/* The smallest BAR2 the layout fits in (a power of two). */
#define SRING_DMA_BAR2_MIN_SIZE		(128U * 1024)

/* Doorbells (guest -> model): vector numbers of peer 1. */
#define SRING_DMA_DOORBELL_DESC		0U
#define SRING_DMA_DOORBELL_CONTROL	1U
/* Interrupts (model -> guest): the guest's MSI-X vectors. */
#define SRING_DMA_VECTOR_COMPLETION	0U
#define SRING_DMA_VECTOR_STATE		1U
#define SRING_DMA_NR_VECTORS		2U

/* control: written by the driver. */
enum sring_dma_control {
	SRING_DMA_CONTROL_STOP = 0,
	SRING_DMA_CONTROL_START = 1,
};

/* state: written by the model. */
enum sring_dma_state {
	SRING_DMA_STATE_STOPPED = 0,
	SRING_DMA_STATE_RUNNING = 1,
	SRING_DMA_STATE_FAILED = 2,
};

/* error (why FAILED) and a completion's error (why ERROR). */
enum sring_dma_error {
	SRING_DMA_ERR_NONE = 0,
	SRING_DMA_ERR_BAD_CONFIG = 1,	/* config out of bounds at START */
	SRING_DMA_ERR_BAD_WINDOW = 2,	/* a window empty, wrapping, or too many */
	SRING_DMA_ERR_BAD_INDEX = 3,	/* desc_prod or comp_cons out of range */
	SRING_DMA_ERR_INJECTED = 4,	/* SRING_DMA_FAULT_FAIL */
	SRING_DMA_ERR_BAD_CONTROL = 5,	/* control neither START nor STOP */
	/* A run of SRING_DMA_MAX_DROP_RUN drops, none reported: the driver
	 * has taken no completion for that long. */
	SRING_DMA_ERR_DRIVER_STALLED = 6,
	/* Completion errors: the descriptor was refused, nothing written. */
	SRING_DMA_ERR_NOT_IN_RAM = 16,	  /* a segment outside guest RAM */
	SRING_DMA_ERR_NOT_IN_WINDOW = 17, /* checker: outside every window */
	SRING_DMA_ERR_BAD_SEGMENTS = 18,  /* 0 or > 16 segments, a segment of 0
					   * or odd bytes, or bytes != samples * 2 */
};

/* config.flags */
#define SRING_DMA_CFG_CHECKER	(1U << 0)	/* check segments against windows */
#define SRING_DMA_CFG_KNOWN	SRING_DMA_CFG_CHECKER

/* Completion flags. */
/* The samples are in the descriptor's segments. */
#define SRING_DMA_COMP_OK		(1U << 0)
/* blocks blocks of samples samples each were due and no descriptor was
 * posted (or no completion entry was free for one): nothing written, no
 * descriptor used. The driver calls sring_drop(samples) blocks times, in
 * order with its commits. tag is 0. */
#define SRING_DMA_COMP_DROPPED		(1U << 1)
/* The descriptor of tag was refused (error says why): nothing written. Its
 * block's samples are lost; the driver cannot commit a slot that was not
 * written and cannot skip it, so it ends the stream (sring_device_error()). */
#define SRING_DMA_COMP_ERROR		(1U << 2)
/* With OK: a sample was flipped on purpose (SRING_DMA_FAULT_CORRUPT), for
 * testing a consumer's verifier. */
#define SRING_DMA_COMP_CORRUPTED	(1U << 3)

/* Faults (driver -> model through the fault mailbox), like sring_fault. */
enum sring_dma_fault_kind {
	SRING_DMA_FAULT_STALL = 1,	/* make no block for arg microseconds */
	SRING_DMA_FAULT_BURST = 2,	/* make arg blocks at once, ahead of time */
	SRING_DMA_FAULT_CORRUPT = 3,	/* flip a sample in the next arg blocks */
	SRING_DMA_FAULT_FAIL = 4,	/* go FAILED now (error _INJECTED) */
	/*
	 * At the next STOP while RUNNING, behave like a DMA engine that
	 * finishes its queue: stay RUNNING for arg microseconds after the
	 * model sees the STOP, making blocks at the stream's pace as usual
	 * (into descriptors posted, completions posted and interrupts raised
	 * normally, drops counted when none is posted), and only then stop
	 * as in point 3 above (what is still posted is abandoned, STOPPED).
	 * Once begun, the slow stop runs its time whatever control says (a
	 * value neither START nor STOP still fails it at once); FAIL or a
	 * bad index ends it early, as any failure. Armed until that STOP
	 * (a START does not disarm it); a second request replaces arg;
	 * arg 0 disarms. A driver must not post descriptors after its STOP:
	 * they may still be written.
	 */
	SRING_DMA_FAULT_SLOW_STOP = 5,
};
/* An arg above the bound is taken as the bound (sring_abi.h):
 * SRING_MAX_FAULT_STALL_US for STALL and SLOW_STOP, SRING_MAX_FAULT_BLOCKS
 * for BURST and CORRUPT. An unknown kind is acknowledged and ignored. */

struct sring_dma_desc_segment {
	__u64 addr;		/* DMA address = guest-physical address */
	__u32 bytes;		/* even, not 0 */
	__u32 reserved0;
};

struct sring_dma_desc {
	__u64 tag;		/* the driver's, echoed in the completion */
	__u32 nr_segments;	/* 1..SRING_DMA_MAX_SEGMENTS */
	__u32 reserved0;
	struct sring_dma_desc_segment segments[SRING_DMA_MAX_SEGMENTS];
};

/* One cache line per completion. */
struct sring_dma_completion {
	__u64 tag;		/* of the descriptor; 0 for DROPPED */
	__u64 first_sample;	/* index of the first sample of the (first) block */
	__u64 timestamp_ns;	/* host CLOCK_MONOTONIC at completion (not the
				 * guest's clock: a driver stamps its own) */
	__u32 samples;		/* samples per block */
	__u32 blocks;		/* 1, or for DROPPED the blocks dropped */
	__u32 flags;		/* SRING_DMA_COMP_* */
	__u32 error;		/* enum sring_dma_error for ERROR */
	__u8 pad0[64 - 40];
};

struct sring_dma_window {
	__u64 addr;		/* DMA address of an extent of the ring */
	__u64 bytes;
};

/* Written by the driver while state is STOPPED, read by the model at START. */
struct sring_dma_config {
	__u64 sample_rate;	/* samples/s; 0: as fast as descriptors come */
	__u64 first_sample;	/* index of the first sample (sring_next_sample()) */
	__u32 block_bytes;	/* sring block: 64-byte header + samples; the
				 * model writes (block_bytes - 64) / 2 samples */
	__u32 pattern_seed;
	__u32 coalesce_blocks;	/* K: completion interrupt per K completions,
				 * 1..SRING_DMA_RING_ENTRIES */
	__u32 coalesce_timeout_us; /* and at most this late; 0 only with K = 1 */
	__u32 flags;		/* SRING_DMA_CFG_* */
	__u32 nr_windows;	/* windows[0 .. nr_windows - 1] (checker) */
	__u8 pad0[64 - 40];
};

/* Model counters: written by the model only (relaxed), monotonic for the
 * life of the model (not reset at START). Final for a stream once state,
 * load-acquired, is STOPPED or FAILED. blocks_due == blocks_written +
 * blocks_dropped always holds at such a point. */
struct sring_dma_counters {
	__u64 blocks_due;	/* blocks the "ADC" made */
	__u64 blocks_written;	/* of those, written and completed OK */
	__u64 blocks_dropped;	/* of those, not written (any reason below) */
	__u64 samples_written;
	__u64 samples_dropped;
	__u64 no_descriptor;	/* blocks dropped: no descriptor posted */
	__u64 completion_full;	/* blocks dropped: no completion entry free */
	__u64 descriptors_taken;	/* every descriptor read, refused or not */
	__u64 descriptors_refused;	/* blocks dropped: descriptor refused */
	__u64 bad_addresses;	/* refused: a segment outside guest RAM */
	__u64 window_faults;	/* refused: a segment outside every window */
	__u64 descriptors_abandoned;	/* still posted at a stop */
	__u64 interrupts;	/* completion interrupts raised */
	__u64 doorbells;	/* doorbell kicks read */
	__u64 faults;		/* fault requests taken */
	__u64 corrupted;	/* blocks corrupted on purpose */
	/* Of blocks_dropped: made while the driver left no completion entry
	 * free and still unreported when the stream stopped (the driver
	 * never saw them; 0 unless it stopped taking completions before the
	 * stop, as a driver whose stream already ended does). */
	__u64 drops_unreported;
	__u64 reserved[7];
};

struct sring_dma_fault {
	__u32 kind;		/* enum sring_dma_fault_kind */
	__u32 reserved0;
	__u64 arg;
	__u64 request_seq;	/* driver: store-release after kind and arg */
	__u64 ack_seq;		/* model: store-release once taken */
	__u8 pad0[64 - 32];
};

struct sring_dma_bar2 {
	/* 0: identity, written by the model before the guest can see BAR2. */
	__u32 magic;		/* SRING_DMA_MAGIC */
	__u32 version;		/* SRING_DMA_VERSION */
	__u32 layout_bytes;	/* sizeof(struct sring_dma_bar2) */
	__u32 ring_entries;	/* SRING_DMA_RING_ENTRIES */
	__u32 max_segments;	/* SRING_DMA_MAX_SEGMENTS */
	__u32 max_windows;	/* SRING_DMA_MAX_WINDOWS */
	__u64 bar2_bytes;	/* size of the shared memory */
	__u64 max_sample_rate;	/* the model's --max-rate */
	__u8 pad0[64 - 40];

	/* 64: driver-written configuration. */
	struct sring_dma_config config;

	/* 128: driver's control word (enum sring_dma_control). */
	__u32 control;		/* store-release by the driver */
	__u32 control_seq;	/* store-release by the driver after control */
	__u8 pad1[64 - 8];

	/* 192: model's state. */
	__u32 state;		/* enum sring_dma_state; store-release by the model */
	__u32 error;		/* enum sring_dma_error; relaxed, before state */
	__u32 start_count;	/* STARTs taken; relaxed, before state */
	__u32 control_ack;	/* control_seq acted on; store-release after state */
	__u8 pad2[64 - 16];

	/* 256..511: the four ring indexes, a cache line each. */
	__u64 desc_prod;	/* driver: store-release */
	__u8 pad3[64 - 8];
	__u64 desc_cons;	/* model: store-release */
	__u8 pad4[64 - 8];
	__u64 comp_prod;	/* model: store-release */
	__u8 pad5[64 - 8];
	__u64 comp_cons;	/* driver: store-release */
	__u8 pad6[64 - 8];

	/* 512: fault mailbox. */
	struct sring_dma_fault fault;

	/* 576: model counters. */
	struct sring_dma_counters counters;

	/* 768 .. 4095: reserved, zero. */
	__u8 pad7[4096 - 768];

	/* 4096: driver-written DMA windows (checker mode). */
	struct sring_dma_window windows[SRING_DMA_MAX_WINDOWS];

	/* 20480: descriptor ring, driver-written. */
	struct sring_dma_desc desc[SRING_DMA_RING_ENTRIES];

	/* 90112: completion ring, model-written. */
	struct sring_dma_completion comp[SRING_DMA_RING_ENTRIES];
	/* 106496: end. */
};

/* ------------------------------------------------------------------ */
/* Layout pinned: a change here is a SRING_DMA_VERSION change.        */
/* ------------------------------------------------------------------ */

#ifdef __cplusplus
#define SRING_DMA_STATIC_ASSERT(expr, msg) static_assert(expr, msg)
#else
#define SRING_DMA_STATIC_ASSERT(expr, msg) _Static_assert(expr, msg)
#endif
#define SRING_DMA_OFFSET_IS(type, field, off) \
	SRING_DMA_STATIC_ASSERT(__builtin_offsetof(struct type, field) == (off), \
				#type "." #field " must be at offset " #off)

SRING_DMA_STATIC_ASSERT(sizeof(struct sring_dma_desc_segment) == 16, "segment is 16 bytes");
SRING_DMA_STATIC_ASSERT(sizeof(struct sring_dma_desc) == 272, "descriptor is 272 bytes");
SRING_DMA_STATIC_ASSERT(sizeof(struct sring_dma_completion) == 64, "completion is 64 bytes");
SRING_DMA_STATIC_ASSERT(sizeof(struct sring_dma_window) == 16, "window is 16 bytes");
SRING_DMA_STATIC_ASSERT(sizeof(struct sring_dma_config) == 64, "config is 64 bytes");
SRING_DMA_STATIC_ASSERT(sizeof(struct sring_dma_counters) == 192, "counters are 192 bytes");
SRING_DMA_STATIC_ASSERT(sizeof(struct sring_dma_fault) == 64, "fault mailbox is 64 bytes");
SRING_DMA_OFFSET_IS(sring_dma_completion, samples, 24);
SRING_DMA_OFFSET_IS(sring_dma_completion, error, 36);
SRING_DMA_OFFSET_IS(sring_dma_config, block_bytes, 16);
SRING_DMA_OFFSET_IS(sring_dma_config, nr_windows, 36);
SRING_DMA_OFFSET_IS(sring_dma_fault, ack_seq, 24);
SRING_DMA_OFFSET_IS(sring_dma_bar2, bar2_bytes, 24);
SRING_DMA_OFFSET_IS(sring_dma_bar2, config, 64);
SRING_DMA_OFFSET_IS(sring_dma_bar2, control, 128);
SRING_DMA_OFFSET_IS(sring_dma_bar2, state, 192);
SRING_DMA_OFFSET_IS(sring_dma_bar2, start_count, 200);
SRING_DMA_OFFSET_IS(sring_dma_bar2, control_seq, 132);
SRING_DMA_OFFSET_IS(sring_dma_bar2, control_ack, 204);
SRING_DMA_OFFSET_IS(sring_dma_bar2, desc_prod, 256);
SRING_DMA_OFFSET_IS(sring_dma_bar2, desc_cons, 320);
SRING_DMA_OFFSET_IS(sring_dma_bar2, comp_prod, 384);
SRING_DMA_OFFSET_IS(sring_dma_bar2, comp_cons, 448);
SRING_DMA_OFFSET_IS(sring_dma_bar2, fault, 512);
SRING_DMA_OFFSET_IS(sring_dma_bar2, counters, 576);
SRING_DMA_OFFSET_IS(sring_dma_bar2, windows, 4096);
SRING_DMA_OFFSET_IS(sring_dma_bar2, desc, 20480);
SRING_DMA_OFFSET_IS(sring_dma_bar2, comp, 90112);
SRING_DMA_STATIC_ASSERT(sizeof(struct sring_dma_bar2) == 106496, "BAR2 layout is 106496 bytes");
SRING_DMA_STATIC_ASSERT(sizeof(struct sring_dma_bar2) <= SRING_DMA_BAR2_MIN_SIZE,
			"BAR2 layout fits the smallest BAR2");
SRING_DMA_STATIC_ASSERT((SRING_DMA_RING_ENTRIES & (SRING_DMA_RING_ENTRIES - 1)) == 0,
			"ring entries are a power of two");

#endif /* _UAPI_SRING_DMA_MODEL_H */
