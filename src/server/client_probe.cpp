#include "server/client_probe.h"

#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace strata::server {
namespace {

// Numeric host and port of a socket address, as the HTTP server reports them.
bool numeric(const sockaddr_storage& addr, socklen_t len, std::string* host, int* port) {
  char h[NI_MAXHOST];
  char p[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, h, sizeof(h), p, sizeof(p),
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return false;
  }
  *host = h;
  *port = std::atoi(p);
  return true;
}

bool endpoints_match(int fd, const std::string& local_addr, int local_port, const std::string& remote_addr,
                     int remote_port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  std::string host;
  int port = -1;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  if (!numeric(addr, len, &host, &port) || port != remote_port || host != remote_addr) return false;
  len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  if (!numeric(addr, len, &host, &port) || port != local_port) return false;
  return local_addr.empty() || host == local_addr;
}

}  // namespace

bool peer_gone(int fd) {
  pollfd p{fd, static_cast<short>(POLLIN | POLLRDHUP), 0};
  if (poll(&p, 1, 0) < 0) return false;  // EINTR and the like: look again later
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
  if (!(p.revents & POLLIN)) return false;
  char byte;
  const ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;  // orderly shutdown
  if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  return false;  // the client sent more (a pipelined request): still there
}

void ClientProbe::resolve() {
  resolved_ = true;
  if (remote_port_ <= 0 || local_port_ <= 0) return;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    struct stat st {};
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    if (endpoints_match(static_cast<int>(fd), local_addr_, local_port_, remote_addr_, remote_port_)) {
      fd_ = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
}

ClientProbe ClientProbe::for_socket(int fd) {
  ClientProbe probe;
  probe.resolved_ = true;
  probe.fd_ = fd;
  return probe;
}

bool ClientProbe::alive() {
  if (!resolved_) resolve();
  if (fd_ < 0 || !alive_) return alive_;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_look_) return true;
  next_look_ = now + interval_;
  alive_ = !peer_gone(fd_);
  return alive_;
}

}  // namespace strata::server
