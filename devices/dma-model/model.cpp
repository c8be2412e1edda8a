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
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

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
  return GuestRam(Mapping(addr, length), lowmem, st.st_dev, st.st_ino);
}

Status GuestRam::still_mapped(const std::string& path) const {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_error("the guest RAM file {} is gone", path);
  if (st.st_dev != device_ || st.st_ino != inode_ || static_cast<uint64_t>(st.st_size) != mapping_.size()) {
    return make_error(ESTALE, "the guest RAM file {} is not the one the model mapped (another QEMU?): restart the model",
                      path);
  }
  return ok();
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
// One connection: BAR2, eventfds, the socket and the engine
// ------------------------------------------------------------------------

namespace {

// Refused descriptors printed per guest before they are only counted: a
// driver bug refuses every descriptor it posts, and a log of thousands of
// identical lines hides the first, which is the one that says what is wrong.
constexpr uint64_t kPrintedRefusals = 20;
// FAILED lines per guest: each needs a STOP and a START from the driver, but
// a driver that retries a bad START in a loop must not flood the log either.
constexpr uint64_t kPrintedFailures = 100;

const char* error_name(uint32_t error) {
  switch (error) {
    case SRING_DMA_ERR_NONE: return "SRING_DMA_ERR_NONE";
    case SRING_DMA_ERR_BAD_CONFIG: return "SRING_DMA_ERR_BAD_CONFIG";
    case SRING_DMA_ERR_BAD_WINDOW: return "SRING_DMA_ERR_BAD_WINDOW";
    case SRING_DMA_ERR_BAD_INDEX: return "SRING_DMA_ERR_BAD_INDEX";
    case SRING_DMA_ERR_INJECTED: return "SRING_DMA_ERR_INJECTED";
    case SRING_DMA_ERR_BAD_CONTROL: return "SRING_DMA_ERR_BAD_CONTROL";
    case SRING_DMA_ERR_DRIVER_STALLED: return "SRING_DMA_ERR_DRIVER_STALLED";
    case SRING_DMA_ERR_NOT_IN_RAM: return "SRING_DMA_ERR_NOT_IN_RAM";
    case SRING_DMA_ERR_NOT_IN_WINDOW: return "SRING_DMA_ERR_NOT_IN_WINDOW";
    case SRING_DMA_ERR_BAD_SEGMENTS: return "SRING_DMA_ERR_BAD_SEGMENTS";
    default: return "unknown error";
  }
}

// One log line: to the caller's sink, or to stderr in one write(2) so that
// lines of processes sharing the harness's log do not interleave mid-line.
void emit(const ModelOptions& options, const std::string& line) {
  if (options.log) {
    options.log(line);
    return;
  }
  const std::string text = line + "\n";
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
}

// Reports of one kind printed up to a limit, then counted.
class ReportBudget {
 public:
  explicit ReportBudget(uint64_t limit) : limit_(limit) {}
  // True if this report is to be printed; false if only counted.
  bool take() {
    if (printed_ < limit_) {
      ++printed_;
      return true;
    }
    ++unprinted_;
    return false;
  }
  // The report just taken was the last one printed.
  bool used_up() const { return printed_ == limit_ && unprinted_ == 0; }
  // Counted and not printed since the last call.
  uint64_t take_unprinted() { return std::exchange(unprinted_, 0); }

 private:
  uint64_t limit_;
  uint64_t printed_ = 0;
  uint64_t unprinted_ = 0;
};

// Why check_descriptor() refused a descriptor: the error and the segment at
// fault (-1: the descriptor as a whole).
struct Refusal {
  uint32_t error = SRING_DMA_ERR_NONE;
  int segment = -1;
};

}  // namespace

// Everything that lives as long as one QEMU connection. A new connection (a
// re-plugged device) gets a new one: nothing of an earlier guest's BAR2,
// descriptors, stream or pending faults survives into it, and the model
// cannot write guest RAM for a connection that has ended because its engine
// is gone with it.
class Connection {
 public:
  enum class Ending { kDisconnected, kStopRequested };

  // BAR2 (identity written, the rest zero: state STOPPED, indexes and
  // counters 0) and the eventfds. `options` and `ram` outlive the object.
  static Expected<std::unique_ptr<Connection>> create(const ModelOptions& options, const GuestRam& ram);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The handshake on `client`, then the device until QEMU closes the socket
  // (kDisconnected), stop_fd becomes readable (kStopRequested) or the
  // socket fails (an error).
  Expected<Ending> serve(UniqueFd client, uint64_t number, int stop_fd);

 private:
  Connection(const ModelOptions& options, const GuestRam& ram) : options_(options), ram_(ram) {}

  template <typename... Args>
  void say(fmt::format_string<Args...> format, Args&&... args) {
    emit(options_, fmt::format("sring-dma-model: guest {}: {}", number_,
                               fmt::format(format, std::forward<Args>(args)...)));
  }

  Status handshake();
  Expected<Ending> run(int stop_fd);
  void raise(uint32_t v);
  void raise_completion();
  void handle_control(Clock::time_point now);
  void act_on_control(uint32_t control, Clock::time_point now);
  void handle_fault(Clock::time_point now);
  void start_stream(Clock::time_point now);
  void stop_stream(uint32_t new_state, uint32_t error, Clock::time_point now, const std::string& why = {});
  void run_blocks(Clock::time_point now);
  bool make_block(Clock::time_point now);
  void add_drop(uint64_t first, __u64& reason);
  bool flush_drops(Clock::time_point now);
  void post_drops(Clock::time_point now);
  void post(const sring_dma_completion& completion, Clock::time_point now);
  bool descriptors_available(uint64_t* available);
  bool completion_space(uint64_t* space);
  Refusal check_descriptor(const sring_dma_desc& desc, std::array<uint8_t*, SRING_DMA_MAX_SEGMENTS>& dst);
  bool in_window(uint64_t addr, uint64_t bytes) const;
  void report_refusal(const sring_dma_desc& desc, const Refusal& refusal, uint64_t first);
  void report_unprinted_refusals();
  Clock::time_point due(uint64_t k) const;

  const ModelOptions& options_;
  const GuestRam& ram_;
  uint64_t number_ = 0;  // for the log: connections counted from 1
  UniqueFd client_;
  UniqueFd shm_;
  Mapping shm_mapping_;
  sring_dma_bar2* bar_ = nullptr;
  // ivshmem eventfds: doorbell[v] the guest rings (the model's vectors,
  // peer 1), vector[v] the model writes to raise the guest's MSI-X vector v.
  std::array<UniqueFd, SRING_DMA_NR_VECTORS> doorbell_;
  std::array<UniqueFd, SRING_DMA_NR_VECTORS> vector_;

  // Engine state, the model's own (never read back from BAR2).
  uint32_t state_ = SRING_DMA_STATE_STOPPED;
  sring_dma_config config_{};
  uint32_t block_samples_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> windows_;  // [start, end), sorted, disjoint
  uint64_t desc_cons_ = 0;  // mirrors bar_->desc_cons, which only we write
  uint64_t comp_prod_ = 0;  // mirrors bar_->comp_prod, which only we write
  uint64_t next_sample_ = 0;
  uint64_t blocks_made_ = 0;  // since START: the pacing schedule
  Clock::time_point start_time_;
  Clock::time_point stall_until_;
  uint64_t burst_blocks_ = 0;
  uint64_t corrupt_blocks_ = 0;
  // SRING_DMA_FAULT_SLOW_STOP: armed with its length (0: not armed), then
  // running until slow_stop_until_.
  uint64_t slow_stop_us_ = 0;
  bool slow_stopping_ = false;
  Clock::time_point slow_stop_until_;
  // Consecutive blocks dropped and not yet reported in a DROPPED completion.
  uint64_t pending_first_ = 0;
  uint32_t pending_blocks_ = 0;
  // Completions posted since the last completion interrupt.
  uint32_t unsignalled_ = 0;
  Clock::time_point first_unsignalled_;
  uint64_t fault_seen_ = 0;
  std::vector<uint16_t> samples_;
  ReportBudget refusal_reports_{kPrintedRefusals};
  ReportBudget failure_reports_{kPrintedFailures};
};

Expected<std::unique_ptr<Connection>> Connection::create(const ModelOptions& options, const GuestRam& ram) {
  std::unique_ptr<Connection> c(new Connection(options, ram));
  // BAR2: a memfd QEMU maps as the ivshmem device's shared memory. Its size
  // is what QEMU makes BAR2, so it must be a power of two (checked by
  // check_options). A new memfd reads as zeros: STOPPED, every index and
  // counter 0, no fault requested.
  c->shm_.reset(::memfd_create("sring-dma-model-bar2", MFD_CLOEXEC));
  if (!c->shm_.valid()) return errno_error("cannot create the BAR2 memfd");
  if (::ftruncate(c->shm_.get(), static_cast<off_t>(options.shm_size)) != 0) {
    return errno_error("cannot size the BAR2 memfd to {} bytes", options.shm_size);
  }
  void* addr = ::mmap(nullptr, options.shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->shm_.get(), 0);
  if (addr == MAP_FAILED) return errno_error("cannot map BAR2");
  c->shm_mapping_ = Mapping(addr, options.shm_size);
  c->bar_ = static_cast<sring_dma_bar2*>(addr);
  // Identity: plain stores, published to QEMU by the sendmsg() of the memfd
  // (no guest can see BAR2 before that).
  sring_dma_bar2* bar = c->bar_;
  bar->magic = SRING_DMA_MAGIC;
  bar->version = SRING_DMA_VERSION;
  bar->layout_bytes = sizeof(sring_dma_bar2);
  bar->ring_entries = SRING_DMA_RING_ENTRIES;
  bar->max_segments = SRING_DMA_MAX_SEGMENTS;
  bar->max_windows = SRING_DMA_MAX_WINDOWS;
  bar->bar2_bytes = options.shm_size;
  bar->max_sample_rate = options.max_rate;

  for (auto* set : {&c->doorbell_, &c->vector_}) {
    for (auto& fd : *set) {
      // Non-blocking: the loop reads a doorbell only when poll says so, and
      // a write to a guest vector must never block the device.
      fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (!fd.valid()) return errno_error("cannot create an eventfd");
    }
  }
  return c;
}

Expected<Connection::Ending> Connection::serve(UniqueFd client, uint64_t number, int stop_fd) {
  client_ = std::move(client);
  number_ = number;
  if (auto sent = handshake(); !sent) return sent.error();
  auto ended = run(stop_fd);
  // A stream cut off by the disconnect still owes its count.
  report_unprinted_refusals();
  return ended;
}

Status Connection::handshake() {
  constexpr int64_t kGuestId = 0;
  constexpr int64_t kModelId = 1;
  const int fd = client_.get();
  // 1. protocol version, 2. the guest's ID, 3. -1 with the shared memory.
  if (auto s = send_message(fd, 0, -1); !s) return s;
  if (auto s = send_message(fd, kGuestId, -1); !s) return s;
  if (auto s = send_message(fd, -1, shm_.get()); !s) return s;
  // 4. peer 1 (the model) exists: one eventfd per vector, to ring it.
  for (auto& e : doorbell_) {
    if (auto s = send_message(fd, kModelId, e.get()); !s) return s;
  }
  // 5. the guest's own vectors: the model writes them to interrupt it.
  for (auto& e : vector_) {
    if (auto s = send_message(fd, kGuestId, e.get()); !s) return s;
  }
  return ok();
}

void Connection::raise(uint32_t v) {
  const uint64_t one = 1;
  // Can only fail when the counter would overflow (never in practice): the
  // guest then has a pending interrupt anyway.
  [[maybe_unused]] ssize_t n = ::write(vector_[v].get(), &one, sizeof(one));
}

void Connection::raise_completion() {
  unsignalled_ = 0;
  bump(bar_->counters.interrupts);
  raise(SRING_DMA_VECTOR_COMPLETION);
}

Clock::time_point Connection::due(uint64_t k) const {
  // (k + 1) * samples * 1e9 overflows 64 bits after days: 128 bits.
  const unsigned __int128 ns = static_cast<unsigned __int128>(k + 1) * block_samples_ * 1000000000ULL /
                               config_.sample_rate;
  return start_time_ + std::chrono::nanoseconds(static_cast<int64_t>(ns));
}

bool Connection::descriptors_available(uint64_t* available) {
  // Pairs with the driver's smp_store_release(desc_prod) after it filled
  // the entries: the entries up to it are complete.
  const uint64_t prod = load_acquire(bar_->desc_prod);
  *available = prod - desc_cons_;
  if (*available > kEntries) {
    stop_stream(SRING_DMA_STATE_FAILED, SRING_DMA_ERR_BAD_INDEX, Clock::now(),
                fmt::format("desc_prod {} is not within {} of desc_cons {}", prod, kEntries, desc_cons_));
    return false;
  }
  return true;
}

bool Connection::completion_space(uint64_t* space) {
  // Pairs with the driver's smp_store_release(comp_cons) after it read the
  // entries: those below it may be overwritten.
  const uint64_t cons = load_acquire(bar_->comp_cons);
  const uint64_t used = comp_prod_ - cons;
  if (used > kEntries) {
    stop_stream(SRING_DMA_STATE_FAILED, SRING_DMA_ERR_BAD_INDEX, Clock::now(),
                fmt::format("comp_cons {} is not within {} below comp_prod {}", cons, kEntries, comp_prod_));
    return false;
  }
  *space = kEntries - used;
  return true;
}

void Connection::post(const sring_dma_completion& completion, Clock::time_point now) {
  // Plain stores into the entry: the driver reads it only after its
  // load-acquire of comp_prod, which the store-release below publishes.
  bar_->comp[comp_prod_ & kMask] = completion;
  ++comp_prod_;
  store_release(bar_->comp_prod, comp_prod_);
  if (unsignalled_++ == 0) first_unsignalled_ = now;
  if (unsignalled_ >= config_.coalesce_blocks) raise_completion();
}

void Connection::add_drop(uint64_t first, __u64& reason) {
  if (pending_blocks_ == 0) pending_first_ = first;
  ++pending_blocks_;
  bump(bar_->counters.blocks_dropped);
  bump(bar_->counters.samples_dropped, block_samples_);
  bump(reason);
}

// Reports the pending drops in one DROPPED completion if an entry is free.
// Returns false if the stream failed meanwhile.
bool Connection::flush_drops(Clock::time_point now) {
  if (pending_blocks_ == 0) return true;
  uint64_t space = 0;
  if (!completion_space(&space)) return false;
  if (space != 0) post_drops(now);  // else later: the drops stay pending, in order
  return true;
}

// The caller made sure an entry is free.
void Connection::post_drops(Clock::time_point now) {
  sring_dma_completion c{};
  c.tag = 0;
  c.first_sample = pending_first_;
  c.timestamp_ns = monotonic_ns();
  c.samples = block_samples_;
  c.blocks = pending_blocks_;
  c.flags = SRING_DMA_COMP_DROPPED;
  pending_blocks_ = 0;
  post(c, now);
}

bool Connection::in_window(uint64_t addr, uint64_t bytes) const {
  // windows_: sorted by start, disjoint (merged at START): the only window
  // that can hold addr is the last one starting at or below it.
  auto it = std::upper_bound(windows_.begin(), windows_.end(), addr,
                             [](uint64_t a, const std::pair<uint64_t, uint64_t>& w) { return a < w.first; });
  if (it == windows_.begin()) return false;
  --it;
  return addr >= it->first && bytes <= it->second - addr && addr < it->second;
}

Refusal Connection::check_descriptor(const sring_dma_desc& desc,
                                     std::array<uint8_t*, SRING_DMA_MAX_SEGMENTS>& dst) {
  if (desc.nr_segments == 0 || desc.nr_segments > SRING_DMA_MAX_SEGMENTS) {
    return {SRING_DMA_ERR_BAD_SEGMENTS, -1};
  }
  uint64_t total = 0;
  for (uint32_t i = 0; i < desc.nr_segments; ++i) {
    const sring_dma_desc_segment& s = desc.segments[i];
    if (s.bytes == 0 || (s.bytes & 1) != 0) return {SRING_DMA_ERR_BAD_SEGMENTS, static_cast<int>(i)};
    total += s.bytes;
  }
  if (total != static_cast<uint64_t>(block_samples_) * 2) return {SRING_DMA_ERR_BAD_SEGMENTS, -1};
  for (uint32_t i = 0; i < desc.nr_segments; ++i) {
    const sring_dma_desc_segment& s = desc.segments[i];
    dst[i] = ram_.translate(s.addr, s.bytes);
    if (dst[i] == nullptr) {
      bump(bar_->counters.bad_addresses);
      return {SRING_DMA_ERR_NOT_IN_RAM, static_cast<int>(i)};
    }
    if ((config_.flags & SRING_DMA_CFG_CHECKER) && !in_window(s.addr, s.bytes)) {
      bump(bar_->counters.window_faults);
      return {SRING_DMA_ERR_NOT_IN_WINDOW, static_cast<int>(i)};
    }
  }
  return {};
}

// One line per refused descriptor (the first kPrintedRefusals of a guest):
// what a harness log needs to find the driver's bug without a debugger. The
// descriptor is the model's copy, the one that was checked.
void Connection::report_refusal(const sring_dma_desc& desc, const Refusal& refusal, uint64_t first) {
  if (!refusal_reports_.take()) return;
  std::string why;
  if (refusal.segment < 0) {
    if (desc.nr_segments == 0 || desc.nr_segments > SRING_DMA_MAX_SEGMENTS) {
      why = fmt::format("{} segments (1 to {})", desc.nr_segments, SRING_DMA_MAX_SEGMENTS);
    } else {
      uint64_t total = 0;
      std::string list;
      for (uint32_t i = 0; i < desc.nr_segments; ++i) {
        total += desc.segments[i].bytes;
        list += fmt::format("{}{:#x} + {}", i == 0 ? "" : ", ", desc.segments[i].addr, desc.segments[i].bytes);
      }
      why = fmt::format("segments of {} bytes in all ({}), the block is {} bytes", total, list,
                        uint64_t{block_samples_} * 2);
    }
  } else {
    const sring_dma_desc_segment& s = desc.segments[refusal.segment];
    why = fmt::format("segment {} of {} at {:#x} + {} bytes", refusal.segment, desc.nr_segments, s.addr, s.bytes);
    switch (refusal.error) {
      case SRING_DMA_ERR_BAD_SEGMENTS:
        why += ": 0 or odd bytes";
        break;
      case SRING_DMA_ERR_NOT_IN_RAM:
        why += fmt::format(" is not guest RAM (RAM: below {:#x}, and from 4 GiB on; {} bytes in all)",
                           options_.lowmem, ram_.size());
        break;
      case SRING_DMA_ERR_NOT_IN_WINDOW: {
        auto it = std::upper_bound(
            windows_.begin(), windows_.end(), s.addr,
            [](uint64_t a, const std::pair<uint64_t, uint64_t>& w) { return a < w.first; });
        if (it != windows_.begin() && s.addr < std::prev(it)->second) {
          why += fmt::format(" runs past the DMA window [{:#x}, {:#x})", std::prev(it)->first, std::prev(it)->second);
        } else {
          why += fmt::format(" is in none of the {} DMA windows (merged)", windows_.size());
        }
        break;
      }
      default:
        break;
    }
  }
  say("refused descriptor tag {:#x} (block of sample {}): {}: {}", desc.tag, first, error_name(refusal.error),
      why);
  if (refusal_reports_.used_up()) {
    say("more refused descriptors are counted (counters.descriptors_refused), not printed");
  }
}

void Connection::report_unprinted_refusals() {
  if (const uint64_t n = refusal_reports_.take_unprinted(); n != 0) {
    say("{} more refused descriptors not printed", n);
  }
}

// The "ADC" makes one block: into the next posted descriptor, or dropped.
// Returns false if the stream ended (FAILED on a driver's bad index).
bool Connection::make_block(Clock::time_point now) {
  // The driver's indexes first: a bad one ends the stream before this
  // block is made, so blocks_due == blocks_written + blocks_dropped holds
  // at the FAILED state too.
  uint64_t available = 0;
  uint64_t space = 0;
  if (!descriptors_available(&available) || !completion_space(&space)) return false;

  // One entry for the pending drops (reported first: completions are in
  // the order the blocks were made), one for this block.
  const uint64_t needed = 1 + (pending_blocks_ != 0 ? 1 : 0);
  const bool dropped = available == 0 || space < needed;
  // A run the protocol cannot report ends the stream before this block is
  // made (blocks_due == written + dropped holds at FAILED).
  if (dropped && pending_blocks_ >= SRING_DMA_MAX_DROP_RUN) {
    stop_stream(SRING_DMA_STATE_FAILED, SRING_DMA_ERR_DRIVER_STALLED, now,
                fmt::format("{} blocks dropped in a row with no completion entry free to report them",
                            pending_blocks_));
    return false;
  }

  const uint64_t first = next_sample_;
  // The index runs on whatever happens to the block, as in the kernel's
  // simulated device: every sample is verifiable from its index alone.
  next_sample_ += block_samples_;
  ++blocks_made_;
  bump(bar_->counters.blocks_due);
  if (available == 0) {
    add_drop(first, bar_->counters.no_descriptor);
    return true;
  }
  if (space < needed) {
    // The descriptor stays posted for a later block.
    add_drop(first, bar_->counters.completion_full);
    return true;
  }
  if (!flush_drops(now)) return false;

  // Copy the descriptor out once (after the acquire of desc_prod above) and
  // check only the copy; then hand the entry back with a store-release that
  // pairs with the driver's smp_load_acquire(desc_cons) before it reuses it.
  sring_dma_desc desc;
  std::memcpy(&desc, &bar_->desc[desc_cons_ & kMask], sizeof(desc));
  ++desc_cons_;
  store_release(bar_->desc_cons, desc_cons_);
  bump(bar_->counters.descriptors_taken);

  sring_dma_completion c{};
  c.tag = desc.tag;
  c.first_sample = first;
  c.samples = block_samples_;
  c.blocks = 1;
  std::array<uint8_t*, SRING_DMA_MAX_SEGMENTS> dst{};
  const Refusal refusal = check_descriptor(desc, dst);
  if (refusal.error != SRING_DMA_ERR_NONE) {
    // Refused: not a byte written, and the driver is told (never a silent
    // write, never a silent loss), and so is the log.
    bump(bar_->counters.descriptors_refused);
    bump(bar_->counters.blocks_dropped);
    bump(bar_->counters.samples_dropped, block_samples_);
    report_refusal(desc, refusal, first);
    c.flags = SRING_DMA_COMP_ERROR;
    c.error = refusal.error;
    c.timestamp_ns = monotonic_ns();
    post(c, now);
    return true;
  }
  sring_pattern_fill(samples_.data(), first, block_samples_, config_.pattern_seed);
  c.flags = SRING_DMA_COMP_OK;
  if (corrupt_blocks_ != 0) {
    --corrupt_blocks_;
    samples_[block_samples_ / 2] ^= 0x0100;
    c.flags |= SRING_DMA_COMP_CORRUPTED;
    bump(bar_->counters.corrupted);
  }
  // The "DMA": plain copies into guest RAM, published to the driver by the
  // store-release of comp_prod in post().
  const auto* src = reinterpret_cast<const uint8_t*>(samples_.data());
  for (uint32_t i = 0; i < desc.nr_segments; ++i) {
    std::memcpy(dst[i], src, desc.segments[i].bytes);
    src += desc.segments[i].bytes;
  }
  bump(bar_->counters.blocks_written);
  bump(bar_->counters.samples_written, block_samples_);
  c.timestamp_ns = monotonic_ns();
  post(c, now);
  return true;
}

void Connection::run_blocks(Clock::time_point now) {
  for (int made = 0; made < kMaxBlocksPerPass && state_ == SRING_DMA_STATE_RUNNING; ++made) {
    if (now < stall_until_) break;
    if (config_.sample_rate == 0) {
      // As fast as descriptors come: a block is made only when it can be
      // written, so nothing is ever dropped.
      uint64_t available = 0;
      uint64_t space = 0;
      if (!descriptors_available(&available) || !completion_space(&space)) return;
      if (available == 0 || space == 0) break;
    } else if (burst_blocks_ != 0) {
      --burst_blocks_;  // ahead of the schedule: it slides by one block
    } else if (now < due(blocks_made_)) {
      break;
    }
    if (!make_block(now)) return;
  }
  if (state_ == SRING_DMA_STATE_RUNNING) flush_drops(now);
}

namespace {

// Why a configuration is refused (SRING_DMA_ERR_BAD_CONFIG), or empty.
std::string config_problem(const sring_dma_config& c, uint64_t max_rate) {
  if (c.block_bytes % SRING_DMA_BLOCK_ALIGN != 0 || c.block_bytes < SRING_DMA_MIN_BLOCK_BYTES ||
      c.block_bytes > SRING_DMA_MAX_BLOCK_BYTES) {
    return fmt::format("block_bytes {} is not a multiple of {} from {} to {}", c.block_bytes,
                       SRING_DMA_BLOCK_ALIGN, SRING_DMA_MIN_BLOCK_BYTES, SRING_DMA_MAX_BLOCK_BYTES);
  }
  if (c.sample_rate > max_rate) {
    return fmt::format("sample_rate {} is above the model's --max-rate {}", c.sample_rate, max_rate);
  }
  if (c.coalesce_blocks == 0 || c.coalesce_blocks > kEntries) {
    return fmt::format("coalesce_blocks {} is not 1 to {}", c.coalesce_blocks, kEntries);
  }
  if (c.coalesce_timeout_us > SRING_DMA_MAX_COALESCE_TIMEOUT_US) {
    return fmt::format("coalesce_timeout_us {} is above {}", c.coalesce_timeout_us,
                       SRING_DMA_MAX_COALESCE_TIMEOUT_US);
  }
  if (c.coalesce_blocks > 1 && c.coalesce_timeout_us == 0) {
    // K > 1 without a timeout would leave the last completions of a stream
    // without an interrupt.
    return fmt::format("coalesce_blocks {} needs a coalesce_timeout_us", c.coalesce_blocks);
  }
  if ((c.flags & ~SRING_DMA_CFG_KNOWN) != 0) return fmt::format("unknown flags {:#x}", c.flags);
  return {};
}

}  // namespace

void Connection::start_stream(Clock::time_point now) {
  // After the load-acquire of control (handle_control), which pairs with
  // the driver's smp_store_release(control): config and windows are
  // complete. Copied once; later writes by the driver are not looked at.
  std::memcpy(&config_, &bar_->config, sizeof(config_));
  auto refuse = [&](uint32_t error, const std::string& why) {
    stop_stream(SRING_DMA_STATE_FAILED, error, now, why);
  };
  const sring_dma_config& c = config_;
  if (std::string why = config_problem(c, options_.max_rate); !why.empty()) {
    return refuse(SRING_DMA_ERR_BAD_CONFIG, why);
  }
  windows_.clear();
  if (c.flags & SRING_DMA_CFG_CHECKER) {
    if (c.nr_windows == 0 || c.nr_windows > SRING_DMA_MAX_WINDOWS) {
      return refuse(SRING_DMA_ERR_BAD_WINDOW,
                    fmt::format("nr_windows {} is not 1 to {}", c.nr_windows, SRING_DMA_MAX_WINDOWS));
    }
    for (uint32_t i = 0; i < c.nr_windows; ++i) {
      const sring_dma_window w = bar_->windows[i];
      if (w.bytes == 0 || w.addr + w.bytes < w.addr) {
        return refuse(SRING_DMA_ERR_BAD_WINDOW,
                      fmt::format("window {} at {:#x} + {} bytes is empty or wraps", i, w.addr, w.bytes));
      }
      windows_.emplace_back(w.addr, w.addr + w.bytes);
    }
    // Sorted and merged where they touch, so one binary search decides.
    std::sort(windows_.begin(), windows_.end());
    std::vector<std::pair<uint64_t, uint64_t>> merged;
    for (const auto& w : windows_) {
      if (!merged.empty() && w.first <= merged.back().second) {
        merged.back().second = std::max(merged.back().second, w.second);
      } else {
        merged.push_back(w);
      }
    }
    windows_ = std::move(merged);
  }
  uint64_t available = 0;
  uint64_t space = 0;
  // Indexes the driver left out of range at a START: FAILED, BAD_INDEX.
  if (!descriptors_available(&available) || !completion_space(&space)) return;

  block_samples_ = (c.block_bytes - SRING_BLOCK_HEADER_SIZE) / 2;
  samples_.assign(block_samples_, 0);
  next_sample_ = c.first_sample;
  blocks_made_ = 0;
  start_time_ = now;
  stall_until_ = Clock::time_point{};
  burst_blocks_ = 0;
  corrupt_blocks_ = 0;
  // slow_stop_us_ stays: the fault is for the next STOP, whenever it comes.
  slow_stopping_ = false;
  pending_blocks_ = 0;
  unsignalled_ = 0;
  store_relaxed(bar_->error, SRING_DMA_ERR_NONE);
  store_relaxed(bar_->start_count, load_relaxed(bar_->start_count) + 1);
  state_ = SRING_DMA_STATE_RUNNING;
  // Pairs with the driver's smp_load_acquire(state).
  store_release(bar_->state, state_);
  raise(SRING_DMA_VECTOR_STATE);
}

// Ends a stream (or refuses one): when state is published as STOPPED or
// FAILED the model writes nothing more into guest RAM and posts nothing, so
// the driver may give every slot it posted back to sring. Descriptors still
// posted are abandoned: desc_cons moves to desc_prod so the driver sees all
// of them taken back, none written.
void Connection::stop_stream(uint32_t new_state, uint32_t error, Clock::time_point now, const std::string& why) {
  const bool was_running = state_ == SRING_DMA_STATE_RUNNING;
  // First: nothing below may start another stop (no index is re-checked).
  state_ = new_state;
  slow_stopping_ = false;
  if (was_running && pending_blocks_ != 0) {
    // Report the drops if the driver left room; else count them unreported.
    // Pairs with the driver's smp_store_release(comp_cons).
    const uint64_t used = comp_prod_ - load_acquire(bar_->comp_cons);
    if (used < kEntries) post_drops(now);
    if (pending_blocks_ != 0) bump(bar_->counters.drops_unreported, pending_blocks_);
    pending_blocks_ = 0;
  }
  // Pairs with the driver's smp_store_release(desc_prod).
  const uint64_t prod = load_acquire(bar_->desc_prod);
  if (prod - desc_cons_ <= kEntries && prod != desc_cons_) {
    bump(bar_->counters.descriptors_abandoned, prod - desc_cons_);
    desc_cons_ = prod;
    // Pairs with the driver's smp_load_acquire(desc_cons).
    store_release(bar_->desc_cons, desc_cons_);
  }
  if (unsignalled_ != 0) raise_completion();
  store_relaxed(bar_->error, error);
  // Pairs with the driver's smp_load_acquire(state): the final indexes and
  // counters above are visible to a driver that sees this state.
  store_release(bar_->state, new_state);
  raise(SRING_DMA_VECTOR_STATE);
  // The log after the state: printing is slow, the driver waits for it.
  report_unprinted_refusals();
  if (new_state == SRING_DMA_STATE_FAILED && failure_reports_.take()) {
    say("FAILED: {}: {}", error_name(error), why);
    if (failure_reports_.used_up()) say("more FAILED states are not printed");
  }
}

void Connection::handle_control(Clock::time_point now) {
  // Pairs with the driver's smp_store_release(control_seq), made after it
  // wrote control: the control loaded below is that one or a newer one.
  const uint32_t seq = load_acquire(bar_->control_seq);
  // Pairs with the driver's smp_store_release(control) after it wrote the
  // config and the windows.
  const uint32_t control = load_acquire(bar_->control);
  act_on_control(control, now);
  // Acted on (its state change, if any, published above): pairs with the
  // driver's smp_load_acquire(control_ack). A STOP that a slow stop is
  // still finishing is acknowledged once STOPPED.
  if (!slow_stopping_) store_release(bar_->control_ack, seq);
}

void Connection::act_on_control(uint32_t control, Clock::time_point now) {
  switch (state_) {
    case SRING_DMA_STATE_STOPPED:
      if (control == SRING_DMA_CONTROL_START) start_stream(now);
      break;
    case SRING_DMA_STATE_RUNNING:
      if (control != SRING_DMA_CONTROL_STOP && control != SRING_DMA_CONTROL_START) {
        stop_stream(SRING_DMA_STATE_FAILED, SRING_DMA_ERR_BAD_CONTROL, now,
                    fmt::format("control {} is neither START nor STOP", control));
      } else if (slow_stopping_) {
        // SRING_DMA_FAULT_SLOW_STOP: the STOP was taken when it was seen;
        // the stream runs its time out whatever control says since.
        if (now >= slow_stop_until_) stop_stream(SRING_DMA_STATE_STOPPED, SRING_DMA_ERR_NONE, now);
      } else if (control == SRING_DMA_CONTROL_STOP) {
        if (slow_stop_us_ != 0) {
          // Like an engine that finishes its queue: RUNNING on, blocks made
          // into whatever is posted, until the time is up.
          slow_stopping_ = true;
          slow_stop_until_ = now + std::chrono::microseconds(slow_stop_us_);
          say("slow stop: running on for {} us after the STOP (SRING_DMA_FAULT_SLOW_STOP)", slow_stop_us_);
          slow_stop_us_ = 0;
        } else {
          stop_stream(SRING_DMA_STATE_STOPPED, SRING_DMA_ERR_NONE, now);
        }
      }
      break;
    case SRING_DMA_STATE_FAILED:
      // The driver acknowledges a failure with STOP; error stays readable.
      if (control == SRING_DMA_CONTROL_STOP) {
        state_ = SRING_DMA_STATE_STOPPED;
        // Pairs with the driver's smp_load_acquire(state).
        store_release(bar_->state, state_);
        raise(SRING_DMA_VECTOR_STATE);
      }
      break;
  }
}

void Connection::handle_fault(Clock::time_point now) {
  // Pairs with the driver's smp_store_release(fault.request_seq) after it
  // wrote kind and arg.
  const uint64_t seq = load_acquire(bar_->fault.request_seq);
  if (seq == fault_seen_) return;
  fault_seen_ = seq;
  const uint32_t kind = load_relaxed(bar_->fault.kind);
  const uint64_t arg = load_relaxed(bar_->fault.arg);
  switch (kind) {
    case SRING_DMA_FAULT_STALL:
      stall_until_ = now + std::chrono::microseconds(std::min<uint64_t>(arg, SRING_MAX_FAULT_STALL_US));
      break;
    case SRING_DMA_FAULT_BURST:
      burst_blocks_ += std::min<uint64_t>(arg, SRING_MAX_FAULT_BLOCKS);
      break;
    case SRING_DMA_FAULT_CORRUPT:
      corrupt_blocks_ += std::min<uint64_t>(arg, SRING_MAX_FAULT_BLOCKS);
      break;
    case SRING_DMA_FAULT_FAIL:
      if (state_ != SRING_DMA_STATE_FAILED) {
        stop_stream(SRING_DMA_STATE_FAILED, SRING_DMA_ERR_INJECTED, now, "SRING_DMA_FAULT_FAIL requested");
      }
      break;
    case SRING_DMA_FAULT_SLOW_STOP:
      // Armed, replacing an earlier request; taken at the next STOP while
      // RUNNING (handle_control).
      slow_stop_us_ = std::min<uint64_t>(arg, SRING_MAX_FAULT_STALL_US);
      break;
    default:
      break;  // unknown: acknowledged, nothing done
  }
  bump(bar_->counters.faults);
  // Pairs with the driver's smp_load_acquire(fault.ack_seq).
  store_release(bar_->fault.ack_seq, seq);
}

Expected<Connection::Ending> Connection::run(int stop_fd) {
  std::array<pollfd, 2 + SRING_DMA_NR_VECTORS> pfds{};
  pfds[0] = {client_.get(), POLLIN, 0};
  pfds[1] = {stop_fd, POLLIN, 0};
  for (uint32_t v = 0; v < SRING_DMA_NR_VECTORS; ++v) pfds[2 + v] = {doorbell_[v].get(), POLLIN, 0};
  for (;;) {
    Clock::time_point now = Clock::now();
    handle_fault(now);
    handle_control(now);
    if (state_ == SRING_DMA_STATE_RUNNING) run_blocks(now);
    now = Clock::now();
    if (unsignalled_ != 0 &&
        now >= first_unsignalled_ + std::chrono::microseconds(config_.coalesce_timeout_us)) {
      raise_completion();
    }

    Clock::time_point wake = now + kIdlePoll;
    if (state_ == SRING_DMA_STATE_RUNNING) {
      if (now < stall_until_) {
        wake = std::min(wake, stall_until_);
      } else if (burst_blocks_ != 0) {
        wake = now;
      } else if (config_.sample_rate != 0) {
        wake = std::min(wake, due(blocks_made_));
      }
      if (slow_stopping_) wake = std::min(wake, slow_stop_until_);
    }
    if (unsignalled_ != 0) {
      wake = std::min(wake, first_unsignalled_ + std::chrono::microseconds(config_.coalesce_timeout_us));
    }
    const auto wait = std::max<Clock::duration>(wake - now, Clock::duration::zero());
    const auto wait_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    const timespec ts{static_cast<time_t>(wait_ns / 1000000000), static_cast<long>(wait_ns % 1000000000)};
    const int n = ::ppoll(pfds.data(), pfds.size(), &ts, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("poll in the device loop");
    }
    // The socket and the stop request before anything else: once QEMU is
    // gone, so may be the guest's RAM, and the engine must not make another
    // block. Returning is enough: this connection's engine ends with it.
    if (pfds[0].revents != 0) {
      char buffer[64];
      const ssize_t got = ::recv(client_.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
      if (got == 0) return Ending::kDisconnected;
      if (got < 0 && errno != EAGAIN && errno != EINTR) return errno_error("the QEMU socket failed");
      // QEMU sends nothing after the handshake; ignore whatever came.
    }
    if (pfds[1].revents != 0) return Ending::kStopRequested;
    for (uint32_t v = 0; v < SRING_DMA_NR_VECTORS; ++v) {
      if (pfds[2 + v].revents & POLLIN) {
        uint64_t kicks = 0;
        if (::read(doorbell_[v].get(), &kicks, sizeof(kicks)) == sizeof(kicks)) {
          bump(bar_->counters.doorbells, kicks);
        }
      }
    }
  }
}

// ------------------------------------------------------------------------
// The model: the listener and one connection after another
// ------------------------------------------------------------------------

struct Model::Impl {
  ModelOptions options;
  GuestRam ram;  // shared by every connection: QEMU's RAM file outlives a re-plug
  UniqueFd listener;
  // The socket file we bound, so that only ours is removed at the end.
  dev_t socket_dev = 0;
  ino_t socket_ino = 0;
  UniqueFd stop_event;  // readable once stop() was called
  // Prepared before each accept, so a connection's handshake goes out at
  // once and a model that cannot make one fails before QEMU comes.
  std::unique_ptr<Connection> next;
  uint64_t guests = 0;

  Impl(ModelOptions o, GuestRam r) : options(std::move(o)), ram(std::move(r)) {}
  ~Impl() {
    struct stat st {};
    if (listener.valid() && ::lstat(options.socket_path.c_str(), &st) == 0 && st.st_dev == socket_dev &&
        st.st_ino == socket_ino) {
      ::unlink(options.socket_path.c_str());
    }
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // The next QEMU's socket; an invalid UniqueFd if stop() came first.
  Expected<UniqueFd> accept(bool first);
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
  auto first = Connection::create(impl->options, impl->ram);
  if (!first) return first.error();
  impl->next = std::move(*first);
  impl->stop_event.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->stop_event.valid()) return errno_error("cannot create an eventfd");

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
  if (::lstat(options.socket_path.c_str(), &st) == 0) {
    impl->socket_dev = st.st_dev;
    impl->socket_ino = st.st_ino;
  }
  // One QEMU at a time is served; with reconnect a few more may queue (a
  // harness that re-plugs before the model has seen the old EOF), and a
  // connect() beyond the backlog would block QEMU's chardev-add.
  const int backlog = options.reconnect ? 8 : 1;
  if (::listen(impl->listener.get(), backlog) != 0) {
    return errno_error("cannot listen on {}", options.socket_path);
  }
  return Model(std::move(impl));
}

void Model::stop() noexcept {
  const uint64_t one = 1;
  // Only write(2): async-signal-safe. It fails only if the counter would
  // overflow, and then the eventfd is readable anyway.
  if (!impl_) return;  // moved from
  [[maybe_unused]] const ssize_t n = ::write(impl_->stop_event.get(), &one, sizeof(one));
}

Expected<UniqueFd> Model::Impl::accept(bool first) {
  std::array<pollfd, 2> pfds{{{listener.get(), POLLIN, 0}, {stop_event.get(), POLLIN, 0}}};
  const int timeout = !first || options.accept_timeout.count() < 0
                          ? -1
                          : static_cast<int>(std::min<int64_t>(options.accept_timeout.count(), INT32_MAX));
  for (;;) {
    const int n = ::poll(pfds.data(), pfds.size(), timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("poll while waiting for QEMU");
    if (n == 0) {
      return make_error(ETIMEDOUT, "no QEMU connected to {} within {} ms", options.socket_path,
                        options.accept_timeout.count());
    }
    // stop() before a pending QEMU: it is sticky, and a QEMU waiting in the
    // backlog is not served after it.
    if (pfds[1].revents != 0) return UniqueFd();
    UniqueFd client(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (client.valid()) return client;
    // A QEMU that connected and left before we took it: wait for the next.
    if (errno == ECONNABORTED || errno == EINTR || errno == EAGAIN) continue;
    return errno_error("accept on {} failed", options.socket_path);
  }
}

Status Model::serve() {
  Impl& m = *impl_;
  for (bool first = true;; first = false) {
    if (!m.next) {
      // A new BAR2 and new eventfds for the next guest (reconnect).
      auto next = Connection::create(m.options, m.ram);
      if (!next) return next.error();
      m.next = std::move(*next);
    }
    if (!m.listener.valid()) return make_error(EBADF, "the model no longer listens on {}", m.options.socket_path);
    auto client = m.accept(first);
    if (!client) return client.error();
    if (!client->valid()) return ok();  // stop()
    if (!m.options.reconnect) {
      // One guest per model: nobody else may connect (a second QEMU would
      // get no handshake and hang), so stop listening.
      m.listener.reset();
      ::unlink(m.options.socket_path.c_str());
    }
    const uint64_t number = ++m.guests;
    if (!first) {
      // A re-plug must be the same guest: its RAM is what the model maps.
      if (auto same = m.ram.still_mapped(m.options.ram_path); !same) {
        emit(m.options, fmt::format("sring-dma-model: guest {} refused: {}", number, same.error().message));
        continue;  // the client closes: QEMU's device_add fails with an error
      }
    }
    emit(m.options, fmt::format("sring-dma-model: guest {} connected", number));
    Expected<Connection::Ending> ended = [&] {
      // The connection, its BAR2 mapping and its engine end here, before
      // anything else is accepted.
      std::unique_ptr<Connection> connection = std::move(m.next);
      return connection->serve(std::move(*client), number, m.stop_event.get());
    }();
    if (!ended) {
      emit(m.options, fmt::format("sring-dma-model: guest {} disconnected: {}", number, ended.error().message));
      // With reconnect, a connection that failed (QEMU killed mid-handshake,
      // a reset socket) is that guest's end, not the model's.
      if (!m.options.reconnect) return ended.error();
      continue;
    }
    if (*ended == Connection::Ending::kStopRequested) {
      emit(m.options, fmt::format("sring-dma-model: guest {} disconnected: the model is stopping", number));
      return ok();
    }
    emit(m.options, fmt::format("sring-dma-model: guest {} disconnected", number));
    if (!m.options.reconnect) return ok();
  }
}

}  // namespace sring::dma
