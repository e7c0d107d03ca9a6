// SsdStore: reopen, corruption never served, budget, full disk, SIGKILL mid-write, threads.
#include "kv/ssd_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "kv/kv_test_util.h"
#include "kv/ssd_record.h"

namespace strata::kv {
namespace {

using testing::TempDir;
using testing::tiny_layout;

const Fingerprint kFp = make_fingerprint("weights-a", "tok-a", tiny_layout());

SsdStoreOptions options(const std::string& dir, uint64_t budget = 1 << 30) {
  SsdStoreOptions o;
  o.dir = dir;
  o.budget_bytes = budget;
  o.fingerprint = kFp;
  o.layout = tiny_layout();
  o.fsync = false;
  return o;
}

SsdWrite make_write(int i, const KvLayout& layout = tiny_layout()) {
  SsdWrite w;
  w.tokens = {i, i + 1, i + 2, i + 3};
  w.parent = chain_root(kFp, {});
  w.key = block_key(kFp, w.parent, w.tokens, {});
  w.depth = 0;
  w.payload.resize(encoded_block_bytes(layout, BlockCodec::kRaw));
  for (size_t k = 0; k < w.payload.size(); ++k) w.payload[k] = static_cast<uint8_t>(k * 7 + i);
  return w;
}

// Read `key` synchronously through the async API.
SsdReadDone read_now(SsdStore& s, const BlockKey& key) {
  uint64_t t = s.submit_read(key);
  for (int spin = 0; spin < 5000; ++spin) {
    for (SsdReadDone& d : s.take_completed_reads()) {
      if (d.ticket == t) return std::move(d);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ADD_FAILURE() << "read never completed";
  return {};
}

void flip_byte(const std::string& path, long offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(offset, offset < 0 ? std::ios::end : std::ios::beg);
  char c;
  f.read(&c, 1);
  c ^= 0x5a;
  f.seekp(offset, offset < 0 ? std::ios::end : std::ios::beg);
  f.write(&c, 1);
}

TEST(SsdStore, WritesAreFoundAfterReopen) {
  TempDir tmp;
  std::vector<SsdWrite> ws;
  {
    auto s = SsdStore::open(options(tmp.path)).value();
    for (int i = 0; i < 20; ++i) {
      ws.push_back(make_write(i));
      ASSERT_TRUE(s->submit_write(make_write(i)));
    }
    s->flush();
    EXPECT_EQ(s->stats().blocks_written, 20);
  }
  auto s = SsdStore::open(options(tmp.path)).value();
  EXPECT_EQ(s->stats().indexed_at_open, 20);
  EXPECT_EQ(s->stats().dropped_at_open, 0);
  for (const SsdWrite& w : ws) {
    ASSERT_TRUE(s->contains(w.key));
    SsdReadDone d = read_now(*s, w.key);
    ASSERT_TRUE(d.status.is_ok()) << d.status.to_string();
    ASSERT_EQ(d.payload().size(), w.payload.size());
    EXPECT_EQ(0, std::memcmp(d.payload().data(), w.payload.data(), w.payload.size()));
  }
  // Another model's fingerprint sees nothing (its own subdirectory).
  SsdStoreOptions other = options(tmp.path);
  other.fingerprint = make_fingerprint("weights-b", "tok-a", tiny_layout());
  EXPECT_EQ(SsdStore::open(other).value()->stats().num_records, 0);
}

TEST(SsdStore, CorruptionIsDetectedAndNeverServed) {
  TempDir tmp;
  std::vector<SsdWrite> ws;
  std::string dir;
  {
    auto s = SsdStore::open(options(tmp.path)).value();
    for (int i = 0; i < 8; ++i) {
      ws.push_back(make_write(i));
      ASSERT_TRUE(s->submit_write(make_write(i)));
    }
    s->flush();
    dir = s->directory();
    auto path = [&](int i) { return s->record_path(ws[i].key); };
    std::filesystem::resize_file(path(0), std::filesystem::file_size(path(0)) - 100);  // truncated
    flip_byte(path(1), 20);            // header bit flip (fingerprint field): header check fails
    flip_byte(path(2), -40);           // payload bit flip: only the record checksum sees it
    flip_byte(path(3), 8);             // version field: stale format
    std::filesystem::remove(path(4));  // deleted under our feet
    // A record of another model, misplaced into this model's directory.
    {
      SsdStoreOptions fo = options(tmp.path + "/foreign");
      fo.fingerprint = make_fingerprint("weights-b", "tok-b", tiny_layout());
      auto f = SsdStore::open(fo).value();
      SsdWrite w = make_write(100);
      ASSERT_TRUE(f->submit_write(w));
      f->flush();
      std::filesystem::copy_file(f->record_path(w.key), dir + "/" + w.key.to_hex() + ".kvb");
    }
    std::ofstream(dir + "/" + ws[5].key.to_hex() + ".kvb.123.tmp") << "half a record";
  }
  auto s = SsdStore::open(options(tmp.path)).value();
  SsdStats st = s->stats();
  EXPECT_EQ(st.indexed_at_open, 4);  // 2, 5, 6, 7 (2's payload damage is invisible to the header)
  EXPECT_EQ(st.dropped_at_open, 5);  // truncated, header flip, version, foreign, tmp file
  EXPECT_FALSE(s->contains(ws[0].key));
  EXPECT_FALSE(s->contains(ws[1].key));
  EXPECT_FALSE(s->contains(ws[3].key));
  EXPECT_FALSE(s->contains(ws[4].key));
  ASSERT_TRUE(s->contains(ws[2].key));
  SsdReadDone d = read_now(*s, ws[2].key);
  EXPECT_EQ(d.status.code(), ErrorCode::kCorrupt);
  EXPECT_TRUE(d.bytes.empty());
  EXPECT_FALSE(s->contains(ws[2].key));  // dropped for good
  EXPECT_FALSE(std::filesystem::exists(s->record_path(ws[2].key)));
  for (int i : {5, 6, 7}) EXPECT_TRUE(read_now(*s, ws[i].key).status.is_ok());
  // Deleted after open: a read fails cleanly.
  std::filesystem::remove(s->record_path(ws[6].key));
  EXPECT_EQ(read_now(*s, ws[6].key).status.code(), ErrorCode::kNotFound);
  EXPECT_EQ(s->stats().read_failures, 2);
}

TEST(SsdStore, ByteBudgetEvictsOldestFirst) {
  TempDir tmp;
  // A tiny record is 128 + 16 + 16 + 2048 bytes, counted as 4 KiB; room for 5.
  constexpr uint64_t kRec = 4096;
  auto s = SsdStore::open(options(tmp.path, 5 * kRec)).value();
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(s->submit_write(make_write(i)));
    s->flush();
    EXPECT_LE(s->stats().used_bytes, 5 * kRec);
  }
  SsdStats st = s->stats();
  EXPECT_EQ(st.num_records, 5);
  EXPECT_EQ(st.blocks_evicted, 7);
  for (int i = 7; i < 12; ++i) EXPECT_TRUE(s->contains(make_write(i).key)) << i;
  // Reopen with a smaller budget: enforced at start.
  s.reset();
  auto s2 = SsdStore::open(options(tmp.path, 2 * kRec)).value();
  EXPECT_EQ(s2->stats().num_records, 2);
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(s2->directory())) files += e.is_regular_file();
  EXPECT_EQ(files, 2u);
}

// Fails every write after `ok_writes` with ENOSPC, like a full disk.
class FullDiskWriter final : public RecordWriter {
 public:
  explicit FullDiskWriter(int ok_writes) : left_(ok_writes) {}
  Status write(const std::string& dir, const std::string& name,
               std::span<const std::span<const uint8_t>> parts, bool fsync) override {
    if (left_-- <= 0) return error(ErrorCode::kResourceExhausted, "write: No space left on device");
    return real_->write(dir, name, parts, fsync);
  }

