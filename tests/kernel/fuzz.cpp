// `kernel_test fuzz SECONDS SEED`: a fuzzer of /dev/sring0 that shows its
// reach (docs/fuzzing.md). Runs inside the QEMU guest against the real
// module, as one of kernel_test's modes (tests/qemu/guest-init.sh).
//
// Two processes abuse the ring at once for SECONDS:
//   - this one alternates epochs of about 2 s. In a chaos epoch it holds the
//     consumer role and throws everything at it: every SRING_IOC_* with
//     random and boundary arguments, each command again with a wrong size
//     and a wrong direction in its number, unknown commands, mmap() of every
//     region with random lengths, protections and sharing, mprotect(),
//     mremap() (grow, move, shrink, MREMAP_DONTUNMAP) and munmap() of what
//     it mapped, fork() with a child that reads (or writes) the inherited
//     mappings, random tail, need_wakeup and wakeup_watermark in the
//     consumer page, read(), poll(), eventfds closed while signalled, and
//     START/STOP/RESET/SET_CONFIG storms. In a verified epoch it is an
//     ordinary consumer: a random valid layout, rate, block size and
//     overrun policy, every sample verified in place and every loss
//     accounted for exactly (the end-of-stream rule of docs/abi.md), with
//     stalls and bursts injected under it.
//   - a monitor child opens the device read-only the whole time and does the
//     same (its control commands must all fail with EPERM), and now and then
//     grabs the consumer role when it is free for a storm of its own.
//
// Both count every call by operation and result (0 or the errno's name) in
// one table in shared memory, printed at the end as a Markdown table. A row
// that never reached its required results (success and its main errors), a
// forbidden result (a success the kernel must refuse), any other unexpected
// success, a verified epoch that was not exact, or a monitor that did not
// end cleanly fails the run. The random choices come from SEED (the monitor
// from SEED too); what the kernel answers depends on timing.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sring/ring.hpp"
#include "sring/stream.hpp"
#include "sring/sring_abi.h"
#include "sring/sring_pattern.h"
#include "tests/kernel/kernel_util.hpp"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

