// SPDX-License-Identifier: GPL-2.0
/*
 * The memory of a ring: its data chunks, the kernel's mirror of them, the
 * consumer's mapping and the device's scatter-gather mapping.
 *
 * A ring's data is a list of chunks, each physically contiguous:
 *
 *   pages     high-order allocations as large as the allocator gives (at
 *             most 2^SRING_MAX_PAGE_ORDER pages, 4 MiB on x86), falling back
 *             to smaller orders down to single pages when memory is
 *             fragmented. Orders never grow along the ring, so every chunk
 *             starts at a ring offset that is a multiple of its own size.
 *             Each chunk lies below the device's DMA mask. Mapped for the
 *             device as one scatter-gather table (an IOMMU may merge it into
 *             fewer DMA segments).
 *   reserved  one chunk carved from the region reserved at boot; mapped for
 *             the device with dma_map_resource().
 *
 * The CPU sees the chunks as one contiguous region, twice back to back in
 * user space and followed by its first block's worth again in the kernel
 * (data_mirror), so no block wraps for it. The device sees the ring's DMA extents: a slot that crosses
 * an extent boundary (the ring's end is one) is given to it as several
 * segments, at most SRING_SLOT_MAX_SEGMENTS; sring_max_block_bytes() bounds
 * the block size so that no slot needs more.
 */
#include <linux/dma-mapping.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "sring_compat.h"
#include "sring_internal.h"

/* What a ring must leave of the available memory: 1/16 of it, 64 MiB at
 * least. */
#define SRING_KEEP_FREE(total)	max_t(u64, (total) / 16, SZ_64M)

static unsigned int max_chunk_order = SRING_MAX_PAGE_ORDER;
module_param(max_chunk_order, uint, 0644);
MODULE_PARM_DESC(max_chunk_order,
		 "Largest page order of one chunk of a ring's data (default and at most: the allocator's largest, 10 = 4 MiB on x86). Lower it to test rings made of small chunks.");

/* The DMA mask, or no limit for rings the CPU fills. */
static u64 sring_mask(const struct sring_ring *ring)
{
	if (ring->params_flags & SRING_RING_CPU_FILL)
		return U64_MAX;
	return dma_get_mask(ring->parent);
}

/*
 * Is [phys, phys + size) below the device's DMA mask? Without an IOMMU (or
 * with one in passthrough) the bus address is the physical one, and memory
 * above the mask would need bouncing, which a ring the device writes on its
 * own cannot use; behind a translating IOMMU low memory costs nothing. The
 * mapping's own addresses are checked again after mapping (bus offsets).
 */
static bool sring_reachable(const struct sring_ring *ring, phys_addr_t phys,
			    u64 size)
{
	return phys + size - 1 <= sring_mask(ring);
}

/*
 * One chunk of 2^@order pages below the mask, zeroed, or NULL. The normal
 * zones first; a chunk beyond the mask moves the search to ZONE_DMA32 and
 * then ZONE_DMA, for engines with 32-bit or narrower (e.g. 28-bit) address
 * registers, and *@zone remembers that for the chunks after it. A zone
 * that has no free block of this order ends the search: its zonelist falls
 * back to the zones below it already, so they have none either. High
 * orders do not retry hard (smaller chunks do as well); single pages may
 * retry but never wake the OOM killer: a ring too large for the machine
 * fails with -ENOMEM instead of killing someone.
 *
 * The DMA API's own allocators would do the zone search too, but their
 * memory belongs to the device and must be freed when it unbinds, while a
 * consumer may still have the ring mapped: this memory is sring's and lives
 * until the last close.
 */
static struct page *sring_alloc_chunk(struct sring_ring *ring,
				      unsigned int order, unsigned int *zone)
{
	static const gfp_t zones[] = { 0, GFP_DMA32, GFP_DMA };
	gfp_t gfp = GFP_KERNEL | __GFP_ZERO | __GFP_NOWARN |
		    (order ? __GFP_NORETRY : __GFP_RETRY_MAYFAIL);

	for (; *zone < ARRAY_SIZE(zones); (*zone)++) {
		struct page *page = alloc_pages(gfp | zones[*zone], order);

		if (!page)
			return NULL;
		if (sring_reachable(ring, page_to_phys(page), PAGE_SIZE << order))
			return page;
		__free_pages(page, order);
	}
	return NULL;
}

