// Whether the client of an HTTP request is still connected. Streaming replies find out from a
// failed write; a non-streaming reply writes nothing until the end, so without this a client
// that gave up would keep the engine busy until its whole completion had been generated.
#pragma once

#include <chrono>
#include <string>
#include <utility>

namespace strata::server {

class ClientProbe {
 public:
  // No connection known: always alive.
  ClientProbe() = default;
  // The TCP connection with these endpoints, looked up among this process's sockets on the
  // first alive() (the server keeps it open while the handler runs). Not found: always alive.
  ClientProbe(std::string local_addr, int local_port, std::string remote_addr, int remote_port)
      : local_addr_(std::move(local_addr)), remote_addr_(std::move(remote_addr)), local_port_(local_port),
        remote_port_(remote_port) {}
  // For tests: an already known socket.
  static ClientProbe for_socket(int fd);

  // False once the peer has closed or reset the connection. Looks at the socket at most every
  // `interval`; between looks it answers the last result.
  bool alive();
  // The socket found (after the first alive()), or -1.
  int socket() const { return fd_; }

 private:
  void resolve();

  std::string local_addr_, remote_addr_;
  int local_port_ = -1, remote_port_ = -1;
  bool resolved_ = false;
  int fd_ = -1;
  bool alive_ = true;
  std::chrono::steady_clock::time_point next_look_{};
  std::chrono::milliseconds interval_{200};
};

// The peer of this connected socket has gone (EOF, reset or error), without consuming data.
bool peer_gone(int fd);

}  // namespace strata::server
