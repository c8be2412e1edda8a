#include "ringlib/error_format.hpp"
#include "sring/sim/host_ring.hpp"

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <optional>

#include "sring/detail/barriers.hpp"
#include "sring/detail/mapping.hpp"

namespace sring::sim {

std::string_view to_string(RingPages pages) {
  switch (pages) {
    case RingPages::k4K: return "4k";
    case RingPages::kHuge: return "huge";
    case RingPages::kAuto: return "auto";
  }
  return "unknown";
}

Expected<RingPages> parse_ring_pages(std::string_view text) {
  if (text == "4k" || text == "4K") return RingPages::k4K;
  if (text == "huge" || text == "2M" || text == "2m") return RingPages::kHuge;
  if (text == "auto") return RingPages::kAuto;
  return make_error(EINVAL, "pages must be 4k, huge or auto, not '{}'", text);
}

namespace {

constexpr char kHugePageDir[] = "/sys/kernel/mm/hugepages/hugepages-2048kB/";

std::optional<uint64_t> read_count(const std::string& path) {
  std::ifstream in(path);
  uint64_t value = 0;
  if (!(in >> value)) return std::nullopt;
  return value;
}

// Why a hugetlb mapping of ring_size bytes was refused, in the words of the
// knob that fixes it.
std::string huge_page_shortage(uint64_t ring_size) {
  const uint64_t needed = ring_size / kHugePageSize;
  const auto total = read_count(std::string(kHugePageDir) + "nr_hugepages");
  const auto free = read_count(std::string(kHugePageDir) + "free_hugepages");
  const auto reserved = read_count(std::string(kHugePageDir) + "resv_hugepages");
  if (!total || !free) return fmt::format("this kernel offers no 2 MiB huge pages (no {})", kHugePageDir);
  if (*total == 0) return "no 2 MiB huge pages are reserved: /proc/sys/vm/nr_hugepages is 0";
  const uint64_t available = *free - std::min(*free, reserved.value_or(0));
  return fmt::format("a {} MiB ring needs {} free 2 MiB huge pages, {} of the {} reserved are available "
                     "(raise /proc/sys/vm/nr_hugepages)",
                     ring_size >> 20, needed, available, *total);
}

struct HugeData {
  UniqueFd fd;
  Mapping mirror;
};

// The data file of a ring in 2 MiB pages: a sealed hugetlb memfd of exactly
// ring_size bytes, mapped twice back to back at a 2 MiB-aligned address.
Expected<HugeData> create_huge_data(uint64_t ring_size, const std::string& name) {
  HugeData data;
  data.fd.reset(::memfd_create((name + "-data").c_str(),
                               MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_HUGE_2MB));
  if (!data.fd.valid()) return errno_error("cannot create a hugetlb memfd (MFD_HUGETLB) for the ring's data");
  if (::ftruncate(data.fd.get(), static_cast<off_t>(ring_size)) != 0) {
    return errno_error("cannot size the ring's hugetlb data file to {} bytes", ring_size);
  }
  // hugetlbfs takes the same seals as a plain memfd (since Linux 4.16).
  if (::fcntl(data.fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return errno_error("cannot seal the ring's hugetlb data file");
  }
  // The first mapping reserves the huge pages for the whole file (the second
  // shares them): this is where too few free pages show, as ENOMEM.
  auto mirror = map_mirror(data.fd.get(), ring_size, 0, PROT_READ | PROT_WRITE, MirrorSource::kFile);
  if (!mirror) {
    if (mirror.error().code == ENOMEM) {
      return make_error(ENOMEM, "cannot map the ring's data in 2 MiB pages: {}", huge_page_shortage(ring_size));
    }
    return mirror.error();
  }
  data.mirror = std::move(*mirror);
  return data;
}

}  // namespace

Expected<HostRing> HostRing::create(uint64_t ring_size, const std::string& name, RingPages pages) {
  const auto page_size = static_cast<uint32_t>(::sysconf(_SC_PAGESIZE));
  if (ring_size < SRING_MIN_RING_SIZE || (ring_size & (ring_size - 1)) != 0 ||
      ring_size % page_size != 0) {
    return make_error(EINVAL, "ring size {} is not a power of two of at least {} bytes", ring_size,
                      SRING_MIN_RING_SIZE);
  }
  HostRing ring;
  std::optional<HugeData> huge;
  if (pages != RingPages::k4K) {
    if (ring_size < kHugePageSize) {
      if (pages == RingPages::kHuge) {
        return make_error(EINVAL, "a ring of {} KiB is smaller than one 2 MiB page: it cannot use huge pages",
                          ring_size >> 10);
      }
      // The rule, not a failure: said by fallback_reason(), not on stderr.
      ring.fallback_reason_ = fmt::format("a ring of {} KiB is smaller than one 2 MiB page", ring_size >> 10);
    } else if (auto data = create_huge_data(ring_size, name); data) {
      huge = std::move(*data);
    } else if (pages == RingPages::kHuge) {
      return data.error();
    } else {
      ring.fallback_reason_ = data.error().message;
      fmt::print(stderr, "sring: {}; using 4 KiB pages\n", ring.fallback_reason_);
    }
  }
  ring.fd_.reset(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!ring.fd_.valid()) return errno_error("cannot create a memfd for the ring");
  const uint64_t data_offset = uint64_t{SRING_DATA_PGOFF} * page_size;
  // With a data file of its own, the ring file is the two pages only.
  const uint64_t file_size = huge ? data_offset : data_offset + ring_size;
  if (::ftruncate(ring.fd_.get(), static_cast<off_t>(file_size)) != 0) {
    return errno_error("cannot size the ring memfd to {} bytes", file_size);
  }
  // Sealed before anyone else can hold it: nobody, this producer included,
  // can shrink the file under a consumer's mapping (which would kill the
  // consumer with SIGBUS) or change its size at all. ringlib refuses ring
  // files without these seals (docs/abi.md, "Ring files").
  if (::fcntl(ring.fd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return errno_error("cannot seal the ring memfd");
  }
  auto control = map_region(ring.fd_.get(), data_offset, 0, PROT_READ | PROT_WRITE, "control pages");
  if (!control) return control.error();
  ring.control_ = std::move(*control);
  if (huge) {
    ring.data_fd_ = std::move(huge->fd);
    ring.data_map_ = std::move(huge->mirror);
    ring.pages_kind_ = RingPages::kHuge;
  } else {
    auto data = map_mirror(ring.fd_.get(), ring_size, static_cast<off_t>(data_offset), PROT_READ | PROT_WRITE,
                           MirrorSource::kFile);
    if (!data) return data.error();
    ring.data_map_ = std::move(*data);
  }

  auto* base = static_cast<std::byte*>(ring.control_.get());
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
  p.channels = 1;
  p.bits_per_sample = 16;
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

Expected<UniqueFd> HostRing::duplicate_data_fd() const {
  if (!data_fd_.valid()) return UniqueFd();
  UniqueFd copy(::fcntl(data_fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!copy.valid()) return errno_error("cannot duplicate the ring's data descriptor");
  return copy;
}

}  // namespace sring::sim