static void sring_free_chunks(struct sring_chunk *chunks, unsigned long nr)
{
	unsigned long i;

	for (i = 0; i < nr; i++)
		__free_pages(chunks[i].page, chunks[i].order);
}

/* Makes room for @need chunks in *@chunks (which holds @nr of *@cap). */
static int sring_grow_chunks(struct sring_chunk **chunks, unsigned long *cap,
			     unsigned long nr, unsigned long need)
{
	struct sring_chunk *bigger;

	if (need <= *cap)
		return 0;
	bigger = kvmalloc_array(need, sizeof(*bigger), GFP_KERNEL);
	if (!bigger)
		return -ENOMEM;
	if (*chunks)
		memcpy(bigger, *chunks, nr * sizeof(*bigger));
	kvfree(*chunks);
	*chunks = bigger;
	*cap = need;
	return 0;
}

/*
 * Fills the ring with chunks, the largest orders first. All or nothing: on
 * failure every chunk is freed again and the message says how far it got.
 * The list is sized for the chunks still to come at the current order, so
 * it grows only when the order drops and ends exactly full.
 */
static int sring_alloc_chunks(struct sring_ring *ring)
{
	unsigned long nr_pages = ring->ring_size >> PAGE_SHIFT;
	unsigned int order = min3((unsigned int)SRING_MAX_PAGE_ORDER,
				  READ_ONCE(max_chunk_order),
				  (unsigned int)ilog2(nr_pages));
	unsigned long nr = 0, cap = 0, done = 0;
	struct sring_chunk *chunks = NULL;
	unsigned int zone = 0;
	int ret;

	ret = sring_grow_chunks(&chunks, &cap, 0, nr_pages >> order);
	while (!ret && done < nr_pages) {
		struct page *page;

		/* A large ring takes a while: let a killed modprobe go. */
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		page = sring_alloc_chunk(ring, order, &zone);

		if (!page) {
			if (order == 0) {
				ret = -ENOMEM;
				break;
			}
			/* Smaller chunks keep the alignment rule: a sum of
			 * larger powers of two is a multiple of this one. */
			order--;
			ret = sring_grow_chunks(&chunks, &cap, nr,
						nr + ((nr_pages - done) >> order));
			continue;
		}
		chunks[nr].page = page;
		chunks[nr].order = order;
		nr++;
		done += 1UL << order;
		cond_resched();
	}
	if (ret) {
		dev_err(ring->parent,
			"sring: cannot allocate a ring of %llu bytes below DMA mask %#llx: got %llu bytes before memory ran out (%d); about %llu bytes are available\n",
			ring->ring_size, sring_mask(ring), (u64)done << PAGE_SHIFT,
			ret, (u64)si_mem_available() << PAGE_SHIFT);
		sring_free_chunks(chunks, nr);
		kvfree(chunks);
		return ret;
	}
	ring->chunks = chunks;
	ring->nr_chunks = nr;
	return 0;
}

static void sring_free_data(struct sring_ring *ring)
{
	if (ring->chunks) {
		sring_free_chunks(ring->chunks, ring->nr_chunks);
		kvfree(ring->chunks);
		ring->chunks = NULL;
	} else if (ring->memory_kind == SRING_MEM_RESERVED && ring->data_phys) {
		sring_reserved_free(ring->data_phys, ring->ring_size);
	}
	ring->data_phys = 0;
}

/* Physically contiguous runs of the data, in ring order: the chunks, or the
 * one reserved range. Adjacent chunks are not merged: a run never needs to
 * be longer than a chunk. */
static unsigned long sring_nr_runs(const struct sring_ring *ring)
{
	return ring->chunks ? ring->nr_chunks : 1;
}

