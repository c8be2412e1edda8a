// The host side of the DMA model: ivshmem server, guest RAM, and the device
// engine. Every access to BAR2 goes through sring/detail/barriers.hpp's
// helpers and names the access of the guest driver it pairs with
// (include/sring/sring_dma_model.h has the whole table). The guest is not
// trusted: every index and every descriptor is checked before use, and a
// descriptor is copied out of BAR2 once and checked in the copy, so a guest
// that rewrites it meanwhile cannot make the model write anywhere else.
#include "sring/dma/model.hpp"

#include <endian.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include "ringlib/error_format.hpp"
#include "sring/detail/barriers.hpp"
#include "sring/sring_abi.h"
#include "sring/sring_dma_model.h"
#include "sring/sring_pattern.h"

namespace sring::dma {
namespace {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC on Linux
using namespace std::chrono_literals;

constexpr uint64_t kEntries = SRING_DMA_RING_ENTRIES;
constexpr uint64_t kMask = kEntries - 1;
constexpr uint64_t kMaxShmSize = 1ULL << 30;
// Blocks made in one pass of the loop before it looks at the socket and the
// doorbells again: a model far behind schedule still answers a STOP.
constexpr int kMaxBlocksPerPass = 64;
// The loop never sleeps longer than this: a driver that forgot a doorbell is
// still heard, just late.
constexpr auto kIdlePoll = 20ms;

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// The model is BAR2's only writer of its counters: a relaxed load and store
// (no read-modify-write needed). The driver reads them relaxed; the final
// values are ordered by the store-release of state.
void bump(__u64& counter, uint64_t by = 1) { store_relaxed(counter, load_relaxed(counter) + by); }

// One ivshmem server message: an 8-byte little-endian int64, with at most
// one descriptor (docs: ivshmem-spec.txt, "The ivshmem Client-Server
// Protocol"). QEMU reads exactly 8 bytes per message.
Status send_message(int socket, int64_t value, int fd) {
  uint64_t wire = htole64(static_cast<uint64_t>(value));
  iovec iov{&wire, sizeof(wire)};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(header), &fd, sizeof(int));
  }
  const ssize_t n = ::sendmsg(socket, &message, MSG_NOSIGNAL);
  if (n != static_cast<ssize_t>(sizeof(wire))) return errno_error("cannot send to QEMU");
  return ok();
}

}  // namespace

Status check_options(const ModelOptions& options) {
  if (options.socket_path.empty()) return make_error(EINVAL, "--socket is required");
  if (options.socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return make_error(ENAMETOOLONG, "socket path {} is longer than {} bytes", options.socket_path,
                      sizeof(sockaddr_un{}.sun_path) - 1);
  }
  if (options.ram_path.empty()) return make_error(EINVAL, "--ram is required");
  if (options.lowmem == 0 || options.lowmem > kFourGiB) {
    return make_error(EINVAL, "--lowmem {} is not a guest's low RAM size: 1 byte to 4 GiB",
                      options.lowmem);
  }
  if (!is_power_of_two(options.shm_size) || options.shm_size < SRING_DMA_BAR2_MIN_SIZE ||
      options.shm_size > kMaxShmSize) {
    return make_error(EINVAL,
                      "--shm-size {} must be a power of two from {} to {} bytes (ivshmem's BAR2 "
                      "is a power of two)",
                      options.shm_size, SRING_DMA_BAR2_MIN_SIZE, kMaxShmSize);
  }
  if (options.max_rate == 0 || options.max_rate > SRING_MAX_SAMPLE_RATE) {
    return make_error(EINVAL, "--max-rate {} must be from 1 to {} samples/s", options.max_rate,
                      SRING_MAX_SAMPLE_RATE);
  }
  return ok();
}

// ------------------------------------------------------------------------
// Guest RAM
// ------------------------------------------------------------------------

