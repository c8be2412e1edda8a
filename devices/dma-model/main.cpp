// sring-dma-model: the host-side digitizer of issue 24 (see
// include/sring/sring_dma_model.h). Start it before QEMU:
//
//   sring-dma-model --socket /tmp/dma.sock --ram /dev/shm/guest-ram --lowmem 2G &
//   qemu-system-x86_64 ...
//     -object memory-backend-file,id=m,size=4G,mem-path=/dev/shm/guest-ram,share=on
//     -machine memory-backend=m
//     -chardev socket,path=/tmp/dma.sock,id=dma -device ivshmem-doorbell,chardev=dma,vectors=2
//
// Exit codes: 0 when QEMU went away, 1 when the device failed while
// serving, 2 for bad options or a setup that cannot work.
#include <fmt/format.h>

#include <string>

#include "consumer/cli.hpp"
#include "sring/dma/model.hpp"

namespace {

constexpr const char* kUsage =
    "usage: sring-dma-model --socket PATH --ram FILE --lowmem BYTES\n"
    "                       [--shm-size BYTES] [--max-rate SAMPLES_PER_S] [--accept-timeout SECONDS]\n"
    "\n"
    "Serves one QEMU's ivshmem-doorbell device (vectors=2) on the Unix socket PATH as its\n"
    "server, and writes samples into the guest RAM file FILE (the memory-backend-file of\n"
    "that QEMU, share=on) at the DMA addresses the guest driver posts.\n"
    "--lowmem: guest RAM below 4 GiB (QEMU's below_4g_mem_size), e.g. 2G for q35 with more\n"
    "than 2 GiB of RAM, 3G for pc with more than 3.5 GiB; all of it when the guest has less.\n"
    "--shm-size: BAR2, a power of two of at least 64k (default 64k).\n"
    "--max-rate: the fastest sample rate a START may ask for (default 1G).\n"
    "--accept-timeout: give up if no QEMU connects in time (default: wait forever).\n";

int usage_error(const sring::Error& error) {
  fmt::print(stderr, "sring-dma-model: {}\n", error.message);
  return 2;
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
  fmt::print(stderr, "sring-dma-model: listening on {}, guest RAM {} (lowmem {})\n", options.socket_path,
             options.ram_path, options.lowmem);
  if (auto served = model->serve(); !served) {
    fmt::print(stderr, "sring-dma-model: {}\n", served.error().message);
    return 1;
  }
  return 0;
}