static void sring_run(const struct sring_ring *ring, unsigned long i,
		      unsigned long *pfn, u64 *bytes)
{
	if (ring->chunks) {
		*pfn = page_to_pfn(ring->chunks[i].page);
		*bytes = PAGE_SIZE << ring->chunks[i].order;
	} else {
		*pfn = PHYS_PFN(ring->data_phys);
		*bytes = ring->ring_size;
	}
}

/*
 * Maps the data into the kernel followed by its first
 * SRING_MIRROR_OVERLAP() bytes again, so that every block (at most that
 * long) is contiguous for the CPU wherever it starts, as user space sees it.
 * Not the whole ring twice: vmap() refuses more pages than the machine has,
 * which would cap a ring at half the memory, and the copy would cost
 * as much again in page tables and vmalloc space for nothing: the kernel
 * reads and writes at most one block in one piece (read() copies in two).
 */
static int sring_map_mirror(struct sring_ring *ring)
{
	unsigned long nr = ring->ring_size >> PAGE_SHIFT;
	unsigned long total = (ring->ring_size + SRING_MIRROR_OVERLAP(ring)) >> PAGE_SHIFT;
	unsigned long *pfns, i, j, k = 0;
	struct page **pages;

	pfns = kvmalloc_array(total, sizeof(*pfns), GFP_KERNEL);
	if (!pfns)
		return -ENOMEM;
	for (i = 0; i < sring_nr_runs(ring); i++) {
		unsigned long first;
		u64 bytes;

		sring_run(ring, i, &first, &bytes);
		for (j = 0; j < bytes >> PAGE_SHIFT; j++)
			pfns[k++] = first + j;
	}
	memcpy(pfns + nr, pfns, (total - nr) * sizeof(*pfns));
	if (!pfn_valid(pfns[0])) {
		/* A reserved region outside the memory map has no struct
		 * pages: map it by frame number. */
		ring->data_mirror = vmap_pfn(pfns, total, PAGE_KERNEL);
		kvfree(pfns);
		return ring->data_mirror ? 0 : -ENOMEM;
	}
	pages = kvmalloc_array(total, sizeof(*pages), GFP_KERNEL);
	if (pages) {
		for (i = 0; i < total; i++)
			pages[i] = pfn_to_page(pfns[i]);
		ring->data_mirror = vmap(pages, total, VM_MAP, PAGE_KERNEL);
		kvfree(pages);
	}
	kvfree(pfns);
	return ring->data_mirror ? 0 : -ENOMEM;
}

/*
 * The data twice, back to back, into a consumer's vma of 2 * ring_size
 * bytes, run by run with 4 KiB entries: Linux 6.1 calls a driver's
 * huge_fault only for DAX files (hugepage_vma_check() refuses VM_PFNMAP
 * and VM_MIXEDMAP vmas), so a char device cannot map PMD-size entries
 * there. On failure the caller unmaps the whole vma, so no half-mapped
 * mirror is ever seen.
 */
