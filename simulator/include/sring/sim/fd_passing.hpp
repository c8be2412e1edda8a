// Handing a ring to another process: the simulator process sends the ring's
// memfd and the consumer's eventfd over a Unix socket (SCM_RIGHTS), the way a
// device node would be opened, so the cross-process path is real.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "sring/error.hpp"
#include "sring/unique_fd.hpp"

namespace sring::sim {

[[nodiscard]] Expected<UniqueFd> listen_unix(const std::string& path);
[[nodiscard]] Expected<UniqueFd> accept_unix(int listen_fd, std::chrono::milliseconds timeout);
// Retries until the listener exists or the timeout passes.
[[nodiscard]] Expected<UniqueFd> connect_unix(const std::string& path, std::chrono::milliseconds timeout);

// Sends one byte of payload with the descriptors attached.
[[nodiscard]] Status send_fds(int socket, const std::vector<int>& fds, uint8_t payload);
// Receives exactly `count` descriptors, and the payload byte.
[[nodiscard]] Expected<std::vector<UniqueFd>> receive_fds(int socket, size_t count, uint8_t* payload);
// Receives between min_count and max_count descriptors.
[[nodiscard]] Expected<std::vector<UniqueFd>> receive_fds(int socket, size_t min_count, size_t max_count,
                                                          uint8_t* payload);

// sring-sim's handover (docs/abi.md, "The handshake of sring-sim"): the
// ring file, the eventfd, and for a ring in 2 MiB pages its data file.
struct RingHandover {
  UniqueFd ring;
  UniqueFd eventfd;
  UniqueFd data;  // invalid when the data is in the ring file
};
[[nodiscard]] Expected<RingHandover> receive_ring(int socket, uint8_t* payload);

// A consumer of sring-sim sends this byte while the device runs to stop it
// early (sring-record on SIGINT/SIGTERM).
inline constexpr uint8_t kStopRequest = 2;

[[nodiscard]] Status send_byte(int socket, uint8_t byte);
[[nodiscard]] Expected<uint8_t> receive_byte(int socket, std::chrono::milliseconds timeout);

}  // namespace sring::sim
