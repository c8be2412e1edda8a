// failnth: every allocation on sring's paths fails once, in turn.
//
// Runs inside the QEMU guest on the debug kernel with fault injection
// (scripts/build-debug-kernel.sh: FAULT_INJECTION, FAILSLAB,
// FAIL_PAGE_ALLOC, FAULT_INJECTION_DEBUG_FS), from guest-init.sh's
// sring.mode=failnth (tests/qemu/run-qemu-tests.sh --failnth):
//
//   failnth /sring.ko /sring_sim.ko
//
// expects neither module loaded and leaves both loaded, the device stopped.
//
// For each operation (module load of the core and of the simulated device,
// which registers its ring; open; mmap of each region; every SRING_IOC_*;
// read; poll) it writes n = 1, 2, ... to /proc/thread-self/fail-nth right
// before the one system call, so that the n-th fault point the call passes
// (a slab or page allocation, Documentation/fault-injection/
// fault-injection.rst) fails. Reading fail-nth back says whether the fault
// was injected (0) or the call passed fewer than n points (n minus the
// points passed). The loop ends at the first n the call passes without
// reaching: n - 1 points were failed, one each. Each failed call must fail
// cleanly: a -errno from the set the paths can return for a failed
// allocation, and nothing left behind (no module half loaded, no class or
// ring in sysfs, no reference on the core, no consumer role taken, no
// mapping, the state and the tail unchanged). A call that succeeds although
// a fault was injected absorbed it (a fallback, a uevent the kernel does
// without): it is undone and counted. One line per operation; exit 0 only if
// every check held. What runs after (a verified acquisition, kmemleak, the
// kernel log) is guest-init.sh's.
//
// Allocations in user space between the write and the call would use the
// fault up: the program locks its memory (mlockall) and touches its stack
// first, and the call is the only thing between them.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sring/sring_abi.h"

namespace {

int g_failures = 0;
int g_fail_nth = -1;
const char* kDevice = "/dev/sring0";
const char* kSysfs = "/sys/class/sring/sring0/";

void failure(const std::string& what) {
  ++g_failures;
  std::printf("failnth: FAIL: %s\n", what.c_str());
  std::fflush(stdout);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool write_knob(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
  ::close(fd);
  return ok;
}

// The n-th fault point from now fails (0: none).
void set_fail_nth(unsigned n) {
  char buf[16];
  int len = std::snprintf(buf, sizeof(buf), "%u", n);
  if (::write(g_fail_nth, buf, len) != len) {
    std::printf("failnth: cannot write fail-nth: %s\n", std::strerror(errno));
    std::exit(2);
  }
}

// What is left of the last write: 0 once the fault was injected.
unsigned fail_nth_left() {
  char buf[16] = {};
  if (::pread(g_fail_nth, buf, sizeof(buf) - 1, 0) <= 0) {
    std::printf("failnth: cannot read fail-nth: %s\n", std::strerror(errno));
    std::exit(2);
  }
  return static_cast<unsigned>(std::strtoul(buf, nullptr, 10));
}

// Lines of /proc/modules naming this module.
bool module_loaded(const std::string& name) {
  std::istringstream in(read_file("/proc/modules"));
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, name.size() + 1, name + " ") == 0) return true;
  return false;
}

long load_module(int fd) { return ::syscall(SYS_finit_module, fd, "", 0) == 0 ? 0 : -errno; }
bool unload_module(const char* name) { return ::syscall(SYS_delete_module, name, O_NONBLOCK) == 0; }

int count_entries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d))
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ++n;
  ::closedir(d);
  return n;
}

// Mappings of the device in this process.
int device_mappings() {
  std::istringstream in(read_file("/proc/self/maps"));
  std::string line;
  int n = 0;
  while (std::getline(in, line))
    if (line.find(kDevice) != std::string::npos) ++n;
  return n;
}

std::string errno_name(int e) {
  switch (e) {
    case ENOMEM: return "ENOMEM";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case EBUSY: return "EBUSY";
    case ENODEV: return "ENODEV";
    case ENOENT: return "ENOENT";
    case ENOSPC: return "ENOSPC";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case EEXIST: return "EEXIST";
    case EPERM: return "EPERM";
    default: return "errno " + std::to_string(e);
  }
}

// What a failed allocation may come back as: ENOMEM, the allocator's own
// answer, as every sring path returns it.
const std::set<int> kAllocationErrors = {ENOMEM};

struct Op {
  std::string name;
  // Preconditions, outside the fault window.
  std::function<void()> before = [] {};
  // The one system call: >= 0 on success, -errno on failure.
  std::function<long()> call;
  // Undoes a success (close, munmap, unload, stop).
  std::function<void(long)> undo = [](long) {};
  // After a failure: "" if nothing was left behind, else what was.
  std::function<std::string()> clean = [] { return std::string(); };
  // Errors this call may return for a failed allocation.
  std::set<int> errors = kAllocationErrors;
};