int sring_mmap_data(struct sring_ring *ring, struct vm_area_struct *vma)
{
	unsigned long addr = vma->vm_start;
	unsigned int half;
	int ret;

	for (half = 0; half < 2; half++) {
		unsigned long i;

		for (i = 0; i < sring_nr_runs(ring); i++) {
			unsigned long pfn;
			u64 bytes;

			sring_run(ring, i, &pfn, &bytes);
			ret = remap_pfn_range(vma, addr, pfn, bytes,
					      vma->vm_page_prot);
			if (ret)
				return ret;
			addr += bytes;
			cond_resched();
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The device's view                                                   */
/* ------------------------------------------------------------------ */

/*
 * Appends an extent of @bytes at @addr after the last one, checked against
 * the mask (bus offsets can move the mapping).
 */
static int sring_add_extent(struct sring_ring *ring, dma_addr_t addr, u64 bytes)
{
	struct device *dev = ring->parent;
	struct sring_dma_extent *extent = &ring->extents[ring->nr_extents];

	if (addr + bytes - 1 > dma_get_mask(dev)) {
		dev_err(dev, "sring: ring data mapped at %pad, beyond the DMA mask %#llx\n",
			&addr, dma_get_mask(dev));
		return -ENOMEM;
	}
	extent->offset = ring->nr_extents ? extent[-1].offset + extent[-1].bytes : 0;
	extent->bytes = bytes;
	extent->addr = addr;
	ring->nr_extents++;
	return 0;
}

/*
 * The largest order of pages one extent may hold for @dev: the device's
 * maximum segment size (64 KiB for PCI unless its driver raises it), its
 * segment boundary and what the DMA layer can map in one piece (swiotlb
 * bounces at most 256 KiB), rounded down to a power of two. Chunks are
 * naturally aligned in memory and in the ring, so pieces of that size never
 * cross the boundary.
 */
static unsigned int sring_piece_order(struct device *dev)
{
	unsigned long pages = min3(dma_get_max_seg_size(dev) >> PAGE_SHIFT,
				   dma_get_seg_boundary_nr_pages(dev, PAGE_SHIFT),
				   dma_max_mapping_size(dev) >> PAGE_SHIFT);

	if (!pages)
		return 0;	/* not even a page: the mapping says so */
	return min_t(unsigned int, ilog2(pages), SRING_MAX_PAGE_ORDER);
}

/*
 * The device's view of the data: one streaming mapping for the ring's life
 * under the device, synced per slot. Bidirectional: the device writes
 * samples, and the CPU writes headers and zeroed the memory first; a
 * from-device mapping would let a non-coherent platform invalidate (arm32)
 * what the CPU wrote, exposing stale memory to the consumer's mapping.
 *
 * Chunks go in one scatter-gather table, cut into pieces the device's
 * segment limits allow, and each piece is an extent: contiguous for the
 * device and for the CPU alike. An IOMMU may merge pieces into one DMA
 * segment; sring still hands them out (and syncs them) piece by piece,
 * because a sync of a range that spans pieces would do cache maintenance on
 * the physical range after the first piece's start, which is some other
 * memory (iommu_dma_sync_single_for_cpu() translates the start only).
 */
static int sring_map_for_device(struct sring_ring *ring)
{
	struct device *dev = ring->parent;
	unsigned int piece = sring_piece_order(dev);
	struct scatterlist *sg, *dma_sg;
	unsigned long nents = 0, i;
	dma_addr_t dma_addr = 0;
	u64 dma_left = 0;
	int ret;

	if (ring->params_flags & SRING_RING_CPU_FILL)
		return 0;
	if (!ring->chunks) {
		u64 bytes = min_t(u64, PAGE_SIZE << piece, ring->ring_size);
		dma_addr_t addr;
		u64 at;

		if (!sring_reachable(ring, ring->data_phys, ring->ring_size)) {
			dev_err(dev, "sring: reserved memory at %pa is beyond the DMA mask %#llx\n",
				&ring->data_phys, dma_get_mask(dev));
			return -ENOMEM;
		}
		ring->extents = kvmalloc_array(div64_u64(ring->ring_size, bytes),
					       sizeof(*ring->extents), GFP_KERNEL);
		if (!ring->extents)
			return -ENOMEM;
		addr = dma_map_resource(dev, ring->data_phys, ring->ring_size,
					DMA_BIDIRECTIONAL, 0);
		if (dma_mapping_error(dev, addr))
			return -ENOMEM;
		ring->dma_handle = addr;
		ring->dma_mapped = true;
		/* One range, cut at the device's segment limits too. */
		for (at = 0; at < ring->ring_size; at += bytes) {
			ret = sring_add_extent(ring, addr + at, bytes);
			if (ret)
				return ret;
		}
		return 0;
	}

	for (i = 0; i < ring->nr_chunks; i++)
		nents += 1UL << (ring->chunks[i].order - min(piece, ring->chunks[i].order));
	if (nents > INT_MAX)	/* dma_map_sg() counts in int */
		return -ENOMEM;
	ret = sg_alloc_table(&ring->sgt, nents, GFP_KERNEL);
	if (ret)
		return ret;
	sg = ring->sgt.sgl;
	for (i = 0; i < ring->nr_chunks; i++) {
		unsigned int order = min(piece, ring->chunks[i].order);
		unsigned long at;

		for (at = 0; at < 1UL << ring->chunks[i].order; at += 1UL << order) {
			sg_set_page(sg, nth_page(ring->chunks[i].page, at),
				    PAGE_SIZE << order, 0);
			sg = sg_next(sg);
		}
	}
	ret = dma_map_sgtable(dev, &ring->sgt, DMA_BIDIRECTIONAL, 0);
	if (ret)
		return ret;
	ring->dma_mapped = true;
	ring->extents = kvmalloc_array(nents, sizeof(*ring->extents), GFP_KERNEL);
	if (!ring->extents)
		return -ENOMEM;
	/*
	 * Each piece's device address: DMA segments hold whole pieces in
	 * order (a mapping merges entries, never splits one), and inside a
	 * merged segment the addresses run on linearly.
	 */
	dma_sg = ring->sgt.sgl;
	for_each_sgtable_sg(&ring->sgt, sg, i) {
		if (!dma_left) {
			if (!dma_sg)
				return -EIO;
			dma_addr = sg_dma_address(dma_sg);
			dma_left = sg_dma_len(dma_sg);
			dma_sg = sg_next(dma_sg);
		}
		if (dma_left < sg->length) {
			dev_err(dev, "sring: a DMA segment ends inside a scatterlist entry\n");
			return -EIO;
		}
		ret = sring_add_extent(ring, dma_addr, sg->length);
		if (ret)
			return ret;
		dma_addr += sg->length;
		dma_left -= sg->length;
	}
	return 0;
}

/*
 * The device API's view of the extents (sring_device.h): copied under
 * prod_lock, which sring_unmap_for_device() takes to clear dma_mapped
 * before it frees them.
 */
unsigned int sring_dma_extents(struct sring_ring *ring,
			       struct sring_dma_segment *extents,
			       unsigned int max)
{
	unsigned long irqflags;
	unsigned int i, n = 0;

	spin_lock_irqsave(&ring->prod_lock, irqflags);
	if (ring->dma_mapped) {
		n = ring->nr_extents;
		for (i = 0; i < n && i < max; i++) {
			extents[i].addr = ring->extents[i].addr;
			/* At most PAGE_SIZE << SRING_MAX_PAGE_ORDER. */
			extents[i].bytes = ring->extents[i].bytes;
		}
	}
	spin_unlock_irqrestore(&ring->prod_lock, irqflags);
	return n;
}
EXPORT_SYMBOL_GPL(sring_dma_extents);

/* After the device's last write: takes the mapping back. */
void sring_unmap_for_device(struct sring_ring *ring)
{
	struct device *dev = ring->parent;
	bool mapped;

	/* Reserve and commit look at extents under prod_lock only while
	 * dma_mapped is set. */
	spin_lock_irq(&ring->prod_lock);
	mapped = ring->dma_mapped;
	ring->dma_mapped = false;
	spin_unlock_irq(&ring->prod_lock);
	/*
	 * No CPU sync: every byte the consumer may read was synced when its
	 * block was committed, and invalidating now (non-coherent platforms)
	 * would throw away headers the CPU wrote since.
	 */
	if (mapped && ring->chunks)
		dma_unmap_sgtable(dev, &ring->sgt, DMA_BIDIRECTIONAL,
				  DMA_ATTR_SKIP_CPU_SYNC);
	else if (mapped)
		dma_unmap_resource(dev, ring->dma_handle, ring->ring_size,
				   DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC);
	sg_free_table(&ring->sgt);
	kvfree(ring->extents);
	ring->extents = NULL;
	ring->nr_extents = 0;
}

/* The extent holding ring offset @offset (extents tile the ring). */
static const struct sring_dma_extent *
sring_extent_at(const struct sring_ring *ring, u64 offset)
{
	unsigned int lo = 0, hi = ring->nr_extents - 1;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo + 1) / 2;

		if (ring->extents[mid].offset <= offset)
			lo = mid;
		else
			hi = mid - 1;
	}
	return &ring->extents[lo];
}

/*
 * [pos, pos + len) as the device sees it: pieces, each within one extent,
 * continuing at the ring's start past its end. Returns the number of
 * pieces, or 0 if more than @max would be needed (which
 * sring_max_block_bytes() rules out for every slot). prod_lock held,
 * dma_mapped.
 */
unsigned int sring_dma_pieces(const struct sring_ring *ring, u64 pos, u32 len,
			      struct sring_dma_segment *pieces,
			      unsigned int max)
{
	u64 offset = pos & (ring->ring_size - 1);
	unsigned int n = 0;

	while (len) {
		const struct sring_dma_extent *extent = sring_extent_at(ring, offset);
		u64 into = offset - extent->offset;
		u32 bytes = min_t(u64, len, extent->bytes - into);

		if (WARN_ON_ONCE(n == max))
			return 0;
		pieces[n].addr = extent->addr + into;
		pieces[n].bytes = bytes;
		n++;
		len -= bytes;
		offset = (offset + bytes) & (ring->ring_size - 1);
	}
	return n;
}

/*
 * Gives the @n pieces to the device or back to the CPU (non-coherent
 * platforms write back or invalidate caches here; coherent ones do
 * nothing). Each piece lies in one extent, physically contiguous.
 */
void sring_sync_pieces(struct sring_ring *ring,
		       const struct sring_dma_segment *pieces, unsigned int n,
		       bool for_device)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (for_device)
			dma_sync_single_for_device(ring->parent, pieces[i].addr,
						   pieces[i].bytes,
						   DMA_BIDIRECTIONAL);
		else
			dma_sync_single_for_cpu(ring->parent, pieces[i].addr,
						pieces[i].bytes,
						DMA_BIDIRECTIONAL);
	}
}

