#include "ringlib/error_format.hpp"
#include "sring/sim/fd_passing.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace sring::sim {
namespace {

Expected<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    return make_error(ENAMETOOLONG, "socket path {} is longer than {} bytes", path,
                      sizeof(address.sun_path) - 1);
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

Status wait_readable(int fd, std::chrono::milliseconds timeout, const char* what) {
  pollfd pfd{fd, POLLIN, 0};
  const int n = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  if (n < 0) return errno_error("poll while waiting for {}", what);
  if (n == 0) return make_error(ETIMEDOUT, "timed out after {} ms waiting for {}", timeout.count(), what);
  return ok();
}

}  // namespace

Expected<UniqueFd> listen_unix(const std::string& path) {
  auto address = unix_address(path);
  if (!address) return address.error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errno_error("cannot create a Unix socket");
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof(*address)) != 0) {
    return errno_error("cannot bind {}", path);
  }
  if (::listen(fd.get(), 1) != 0) return errno_error("cannot listen on {}", path);
  return fd;
}

Expected<UniqueFd> accept_unix(int listen_fd, std::chrono::milliseconds timeout) {
  if (auto ready = wait_readable(listen_fd, timeout, "a consumer to connect"); !ready) {
    return ready.error();
  }
  UniqueFd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd.valid()) return errno_error("accept failed");
  return fd;
}

Expected<UniqueFd> connect_unix(const std::string& path, std::chrono::milliseconds timeout) {
  auto address = unix_address(path);
  if (!address) return address.error();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return errno_error("cannot create a Unix socket");
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof(*address)) == 0) {
      return fd;
    }
    if ((errno != ENOENT && errno != ECONNREFUSED) || std::chrono::steady_clock::now() >= deadline) {
      return errno_error("cannot connect to the simulator at {}", path);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Status send_fds(int socket, const std::vector<int>& fds, uint8_t payload) {
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  iovec iov{&payload, 1};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  if (::sendmsg(socket, &message, MSG_NOSIGNAL) != 1) return errno_error("cannot send descriptors");
  return ok();
}

Expected<std::vector<UniqueFd>> receive_fds(int socket, size_t count, uint8_t* payload) {
  return receive_fds(socket, count, count, payload);
}

Expected<RingHandover> receive_ring(int socket, uint8_t* payload) {
  auto fds = receive_fds(socket, 2, 3, payload);
  if (!fds) return fds.error();
  RingHandover handover;
  handover.ring = std::move((*fds)[0]);
  handover.eventfd = std::move((*fds)[1]);
  if (fds->size() == 3) handover.data = std::move((*fds)[2]);
  return handover;
}

Expected<std::vector<UniqueFd>> receive_fds(int socket, size_t min_count, size_t max_count, uint8_t* payload) {
  std::vector<char> control(CMSG_SPACE(sizeof(int) * max_count));
  uint8_t byte = 0;
  iovec iov{&byte, 1};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  const ssize_t n = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
  if (n < 0) return errno_error("cannot receive descriptors");
  if (n == 0) return make_error(ECONNRESET, "the simulator closed the connection");
  std::vector<UniqueFd> received;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
       header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    const size_t n_fds = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n_fds; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
      received.emplace_back(fd);
    }
  }
  if (message.msg_flags & MSG_CTRUNC) return make_error(EPROTO, "descriptors were truncated");
  if (received.size() < min_count || received.size() > max_count) {
    if (min_count == max_count) {
      return make_error(EPROTO, "expected {} descriptors from the simulator, got {}", min_count,
                        received.size());
    }
    return make_error(EPROTO, "expected {} to {} descriptors from the simulator, got {}", min_count,
                      max_count, received.size());
  }
  if (payload != nullptr) *payload = byte;
  return received;
}

Status send_byte(int socket, uint8_t byte) {
  if (::send(socket, &byte, 1, MSG_NOSIGNAL) != 1) return errno_error("cannot send on the socket");
  return ok();
}

Expected<uint8_t> receive_byte(int socket, std::chrono::milliseconds timeout) {
  if (auto ready = wait_readable(socket, timeout, "the peer"); !ready) return ready.error();
  uint8_t byte = 0;
  const ssize_t n = ::recv(socket, &byte, 1, 0);
  if (n < 0) return errno_error("cannot receive on the socket");
  if (n == 0) return make_error(ECONNRESET, "the peer closed the connection");
  return byte;
}

}  // namespace sring::sim