struct Outcome {
  unsigned points = 0;    // fault points passed by a call that faults nowhere
  unsigned failed = 0;    // injected faults the call returned an error for
  unsigned absorbed = 0;  // injected faults after which the call still succeeded
  std::map<int, unsigned> errors;
};

constexpr unsigned kMaxPoints = 4000;

bool run(const Op& op) {
  Outcome out;
  const int failures_before = g_failures;
  for (unsigned n = 1;; ++n) {
    if (n > kMaxPoints) {
      failure(op.name + ": still failing after " + std::to_string(kMaxPoints) + " fault points");
      break;
    }
    op.before();
    set_fail_nth(n);
    const long r = op.call();
    const unsigned left = fail_nth_left();
    if (left) set_fail_nth(0);
    if (r >= 0) {
      op.undo(r);
      if (left) {
        out.points = n - 1;
        break;
      }
      ++out.absorbed;
      continue;
    }
    const int e = static_cast<int>(-r);
    if (left) {
      failure(op.name + ": " + errno_name(e) + " with no fault injected (n = " + std::to_string(n) + ")");
      break;
    }
    ++out.failed;
    ++out.errors[e];
    if (!op.errors.count(e))
      failure(op.name + ": fault point " + std::to_string(n) + " failed with " + errno_name(e) +
              ", not a failed allocation's error");
    const std::string left_behind = op.clean();
    if (!left_behind.empty()) {
      failure(op.name + ": fault point " + std::to_string(n) + " (" + errno_name(e) + ") left " + left_behind);
      break;
    }
  }
  std::string errors;
  for (const auto& [e, count] : out.errors) errors += " " + errno_name(e) + " x" + std::to_string(count);
  std::printf("failnth: %-40s %4u fault points: %4u failed cleanly (%s), %4u absorbed%s\n", op.name.c_str(),
              out.points, out.failed, errors.empty() ? "-" : errors.substr(1).c_str(), out.absorbed,
              g_failures == failures_before ? "" : "  FAILED");
  std::fflush(stdout);
  return g_failures == failures_before;
}

sring_stats stats_of(int fd) {
  sring_stats st{};
  if (::ioctl(fd, SRING_IOC_GET_STATS, &st) != 0) failure(std::string("GET_STATS: ") + std::strerror(errno));
  return st;
}

long ioctl_result(int fd, unsigned long cmd, void* arg) { return ::ioctl(fd, cmd, arg) == 0 ? 0 : -errno; }

void must(bool ok, const std::string& what) {
  if (!ok) {
    failure(what + ": " + std::strerror(errno));
    std::exit(1);
  }
}