/*
 * The largest block whose slot fits in SRING_SLOT_MAX_SEGMENTS pieces
 * anywhere in the ring. A slot of L bytes that begins one byte before an
 * extent boundary needs 1 + DIV_ROUND_UP(L - 1, shortest extent) pieces at
 * most, so L may be (SRING_SLOT_MAX_SEGMENTS - 1) * shortest + 1.
 */
static u32 sring_max_block_bytes(const struct sring_ring *ring)
{
	u64 limit = min_t(u64, SRING_MAX_BLOCK_BYTES, ring->ring_size / 2);
	u64 shortest = U64_MAX;
	unsigned int i;

	for (i = 0; i < ring->nr_extents; i++)
		shortest = min(shortest, ring->extents[i].bytes);
	if (ring->nr_extents)
		limit = min(limit, (SRING_SLOT_MAX_SEGMENTS - 1) * shortest + 1 +
				   SRING_BLOCK_HEADER_SIZE);
	return round_down(limit, SRING_BLOCK_ALIGN);
}

/* sysfs memory: how the ring is made, e.g. 1 GiB on fragmented memory for
 * a PCI device: "pages chunks=769 order10=254 order9=3 order0=512
 * dma_segments=16864". */
ssize_t sring_memory_show(struct sring_ring *ring, char *buf)
{
	unsigned long count[SRING_MAX_PAGE_ORDER + 1] = { 0 };
	unsigned long i;
	int order, len;

	if (!ring->chunks) {
		len = sysfs_emit(buf, "reserved chunks=1");
	} else {
		for (i = 0; i < ring->nr_chunks; i++)
			count[ring->chunks[i].order]++;
		len = sysfs_emit(buf, "pages chunks=%lu", ring->nr_chunks);
		for (order = SRING_MAX_PAGE_ORDER; order >= 0; order--)
			if (count[order])
				len += sysfs_emit_at(buf, len, " order%d=%lu",
						     order, count[order]);
	}
	if (!(ring->params_flags & SRING_RING_CPU_FILL))
		len += sysfs_emit_at(buf, len, " dma_segments=%u",
				     ring->nr_extents);
	len += sysfs_emit_at(buf, len, "\n");
	return len;
}

