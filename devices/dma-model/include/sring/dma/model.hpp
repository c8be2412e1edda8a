// sring-dma-model: a digitizer that runs on the host, outside a QEMU guest,
// and writes its samples straight into guest RAM at the DMA addresses the
// guest driver posts, completing by MSI-X through QEMU's ivshmem-doorbell
// device (issue 24). The shared layout and the protocol with the guest
// driver are in include/sring/sring_dma_model.h.
//
// The model is QEMU's ivshmem server: it listens on a Unix socket, serves
// one QEMU (one guest, peer ID 0; the model is peer 1), hands it the BAR2
// memory and the eventfds, and runs the device until QEMU goes away (EOF).
// With `reconnect` it then waits for the next QEMU connection on the same
// socket (a re-plugged ivshmem device: QMP device_del + chardev-remove,
// then chardev-add + device_add) and serves it from a clean slate: a new
// BAR2 memfd, new eventfds, a new engine. Only the guest RAM mapping is
// kept (the guest's RAM file does not change across a re-plug). Guests are
// served one at a time: a QEMU that connects while another is served waits
// in the listen backlog (its connect() succeeds, its handshake comes when
// the current guest disconnects); it is never refused.
//
// Log lines (stderr unless ModelOptions::log is set), one per event, each
// starting "sring-dma-model: ":
//   guest N connected                 N counts connections from 1
//   guest N disconnected[: why]       ": why" only when not a plain EOF
//   guest N: refused descriptor ...   every refused descriptor, the first
//                                     20 per guest; then one line saying
//                                     the rest are counted, and at each
//                                     stop "guest N: K more refused
//                                     descriptors not printed"
//   guest N: FAILED: SRING_DMA_ERR_... : why
//   guest N: slow stop: ...           SRING_DMA_FAULT_SLOW_STOP began
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "sring/error.hpp"
#include "sring/sring_dma_model.h"
#include "sring/unique_fd.hpp"

namespace sring::dma {

inline constexpr uint64_t kFourGiB = 1ULL << 32;

struct ModelOptions {
  std::string socket_path;  // the ivshmem-doorbell chardev's socket
  std::string ram_path;     // the guest's memory-backend-file (share=on)
  // Guest-physical RAM below this address is at the same file offset; RAM
  // from 4 GiB on follows it in the file (QEMU's below_4g_mem_size: it
  // depends on the machine type and RAM size). 1 byte to 4 GiB.
  uint64_t lowmem = 0;
  uint64_t shm_size = SRING_DMA_BAR2_MIN_SIZE;  // BAR2: a power of two, >= 128 KiB
  uint64_t max_rate = 1000000000ULL;       // START refuses a faster config
  // How long serve() waits for the first QEMU to connect; negative:
  // forever. Later connections (reconnect) are waited for forever.
  std::chrono::milliseconds accept_timeout{-1};
  // Serve QEMU after QEMU (see above) instead of returning at the first
  // one's EOF. The socket stays listening, and its file in place, until
  // the model is destroyed.
  bool reconnect = false;
  // Where the log lines go (without a newline), called from serve()'s
  // thread; empty: stderr, one write(2) per line.
  std::function<void(const std::string& line)> log;
};

// Checks the options alone (no file touched): EINVAL and a sentence.
Status check_options(const ModelOptions& options);

// The guest's RAM, mapped from its memory-backend file, addressed by
// guest-physical address.
class GuestRam {
 public:
  static Expected<GuestRam> open(const std::string& path, uint64_t lowmem);

  // Where [gpa, gpa + bytes) is in the mapping, or nullptr if any byte of
  // it is not guest RAM: in the hole from lowmem to 4 GiB, beyond the end
  // of the file, or crossing from low RAM into the hole. bytes == 0 is
  // refused too.
  uint8_t* translate(uint64_t gpa, uint64_t bytes) const;
  uint64_t size() const { return mapping_.size(); }

  // ok() if path still names the file that is mapped, at the same size: a
  // guest that reconnects with another RAM file (a new QEMU) would have
  // its DMA written into the old one.
  Status still_mapped(const std::string& path) const;

 private:
  GuestRam(Mapping mapping, uint64_t lowmem, dev_t device, ino_t inode)
      : mapping_(std::move(mapping)), lowmem_(lowmem), device_(device), inode_(inode) {}
  Mapping mapping_;
  uint64_t lowmem_ = 0;
  dev_t device_ = 0;
  ino_t inode_ = 0;
};

class Model {
 public:
  // Checks the options, maps guest RAM, creates BAR2 and the eventfds, and
  // listens on the socket (so QEMU can be started as soon as this returns).
  static Expected<Model> create(const ModelOptions& options);
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  // Accepts one QEMU, sends the ivshmem handshake, runs the device until
  // QEMU closes the socket (ok()) or something fails (an error). With
  // `reconnect`, a connection's end (EOF, or a socket error, which is
  // logged) leads to the next accept instead, and serve() returns only on
  // stop() (ok()), on the first accept timing out, or on a failure that is
  // not one connection's (an error).
  Status serve();

  // Makes serve() end its current connection as at EOF (nothing more is
  // written into guest RAM) and return ok(), now or as soon as it is
  // called. Sticky. Safe from any thread and from a signal handler (it is
  // one write(2) to an eventfd).
  void stop() noexcept;

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sring::dma