 private:
  std::atomic<int> left_;
  std::shared_ptr<RecordWriter> real_ = make_file_record_writer();
};

TEST(SsdStore, FullDiskStopsWritesButReadsGoOn) {
  TempDir tmp;
  SsdStoreOptions o = options(tmp.path);
  o.writer = std::make_shared<FullDiskWriter>(3);
  o.num_io_threads = 1;
  auto s = SsdStore::open(o).value();
  for (int i = 0; i < 10; ++i) (void)s->submit_write(make_write(i));
  s->flush();
  SsdStats st = s->stats();
  EXPECT_TRUE(st.writes_stopped);
  EXPECT_EQ(st.blocks_written, 3);
  EXPECT_EQ(st.num_records, 3);
  EXPECT_FALSE(s->submit_write(make_write(50)));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(read_now(*s, make_write(i).key).status.is_ok());
}

// A real small filesystem: a 1 MiB tmpfs. Needs mount rights; skipped without them.
TEST(SsdStore, RealTinyFilesystemFillsUp) {
  TempDir tmp;
  if (::mount("tmpfs", tmp.path.c_str(), "tmpfs", 0, "size=256k") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno)
                 << "); FullDiskStopsWrites covers ENOSPC";
  }
  {
    SsdStoreOptions o = options(tmp.path, 1 << 30);  // the budget is not what stops it
    o.num_io_threads = 1;
    auto s = SsdStore::open(o).value();
    for (int i = 0; i < 1000 && !s->stats().writes_stopped; ++i) {
      if (!s->submit_write(make_write(i))) s->flush();  // queue full: let it drain
    }
    s->flush();
    SsdStats st = s->stats();
    EXPECT_TRUE(st.writes_stopped);
    EXPECT_GT(st.blocks_written, 5);
    EXPECT_LT(st.blocks_written, 100);  // 256 KiB hold ~60 records
    for (int i = 0; i < st.blocks_written; ++i)
      EXPECT_TRUE(read_now(*s, make_write(i).key).status.is_ok());
  }
  auto s = SsdStore::open(options(tmp.path)).value();  // reopens cleanly on the full disk
  EXPECT_GT(s->stats().num_records, 5);
  EXPECT_EQ(s->stats().dropped_at_open, 0);
  ::umount(tmp.path.c_str());
}

TEST(SsdStore, SigkillMidWriteLeavesAReopenableStore) {
  TempDir tmp;
  for (int round = 0; round < 3; ++round) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // the child writes (with fsync) until killed
      SsdStoreOptions o = options(tmp.path);
      o.fsync = true;
      auto s = SsdStore::open(o).value();
      for (int i = round * 100000;; ++i) {
        SsdWrite w = make_write(i);
        w.payload.resize(w.payload.size());
        while (!s->submit_write(std::move(w))) {
          std::this_thread::sleep_for(std::chrono::microseconds(100));
          w = make_write(i);
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + 50 * round));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    auto s = SsdStore::open(options(tmp.path)).value();
    SsdStats st = s->stats();
    EXPECT_GT(st.num_records, 0);
    // Every indexed record reads back whole and verified.
    for (const BlockKey& k : s->keys()) ASSERT_TRUE(read_now(*s, k).status.is_ok());
    EXPECT_EQ(s->stats().read_failures, 0);
    for (auto& e : std::filesystem::directory_iterator(s->directory())) {
      EXPECT_EQ(e.path().extension(), ".kvb") << e.path();  // no temp file survives a reopen
    }
  }
}