namespace sring_ktest {

int fuzz(double seconds, uint64_t seed);

namespace {

using Clock = std::chrono::steady_clock;

// ---- the reach table ------------------------------------------------------

// Rows: the ten commands (by _IOC_NR), each again with a wrong _IOC_SIZE and
// with a wrong _IOC_DIR, then everything else.
enum Row : int {
  kIoctl = 0,
  kWrongSize = 10,
  kWrongDir = 20,
  kUnknownNr = 30,
  kForeign,
  kOpenRdwr,
  kOpenRdonly,
  kMmapProducer,
  kMmapConsumer,
  kMmapData,
  kMmapOther,
  kMprotectProducerW,
  kMprotectDataW,
  kMprotectConsumerW,
  kMprotectMonitorW,
  kMprotectDown,
  kMremapGrow,
  kMremapMove,
  kMremapShrink,
  kMremapDontunmap,
  kForkRead,
  kForkWrite,
  kRead,
  kPoll,
  kTail,
  kNeedWakeup,
  kWatermark,
  kVerified,
  kRows
};

// Results: 0 (success), an errno value, or one of these.
constexpr int kSlots = 256;
enum Outcome : int {
  kData = 200,  // read() returned bytes
  kPollIn,
  kPollNone,
  kPollErr,
  kPollHup,
  kChildFailed,  // a fork child exited non-zero: it found something wrong
  kSigSegv,
  kSigBus,
  kSignal,
  kRefused,  // a tail the kernel counted as bad (bad_tails grew)
  kAccepted,
  kWritten,
  kExact,  // a verified epoch: every sample verified, every loss accounted
  kInexact,
  kCorrupt,
  kNoRole,
  kError,
};

const char* outcome_name(int slot) {
  switch (slot) {
    case 0: return "0";
    case kData: return "data";
    case kPollIn: return "POLLIN";
    case kPollNone: return "none";
    case kPollErr: return "POLLERR";
    case kPollHup: return "POLLHUP";
    case kChildFailed: return "child-failed";
    case kSigSegv: return "SIGSEGV";
    case kSigBus: return "SIGBUS";
    case kSignal: return "signal";
    case kRefused: return "refused";
    case kAccepted: return "accepted";
    case kWritten: return "written";
    case kExact: return "exact";
    case kInexact: return "INEXACT";
    case kCorrupt: return "CORRUPT";
    case kNoRole: return "no-role";
    case kError: return "error";
    default: break;
  }
  const char* name = ::strerrorname_np(slot);
  return name ? name : "E?";
}

struct Command {
  const char* name;
  unsigned int cmd;
  bool control;  // needs the consumer's descriptor opened for writing
};
// In _IOC_NR order.
const Command kCommands[10] = {
    {"SRING_IOC_GET_INFO", SRING_IOC_GET_INFO, false},
    {"SRING_IOC_SET_EVENTFD", SRING_IOC_SET_EVENTFD, true},
    {"SRING_IOC_CLEAR_EVENTFD", SRING_IOC_CLEAR_EVENTFD, true},
    {"SRING_IOC_SET_CONFIG", SRING_IOC_SET_CONFIG, true},
    {"SRING_IOC_GET_CONFIG", SRING_IOC_GET_CONFIG, false},
    {"SRING_IOC_START", SRING_IOC_START, true},
    {"SRING_IOC_STOP", SRING_IOC_STOP, true},
    {"SRING_IOC_GET_STATS", SRING_IOC_GET_STATS, false},
    {"SRING_IOC_RESET", SRING_IOC_RESET, true},
    {"SRING_IOC_INJECT_FAULT", SRING_IOC_INJECT_FAULT, true},
};

struct RowSpec {
  std::string name;
  std::vector<int> required;   // each reached at least once, or the run fails
  std::vector<int> forbidden;  // never, or the run fails
};

std::vector<RowSpec> row_specs() {
  std::vector<RowSpec> rows(kRows);
  // The commands: success and the main errors. ENOTTY would mean the driver
  // did not know its own command.
  const std::vector<int> required[10] = {
      {0, EFAULT},                       // GET_INFO
      {0, EBADF, EINVAL, EFAULT, EPERM},  // SET_EVENTFD
      {0, EPERM},                        // CLEAR_EVENTFD
      {0, EINVAL, EBUSY, EFAULT, EPERM},  // SET_CONFIG
      {0, EFAULT},                       // GET_CONFIG
      {0, EBUSY, EPERM},                 // START
      {0, EPERM},                        // STOP
      {0, EFAULT},                       // GET_STATS
      {0, EBUSY, EPERM},                 // RESET
      {0, EINVAL, EFAULT, EPERM},        // INJECT_FAULT
  };
  for (int nr = 0; nr < 10; ++nr) {
    rows[kIoctl + nr] = {kCommands[nr].name, required[nr], {ENOTTY}};
    rows[kWrongSize + nr] = {std::string(kCommands[nr].name) + ", wrong _IOC_SIZE", {ENOTTY}, {0}};
    rows[kWrongDir + nr] = {std::string(kCommands[nr].name) + ", wrong _IOC_DIR", {ENOTTY}, {0}};
  }
  rows[kUnknownNr] = {"unknown command number, sring's magic", {ENOTTY}, {0}};
  rows[kForeign] = {"foreign command (random number)", {ENOTTY}, {0}};
  rows[kOpenRdwr] = {"open O_RDWR (the consumer)", {0, EBUSY}, {}};
  rows[kOpenRdonly] = {"open O_RDONLY (a monitor)", {0}, {}};
  rows[kMmapProducer] = {"mmap producer page", {0, EINVAL, EPERM, EACCES}, {}};
  rows[kMmapConsumer] = {"mmap consumer page", {0, EINVAL, EPERM, EACCES}, {}};
  rows[kMmapData] = {"mmap data", {0, EINVAL, EPERM}, {}};
  rows[kMmapOther] = {"mmap beyond the data", {EINVAL}, {0}};
  rows[kMprotectProducerW] = {"mprotect producer page writable", {EACCES}, {0}};
  rows[kMprotectDataW] = {"mprotect data writable", {EACCES}, {0}};
  rows[kMprotectConsumerW] = {"mprotect consumer page writable (consumer)", {0}, {EACCES}};
  rows[kMprotectMonitorW] = {"mprotect consumer page writable (monitor)", {EACCES}, {0}};
  rows[kMprotectDown] = {"mprotect PROT_READ or PROT_NONE", {0}, {}};
  rows[kMremapGrow] = {"mremap grow", {EFAULT}, {0}};
  rows[kMremapMove] = {"mremap move (MREMAP_FIXED)", {0}, {}};
  rows[kMremapShrink] = {"mremap shrink", {0}, {EFAULT}};
  rows[kMremapDontunmap] = {"mremap MREMAP_DONTUNMAP", {EINVAL}, {0}};
  rows[kForkRead] = {"fork, child reads the mappings", {0}, {kChildFailed, kSigSegv, kSigBus, kSignal}};
  rows[kForkWrite] = {"fork, child writes a read-only mapping", {kSigSegv}, {0}};
  rows[kRead] = {"read", {kData, EBUSY, EINVAL}, {}};
  rows[kPoll] = {"poll", {kPollIn, kPollNone, kPollErr}, {}};
  rows[kTail] = {"consumer page: tail", {kRefused, kAccepted}, {}};
  rows[kNeedWakeup] = {"consumer page: need_wakeup", {kWritten}, {}};
  rows[kWatermark] = {"consumer page: wakeup_watermark", {kWritten}, {}};
  rows[kVerified] = {"verified acquisition epoch", {kExact}, {kInexact, kCorrupt, kNoRole, kError}};
  return rows;
}

// Shared by this process, the monitor and every fork child.
struct Shared {
  uint64_t counts[kRows][kSlots];
  uint64_t unexpected;
  uint64_t verified_epochs;
  uint64_t verified_samples;
  uint64_t lost_samples;
  uint64_t dropped_samples;
};
Shared* g_shared = nullptr;

int note(int row, int slot) {
  __atomic_fetch_add(&g_shared->counts[row][slot], 1, __ATOMIC_RELAXED);
  return slot;
}
// The slot of a system call's result: 0 or errno.
int slot_of(bool failed) {
  if (!failed) return 0;
  return errno > 0 && errno < kData ? errno : kError;
}

void unexpected(const char* format, ...) __attribute__((format(printf, 1, 2)));
void unexpected(const char* format, ...) {
  const uint64_t n = __atomic_fetch_add(&g_shared->unexpected, 1, __ATOMIC_RELAXED);
  if (n >= 40) return;  // the count says the rest
  char line[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(line, sizeof(line), format, args);
  va_end(args);
  std::printf("fuzz: UNEXPECTED (pid %d): %s\n", static_cast<int>(::getpid()), line);
}

template <typename T>
T load(const T& shared) {
  return __atomic_load_n(&shared, __ATOMIC_ACQUIRE);
}

// ---- the ring's geometry, learned once --------------------------------------

struct Geometry {
  size_t page = 4096;
  uint64_t ring_size = 0;
  uint32_t max_block = 0;
};

// ---- one abuser: a set of descriptors and mappings --------------------------

struct OpenFile {
  int fd;
  bool writable;  // opened O_RDWR: the consumer
};

struct Map {
  uint8_t* addr;
  size_t len;
  int region;  // 0 producer page, 1 consumer page, 2 data
  int prot;
  bool shared;
  bool may_write;  // mapped from the consumer's descriptor: may become writable
  int fd;
};

class Actor {
 public:
  Actor(const Geometry& geometry, uint64_t seed, bool monitor)
      : geo_(geometry), rng_(seed), monitor_(monitor), big_(size_t{1} << 20) {
    unmapped_ = static_cast<uint8_t*>(
        ::mmap(nullptr, kUnmappedPages * geo_.page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    // A writable page followed by an inaccessible one: a struct that starts
    // 2 bytes before the end straddles the two.
    edge_ = static_cast<uint8_t*>(
        ::mmap(nullptr, 2 * geo_.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ::mprotect(edge_ + geo_.page, geo_.page, PROT_NONE);
    stats_fd_ = ::open(kDevice, O_RDONLY | O_CLOEXEC);
  }
  ~Actor() {
    close_all();
    ::munmap(unmapped_, kUnmappedPages * geo_.page);
    ::munmap(edge_, 2 * geo_.page);
    ::close(stats_fd_);
  }

  // A consumer descriptor of our own for the chaos epoch, set up and
  // started. false if the role did not come free.
  bool take_consumer(Clock::time_point give_up) {
    for (;;) {
      const int fd = ::open(kDevice, O_RDWR | O_CLOEXEC | (rng_() % 2 ? O_NONBLOCK : 0));
      if (note(kOpenRdwr, slot_of(fd < 0)) == 0) {
        files_.push_back({fd, true});
        map_consumer_page(files_.back());
        storm(files_.back(), 4);
        return true;
      }
      if (Clock::now() > give_up) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  void close_all() {
    for (const Map& m : maps_) ::munmap(m.addr, m.len);
    maps_.clear();
    for (const OpenFile& f : files_) ::close(f.fd);
    files_.clear();
  }

  // One random operation.
  void step() {
    const unsigned op = static_cast<unsigned>(rng_() % 100);
    if (op < 4) return open_one();
    if (op < 7) return close_one();
    if (files_.empty()) return open_one();
    const OpenFile f = files_[rng_() % files_.size()];
    if (op < 27) return real_ioctl(f, static_cast<unsigned>(rng_() % 10));
    if (op < 32) return storm(f, 1 + static_cast<unsigned>(rng_() % 6));
    if (op < 40) return variant_ioctl(f, static_cast<unsigned>(rng_() % 10), true);
    if (op < 46) return variant_ioctl(f, static_cast<unsigned>(rng_() % 10), false);
    if (op < 50) return unknown_ioctl(f);
    if (op < 59) return map_one(f);
    if (op < 64) return mprotect_one();
    if (op < 69) return mremap_one();
    if (op < 72) return unmap_one();
    if (op < 74) return fork_one();
    if (op < 78) return touch_one();
    if (op < 85) return consumer_page_one();
    if (op < 91) return read_one(f);
    if (op < 97) return poll_one(f);
    std::this_thread::sleep_for(std::chrono::microseconds(rng_() % 500));
  }

  // START/STOP/RESET/SET_CONFIG, n of them in a row.
  void storm(const OpenFile& f, unsigned n) {
    static const unsigned kStorm[] = {5, 6, 8, 3, 5, 6};
    for (unsigned i = 0; i < n; ++i) real_ioctl(f, kStorm[rng_() % std::size(kStorm)]);
  }

  // A valid configuration (SET_CONFIG must take it while stopped), or one
  // with exactly one thing wrong, named in *why.
  sring_config make_config(bool valid, const char** why) {
    sring_config c{};
    const uint64_t rates[] = {0, 1000, 1'000'000, 10'000'000, 20'000'000, 100'000'000, SRING_MAX_SAMPLE_RATE};
    c.sample_rate = rates[rng_() % std::size(rates)];
    const uint32_t limit = std::min<uint64_t>({geo_.max_block, geo_.ring_size / 2, SRING_MAX_BLOCK_BYTES});
    const uint32_t blocks[] = {128, 4096, 8192, 65536, limit,
                               static_cast<uint32_t>(64 * (2 + rng_() % (limit / 64 - 1)))};
    c.block_bytes = std::min(limit, blocks[rng_() % std::size(blocks)]);
    c.overrun_policy = static_cast<uint32_t>(rng_() % 3);
    const uint32_t formats[] = {SRING_FMT_U16, SRING_FMT_S16, SRING_FMT_U8, SRING_FMT_S8, SRING_FMT_S32,
                                SRING_FMT_F32, SRING_FMT_CS16, SRING_FMT_CF32, SRING_FMT_SIM_PACKED12};
    c.sample_format = formats[rng_() % std::size(formats)];
    c.channels = static_cast<uint32_t>(rng_() % 4 ? rng_() % 5 : rng_() % (SRING_MAX_CHANNELS + 1));
    c.pattern_seed = static_cast<uint32_t>(rng_());
    c.flush_timeout_us = static_cast<uint32_t>(rng_() % 4 ? rng_() % 20000 : rng_() % (SRING_MAX_FLUSH_TIMEOUT_US + 1));
    // A frame must fit in a block.
    const uint32_t bits = c.sample_format == SRING_FMT_SIM_PACKED12 ? 12 : sring_format_bits(c.sample_format);
    while (sring_payload_bytes(1, c.channels ? c.channels : 1, bits) > c.block_bytes - SRING_BLOCK_HEADER_SIZE) {
      c.channels = 1;
    }
    *why = "valid";
    if (valid) return c;
    switch (rng_() % 14) {
      case 0: c.flags = 1u << (rng_() % 32); *why = "flags"; break;
      case 1: c.reserved0 = static_cast<uint32_t>(rng_() | 1); *why = "reserved0"; break;
      case 2: c.reserved1 = rng_() | 1; *why = "reserved1"; break;
      case 3: c.block_bytes = 64; *why = "block of a header alone"; break;
      case 4: c.block_bytes = 4096 + 32; *why = "block not a multiple of 64"; break;
      case 5: c.block_bytes = limit + 64; *why = "block over the limit"; break;
      case 6: c.block_bytes = 0xffffffc0u; *why = "block of 4 GiB"; break;
      case 7: c.overrun_policy = 3 + static_cast<uint32_t>(rng_() % 100); *why = "policy"; break;
      case 8: {
        const uint32_t bad[] = {0, 9, 0x7fff, 0x8001, 0xffff, 0x10000, static_cast<uint32_t>(rng_()) | 0x10000};
        c.sample_format = bad[rng_() % std::size(bad)];
        *why = "format";
        break;
      }
      case 9: c.channels = SRING_MAX_CHANNELS + 1 + static_cast<uint32_t>(rng_() % 1000); *why = "channels"; break;
      case 10: c.sample_rate = SRING_MAX_SAMPLE_RATE + 1 + rng_() % 1000; *why = "rate"; break;
      case 11: c.flush_timeout_us = SRING_MAX_FLUSH_TIMEOUT_US + 1; *why = "flush timeout"; break;
      case 12:
        c.sample_format = SRING_FMT_CF32;
        c.channels = SRING_MAX_CHANNELS;
        c.block_bytes = 1024;
        *why = "a frame larger than the block";
        break;
      default: c.channels = 0xffffffffu; *why = "channels 2^32-1"; break;
    }
    return c;
  }

  sring_fault make_fault(bool valid) {
    sring_fault f{};
    if (valid) {
      f.kind = 1 + static_cast<uint32_t>(rng_() % 5);
      switch (f.kind) {
        case SRING_FAULT_STALL: f.arg = 1 + rng_() % 20000; break;
        case SRING_FAULT_FAIL: f.arg = 1; break;
        default: f.arg = 1 + rng_() % (rng_() % 8 ? 8 : SRING_MAX_FAULT_BLOCKS); break;
      }
      return f;
    }
    switch (rng_() % 6) {
      case 0: f = {0, 0, 1}; break;
      case 1: f = {static_cast<uint32_t>(6 + rng_() % 1000), 0, 1}; break;
      case 2: f = {SRING_FAULT_BURST, static_cast<uint32_t>(rng_() | 1), 1}; break;
      case 3: f = {1 + static_cast<uint32_t>(rng_() % 4), 0, 0}; break;
      case 4:
        f = {SRING_FAULT_STALL, 0, SRING_MAX_FAULT_STALL_US + 1 + rng_() % 1000};
        if (rng_() % 2) f = {SRING_FAULT_CORRUPT, 0, SRING_MAX_FAULT_BLOCKS + 1 + rng_() % 1000};
        break;
      default: f = {SRING_FAULT_FAIL, 0, 2 + rng_() % 1000}; break;
    }
    return f;
  }

  void* bad_pointer() {
    switch (rng_() % 5) {
      case 0: return nullptr;
      case 1: return unmapped_;
      case 2: return edge_ + geo_.page - 2;  // straddles into an inaccessible page
      case 3: {
        // Kernel memory, or the first address above user space.
        const uintptr_t beyond[] = {0xffff888000000000, 0x0000800000000000, 0x00007ffffffff000};
        return reinterpret_cast<void*>(beyond[rng_() % std::size(beyond)]);
      }
      default:  // anywhere in a reserved, inaccessible range, aligned or not
        return unmapped_ + rng_() % (kUnmappedPages * geo_.page);
    }
  }

  // One of the ten commands with arguments made for it.
  void real_ioctl(const OpenFile& f, unsigned nr) {
    alignas(64) uint8_t buffer[256];
    for (auto& b : buffer) b = static_cast<uint8_t>(rng_());
    void* arg = buffer;
    bool bad_arg = false;   // the kernel must refuse it
    const char* why = "";
    int efd = -1;
    switch (nr) {
      case 0: case 4: case 7:  // GET_*: a buffer, or none
        if (rng_() % 4 == 0) { arg = bad_pointer(); bad_arg = true; why = "a bad pointer"; }
        break;
      case 1: {  // SET_EVENTFD
        int32_t value = -1;
        switch (rng_() % 6) {
          case 0: case 1: efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); value = efd; break;
          case 2: value = -1; bad_arg = true; why = "fd -1"; break;
          case 3: value = f.fd; bad_arg = true; why = "the device's own fd"; break;
          case 4: value = 100000 + static_cast<int32_t>(rng_() % 1000); bad_arg = true; why = "a closed fd"; break;
          default: arg = bad_pointer(); bad_arg = true; why = "a bad pointer"; break;
        }
        if (arg == buffer) std::memcpy(buffer, &value, sizeof(value));
        break;
      }
      case 3: {  // SET_CONFIG
        if (rng_() % 6 == 0) { arg = bad_pointer(); bad_arg = true; why = "a bad pointer"; break; }
        const bool valid = rng_() % 2;
        const sring_config config = make_config(valid, &why);
        std::memcpy(buffer, &config, sizeof(config));
        bad_arg = !valid;
        break;
      }
      case 9: {  // INJECT_FAULT
        if (rng_() % 6 == 0) { arg = bad_pointer(); bad_arg = true; why = "a bad pointer"; break; }
        const bool valid = rng_() % 2;
        const sring_fault fault = make_fault(valid);
        std::memcpy(buffer, &fault, sizeof(fault));
        bad_arg = !valid;
        why = "an invalid fault";
        break;
      }
      default:  // no argument: anything
        arg = reinterpret_cast<void*>(static_cast<uintptr_t>(rng_()));
        break;
    }
    const int r = ::ioctl(f.fd, kCommands[nr].cmd, arg);
    const int slot = note(kIoctl + static_cast<int>(nr), slot_of(r < 0));
    if (slot == 0 && kCommands[nr].control && !f.writable) {
      unexpected("%s succeeded on a read-only descriptor", kCommands[nr].name);
    }
    if (slot == 0 && bad_arg) unexpected("%s succeeded with %s", kCommands[nr].name, why);
    if (nr == 3 && !bad_arg && f.writable && slot == EINVAL) {
      unexpected("SET_CONFIG refused a valid configuration with EINVAL");
    }
    if (nr == 0 && slot == 0) {
      sring_info info{};
      std::memcpy(&info, buffer, sizeof(info));
      if (info.abi_version != SRING_ABI_VERSION || info.ring_size != geo_.ring_size ||
          info.data_offset != SRING_DATA_PGOFF * geo_.page) {
        unexpected("GET_INFO said abi %#x ring %llu", info.abi_version, static_cast<unsigned long long>(info.ring_size));
      }
    }
    if (efd >= 0) {
      // Closed at once or a little later, while the device may signal it.
      if (rng_() % 2) std::this_thread::sleep_for(std::chrono::microseconds(rng_() % 2000));
      ::close(efd);
    }
  }

  // A command with the wrong size, or the wrong direction, in its number.
  void variant_ioctl(const OpenFile& f, unsigned nr, bool size_variant) {
    const unsigned int cmd = kCommands[nr].cmd;
    unsigned int dir = _IOC_DIR(cmd), size = _IOC_SIZE(cmd);
    if (size_variant) {
      const unsigned int candidates[] = {0, size - 1, size + 1, 2 * size, 4, 8, size + 64,
                                         static_cast<unsigned int>(rng_() % (_IOC_SIZEMASK + 1))};
      unsigned int s = size;
      while (s == size) s = candidates[rng_() % std::size(candidates)] & _IOC_SIZEMASK;
      size = s;
    } else {
      unsigned int d = dir;
      while (d == dir) d = static_cast<unsigned int>(rng_() % 4);
      dir = d;
    }
    const unsigned int variant = _IOC(dir, SRING_IOC_MAGIC, nr, size);
    void* arg = rng_() % 4 ? static_cast<void*>(big_.data()) : bad_pointer();
    const int r = ::ioctl(f.fd, variant, arg);
    if (note((size_variant ? kWrongSize : kWrongDir) + static_cast<int>(nr), slot_of(r < 0)) == 0) {
      unexpected("%s with %s (%#x) succeeded", kCommands[nr].name, size_variant ? "a wrong size" : "a wrong direction",
                 variant);
    }
  }

  void unknown_ioctl(const OpenFile& f) {
    unsigned int cmd;
    int row;
    if (rng_() % 2) {
      cmd = _IOC(static_cast<unsigned int>(rng_() % 4), SRING_IOC_MAGIC, 10 + static_cast<unsigned int>(rng_() % 246),
                 static_cast<unsigned int>(rng_() % (_IOC_SIZEMASK + 1)));
      row = kUnknownNr;
    } else {
      // Any number, but not the VFS's own (FIONREAD, FIOCLEX, FS_IOC_*, ...,
      // types 'T', 'f', 'X', 0x94), which may rightly succeed on any file.
      unsigned int type;
      do {
        cmd = static_cast<unsigned int>(rng_());
        type = _IOC_TYPE(cmd);
      } while (type == 'T' || type == 'f' || type == 'X' || type == 0x94 || type == SRING_IOC_MAGIC);
      row = kForeign;
    }
    void* arg = rng_() % 2 ? static_cast<void*>(big_.data()) : bad_pointer();
    if (note(row, slot_of(::ioctl(f.fd, cmd, arg) < 0)) == 0) unexpected("unknown ioctl %#x succeeded", cmd);
  }

  void open_one() {
    const size_t limit = monitor_ ? 3 : 5;
    if (files_.size() >= limit) return close_one();
    const int nonblock = rng_() % 2 ? O_NONBLOCK : 0;
    // The monitor grabs the consumer role now and then, for a storm, and
    // lets it go at once: the verified epochs need it.
    if (!monitor_ ? rng_() % 3 == 0 : rng_() % 6 == 0) {
      const int fd = ::open(kDevice, O_RDWR | O_CLOEXEC | nonblock);
      if (note(kOpenRdwr, slot_of(fd < 0)) != 0) return;
      if (monitor_) {
        storm({fd, true}, 1 + static_cast<unsigned>(rng_() % 8));
        ::close(fd);
        return;
      }
      files_.push_back({fd, true});
      return;
    }
    const int fd = ::open(kDevice, O_RDONLY | O_CLOEXEC | nonblock);
    if (note(kOpenRdonly, slot_of(fd < 0)) == 0) files_.push_back({fd, false});
  }

  void close_one() {
    if (files_.empty()) return;
    const size_t i = rng_() % files_.size();
    ::close(files_[i].fd);
    files_.erase(files_.begin() + static_cast<long>(i));
  }

  // Drops every mapping made through fd (a monitor's file that took the
  // consumer role by read() must let it go).
  void forget(int fd) {
    for (size_t i = maps_.size(); i-- > 0;) {
      if (maps_[i].fd == fd) {
        ::munmap(maps_[i].addr, maps_[i].len);
        maps_.erase(maps_.begin() + static_cast<long>(i));
      }
    }
    for (size_t i = files_.size(); i-- > 0;) {
      if (files_[i].fd == fd) {
        ::close(fd);
        files_.erase(files_.begin() + static_cast<long>(i));
      }
    }
  }

  void map_one(const OpenFile& f) {
    const size_t page = geo_.page, data = 2 * geo_.ring_size;
    const unsigned pick = static_cast<unsigned>(rng_() % 8);
    const int region = pick < 2 ? 0 : pick < 4 ? 1 : pick < 7 ? 2 : 3;
    off_t pgoff = region;
    size_t len;
    if (region == 3) {
      const off_t far[] = {3, 4, static_cast<off_t>(2 + 2 * geo_.ring_size / page), static_cast<off_t>(rng_() % 100000),
                           static_cast<off_t>(1) << 30};
      pgoff = far[rng_() % std::size(far)];
      len = page;
    } else if (region == 2) {
      const size_t lens[] = {data, data, data, geo_.ring_size, data + page, data - page, page, 0};
      len = lens[rng_() % std::size(lens)];
    } else {
      const size_t lens[] = {page, page, page, page / 2, 2 * page, 0};
      len = lens[rng_() % std::size(lens)];
    }
    const int prots[] = {PROT_READ, PROT_READ, PROT_READ | PROT_WRITE, PROT_WRITE, PROT_NONE};
    const int prot = prots[rng_() % std::size(prots)];
    const bool shared = rng_() % 4 != 0;
    void* p = ::mmap(nullptr, len, prot, shared ? MAP_SHARED : MAP_PRIVATE, f.fd, pgoff * static_cast<off_t>(page));
    const int row = kMmapProducer + region;
    if (note(row, slot_of(p == MAP_FAILED)) != 0) return;
    const size_t rounded = (len + page - 1) / page * page;
    if (region == 3) {
      unexpected("mmap at page %lld succeeded", static_cast<long long>(pgoff));
    } else if ((prot & PROT_WRITE) && region != 1) {
      unexpected("a writable %s mapping of the %s was allowed", shared ? "shared" : "private",
                 region == 0 ? "producer page" : "data");
    } else if ((prot & PROT_WRITE) && !f.writable) {
      unexpected("a monitor mapped the consumer page writable");
    } else if (rounded != (region == 2 ? data : page)) {
      unexpected("a mapping of %zu bytes of region %d was allowed", len, region);
    }
    if (maps_.size() >= (monitor_ ? 4u : 6u)) unmap_one();
    maps_.push_back({static_cast<uint8_t*>(p), rounded, region, prot, shared, f.writable && region == 1, f.fd});
    touch(maps_.back());
  }

  // Reads every page; the producer page must say who it is.
  void touch(const Map& m) {
    if (!(m.prot & PROT_READ)) return;
    volatile uint8_t sink = 0;
    for (size_t off = 0; off < m.len; off += geo_.page) sink = sink + m.addr[off];
    (void)sink;
    if (m.region == 0 && load(reinterpret_cast<const sring_producer_page*>(m.addr)->magic) != SRING_MAGIC) {
      unexpected("the producer page mapped at %p has no magic", static_cast<void*>(m.addr));
    }
  }

  void touch_one() {
    if (!maps_.empty()) touch(maps_[rng_() % maps_.size()]);
  }

  void unmap_one() {
    if (maps_.empty()) return;
    const size_t i = rng_() % maps_.size();
    ::munmap(maps_[i].addr, maps_[i].len);
    maps_.erase(maps_.begin() + static_cast<long>(i));
  }

  void mprotect_one() {
    if (maps_.empty()) return;
    Map& m = maps_[rng_() % maps_.size()];
    // All of it, or its first page.
    const size_t len = rng_() % 3 ? m.len : geo_.page;
    if (rng_() % 3) {
      const int row = m.region == 0 ? kMprotectProducerW
                      : m.region == 2 ? kMprotectDataW
                      : m.may_write   ? kMprotectConsumerW
                                      : kMprotectMonitorW;
      const int slot = note(row, slot_of(::mprotect(m.addr, len, PROT_READ | PROT_WRITE) != 0));
      if (slot == 0 && row != kMprotectConsumerW) {
        unexpected("mprotect made a read-only %s writable", row == kMprotectProducerW ? "producer page"
                                                             : row == kMprotectDataW  ? "data mapping"
                                                                                      : "consumer page of a monitor");
      }
      if (slot == 0 && len == m.len) m.prot = PROT_READ | PROT_WRITE;
      if (slot == EACCES && row == kMprotectConsumerW) unexpected("mprotect refused the consumer its own page");
      return;
    }
    const int prot = rng_() % 2 ? PROT_READ : PROT_NONE;
    if (note(kMprotectDown, slot_of(::mprotect(m.addr, m.len, prot) != 0)) == 0) m.prot = prot;
  }

  void mremap_one() {
    if (maps_.empty()) return;
    Map& m = maps_[rng_() % maps_.size()];
    const size_t page = geo_.page;
    switch (rng_() % 4) {
      case 0: {  // grow: VM_DONTEXPAND
        const size_t len = m.len + page * (1 + rng_() % 4);
        void* p = ::mremap(m.addr, m.len, len, MREMAP_MAYMOVE);
        if (note(kMremapGrow, slot_of(p == MAP_FAILED)) == 0) {
          unexpected("mremap grew a mapping of region %d", m.region);
          ::munmap(p, len);
          maps_.erase(maps_.begin() + (&m - maps_.data()));
        }
        return;
      }
      case 1: {  // move it whole to an address of our choosing
        void* to = ::mmap(nullptr, m.len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (to == MAP_FAILED) return;
        void* p = ::mremap(m.addr, m.len, m.len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
        if (note(kMremapMove, slot_of(p == MAP_FAILED)) != 0) {
          ::munmap(to, m.len);
          return;
        }
        m.addr = static_cast<uint8_t*>(p);
        touch(m);
        return;
      }
      case 2: {  // shrink: the data to one copy, or a page less
        if (m.len <= page) return;
        const size_t len = m.region == 2 && m.len > geo_.ring_size && rng_() % 2 ? geo_.ring_size : m.len - page;
        void* p = ::mremap(m.addr, m.len, len, 0);
        if (note(kMremapShrink, slot_of(p == MAP_FAILED)) == 0) {
          m.len = len;
          touch(m);
        }
        return;
      }
      default: {  // MREMAP_DONTUNMAP: refused for VM_PFNMAP and VM_DONTEXPAND
        void* p = ::mremap(m.addr, m.len, m.len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
        if (note(kMremapDontunmap, slot_of(p == MAP_FAILED)) == 0) {
          unexpected("mremap MREMAP_DONTUNMAP of region %d succeeded", m.region);
          ::munmap(p, m.len);
        }
        return;
      }
    }
  }

  // A child inherits the mappings: it reads them (and a read-only one stays
  // read-only for it: mprotect is refused), or writes a read-only one and
  // must die of SIGSEGV.
  void fork_one() {
    const Map* target = nullptr;
    for (const Map& m : maps_) {
      if (m.region != 1 && (m.prot & PROT_READ)) target = &m;
    }
    const bool write = target && rng_() % 3 == 0;
    const pid_t child = ::fork();
    if (child < 0) {
      note(write ? kForkWrite : kForkRead, slot_of(true));
      return;
    }
    if (child == 0) {
      if (write) {
        *const_cast<volatile uint8_t*>(target->addr + geo_.page / 2) = 0x5a;
        ::_exit(0);  // must not get here
      }
      int status = 0;
      for (const Map& m : maps_) {
        if (!(m.prot & PROT_READ)) continue;
        volatile uint8_t sink = 0;
        for (size_t off = 0; off < m.len; off += geo_.page) sink = sink + m.addr[off];
        (void)sink;
        if (m.region == 0 && load(reinterpret_cast<const sring_producer_page*>(m.addr)->magic) != SRING_MAGIC) {
          status = 1;
        }
        if (m.region != 1) {
          const int row = m.region == 0 ? kMprotectProducerW : kMprotectDataW;
          if (note(row, slot_of(::mprotect(m.addr, geo_.page, PROT_READ | PROT_WRITE) != 0)) == 0) status = 2;
        }
      }
      ::_exit(status);
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    int slot = 0;
    if (WIFEXITED(status)) {
      slot = WEXITSTATUS(status) == 0 ? 0 : kChildFailed;
    } else if (WIFSIGNALED(status)) {
      slot = WTERMSIG(status) == SIGSEGV ? kSigSegv : WTERMSIG(status) == SIGBUS ? kSigBus : kSignal;
    }
    note(write ? kForkWrite : kForkRead, slot);
    if (write && slot == 0) unexpected("a fork child wrote a read-only mapping of region %d", target->region);
    if (!write && slot != 0) {
      unexpected("a fork child found its inherited mappings wrong (%s, status %#x)", outcome_name(slot), status);
    }
  }

  // The consumer page, writable, as a consumer maps it.
  void map_consumer_page(const OpenFile& f) {
    void* p = ::mmap(nullptr, geo_.page, PROT_READ | PROT_WRITE, MAP_SHARED, f.fd, SRING_CONSUMER_PGOFF * geo_.page);
    if (note(kMmapConsumer, slot_of(p == MAP_FAILED)) != 0) return;
    if (maps_.size() >= (monitor_ ? 4u : 6u)) unmap_one();
    maps_.push_back({static_cast<uint8_t*>(p), geo_.page, 1, PROT_READ | PROT_WRITE, true, true, f.fd});
  }

  // Random tail, need_wakeup and wakeup_watermark through a writable
  // consumer page (mapped first if there is none and we hold the role).
  // Whether the kernel refused a tail shows in bad_tails.
  void consumer_page_one() {
    Map* page = nullptr;
    for (Map& m : maps_) {
      if (m.region == 1 && m.shared && (m.prot & PROT_WRITE)) page = &m;
    }
    if (!page) {
      for (const OpenFile& f : files_) {
        if (f.writable) {
          map_consumer_page(f);
          return;
        }
      }
      return;
    }
    auto* c = reinterpret_cast<sring_consumer_page*>(page->addr);
    switch (rng_() % 4) {
      case 0: case 1: {
        sring_stats before{};
        if (::ioctl(stats_fd_, SRING_IOC_GET_STATS, &before) != 0) return;
        uint64_t tail;
        switch (rng_() % 6) {
          case 0: tail = rng_(); break;
          case 1: tail = before.head; break;
          case 2: tail = before.tail; break;
          case 3: tail = before.tail + 64 * (rng_() % 3) - 64; break;
          case 4: tail = before.head + 64; break;
          default: tail = before.tail + 1 + rng_() % 63; break;  // inside a block
        }
        __atomic_store_n(&c->tail, tail, __ATOMIC_RELEASE);
        sring_stats after{};
        if (::ioctl(stats_fd_, SRING_IOC_GET_STATS, &after) != 0) return;
        note(kTail, after.bad_tails > before.bad_tails ? kRefused : kAccepted);
        return;
      }
      case 2: {
        const uint32_t values[] = {0, 1, 2, static_cast<uint32_t>(rng_())};
        __atomic_store_n(&c->need_wakeup, values[rng_() % std::size(values)], __ATOMIC_RELAXED);
        note(kNeedWakeup, kWritten);
        return;
      }
      default: {
        const uint64_t values[] = {0, 1, 64, geo_.ring_size / 2, geo_.ring_size, 2 * geo_.ring_size, ~uint64_t{0}, rng_()};
        __atomic_store_n(&c->wakeup_watermark, values[rng_() % std::size(values)], __ATOMIC_RELAXED);
        note(kWatermark, kWritten);
        return;
      }
    }
  }

  void read_one(const OpenFile& f) {
    const size_t sizes[] = {0, 1, 63, 100, 4096, 8192, 65536, big_.size()};
    const size_t count = sizes[rng_() % std::size(sizes)];
    void* buf = rng_() % 8 ? static_cast<void*>(big_.data()) : bad_pointer();
    // A blocking read() of an empty ring waits: a timer signal (no
    // SA_RESTART) ends the wait with EINTR after 50 ms.
    itimerval bound{};
    bound.it_value.tv_usec = 50'000;
    ::setitimer(ITIMER_REAL, &bound, nullptr);
    const ssize_t r = ::read(f.fd, buf, count);
    const int saved = errno;
    const itimerval off{};
    ::setitimer(ITIMER_REAL, &off, nullptr);
    errno = saved;
    const int slot = note(kRead, r > 0 ? kData : slot_of(r < 0));
    if (r > 0 && (static_cast<size_t>(r) > count || r % SRING_BLOCK_ALIGN != 0)) {
      unexpected("read(%zu) returned %zd: not whole blocks", count, r);
    }
    // A monitor's descriptor that took the consumer role by read() lets it
    // go at once.
    if (monitor_ && slot != EBUSY) forget(f.fd);
  }

  void poll_one(const OpenFile& f) {
    pollfd p{f.fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(rng_() % 3));
    int slot = slot_of(r < 0);
    if (r == 0) {
      slot = kPollNone;
    } else if (r > 0) {
      slot = p.revents & POLLERR ? kPollErr : p.revents & POLLHUP ? kPollHup : p.revents & POLLIN ? kPollIn : kError;
    }
    note(kPoll, slot);
  }

 private:
  // Bad pointers point into this (never at random low addresses: a static
  // binary lives there, and a "successful" copy_to_user would corrupt it).
  static constexpr size_t kUnmappedPages = 16;
  Geometry geo_;
  std::mt19937_64 rng_;
  bool monitor_;
  std::vector<uint8_t> big_;  // larger than any _IOC_SIZE
  uint8_t* unmapped_ = nullptr;
  uint8_t* edge_ = nullptr;
  int stats_fd_ = -1;
  std::vector<OpenFile> files_;
  std::vector<Map> maps_;
};

// ---- a verified acquisition -------------------------------------------------

struct Layout {
  uint32_t format;
  uint32_t channels;
  const char* name;
};

// A consumer that verifies every sample of a stream made with a random valid
// configuration, stalls and bursts injected under it, until `until`.
void verified_epoch(std::mt19937_64& rng, const Geometry& geo, Clock::time_point until, int epoch) {
  sring::UniqueFd fd;
  const auto give_up = Clock::now() + std::chrono::seconds(5);
  for (;;) {
    fd = sring::UniqueFd(::open(kDevice, O_RDWR | O_CLOEXEC));
    if (note(kOpenRdwr, slot_of(!fd.valid())) == 0) break;
    if (Clock::now() > give_up) {
      note(kVerified, kNoRole);
      std::printf("fuzz: verified epoch %d: the consumer role did not come free in 5 s\n", epoch);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const Layout layouts[] = {{SRING_FMT_U16, 1, "u16"},   {SRING_FMT_S16, 1, "s16"},  {SRING_FMT_U8, 1, "u8"},
                            {SRING_FMT_S32, 1, "s32"},   {SRING_FMT_F32, 1, "f32"},  {SRING_FMT_CS16, 2, "cs16"},
                            {SRING_FMT_CF32, 1, "cf32"}, {SRING_FMT_U16, 4, "u16"},
                            {SRING_FMT_SIM_PACKED12, 1, "packed12"}};
  const Layout layout = layouts[rng() % std::size(layouts)];
  sring_config config = sring::default_device_config();
  config.sample_format = layout.format;
  config.channels = layout.channels;
  config.pattern_seed = static_cast<uint32_t>(rng());
  const uint64_t rates[] = {1'000'000, 2'000'000, 5'000'000, 10'000'000};
  config.sample_rate = rates[rng() % std::size(rates)];
  const uint32_t blocks[] = {4096, 8192, 16384, 65536, static_cast<uint32_t>(64 * (16 + rng() % 1008))};
  config.block_bytes = std::min(blocks[rng() % std::size(blocks)], geo.max_block);
  const unsigned policy = static_cast<unsigned>(rng() % 10);
  config.overrun_policy = policy < 5 ? SRING_OVERRUN_DROP_NEWEST : policy < 9 ? SRING_OVERRUN_OVERWRITE_OLDEST
                                                                                : SRING_OVERRUN_STOP;
  const unsigned long setup[] = {SRING_IOC_STOP, SRING_IOC_RESET};
  for (unsigned long cmd : setup) note(kIoctl + static_cast<int>(_IOC_NR(cmd)), slot_of(::ioctl(fd.get(), cmd) != 0));
  if (note(kIoctl + 3, slot_of(::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &config) != 0)) != 0) {
    note(kVerified, kError);
    std::printf("fuzz: verified epoch %d: SET_CONFIG refused a valid configuration: %s\n", epoch, std::strerror(errno));
    return;
  }
  auto ring = sring::Ring::attach(std::move(fd), sring::Ring::Access::kConsumer);
  if (!ring || !ring->enable_eventfd()) {
    note(kVerified, kError);
    std::printf("fuzz: verified epoch %d: attach: %s\n", epoch, ring ? "eventfd" : ring.error().message.c_str());
    return;
  }
  if (note(kIoctl + 5, slot_of(::ioctl(ring->fd(), SRING_IOC_START) != 0)) != 0) {
    note(kVerified, kError);
    std::printf("fuzz: verified epoch %d: START: %s\n", epoch, std::strerror(errno));
    return;
  }
  const unsigned slow_ms = rng() % 3 == 0 ? 100 : 0;
  sring::StreamConsumer consumer(*ring, true);
  consumer.accounting().expect_start(0, 0);
  bool stop_sent = false;
  std::string error;
  auto next_fault = Clock::now() + std::chrono::milliseconds(100 + rng() % 400);
  for (;;) {
    auto n = consumer.consume_available();
    if (!n) {
      error = n.error().message;
      break;
    }
    const auto now = Clock::now();
    if (!stop_sent && now >= until) {
      note(kIoctl + 6, slot_of(::ioctl(ring->fd(), SRING_IOC_STOP) != 0));
      stop_sent = true;
    }
    if (!stop_sent && now >= next_fault) {
      // A stall and a burst lose nothing by themselves; what a burst
      // overruns is counted.
      sring_fault fault{SRING_FAULT_STALL, 0, 1000 + rng() % 50000};
      if (rng() % 2) fault = {SRING_FAULT_BURST, 0, 1 + rng() % (rng() % 4 ? 32 : SRING_MAX_FAULT_BLOCKS)};
      note(kIoctl + 9, slot_of(::ioctl(ring->fd(), SRING_IOC_INJECT_FAULT, &fault) != 0));
      next_fault = now + std::chrono::milliseconds(100 + rng() % 400);
    }
    if (*n > 0) {
      // A slow consumer now and then: the ring fills, and what is lost must
      // be accounted for exactly.
      if (slow_ms) std::this_thread::sleep_for(std::chrono::milliseconds(rng() % (slow_ms + 1)));
      continue;
    }
    if (ring->state() != SRING_STATE_RUNNING && ring->head() == ring->tail()) break;
    if (now > until + std::chrono::seconds(20)) {
      error = "the stream did not end 20 s after the stop";
      break;
    }
    auto waited = ring->wait(sring::WaitStrategy::kEventfd, std::chrono::milliseconds(50));
    if (!waited) {
      error = waited.error().message;
      break;
    }
  }
  const sring::StreamCounters& c = consumer.counters();
  const sring::EndOfStream end = consumer.accounting().finish(ring->producer());
  const uint64_t bad_tails = load(ring->producer().bad_tails);
  std::vector<std::string> problems;
  if (!error.empty()) problems.push_back(error);
  if (!end.exact()) {
    problems.push_back("accounting: " + std::to_string(end.missing_samples) + " samples missing, producer dropped " +
                       std::to_string(end.dropped_samples));
  }
  if (config.overrun_policy == SRING_OVERRUN_DROP_NEWEST &&
      (c.flagged_lost_samples != c.lost_samples || c.unflagged_gaps != 0)) {
    problems.push_back("in-band loss flags disagree with the jumps");
  }
  if (c.out_of_order) problems.push_back(std::to_string(c.out_of_order) + " blocks out of order");
  if (bad_tails) problems.push_back(std::to_string(bad_tails) + " tails refused");
  if (c.corrupted_samples) problems.push_back(std::to_string(c.corrupted_samples) + " corrupted values");
  note(kVerified, c.corrupted_samples ? kCorrupt : !error.empty() ? kError : problems.empty() ? kExact : kInexact);
  __atomic_fetch_add(&g_shared->verified_epochs, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&g_shared->verified_samples, c.samples, __ATOMIC_RELAXED);
  __atomic_fetch_add(&g_shared->lost_samples, end.missing_samples, __ATOMIC_RELAXED);
  __atomic_fetch_add(&g_shared->dropped_samples, end.dropped_samples, __ATOMIC_RELAXED);
  std::string problem_text;
  for (const auto& p : problems) problem_text += (problem_text.empty() ? "" : "; ") + p;
  std::printf("fuzz: verified epoch %d: %s x%u, %.0f MS/s, %u B blocks, %s%s: %llu samples verified, %llu lost "
              "(producer dropped %llu): %s\n",
              epoch, layout.name, layout.channels, static_cast<double>(config.sample_rate) / 1e6, config.block_bytes,
              config.overrun_policy == 0 ? "drop-newest" : config.overrun_policy == 1 ? "overwrite-oldest" : "stop",
              slow_ms ? ", slow consumer" : "",
              static_cast<unsigned long long>(c.samples), static_cast<unsigned long long>(end.missing_samples),
              static_cast<unsigned long long>(end.dropped_samples),
              problems.empty() ? "exact" : ("FAILED: " + problem_text).c_str());
}

// ---- the table --------------------------------------------------------------

// Prints the table; returns the number of rows that failed.
int print_table(const std::vector<RowSpec>& rows) {
  int failed_rows = 0;
  std::printf("| operation | calls | results (* required) | verdict |\n|---|---:|---|---|\n");
  for (int row = 0; row < kRows; ++row) {
    const RowSpec& spec = rows[static_cast<size_t>(row)];
    uint64_t calls = 0;
    std::string results;
    for (int slot = 0; slot < kSlots; ++slot) {
      const uint64_t n = g_shared->counts[row][slot];
      calls += n;
      if (!n) continue;
      const bool required = std::count(spec.required.begin(), spec.required.end(), slot) > 0;
      const bool forbidden = std::count(spec.forbidden.begin(), spec.forbidden.end(), slot) > 0;
      results += std::string(results.empty() ? "" : " ") + outcome_name(slot) + (required ? "*" : "") +
                 (forbidden ? "!" : "") + "=" + std::to_string(n);
    }
    std::string verdict;
    for (int slot : spec.required) {
      if (!g_shared->counts[row][slot]) verdict += std::string(verdict.empty() ? "" : ", ") + "never " + outcome_name(slot);
    }
    for (int slot : spec.forbidden) {
      if (g_shared->counts[row][slot]) verdict += std::string(verdict.empty() ? "" : ", ") + "FORBIDDEN " + outcome_name(slot);
    }
    if (!calls) verdict = "NEVER REACHED";
    if (!verdict.empty()) ++failed_rows;
    std::printf("| %s | %llu | %s | %s |\n", spec.name.c_str(), static_cast<unsigned long long>(calls),
                results.c_str(), verdict.empty() ? "ok" : ("FAIL: " + verdict).c_str());
  }
  return failed_rows;
}

}  // namespace

int fuzz(double seconds, uint64_t seed) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  struct sigaction interrupt {};
  interrupt.sa_handler = [](int) {};  // only to interrupt a blocking read()
  ::sigaction(SIGALRM, &interrupt, nullptr);
  void* shared = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return 2;
  g_shared = static_cast<Shared*>(shared);

  Geometry geo;
  geo.page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  {
    UniqueFd fd(::open(kDevice, O_RDONLY | O_CLOEXEC));
    sring_info info{};
    if (!fd.valid() || ::ioctl(fd.get(), SRING_IOC_GET_INFO, &info) != 0) {
      std::printf("fuzz: cannot open %s: %s\n", kDevice, std::strerror(errno));
      return 2;
    }
    geo.ring_size = info.ring_size;
    geo.max_block = info.max_block_bytes;
  }
  const auto started = Clock::now();
  const auto deadline = started + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));

  // The monitor: read-only the whole time, its own stream of choices.
  const pid_t monitor = ::fork();
  if (monitor < 0) return 2;
  if (monitor == 0) {
    {
      Actor actor(geo, seed * 0x9e3779b97f4a7c15ULL + 1, true);
      while (Clock::now() < deadline) actor.step();
    }
    ::_exit(0);
  }

  std::mt19937_64 rng(seed);
  Actor chaos(geo, seed, false);
  int epoch = 0;
  while (Clock::now() < deadline) {
    ++epoch;
    const auto left = deadline - Clock::now();
    const auto until = Clock::now() + std::min<Clock::duration>(left, std::chrono::milliseconds(1500 + rng() % 1000));
    if (epoch % 2 == 1) {
      if (!chaos.take_consumer(until)) {
        std::printf("fuzz: chaos epoch %d: the consumer role did not come free\n", epoch);
      }
      while (Clock::now() < until) chaos.step();
      chaos.close_all();
    } else {
      verified_epoch(rng, geo, until, epoch);
    }
  }

  // The monitor stops at the deadline; one that hangs is killed and fails.
  bool monitor_ok = false;
  int status = 0;
  const auto wait_until = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    const pid_t r = ::waitpid(monitor, &status, WNOHANG);
    if (r == monitor) {
      monitor_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      break;
    }
    if (Clock::now() > wait_until) {
      ::kill(monitor, SIGKILL);
      ::waitpid(monitor, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Leave the device stopped for whoever comes next.
  {
    UniqueFd fd(::open(kDevice, O_RDWR | O_CLOEXEC));
    if (fd.valid()) ::ioctl(fd.get(), SRING_IOC_STOP);
  }

  const double ran = std::chrono::duration<double>(Clock::now() - started).count();
  uint64_t calls = 0;
  for (int row = 0; row < kRows; ++row) {
    for (int slot = 0; slot < kSlots; ++slot) calls += g_shared->counts[row][slot];
  }
  std::printf("fuzz: reach table: seed %llu, %.1f s, %llu calls, %d epochs (command: kernel_test fuzz %g %llu)\n",
              static_cast<unsigned long long>(seed), ran, static_cast<unsigned long long>(calls), epoch, seconds,
              static_cast<unsigned long long>(seed));
  const int failed_rows = print_table(row_specs());
  std::printf("fuzz: %llu verified epochs, %llu samples verified, %llu lost, %llu dropped by the producer\n",
              static_cast<unsigned long long>(g_shared->verified_epochs),
              static_cast<unsigned long long>(g_shared->verified_samples),
              static_cast<unsigned long long>(g_shared->lost_samples),
              static_cast<unsigned long long>(g_shared->dropped_samples));
  const uint64_t unexpected_count = g_shared->unexpected;
  if (!monitor_ok) std::printf("fuzz: FAIL: the monitor process did not end cleanly (status %#x)\n", status);
  if (failed_rows) std::printf("fuzz: FAIL: %d rows of the reach table failed\n", failed_rows);
  if (unexpected_count) {
    std::printf("fuzz: FAIL: %llu unexpected successes\n", static_cast<unsigned long long>(unexpected_count));
  }
  const bool ok = monitor_ok && failed_rows == 0 && unexpected_count == 0;
  if (ok) std::printf("fuzz: PASS: every row reached its required results, nothing unexpected accepted\n");
  return ok ? 0 : 1;
}

}  // namespace sring_ktest
