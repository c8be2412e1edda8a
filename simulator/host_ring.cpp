#include "ringlib/error_format.hpp"
#include "sring/sim/host_ring.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sring/detail/barriers.hpp"
#include "sring/detail/mapping.hpp"

namespace sring::sim {

Expected<HostRing> HostRing::create(uint64_t ring_size, const std::string& name) {
  const auto page_size = static_cast<uint32_t>(::sysconf(_SC_PAGESIZE));
  if (ring_size < SRING_MIN_RING_SIZE || (ring_size & (ring_size - 1)) != 0 ||
      ring_size % page_size != 0) {
    return make_error(EINVAL, "ring size {} is not a power of two of at least {} bytes", ring_size,
                      SRING_MIN_RING_SIZE);
  }
  HostRing ring;
  ring.fd_.reset(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!ring.fd_.valid()) return errno_error("cannot create a memfd for the ring");
  const uint64_t data_offset = uint64_t{SRING_DATA_PGOFF} * page_size;
  if (::ftruncate(ring.fd_.get(), static_cast<off_t>(data_offset + ring_size)) != 0) {
    return errno_error("cannot size the ring memfd to {} bytes", data_offset + ring_size);
  }
  // Sealed before anyone else can hold it: nobody, this producer included,
  // can shrink the file under a consumer's mapping (which would kill the
  // consumer with SIGBUS) or change its size at all. ringlib refuses ring
  // files without these seals (docs/abi.md, "Ring files").
  if (::fcntl(ring.fd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return errno_error("cannot seal the ring memfd");
  }
  auto pages = map_region(ring.fd_.get(), data_offset, 0, PROT_READ | PROT_WRITE, "control pages");
  if (!pages) return pages.error();
  ring.pages_ = std::move(*pages);
  auto data = map_mirror(ring.fd_.get(), ring_size, static_cast<off_t>(data_offset),
                         PROT_READ | PROT_WRITE, MirrorSource::kFile);
  if (!data) return data.error();
  ring.data_map_ = std::move(*data);

  auto* base = static_cast<std::byte*>(ring.pages_.get());
  ring.kproducer_ = reinterpret_cast<sring_producer_page*>(base);
  ring.kconsumer_ = reinterpret_cast<sring_consumer_page*>(base + page_size);
  ring.data_ = static_cast<std::byte*>(ring.data_map_.get());
  ring.ring_size_ = ring_size;

  // A fresh memfd is zero-filled; only identity needs writing. Nobody can
  // have attached yet, so plain stores are enough.
  sring_producer_page& p = *ring.kproducer_;
  p.magic = SRING_MAGIC;
  p.abi_version = SRING_ABI_VERSION;
  p.page_size = page_size;
  p.ring_size = ring_size;
  p.consumer_offset = uint64_t{SRING_CONSUMER_PGOFF} * page_size;
  p.data_offset = data_offset;
  p.state = SRING_STATE_STOPPED;
  p.block_bytes = 8192;
  p.sample_format = SRING_FMT_U16;
  ring.kconsumer_->wakeup_watermark = 1;
  return ring;
}

Status HostRing::reset(uint64_t position) {
  if (position % SRING_BLOCK_ALIGN != 0) {
    return make_error(EINVAL, "reset position {} is not a multiple of {}", position, SRING_BLOCK_ALIGN);
  }
  if (load_acquire(kproducer_->state) == SRING_STATE_RUNNING) {
    return make_error(EBUSY, "cannot reset a running ring");
  }
  // As the driver's sring_producer_reset(): counters to zero, then tail
  // before head, so a consumer that sees the new head never pairs it with an
  // old tail more than a ring behind. Consumers must attach again.
  sring_producer_page& p = *kproducer_;
  for (__u64* counter : {&p.blocks_produced, &p.samples_produced, &p.blocks_dropped, &p.samples_dropped,
                         &p.overruns, &p.wakeups, &p.bad_tails, &p.high_water}) {
    store_relaxed(*counter, 0);
  }
  store_release(kconsumer_->tail, position);  // pairs with a consumer's load_acquire(tail) at attach
  store_release(p.head, position);            // pairs with the consumer's load_acquire(head)
  store_release(p.state, uint32_t{SRING_STATE_STOPPED});
  return ok();
}

Expected<UniqueFd> HostRing::duplicate_fd() const {
  UniqueFd copy(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!copy.valid()) return errno_error("cannot duplicate the ring's descriptor");
  return copy;
}

}  // namespace sring::sim