// Touches STACK bytes of stack, so the calls below never grow it.
[[gnu::noinline]] void touch_stack() {
  volatile char pad[512 * 1024];
  for (size_t i = 0; i < sizeof(pad); i += 4096) pad[i] = 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: failnth SRING.KO SRING_SIM.KO\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  g_fail_nth = ::open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
  if (g_fail_nth < 0) {
    std::printf("failnth: this kernel has no /proc/thread-self/fail-nth (%s): it needs CONFIG_FAULT_INJECTION "
                "(scripts/build-debug-kernel.sh)\n", std::strerror(errno));
    return 3;
  }
  // By default neither failslab nor fail_page_alloc fails an allocation
  // that may sleep (GFP_KERNEL: every one that matters here), nor an
  // order-0 page: fail-nth obeys these filters.
  const char* knobs[][2] = {
      {"/sys/kernel/debug/failslab/ignore-gfp-wait", "N"},
      {"/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N"},
      {"/sys/kernel/debug/fail_page_alloc/min-order", "0"},
      // One line per injected fault, no stack: the console is slow.
      {"/sys/kernel/debug/failslab/verbose", "0"},
      {"/sys/kernel/debug/fail_page_alloc/verbose", "0"},
  };
  for (auto& [path, value] : knobs) {
    if (!write_knob(path, value)) {
      std::printf("failnth: cannot set %s to %s (%s): it needs CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC and "
                  "CONFIG_FAULT_INJECTION_DEBUG_FS, debugfs mounted\n", path, value, std::strerror(errno));
      return 3;
    }
  }
  touch_stack();
  if (::mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
    std::printf("failnth: mlockall: %s (faults may land in user page faults)\n", std::strerror(errno));

  const int core_fd = ::open(argv[1], O_RDONLY | O_CLOEXEC);
  const int sim_fd = ::open(argv[2], O_RDONLY | O_CLOEXEC);
  must(core_fd >= 0 && sim_fd >= 0, "open the modules");
  if (module_loaded("sring_sim")) must(unload_module("sring_sim"), "rmmod sring_sim");
  if (module_loaded("sring")) must(unload_module("sring"), "rmmod sring");

  // 1. The core's module load: its class, chrdev region, reserved pool.
  run({.name = "module load sring.ko (finit_module)",
       .call = [&] { return load_module(core_fd); },
       .undo = [](long) { must(unload_module("sring"), "rmmod sring after a load"); },
       .clean = []() -> std::string {
         if (module_loaded("sring")) return "sring in /proc/modules";
         if (exists("/sys/class/sring")) return "/sys/class/sring";
         return "";
       }});
  must(load_module(core_fd) == 0, "load sring.ko");

  // 2. The simulated device's module load, which registers its ring
  //    (sring_register: minor, ring, pages, mirror, sysfs, chrdev).
  // EINVAL too: 6.1's platform_device_add() ignores a failed dev_set_name()
  // (the name's kstrdup), and device_add() then refuses the nameless device
  // with -EINVAL (drivers/base/core.c); sring_sim passes it on.
  run({.name = "module load sring_sim.ko (sring_register)",
       .call = [&] { return load_module(sim_fd); },
       .undo = [](long) { must(unload_module("sring_sim"), "rmmod sring_sim after a load"); },
       .clean = []() -> std::string {
         if (module_loaded("sring_sim")) return "sring_sim in /proc/modules";
         if (count_entries("/sys/class/sring") != 0) return "a ring in /sys/class/sring";
         if (exists("/sys/devices/platform/sring_sim")) return "the platform device";
         if (read_file("/sys/module/sring/refcnt") != "0\n") return "a reference on sring.ko";
         if (exists(kDevice)) return std::string(kDevice);
         return "";
       },
       .errors = {ENOMEM, EINVAL}});
  must(load_module(sim_fd) == 0, "load sring_sim.ko");
  for (int i = 0; i < 100 && !exists(kDevice); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  must(exists(kDevice), "/dev/sring0 after the load");

  // 3. open, as the consumer and as a monitor.
  auto no_consumer = []() -> std::string {
    return read_file(std::string(kSysfs) + "consumer") == "0\n" ? "" : "the consumer role taken";
  };
  run({.name = "open O_RDWR (consumer)",
       .call = [] { int fd = ::open(kDevice, O_RDWR | O_CLOEXEC); return fd >= 0 ? long(fd) : long(-errno); },
       .undo = [](long fd) { ::close(int(fd)); },
       .clean = no_consumer});
  run({.name = "open O_RDONLY (monitor)",
       .call = [] { int fd = ::open(kDevice, O_RDONLY | O_CLOEXEC); return fd >= 0 ? long(fd) : long(-errno); },
       .undo = [](long fd) { ::close(int(fd)); },
       .clean = no_consumer});

  const int fd = ::open(kDevice, O_RDWR | O_CLOEXEC);
  must(fd >= 0, "open /dev/sring0");
  sring_info info{};
  must(::ioctl(fd, SRING_IOC_GET_INFO, &info) == 0, "GET_INFO");
  must(::ioctl(fd, SRING_IOC_STOP) == 0 && ::ioctl(fd, SRING_IOC_RESET) == 0, "STOP, RESET");
  const long page = info.page_size;

  // 4. mmap of each region.
  struct Region {
    const char* name;
    size_t length;
    off_t offset;
    int prot;
  };
  const Region regions[] = {
      {"mmap producer page", size_t(page), off_t(SRING_PRODUCER_PGOFF * page), PROT_READ},
      {"mmap consumer page", size_t(page), off_t(info.consumer_offset), PROT_READ | PROT_WRITE},
      {"mmap data (2 x ring)", size_t(2 * info.ring_size), off_t(info.data_offset), PROT_READ},
  };
  for (const Region& region : regions) {
    const int mapped = device_mappings();
    run({.name = region.name,
         .call = [&] {
           void* p = ::mmap(nullptr, region.length, region.prot, MAP_SHARED, fd, region.offset);
           return p == MAP_FAILED ? long(-errno) : long(reinterpret_cast<uintptr_t>(p));
         },
         .undo = [&](long p) { ::munmap(reinterpret_cast<void*>(uintptr_t(p)), region.length); },
         .clean = [&]() -> std::string { return device_mappings() == mapped ? "" : "a mapping"; }});
  }

  // 5. Every ioctl (most allocate nothing: 0 points is a result too).
  auto state = [&] { return stats_of(fd).state; };
  auto state_is = [&](uint32_t want) {
    return [&, want]() -> std::string {
      uint32_t s = state();
      return s == want ? "" : "state " + std::to_string(s) + " instead of " + std::to_string(want);
    };
  };
  sring_info info_out{};
  sring_config config{};
  must(::ioctl(fd, SRING_IOC_GET_CONFIG, &config) == 0, "GET_CONFIG");
  sring_config config_out{};
  sring_stats stats_out{};
  const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  must(efd >= 0, "eventfd");
  __s32 efd_arg = efd;
  sring_fault stall{.kind = SRING_FAULT_STALL, .reserved0 = 0, .arg = 1000};
  auto start = [&] { must(::ioctl(fd, SRING_IOC_START) == 0, "START"); };
  auto stop = [&] { must(::ioctl(fd, SRING_IOC_STOP) == 0, "STOP"); };
  run({.name = "ioctl GET_INFO", .call = [&] { return ioctl_result(fd, SRING_IOC_GET_INFO, &info_out); }});
  run({.name = "ioctl GET_CONFIG", .call = [&] { return ioctl_result(fd, SRING_IOC_GET_CONFIG, &config_out); }});
  run({.name = "ioctl GET_STATS", .call = [&] { return ioctl_result(fd, SRING_IOC_GET_STATS, &stats_out); }});
  run({.name = "ioctl SET_CONFIG",
       .call = [&] { return ioctl_result(fd, SRING_IOC_SET_CONFIG, &config); },
       .clean = state_is(SRING_STATE_STOPPED)});
  run({.name = "ioctl SET_EVENTFD (set eventfd)",
       .call = [&] { return ioctl_result(fd, SRING_IOC_SET_EVENTFD, &efd_arg); }});
  run({.name = "ioctl CLEAR_EVENTFD", .call = [&] { return ioctl_result(fd, SRING_IOC_CLEAR_EVENTFD, nullptr); }});
  run({.name = "ioctl START",
       .call = [&] { return ioctl_result(fd, SRING_IOC_START, nullptr); },
       .undo = [&](long) { stop(); },
       .clean = state_is(SRING_STATE_STOPPED)});
  run({.name = "ioctl INJECT_FAULT (stall 1 ms)",
       .before = start,
       .call = [&] { return ioctl_result(fd, SRING_IOC_INJECT_FAULT, &stall); },
       .undo = [&](long) { stop(); },
       .clean = [&]() -> std::string {
         std::string s = state_is(SRING_STATE_RUNNING)();
         stop();
         return s;
       }});
  run({.name = "ioctl STOP",
       .before = start,
       .call = [&] { return ioctl_result(fd, SRING_IOC_STOP, nullptr); },
       .clean = [&]() -> std::string {
         std::string s = state_is(SRING_STATE_RUNNING)();
         stop();
         return s;
       }});
  run({.name = "ioctl RESET",
       .call = [&] { return ioctl_result(fd, SRING_IOC_RESET, nullptr); },
       .clean = state_is(SRING_STATE_STOPPED)});
  must(::ioctl(fd, SRING_IOC_SET_EVENTFD, &efd_arg) == 0, "SET_EVENTFD");

  // 6. read() and poll() with data waiting.
  static char buffer[256 * 1024];
  std::memset(buffer, 0, sizeof(buffer));
  uint64_t tail_before = 0;
  auto data_waiting = [&] {
    start();
    for (int i = 0; i < 500; ++i) {
      sring_stats st = stats_of(fd);
      if (st.head - st.tail >= config.block_bytes) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    stop();
    tail_before = stats_of(fd).tail;
  };
  run({.name = "read",
       .before = data_waiting,
       .call = [&] { ssize_t r = ::read(fd, buffer, sizeof(buffer)); return r >= 0 ? long(r) : long(-errno); },
       .undo = [&](long r) {
         if (r == 0) failure("read: end of stream with data waiting");
       },
       .clean = [&]() -> std::string {
         return stats_of(fd).tail == tail_before ? "" : "the tail moved by a failed read";
       }});
  data_waiting();
  struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
  run({.name = "poll",
       .call = [&] { int r = ::poll(&pfd, 1, 0); return r >= 0 ? long(r) : long(-errno); }});

  // Leave it as found: stopped, reset, nothing attached.
  must(::ioctl(fd, SRING_IOC_CLEAR_EVENTFD) == 0, "CLEAR_EVENTFD");
  stop();
  must(::ioctl(fd, SRING_IOC_RESET) == 0, "RESET");
  ::close(efd);
  ::close(fd);
  ::close(core_fd);
  ::close(sim_fd);
  std::printf("failnth: %s\n", g_failures == 0 ? "every fault point failed cleanly" : "FAILED");
  return g_failures == 0 ? 0 : 1;
}
