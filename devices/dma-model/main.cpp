// sring-dma-model: the host-side digitizer of issue 24 (see
// include/sring/sring_dma_model.h). Start it before QEMU:
//
//   sring-dma-model --socket /tmp/dma.sock --ram /dev/shm/guest-ram --lowmem 2G &
//   qemu-system-x86_64 ...
//     -object memory-backend-file,id=m,size=4G,mem-path=/dev/shm/guest-ram,share=on
//     -machine memory-backend=m
//     -chardev socket,path=/tmp/dma.sock,id=dma -device ivshmem-doorbell,chardev=dma,vectors=2
//
// With --reconnect it serves QEMU after QEMU on the same socket (a harness
// that hot-unplugs and re-plugs the ivshmem device) until SIGTERM or SIGINT.
//
// Exit codes: 0 when QEMU went away (without --reconnect) or on SIGTERM or
// SIGINT, 1 when the device failed while serving (or no QEMU came within
// --accept-timeout), 2 for bad options or a setup that cannot work.
#include <fmt/format.h>
#include <signal.h>

#include <atomic>
#include <string>

#include "tools/cli.hpp"
#include "sring/dma/model.hpp"

namespace {

constexpr const char* kUsage =
    "usage: sring-dma-model --socket PATH --ram FILE --lowmem BYTES\n"
    "                       [--shm-size BYTES] [--max-rate SAMPLES_PER_S] [--accept-timeout SECONDS]\n"
    "                       [--reconnect]\n"
    "\n"
    "Serves one QEMU's ivshmem-doorbell device (vectors=2) on the Unix socket PATH as its\n"
    "server, and writes samples into the guest RAM file FILE (the memory-backend-file of\n"
    "that QEMU, share=on) at the DMA addresses the guest driver posts.\n"
    "--reconnect: when QEMU disconnects (the device unplugged, its chardev removed), wait\n"
    "for the next connection on PATH and serve it afresh (new BAR2, new eventfds), until\n"
    "SIGTERM or SIGINT. One QEMU at a time: another one waits in the listen backlog.\n"
    "Without it the model serves one QEMU and exits 0 when it goes.\n"
    "--lowmem: guest RAM below 4 GiB (QEMU's below_4g_mem_size), e.g. 2G for q35 with more\n"
    "than 2 GiB of RAM, 3G for pc with more than 3.5 GiB; all of it when the guest has less.\n"
    "--shm-size: BAR2, a power of two of at least 128k (default 128k).\n"
    "--max-rate: the fastest sample rate a START may ask for (default 1G).\n"
    "--accept-timeout: give up if no (first) QEMU connects in time (default: wait forever).\n"
    "stderr: one line per guest connected and disconnected, per refused descriptor (the\n"
    "first 20 per guest) and per FAILED state.\n";

int usage_error(const sring::Error& error) {
  fmt::print(stderr, "sring-dma-model: {}\n", error.message);
  return 2;
}

// The model the signal handlers stop: Model::stop() is async-signal-safe.
std::atomic<sring::dma::Model*> g_model{nullptr};

void on_signal(int) {
  if (sring::dma::Model* model = g_model.load()) model->stop();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sring;
  dma::ModelOptions options;
  cli::Args args(argc, argv);
  while (!args.done()) {
    const std::string_view option = args.take();
    if (option == "--help" || option == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    }
    if (option == "--reconnect") {
      options.reconnect = true;
      continue;
    }
    if (option != "--socket" && option != "--ram" && option != "--lowmem" && option != "--shm-size" &&
        option != "--max-rate" && option != "--accept-timeout") {
      fmt::print(stderr, "sring-dma-model: unknown option {}\n{}", option, kUsage);
      return 2;
    }
    auto value = args.value(option);
    if (!value) return usage_error(value.error());
    if (option == "--socket") {
      options.socket_path = std::string(*value);
    } else if (option == "--ram") {
      options.ram_path = std::string(*value);
    } else if (option == "--lowmem" || option == "--shm-size") {
      auto v = cli::parse_size(*value, option);
      if (!v) return usage_error(v.error());
      (option == "--lowmem" ? options.lowmem : options.shm_size) = *v;
    } else if (option == "--max-rate") {
      auto v = cli::parse_count(*value, option);
      if (!v) return usage_error(v.error());
      options.max_rate = *v;
    } else {  // --accept-timeout
      auto v = cli::parse_seconds(*value, option);
      if (!v) return usage_error(v.error());
      if (*v < 0) return usage_error({EINVAL, "--accept-timeout must not be negative"});
      options.accept_timeout = std::chrono::milliseconds(static_cast<int64_t>(*v * 1000));
    }
  }
  auto model = dma::Model::create(options);
  if (!model) return usage_error(model.error());
  // SIGTERM and SIGINT end serving cleanly: the current guest gets nothing
  // more, the socket file goes, exit 0. No SA_RESTART: the model's poll()
  // returns EINTR and finds the stop request.
  g_model.store(&*model);
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  fmt::print(stderr, "sring-dma-model: listening on {}, guest RAM {} (lowmem {}){}\n", options.socket_path,
             options.ram_path, options.lowmem, options.reconnect ? ", reconnect" : "");
  auto served = model->serve();
  // From here a signal finds no model (it is about to go) and does nothing.
  g_model.store(nullptr);
  if (!served) {
    fmt::print(stderr, "sring-dma-model: {}\n", served.error().message);
    return 1;
  }
  return 0;
}
