// Unit tests of the server's pure logic: role normalization for templates, the error tables,
// the response store. The HTTP paths are tested end to end in tests/server (Node SDKs).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "server/api_error.h"
#include "server/client_probe.h"
#include "server/prompt.h"
#include "server/response_store.h"

namespace strata::server {
namespace {

TEST(NormalizeMessages, LeadingSystemAndDeveloperMerge) {
  Json in = Json::parse(R"([{"role":"developer","content":"A"},{"role":"system","content":"B"},{"role":"user","content":"hi"}])");
  Json out = normalize_messages(in);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0]["role"], "system");
  EXPECT_EQ(out[0]["content"], "A\n\nB");
  EXPECT_EQ(out[1]["content"], "hi");
}

TEST(NormalizeMessages, LateSystemJoinsTheUserTurn) {
  // Claude Code puts a system message after the first user message.
  Json in = Json::parse(R"([{"role":"user","content":"hi"},{"role":"system","content":"env"},{"role":"assistant","content":"yo"},
                            {"role":"system","content":"late"},{"role":"user","content":"next"}])");
  Json out = normalize_messages(in);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0]["content"], "hi\n\nenv");
  EXPECT_EQ(out[2]["role"], "user");
  EXPECT_EQ(out[2]["content"], "late\n\nnext");
}

TEST(NormalizeMessages, ConsecutiveUsersMergeToolsStay) {
  Json in = Json::parse(R"([{"role":"user","content":"a"},{"role":"user","content":"b"},
                            {"role":"assistant","content":"","tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":{}}}]},
                            {"role":"tool","tool_call_id":"1","content":"r"},{"role":"tool","tool_call_id":"2","content":"s"}])");
  Json out = normalize_messages(in);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0]["content"], "a\n\nb");
  EXPECT_EQ(out[2]["role"], "tool");
  EXPECT_EQ(out[3]["role"], "tool");
}

TEST(ErrorTables, ContextExceededInBothDialects) {
  ApiError e{ErrorKind::kContextExceeded, "", ""};
  e.prompt_tokens = 9000;
  e.context_tokens = 8192;
  HttpReply o = error_reply(Dialect::kOpenAI, e);
  EXPECT_EQ(o.status, 400);
  Json ob = Json::parse(o.body);
  EXPECT_EQ(ob["error"]["code"], "context_length_exceeded");
  HttpReply a = error_reply(Dialect::kAnthropic, e);
  Json ab = Json::parse(a.body);
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(ab["type"], "error");
  EXPECT_EQ(ab["error"]["type"], "invalid_request_error");
  EXPECT_EQ(ab["error"]["message"], "prompt is too long: 9000 tokens > 8192 maximum");
}

TEST(ErrorTables, StatusesAndRetryAfter) {
  const std::pair<ErrorKind, int> expect[] = {{ErrorKind::kAuthentication, 401}, {ErrorKind::kModelNotFound, 404},
                                              {ErrorKind::kTooLarge, 413}, {ErrorKind::kRateLimited, 429},
                                              {ErrorKind::kOverloaded, 503}, {ErrorKind::kInternal, 500}};
  for (auto [kind, status] : expect) {
    for (Dialect d : {Dialect::kOpenAI, Dialect::kAnthropic}) {
      ApiError e{kind, "m", "", 0, 0, 3};
      HttpReply r = error_reply(d, e);
      EXPECT_EQ(r.status, status);
      ASSERT_EQ(r.headers.size(), 1u);
      EXPECT_EQ(r.headers[0].second, "3");
    }
  }
}

TEST(ResponseStore, EvictsLeastRecentlyUsed) {
  ResponseStore store(2);
  store.put("a", {Json::array(), Json::object()});
  store.put("b", {Json::array(), Json::object()});
  EXPECT_TRUE(store.get("a").has_value());  // a is now the most recent
  store.put("c", {Json::array(), Json::object()});
  EXPECT_TRUE(store.get("a").has_value());
  EXPECT_FALSE(store.get("b").has_value());
  EXPECT_TRUE(store.erase("c"));
  EXPECT_FALSE(store.get("c").has_value());
}

// A loopback connection: the server side's fd, the client's fd, and the ports.
struct Loopback {
  int server = -1, client = -1;
  int server_port = 0, client_port = 0;
  Loopback() {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(listener, 1), 0);
    getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    server_port = ntohs(addr.sin_port);
    client = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    server = accept(listener, nullptr, nullptr);
    close(listener);
    len = sizeof(addr);
    getsockname(client, reinterpret_cast<sockaddr*>(&addr), &len);
    client_port = ntohs(addr.sin_port);
  }
  ~Loopback() {
    if (server >= 0) close(server);
    if (client >= 0) close(client);
  }
};

// Waits up to a second for the probe to notice the peer is gone (it looks every 200 ms).
bool gone_within_a_second(ClientProbe& probe) {
  for (int i = 0; i < 100; ++i) {
    if (!probe.alive()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(ClientProbe, FindsTheConnectionAndSeesTheClientLeave) {
  Loopback c;
  ClientProbe probe("127.0.0.1", c.server_port, "127.0.0.1", c.client_port);
  EXPECT_TRUE(probe.alive());
  EXPECT_EQ(probe.socket(), c.server);
  // Pending bytes (a pipelined request) are not a disconnect, and are not consumed.
  ASSERT_EQ(write(c.client, "x", 1), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_TRUE(probe.alive());
  close(c.client);
  c.client = -1;
  EXPECT_TRUE(gone_within_a_second(probe));
  char byte = 0;
  EXPECT_EQ(read(c.server, &byte, 1), 1);
  EXPECT_EQ(byte, 'x');
}

TEST(ClientProbe, UnknownConnectionIsAlwaysAlive) {
  Loopback c;
  ClientProbe wrong_port("127.0.0.1", c.server_port, "127.0.0.1", c.client_port + 1 == c.server_port ? c.client_port + 2 : c.client_port + 1);
  EXPECT_TRUE(wrong_port.alive());
  EXPECT_EQ(wrong_port.socket(), -1);
  ClientProbe none;
  EXPECT_TRUE(none.alive());
}

TEST(ClientProbe, ResetIsGone) {
  Loopback c;
  linger hard{1, 0};  // close sends RST
  setsockopt(c.client, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
  ClientProbe probe = ClientProbe::for_socket(c.server);
  EXPECT_TRUE(probe.alive());
  close(c.client);
  c.client = -1;
  EXPECT_TRUE(gone_within_a_second(probe));
}

}  // namespace
}  // namespace strata::server