/* ------------------------------------------------------------------ */
/* The whole                                                           */
/* ------------------------------------------------------------------ */

void sring_free_ring_memory(struct sring_ring *ring)
{
	if (ring->data_mirror)
		vunmap(ring->data_mirror);
	ring->data_mirror = NULL;
	sring_free_data(ring);
	if (ring->cons_page)
		__free_page(ring->cons_page);
	if (ring->prod_page)
		__free_page(ring->prod_page);
	ring->cons_page = NULL;
	ring->prod_page = NULL;
}

/*
 * Everything a ring's memory is: its pages, the mirror, the device's
 * mapping and the identity in the producer page. On failure the caller
 * unmaps (sring_unmap_for_device) and frees (sring_free_ring_memory, at the
 * ring's release) whatever was made.
 */
int sring_alloc_ring_memory(struct sring_ring *ring)
{
	struct sring_producer_page *kprod;
	u64 total = (u64)totalram_pages() << PAGE_SHIFT;
	u64 available = (u64)si_mem_available() << PAGE_SHIFT;
	int ret;

	ring->prod_page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	ring->cons_page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	if (!ring->prod_page || !ring->cons_page)
		return -ENOMEM;
	ring->kprod = page_address(ring->prod_page);
	ring->kcons = page_address(ring->cons_page);

	if (ring->params_flags & SRING_RING_RESERVED_MEMORY) {
		ring->memory_kind = SRING_MEM_RESERVED;
		ring->data_phys = sring_reserved_alloc(ring->ring_size);
		if (!ring->data_phys) {
			dev_err(ring->parent,
				"sring: no room for %llu bytes in the reserved region (sring.ko reserved_base/reserved_size)\n",
				ring->ring_size);
			return -ENOSPC;
		}
	} else {
		ring->memory_kind = SRING_MEM_PAGES;
		/*
		 * More than the machine can give and keep some for everyone
		 * else (SRING_KEEP_FREE): not even worth trying. Taking it
		 * anyway would starve the rest of the system (their
		 * allocations failing, the OOM killer, which cannot take
		 * back memory that belongs to no process) before ours failed.
		 */
		if (ring->ring_size + SRING_KEEP_FREE(total) > available) {
			dev_err(ring->parent,
				"sring: cannot allocate a ring of %llu bytes: about %llu bytes are available (of %llu in the machine), and %llu of them stay free for the rest of the system\n",
				ring->ring_size, available, total,
				SRING_KEEP_FREE(total));
			return -ENOMEM;
		}
		ret = sring_alloc_chunks(ring);
		if (ret)
			return ret;
	}
	ret = sring_map_mirror(ring);
	if (ret) {
		/* The data fit, the page tables and lists to map it did not. */
		dev_err(ring->parent,
			"sring: cannot allocate a ring of %llu bytes: no memory left to map it into the kernel; about %llu bytes are available\n",
			ring->ring_size, (u64)si_mem_available() << PAGE_SHIFT);
		return ret;
	}
	if (ring->memory_kind == SRING_MEM_RESERVED)
		memset(ring->data_mirror, 0, ring->ring_size);
	ret = sring_map_for_device(ring);
	if (ret) {
		dev_err(ring->parent,
			"sring: cannot map the ring of %llu bytes (%lu chunks) for the device: %d\n",
			ring->ring_size, ring->chunks ? ring->nr_chunks : 1UL, ret);
		return ret;
	}
	ring->max_block_bytes = sring_max_block_bytes(ring);

	kprod = ring->kprod;
	kprod->magic = SRING_MAGIC;
	kprod->abi_version = SRING_ABI_VERSION;
	kprod->page_size = PAGE_SIZE;
	kprod->ring_size = ring->ring_size;
	kprod->consumer_offset = SRING_CONSUMER_PGOFF * PAGE_SIZE;
	kprod->data_offset = SRING_DATA_PGOFF * PAGE_SIZE;
	return 0;
}