Expected<GuestRam> GuestRam::open(const std::string& path, uint64_t lowmem) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return errno_error("cannot open the guest RAM file {}", path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat the guest RAM file {}", path);
  if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
    return make_error(EINVAL, "guest RAM file {} is not a regular file with data in it", path);
  }
  const size_t length = static_cast<size_t>(st.st_size);
  // Shared: the guest sees every sample the moment it is written, as it
  // would a device's DMA.
  void* addr = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (addr == MAP_FAILED) return errno_error("cannot map the guest RAM file {}", path);
  return GuestRam(Mapping(addr, length), lowmem);
}

uint8_t* GuestRam::translate(uint64_t gpa, uint64_t bytes) const {
  if (bytes == 0) return nullptr;
  uint64_t offset = 0;
  if (gpa < lowmem_) {
    // Low RAM must not run on into the hole: contiguous guest-physical
    // addresses across lowmem are MMIO, not the RAM that follows in the file.
    if (bytes > lowmem_ - gpa) return nullptr;
    offset = gpa;
  } else if (gpa >= kFourGiB) {
    offset = gpa - kFourGiB + lowmem_;
    if (offset < lowmem_) return nullptr;  // wrapped
  } else {
    return nullptr;  // the PCI hole
  }
  if (offset >= mapping_.size() || bytes > mapping_.size() - offset) return nullptr;
  return static_cast<uint8_t*>(mapping_.get()) + offset;
}

// ------------------------------------------------------------------------
// The model
// ------------------------------------------------------------------------

struct Model::Impl {
  ModelOptions options;
  GuestRam ram;
  UniqueFd listener;
  UniqueFd shm;
  Mapping shm_mapping;
  sring_dma_bar2* bar = nullptr;
  // ivshmem eventfds: doorbell[v] the guest rings (the model's vectors,
  // peer 1), vector[v] the model writes to raise the guest's MSI-X vector v.
  std::array<UniqueFd, SRING_DMA_NR_VECTORS> doorbell;
  std::array<UniqueFd, SRING_DMA_NR_VECTORS> vector;
  UniqueFd client;

  // Engine state, the model's own (never read back from BAR2).
  uint32_t state = SRING_DMA_STATE_STOPPED;
  sring_dma_config config{};
  uint32_t block_samples = 0;
  std::vector<std::pair<uint64_t, uint64_t>> windows;  // [start, end), sorted, disjoint
  uint64_t desc_cons = 0;  // mirrors bar->desc_cons, which only we write
  uint64_t comp_prod = 0;  // mirrors bar->comp_prod, which only we write
  uint64_t next_sample = 0;
  uint64_t blocks_made = 0;  // since START: the pacing schedule
  Clock::time_point start_time;
  Clock::time_point stall_until;
  uint64_t burst_blocks = 0;
  uint64_t corrupt_blocks = 0;
  // Consecutive blocks dropped and not yet reported in a DROPPED completion.
  uint64_t pending_first = 0;
  uint32_t pending_blocks = 0;
  // Completions posted since the last completion interrupt.
  uint32_t unsignalled = 0;
  Clock::time_point first_unsignalled;
  uint64_t fault_seen = 0;
  std::vector<uint16_t> samples;

  Impl(ModelOptions o, GuestRam r) : options(std::move(o)), ram(std::move(r)) {}