TEST(SsdStore, LookupsRunConcurrentlyWithWrites) {
  TempDir tmp;
  SsdStoreOptions o = options(tmp.path, 40 * 4096);  // small budget: evictions race reads too
  auto s = SsdStore::open(o).value();
  std::atomic<bool> done{false};
  std::atomic<int64_t> hits{0};
  std::atomic<int64_t> bad{0};
  std::atomic<int64_t> passes[3] = {0, 0, 0};
  std::vector<std::thread> readers;
  // One thread reads (it takes every completion), two only probe the index.
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      while (!done) {
        passes[r]++;
        for (int i = 0; i < 200; ++i) {
          BlockKey k = make_write(i).key;
          if (!s->contains(k)) continue;
          hits++;
          if (r != 0) continue;
          SsdReadDone d = read_now(*s, k);
          if (d.status.is_ok() && (d.payload().size() != make_write(i).payload.size() ||
                                   std::memcmp(d.payload().data(), make_write(i).payload.data(),
                                               d.payload().size()) != 0)) {
            bad++;
          }
        }
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    while (!s->submit_write(make_write(i))) {
      if (s->contains(make_write(i).key)) break;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  s->flush();
  // Every reader completes at least one whole pass over the flushed store before stopping,
  // so the hit count cannot depend on how the threads were scheduled.
  int64_t seen[3];
  for (int r = 0; r < 3; ++r) seen[r] = passes[r].load();
  for (int r = 0; r < 3; ++r) {
    while (passes[r].load() < seen[r] + 2) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  done = true;
  for (std::thread& t : readers) t.join();
  EXPECT_GT(hits.load(), 0);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_LE(s->stats().used_bytes, 40u * 4096);
}

}  // namespace
}  // namespace strata::kv