  Status handshake();
  Status run();
  void raise(uint32_t v);
  void raise_completion();
  void handle_control(Clock::time_point now);
  void handle_fault(Clock::time_point now);
  void start_stream(Clock::time_point now);
  void stop_stream(uint32_t new_state, uint32_t error, Clock::time_point now);
  void run_blocks(Clock::time_point now);
  bool make_block(Clock::time_point now);
  void add_drop(uint64_t first, __u64& reason);
  bool flush_drops(Clock::time_point now);
  void post_drops(Clock::time_point now);
  void post(const sring_dma_completion& completion, Clock::time_point now);
  bool descriptors_available(uint64_t* available);
  bool completion_space(uint64_t* space);
  uint32_t check_descriptor(const sring_dma_desc& desc, std::array<uint8_t*, SRING_DMA_MAX_SEGMENTS>& dst);
  bool in_window(uint64_t addr, uint64_t bytes) const;
  Clock::time_point due(uint64_t k) const;
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Expected<Model> Model::create(const ModelOptions& options) {
  if (auto checked = check_options(options); !checked) return checked.error();
  auto ram = GuestRam::open(options.ram_path, options.lowmem);
  if (!ram) return ram.error();
  auto impl = std::make_unique<Impl>(options, std::move(*ram));

  // BAR2: a memfd QEMU maps as the ivshmem device's shared memory. Its size
  // is what QEMU makes BAR2, so it must be a power of two (checked above).
  impl->shm.reset(::memfd_create("sring-dma-model-bar2", MFD_CLOEXEC));
  if (!impl->shm.valid()) return errno_error("cannot create the BAR2 memfd");
  if (::ftruncate(impl->shm.get(), static_cast<off_t>(options.shm_size)) != 0) {
    return errno_error("cannot size the BAR2 memfd to {} bytes", options.shm_size);
  }
  void* addr = ::mmap(nullptr, options.shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, impl->shm.get(), 0);
  if (addr == MAP_FAILED) return errno_error("cannot map BAR2");
  impl->shm_mapping = Mapping(addr, options.shm_size);
  impl->bar = static_cast<sring_dma_bar2*>(addr);
  // Identity: plain stores, published to QEMU by the sendmsg() of the memfd
  // (no guest can see BAR2 before that).
  sring_dma_bar2* bar = impl->bar;
  bar->magic = SRING_DMA_MAGIC;
  bar->version = SRING_DMA_VERSION;
  bar->layout_bytes = sizeof(sring_dma_bar2);
  bar->ring_entries = SRING_DMA_RING_ENTRIES;
  bar->max_segments = SRING_DMA_MAX_SEGMENTS;
  bar->max_windows = SRING_DMA_MAX_WINDOWS;
  bar->bar2_bytes = options.shm_size;
  bar->max_sample_rate = options.max_rate;

  for (auto* set : {&impl->doorbell, &impl->vector}) {
    for (auto& fd : *set) {
      // Non-blocking: the loop reads a doorbell only when poll says so, and
      // a write to a guest vector must never block the device.
      fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (!fd.valid()) return errno_error("cannot create an eventfd");
    }
  }

  // Listen now: QEMU must find the server listening before it starts.
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, options.socket_path.c_str(), options.socket_path.size() + 1);
  struct stat st {};
  if (::lstat(options.socket_path.c_str(), &st) == 0) {
    // A stale socket of an earlier run goes; anything else is not ours.
    if (!S_ISSOCK(st.st_mode)) {
      return make_error(EEXIST, "{} exists and is not a socket: not removing it", options.socket_path);
    }
    ::unlink(options.socket_path.c_str());
  }
  impl->listener.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!impl->listener.valid()) return errno_error("cannot create a Unix socket");
  if (::bind(impl->listener.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    return errno_error("cannot bind {}", options.socket_path);
  }
  if (::listen(impl->listener.get(), 1) != 0) return errno_error("cannot listen on {}", options.socket_path);
  return Model(std::move(impl));
}

Status Model::serve() {
  Impl& m = *impl_;
  pollfd pfd{m.listener.get(), POLLIN, 0};
  const int timeout = m.options.accept_timeout.count() < 0
                          ? -1
                          : static_cast<int>(std::min<int64_t>(m.options.accept_timeout.count(), INT32_MAX));
  int n = 0;
  do {
    n = ::poll(&pfd, 1, timeout);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_error("poll while waiting for QEMU");
  if (n == 0) {
    return make_error(ETIMEDOUT, "no QEMU connected to {} within {} ms", m.options.socket_path,
                      m.options.accept_timeout.count());
  }
  m.client.reset(::accept4(m.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!m.client.valid()) return errno_error("accept on {} failed", m.options.socket_path);
  // One guest per model: nobody else may connect (a second QEMU would get
  // no handshake and hang), so stop listening.
  m.listener.reset();
  ::unlink(m.options.socket_path.c_str());
  if (auto sent = m.handshake(); !sent) return sent.error();
  return m.run();
}

Status Model::Impl::handshake() {
  constexpr int64_t kGuestId = 0;
  constexpr int64_t kModelId = 1;
  const int fd = client.get();
  // 1. protocol version, 2. the guest's ID, 3. -1 with the shared memory.
  if (auto s = send_message(fd, 0, -1); !s) return s;
  if (auto s = send_message(fd, kGuestId, -1); !s) return s;
  if (auto s = send_message(fd, -1, shm.get()); !s) return s;
  // 4. peer 1 (the model) exists: one eventfd per vector, to ring it.
  for (auto& e : doorbell) {
    if (auto s = send_message(fd, kModelId, e.get()); !s) return s;
  }
  // 5. the guest's own vectors: the model writes them to interrupt it.
  for (auto& e : vector) {
    if (auto s = send_message(fd, kGuestId, e.get()); !s) return s;
  }
  return ok();
}

void Model::Impl::raise(uint32_t v) {
  const uint64_t one = 1;
  // Can only fail when the counter would overflow (never in practice): the
  // guest then has a pending interrupt anyway.
  [[maybe_unused]] ssize_t n = ::write(vector[v].get(), &one, sizeof(one));
}

void Model::Impl::raise_completion() {
  unsignalled = 0;
  bump(bar->counters.interrupts);
  raise(SRING_DMA_VECTOR_COMPLETION);
}

Clock::time_point Model::Impl::due(uint64_t k) const {
  // (k + 1) * samples * 1e9 overflows 64 bits after days: 128 bits.
  const unsigned __int128 ns = static_cast<unsigned __int128>(k + 1) * block_samples * 1000000000ULL /
                               config.sample_rate;
  return start_time + std::chrono::nanoseconds(static_cast<int64_t>(ns));
}

bool Model::Impl::descriptors_available(uint64_t* available) {
  // Pairs with the driver's smp_store_release(desc_prod) after it filled
  // the entries: the entries up to it are complete.
  const uint64_t prod = load_acquire(bar->desc_prod);
  *available = prod - desc_cons;
  if (*available > kEntries) {
    stop_stream(SRING_DMA_STATE_FAILED, SRING_DMA_ERR_BAD_INDEX, Clock::now());
    return false;
  }
  return true;
}

bool Model::Impl::completion_space(uint64_t* space) {
  // Pairs with the driver's smp_store_release(comp_cons) after it read the
  // entries: those below it may be overwritten.
  const uint64_t used = comp_prod - load_acquire(bar->comp_cons);
  if (used > kEntries) {
    stop_stream(SRING_DMA_STATE_FAILED, SRING_DMA_ERR_BAD_INDEX, Clock::now());
    return false;
  }
  *space = kEntries - used;
  return true;
}

void Model::Impl::post(const sring_dma_completion& completion, Clock::time_point now) {
  // Plain stores into the entry: the driver reads it only after its
  // load-acquire of comp_prod, which the store-release below publishes.
  bar->comp[comp_prod & kMask] = completion;
  ++comp_prod;
  store_release(bar->comp_prod, comp_prod);
  if (unsignalled++ == 0) first_unsignalled = now;
  if (unsignalled >= config.coalesce_blocks) raise_completion();
}

void Model::Impl::add_drop(uint64_t first, __u64& reason) {
  if (pending_blocks == 0) pending_first = first;
  ++pending_blocks;
  bump(bar->counters.blocks_dropped);
  bump(bar->counters.samples_dropped, block_samples);
  bump(reason);
}

// Reports the pending drops in one DROPPED completion if an entry is free.
// Returns false if the stream failed meanwhile.
bool Model::Impl::flush_drops(Clock::time_point now) {
  if (pending_blocks == 0) return true;
  uint64_t space = 0;
  if (!completion_space(&space)) return false;
  if (space != 0) post_drops(now);  // else later: the drops stay pending, in order
  return true;
}

// The caller made sure an entry is free.
void Model::Impl::post_drops(Clock::time_point now) {
  sring_dma_completion c{};
  c.tag = 0;
  c.first_sample = pending_first;
  c.timestamp_ns = monotonic_ns();
  c.samples = block_samples;
  c.blocks = pending_blocks;
  c.flags = SRING_DMA_COMP_DROPPED;
  pending_blocks = 0;
  post(c, now);
}

bool Model::Impl::in_window(uint64_t addr, uint64_t bytes) const {
  // windows: sorted by start, disjoint (merged at START): the only window
  // that can hold addr is the last one starting at or below it.
  auto it = std::upper_bound(windows.begin(), windows.end(), addr,
                             [](uint64_t a, const std::pair<uint64_t, uint64_t>& w) { return a < w.first; });
  if (it == windows.begin()) return false;
  --it;
  return addr >= it->first && bytes <= it->second - addr && addr < it->second;
}

uint32_t Model::Impl::check_descriptor(const sring_dma_desc& desc,
                                       std::array<uint8_t*, SRING_DMA_MAX_SEGMENTS>& dst) {
  if (desc.nr_segments == 0 || desc.nr_segments > SRING_DMA_MAX_SEGMENTS) return SRING_DMA_ERR_BAD_SEGMENTS;
  uint64_t total = 0;
  for (uint32_t i = 0; i < desc.nr_segments; ++i) {
    const sring_dma_segment& s = desc.segments[i];
    if (s.bytes == 0 || (s.bytes & 1) != 0) return SRING_DMA_ERR_BAD_SEGMENTS;
    total += s.bytes;
  }
  if (total != static_cast<uint64_t>(block_samples) * 2) return SRING_DMA_ERR_BAD_SEGMENTS;
  for (uint32_t i = 0; i < desc.nr_segments; ++i) {
    const sring_dma_segment& s = desc.segments[i];
    dst[i] = ram.translate(s.addr, s.bytes);
    if (dst[i] == nullptr) {
      bump(bar->counters.bad_addresses);
      return SRING_DMA_ERR_NOT_IN_RAM;
    }
    if ((config.flags & SRING_DMA_CFG_CHECKER) && !in_window(s.addr, s.bytes)) {
      bump(bar->counters.window_faults);
      return SRING_DMA_ERR_NOT_IN_WINDOW;
    }
  }
  return SRING_DMA_ERR_NONE;
}

// The "ADC" makes one block: into the next posted descriptor, or dropped.
// Returns false if the stream ended (FAILED on a driver's bad index).
bool Model::Impl::make_block(Clock::time_point now) {
  const uint64_t first = next_sample;
  // The index runs on whatever happens to the block, as in the kernel's
  // simulated device: every sample is verifiable from its index alone.
  next_sample += block_samples;
  ++blocks_made;
  bump(bar->counters.blocks_due);

  uint64_t available = 0;
  uint64_t space = 0;
  if (!descriptors_available(&available) || !completion_space(&space)) return false;
  // One entry for the pending drops (reported first: completions are in
  // the order the blocks were made), one for this block.
  const uint64_t needed = 1 + (pending_blocks != 0 ? 1 : 0);
  if (available == 0) {
    add_drop(first, bar->counters.no_descriptor);
    return true;
  }
  if (space < needed) {
    // The descriptor stays posted for a later block.
    add_drop(first, bar->counters.completion_full);
    return true;
  }
  if (!flush_drops(now)) return false;

  // Copy the descriptor out once (after the acquire of desc_prod above) and
  // check only the copy; then hand the entry back with a store-release that
  // pairs with the driver's smp_load_acquire(desc_cons) before it reuses it.
  sring_dma_desc desc;
  std::memcpy(&desc, &bar->desc[desc_cons & kMask], sizeof(desc));
  ++desc_cons;
  store_release(bar->desc_cons, desc_cons);
  bump(bar->counters.descriptors_taken);

  sring_dma_completion c{};
  c.tag = desc.tag;
  c.first_sample = first;
  c.samples = block_samples;
  c.blocks = 1;
  std::array<uint8_t*, SRING_DMA_MAX_SEGMENTS> dst{};
  const uint32_t error = check_descriptor(desc, dst);
  if (error != SRING_DMA_ERR_NONE) {
    // Refused: not a byte written, and the driver is told (never a silent
    // write, never a silent loss).
    bump(bar->counters.descriptors_refused);
    bump(bar->counters.blocks_dropped);
    bump(bar->counters.samples_dropped, block_samples);
    c.flags = SRING_DMA_COMP_ERROR;
    c.error = error;
    c.timestamp_ns = monotonic_ns();
    post(c, now);
    return true;
  }
  sring_pattern_fill(samples.data(), first, block_samples, config.pattern_seed);
  c.flags = SRING_DMA_COMP_OK;
  if (corrupt_blocks != 0) {
    --corrupt_blocks;
    samples[block_samples / 2] ^= 0x0100;
    c.flags |= SRING_DMA_COMP_CORRUPTED;
    bump(bar->counters.corrupted);
  }
  // The "DMA": plain copies into guest RAM, published to the driver by the
  // store-release of comp_prod in post().
  const auto* src = reinterpret_cast<const uint8_t*>(samples.data());
  for (uint32_t i = 0; i < desc.nr_segments; ++i) {
    std::memcpy(dst[i], src, desc.segments[i].bytes);
    src += desc.segments[i].bytes;
  }
  bump(bar->counters.blocks_written);
  bump(bar->counters.samples_written, block_samples);
  c.timestamp_ns = monotonic_ns();
  post(c, now);
  return true;
}

void Model::Impl::run_blocks(Clock::time_point now) {
  for (int made = 0; made < kMaxBlocksPerPass && state == SRING_DMA_STATE_RUNNING; ++made) {
    if (now < stall_until) break;
    if (config.sample_rate == 0) {
      // As fast as descriptors come: a block is made only when it can be
      // written, so nothing is ever dropped.
      uint64_t available = 0;
      uint64_t space = 0;
      if (!descriptors_available(&available) || !completion_space(&space)) return;
      if (available == 0 || space == 0) break;
    } else if (burst_blocks != 0) {
      --burst_blocks;  // ahead of the schedule: it slides by one block
    } else if (now < due(blocks_made)) {
      break;
    }
    if (!make_block(now)) return;
  }
  if (state == SRING_DMA_STATE_RUNNING) flush_drops(now);
}

void Model::Impl::start_stream(Clock::time_point now) {
  // After the load-acquire of control (handle_control), which pairs with
  // the driver's smp_store_release(control): config and windows are
  // complete. Copied once; later writes by the driver are not looked at.
  std::memcpy(&config, &bar->config, sizeof(config));
  auto refuse = [&](uint32_t error) { stop_stream(SRING_DMA_STATE_FAILED, error, now); };
  const sring_dma_config& c = config;
  if (c.block_bytes % SRING_DMA_BLOCK_ALIGN != 0 || c.block_bytes < SRING_DMA_MIN_BLOCK_BYTES ||
      c.block_bytes > SRING_DMA_MAX_BLOCK_BYTES || c.sample_rate > options.max_rate ||
      c.coalesce_blocks == 0 || c.coalesce_blocks > kEntries ||
      c.coalesce_timeout_us > SRING_DMA_MAX_COALESCE_TIMEOUT_US ||
      (c.coalesce_blocks > 1 && c.coalesce_timeout_us == 0) || (c.flags & ~SRING_DMA_CFG_KNOWN) != 0) {
    // K > 1 without a timeout would leave the last completions of a stream
    // without an interrupt.
    return refuse(SRING_DMA_ERR_BAD_CONFIG);
  }
  windows.clear();
  if (c.flags & SRING_DMA_CFG_CHECKER) {
    if (c.nr_windows == 0 || c.nr_windows > SRING_DMA_MAX_WINDOWS) return refuse(SRING_DMA_ERR_BAD_WINDOW);
    for (uint32_t i = 0; i < c.nr_windows; ++i) {
      const sring_dma_window w = bar->windows[i];
      if (w.bytes == 0 || w.addr + w.bytes < w.addr) return refuse(SRING_DMA_ERR_BAD_WINDOW);
      windows.emplace_back(w.addr, w.addr + w.bytes);
    }
    // Sorted and merged where they touch, so one binary search decides.
    std::sort(windows.begin(), windows.end());
    std::vector<std::pair<uint64_t, uint64_t>> merged;
    for (const auto& w : windows) {
      if (!merged.empty() && w.first <= merged.back().second) {
        merged.back().second = std::max(merged.back().second, w.second);
      } else {
        merged.push_back(w);
      }
    }
    windows = std::move(merged);
  }
  uint64_t available = 0;
  uint64_t space = 0;
  // Indexes the driver left out of range at a START: FAILED, BAD_INDEX.
  if (!descriptors_available(&available) || !completion_space(&space)) return;

  block_samples = (c.block_bytes - SRING_BLOCK_HEADER_SIZE) / 2;
  samples.assign(block_samples, 0);
  next_sample = c.first_sample;
  blocks_made = 0;
  start_time = now;
  stall_until = Clock::time_point{};
  burst_blocks = 0;
  corrupt_blocks = 0;
  pending_blocks = 0;
  unsignalled = 0;
  store_relaxed(bar->error, SRING_DMA_ERR_NONE);
  store_relaxed(bar->start_count, load_relaxed(bar->start_count) + 1);
  state = SRING_DMA_STATE_RUNNING;
  // Pairs with the driver's smp_load_acquire(state).
  store_release(bar->state, state);
  raise(SRING_DMA_VECTOR_STATE);
}

// Ends a stream (or refuses one): when state is published as STOPPED or
// FAILED the model writes nothing more into guest RAM and posts nothing, so
// the driver may give every slot it posted back to sring. Descriptors still
// posted are abandoned: desc_cons moves to desc_prod so the driver sees all
// of them taken back, none written.
void Model::Impl::stop_stream(uint32_t new_state, uint32_t error, Clock::time_point now) {
  const bool was_running = state == SRING_DMA_STATE_RUNNING;
  // First: nothing below may start another stop (no index is re-checked).
  state = new_state;
  if (was_running && pending_blocks != 0) {
    // Report the drops if the driver left room; else count them unreported.
    // Pairs with the driver's smp_store_release(comp_cons).
    const uint64_t used = comp_prod - load_acquire(bar->comp_cons);
    if (used < kEntries) post_drops(now);
    if (pending_blocks != 0) bump(bar->counters.drops_unreported, pending_blocks);
    pending_blocks = 0;
  }
  // Pairs with the driver's smp_store_release(desc_prod).
  const uint64_t prod = load_acquire(bar->desc_prod);
  if (prod - desc_cons <= kEntries && prod != desc_cons) {
    bump(bar->counters.descriptors_abandoned, prod - desc_cons);
    desc_cons = prod;
    // Pairs with the driver's smp_load_acquire(desc_cons).
    store_release(bar->desc_cons, desc_cons);
  }
  if (unsignalled != 0) raise_completion();
  store_relaxed(bar->error, error);
  // Pairs with the driver's smp_load_acquire(state): the final indexes and
  // counters above are visible to a driver that sees this state.
  store_release(bar->state, new_state);
  raise(SRING_DMA_VECTOR_STATE);
}

void Model::Impl::handle_control(Clock::time_point now) {
  // Pairs with the driver's smp_store_release(control) after it wrote the
  // config and the windows.
  const uint32_t control = load_acquire(bar->control);
  switch (state) {
    case SRING_DMA_STATE_STOPPED:
      if (control == SRING_DMA_CONTROL_START) start_stream(now);
      break;
    case SRING_DMA_STATE_RUNNING:
      if (control == SRING_DMA_CONTROL_STOP) {
        stop_stream(SRING_DMA_STATE_STOPPED, SRING_DMA_ERR_NONE, now);
      } else if (control != SRING_DMA_CONTROL_START) {
        stop_stream(SRING_DMA_STATE_FAILED, SRING_DMA_ERR_BAD_CONTROL, now);
      }
      break;
    case SRING_DMA_STATE_FAILED:
      // The driver acknowledges a failure with STOP; error stays readable.
      if (control == SRING_DMA_CONTROL_STOP) {
        state = SRING_DMA_STATE_STOPPED;
        store_release(bar->state, state);
        raise(SRING_DMA_VECTOR_STATE);
      }
      break;
  }
}

void Model::Impl::handle_fault(Clock::time_point now) {
  // Pairs with the driver's smp_store_release(fault.request_seq) after it
  // wrote kind and arg.
  const uint64_t seq = load_acquire(bar->fault.request_seq);
  if (seq == fault_seen) return;
  fault_seen = seq;
  const uint32_t kind = load_relaxed(bar->fault.kind);
  const uint64_t arg = load_relaxed(bar->fault.arg);
  switch (kind) {
    case SRING_DMA_FAULT_STALL:
      stall_until = now + std::chrono::microseconds(std::min<uint64_t>(arg, SRING_MAX_FAULT_STALL_US));
      break;
    case SRING_DMA_FAULT_BURST:
      burst_blocks += std::min<uint64_t>(arg, SRING_MAX_FAULT_BLOCKS);
      break;
    case SRING_DMA_FAULT_CORRUPT:
      corrupt_blocks += std::min<uint64_t>(arg, SRING_MAX_FAULT_BLOCKS);
      break;
    case SRING_DMA_FAULT_FAIL:
      if (state != SRING_DMA_STATE_FAILED) stop_stream(SRING_DMA_STATE_FAILED, SRING_DMA_ERR_INJECTED, now);
      break;
    default:
      break;  // unknown: acknowledged, nothing done
  }
  bump(bar->counters.faults);
  // Pairs with the driver's smp_load_acquire(fault.ack_seq).
  store_release(bar->fault.ack_seq, seq);
}

Status Model::Impl::run() {
  std::array<pollfd, 1 + SRING_DMA_NR_VECTORS> pfds{};
  pfds[0] = {client.get(), POLLIN, 0};
  for (uint32_t v = 0; v < SRING_DMA_NR_VECTORS; ++v) pfds[1 + v] = {doorbell[v].get(), POLLIN, 0};
  for (;;) {
    Clock::time_point now = Clock::now();
    handle_fault(now);
    handle_control(now);
    if (state == SRING_DMA_STATE_RUNNING) run_blocks(now);
    now = Clock::now();
    if (unsignalled != 0 &&
        now >= first_unsignalled + std::chrono::microseconds(config.coalesce_timeout_us)) {
      raise_completion();
    }

    Clock::time_point wake = now + kIdlePoll;
    if (state == SRING_DMA_STATE_RUNNING) {
      if (now < stall_until) {
        wake = std::min(wake, stall_until);
      } else if (burst_blocks != 0) {
        wake = now;
      } else if (config.sample_rate != 0) {
        wake = std::min(wake, due(blocks_made));
      }
    }
    if (unsignalled != 0) {
      wake = std::min(wake, first_unsignalled + std::chrono::microseconds(config.coalesce_timeout_us));
    }
    const auto wait = std::max<Clock::duration>(wake - now, Clock::duration::zero());
    const auto wait_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    const timespec ts{static_cast<time_t>(wait_ns / 1000000000), static_cast<long>(wait_ns % 1000000000)};
    const int n = ::ppoll(pfds.data(), pfds.size(), &ts, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("poll in the device loop");
    }
    if (pfds[0].revents != 0) {
      char buffer[64];
      const ssize_t got = ::recv(client.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        // QEMU is gone, and the guest's RAM with it: write nothing more.
        if (state == SRING_DMA_STATE_RUNNING) state = SRING_DMA_STATE_STOPPED;
        if (got == 0) return ok();
        return errno_error("the QEMU socket failed");
      }
      // QEMU sends nothing after the handshake; ignore whatever came.
    }
    for (uint32_t v = 0; v < SRING_DMA_NR_VECTORS; ++v) {
      if (pfds[1 + v].revents & POLLIN) {
        uint64_t kicks = 0;
        if (::read(doorbell[v].get(), &kicks, sizeof(kicks)) == sizeof(kicks)) {
          bump(bar->counters.doorbells, kicks);
        }
      }
    }
  }
}

}  // namespace sring::dma
