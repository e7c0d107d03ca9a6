// kv_bench: SSD tier throughput per block size against the disk's own sequential bandwidth,
// lookup cost per block, re-index time for 10k records, int8 codec speed.
// Usage: kv_bench [dir] [MiB per block-size run] [nofsync]   (default: /tmp, 512)
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "kv/kv_cache.h"

namespace strata::kv {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Drop a directory's files from the page cache (clean pages only; no root needed).
void drop_cache(const std::string& dir) {
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    int fd = ::open(e.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// Fraction of a directory's file pages still in the page cache (checks drop_cache worked).
double resident_fraction(const std::string& dir) {
  size_t total = 0, resident = 0;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file() || e.file_size() == 0) continue;
    int fd = ::open(e.path().c_str(), O_RDONLY);
    size_t n = e.file_size();
    void* p = ::mmap(nullptr, n, PROT_READ, MAP_SHARED, fd, 0);
    std::vector<unsigned char> vec((n + page - 1) / page);
    if (p != MAP_FAILED && ::mincore(p, n, vec.data()) == 0) {
      for (unsigned char v : vec) resident += v & 1;
      total += vec.size();
    }
    if (p != MAP_FAILED) ::munmap(p, n);
    ::close(fd);
  }
  return total ? static_cast<double>(resident) / static_cast<double>(total) : 0.0;
}

// Sequential write and read of one large file with O_DIRECT (4 MiB requests): the disk's
// bandwidth without the page cache.
void disk_bandwidth(const std::string& dir, size_t mib, double* write_gbs,
                    double* read_gbs) {  // read_gbs[2]
  std::string path = dir + "/kv_bench_seq.bin";
  const size_t chunk = 4 << 20;
  void* buf = std::aligned_alloc(4096, chunk);
  std::memset(buf, 0xa5, chunk);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0644);
  if (fd < 0) {
    std::perror("open O_DIRECT");
    std::exit(1);
  }
  double t0 = now_s();
  for (size_t i = 0; i < mib / 4; ++i) {
    if (::write(fd, buf, chunk) != static_cast<ssize_t>(chunk)) std::perror("write");
  }
  ::fdatasync(fd);
  *write_gbs = static_cast<double>(mib << 20) / (now_s() - t0) / 1e9;
  ::close(fd);
  // Read with 1 and with 2 requests in flight (the SSD tier reads with 2 I/O threads).
  for (int qd = 1; qd <= 2; ++qd) {
    fd = ::open(path.c_str(), O_RDONLY | O_DIRECT);
    t0 = now_s();
    auto reader = [&](int part) {
      void* b = std::aligned_alloc(4096, chunk);
      for (size_t i = static_cast<size_t>(part); i < mib / 4; i += static_cast<size_t>(qd)) {
        if (::pread(fd, b, chunk, static_cast<off_t>(i * chunk)) != static_cast<ssize_t>(chunk))
          std::perror("pread");
      }
      std::free(b);
    };
    std::vector<std::thread> ts;
    for (int p = 1; p < qd; ++p) ts.emplace_back(reader, p);
    reader(0);
    for (std::thread& t : ts) t.join();
    read_gbs[qd - 1] = static_cast<double>(mib << 20) / (now_s() - t0) / 1e9;
    ::close(fd);
  }
  ::unlink(path.c_str());
  std::free(buf);
}

// Plain read() of every file in `dir` by 2 threads into a reused buffer: the same bytes and
// files a restore reads, without format, checksum or index work.
double raw_read_gbs(const std::string& dir) {
  std::vector<std::string> files;
  uint64_t total = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    files.push_back(e.path());
    total += e.file_size();
  }
  double t0 = now_s();
  auto reader = [&](size_t part) {
    std::vector<uint8_t> buf(8 << 20);
    for (size_t i = part; i < files.size(); i += 2) {
      int fd = ::open(files[i].c_str(), O_RDONLY);
      while (::read(fd, buf.data(), buf.size()) > 0) {
      }
      ::close(fd);
    }
  };
  std::thread t(reader, 1);
  reader(0);
  t.join();
  return static_cast<double>(total) / (now_s() - t0) / 1e9;
}

KvLayout qwen3_06b(int32_t block_tokens) {
  KvLayout l;
  l.num_layers = 28;
  l.num_kv_heads = 8;
  l.head_dim = 128;
  l.dtype = DType::kF16;
  l.block_tokens = block_tokens;
  return l;
}

std::vector<int32_t> tokens(size_t n, int32_t seed) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 2654435761u + seed) % 151000);
  return t;
}

struct BlockRun {
  double commit_s, write_gbs, reindex_s, restore_gbs, restore_warm_gbs, resident_after_drop,
      raw_gbs, raw_after_gbs, of_raw;
};

// Write `mib` of KV through the SSD tier as one request, drop the page cache, restart the
// cache on the directory and restore the whole prefix.
bool g_fsync = true;  // kv_bench ... nofsync: measure write-behind without fdatasync

BlockRun run_block_size(const std::string& root, int32_t bt, size_t mib, bool int8) {
  std::string dir = root + "/kv_bench_bt" + std::to_string(bt);
  std::filesystem::remove_all(dir);
  KvCacheOptions o;
  o.layout = qwen3_06b(bt);
  o.fingerprint = make_fingerprint("bench", "bench", o.layout);
  const int32_t n = static_cast<int32_t>(std::max<size_t>(4, (mib << 20) / o.layout.block_bytes()));
  o.device_blocks = n + 1;
  o.ssd_dir = dir;
  o.ssd_bytes = uint64_t{1} << 40;
  o.lower_tier_int8 = int8;
  o.num_io_threads = 2;
  o.ssd_fsync = g_fsync;
  std::vector<int32_t> prompt = tokens(static_cast<size_t>(n) * bt + 1, bt);
  BlockRun r{};
  const double kv_bytes = static_cast<double>(n) * static_cast<double>(o.layout.kv_bytes());
  {
    auto c = KvCache::create(o).value();
    SeqId s = c->add_sequence(prompt, {}, 0);
    if (c->allocate(s, static_cast<int32_t>(prompt.size())) != Alloc::kOk) std::abort();
    for (BlockId b : c->block_table(s))
      std::memset(c->k_ptr(b, 0), idx(b) * 7 + 1, o.layout.kv_bytes());
    double t0 = now_s();
    c->commit(s, prompt);  // encodes each full block and queues it (write-behind)
    r.commit_s = now_s() - t0;
    c->free(s);
    c->flush();
    r.write_gbs = kv_bytes / (now_s() - t0) / 1e9;
    if (c->stats().ssd.blocks_written != n)
      std::fprintf(stderr, "only %ld of %d blocks written\n",
                   static_cast<long>(c->stats().ssd.blocks_written), n);
  }
  drop_cache(dir);
  r.raw_gbs = raw_read_gbs(dir);
  for (int warm = 0; warm < 2; ++warm) {
    if (warm == 0) {
      drop_cache(dir);
      r.resident_after_drop = resident_fraction(dir);
    }
    auto c = KvCache::create(o).value();
    double t1 = now_s();
    if (warm == 0) r.reindex_s = c->stats().ssd.open_seconds;
    SeqId s = c->add_sequence(prompt, {});
    while (!c->is_ready(s)) {
      c->poll();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    double gbs = kv_bytes / (now_s() - t1) / 1e9;
    if (c->num_cached_tokens(s) != n * bt)
      std::fprintf(stderr, "restored %d of %d tokens\n", c->num_cached_tokens(s), n * bt);
    (warm == 0 ? r.restore_gbs : r.restore_warm_gbs) = gbs;
    c->free(s);
    if (warm == 0) {  // again after the restore: this VM's disk is faster on a second read
      drop_cache(dir);
      r.raw_after_gbs = raw_read_gbs(dir);
    }
  }
  std::filesystem::remove_all(dir);
  r.of_raw = r.restore_gbs / std::max(r.raw_gbs, r.raw_after_gbs);
  return r;
}

void lookup_cost() {
  KvCacheOptions o;
  o.layout = qwen3_06b(64);
  o.layout.num_layers = 1;  // the index does not care about bytes; keep RAM small
  o.fingerprint = make_fingerprint("bench", "bench", o.layout);
  o.device_blocks = 600;
  auto c = KvCache::create(o).value();
  std::vector<int32_t> prompt = tokens(512 * 64, 1);
  SeqId s = c->add_sequence(prompt, {}, 0);
  if (c->allocate(s, static_cast<int32_t>(prompt.size())) != Alloc::kOk) std::abort();
  c->commit(s, prompt);
  c->free(s);
  const int iters = 200;
  double t0 = now_s();
  int64_t sink = 0;
  for (int i = 0; i < iters; ++i) sink += c->lookup(prompt, {}).num_tokens;
  double hit_ns = (now_s() - t0) / iters / 512 * 1e9;
  std::vector<int32_t> other = tokens(64, 99);
  t0 = now_s();
  for (int i = 0; i < iters * 100; ++i) sink += c->lookup(other, {}).num_tokens;
  double miss_ns = (now_s() - t0) / (iters * 100) * 1e9;
  std::printf(
      "lookup: %.0f ns per cached 64-token block (512-block prefix, hash + probe), "
      "%.0f ns for a first-block miss  [sink %ld]\n",
      hit_ns, miss_ns, static_cast<long>(sink % 7));
}

void reindex_10k(const std::string& root) {
  std::string dir = root + "/kv_bench_reindex";
  std::filesystem::remove_all(dir);
  SsdStoreOptions o;
  o.dir = dir;
  o.layout = qwen3_06b(64);
  o.layout.num_layers = 1;
  o.layout.num_kv_heads = 1;  // 16 KiB payloads: the re-index reads only the 384-byte head
  o.fingerprint = make_fingerprint("bench", "bench", o.layout);
  o.budget_bytes = uint64_t{1} << 40;
  o.fsync = false;
  o.max_queued_writes = 1 << 20;
  {
    auto s = SsdStore::open(o).value();
    BlockKey parent = chain_root(o.fingerprint, {});
    for (int i = 0; i < 10000; ++i) {
      SsdWrite w;
      w.tokens = tokens(64, i);
      w.key = block_key(o.fingerprint, parent, w.tokens, {});
      w.parent = parent;
      w.depth = i;
      w.payload.assign(encoded_block_bytes(o.layout, BlockCodec::kRaw), 1);
      parent = w.key;
      (void)s->submit_write(std::move(w));
    }
    s->flush();
  }
  drop_cache(dir);
  double cold = SsdStore::open(o).value()->stats().open_seconds;
  double warm = SsdStore::open(o).value()->stats().open_seconds;
  std::printf("re-index 10000 records: %.3f s cold (page cache dropped), %.3f s warm\n", cold,
              warm);
  std::filesystem::remove_all(dir);
}

void codec_speed() {
  KvLayout l = qwen3_06b(64);
  std::vector<uint8_t> block(l.block_bytes());
  for (size_t i = 0; i + 1 < block.size(); i += 2) {
    uint16_t h = static_cast<uint16_t>(0x3c00 + (i * 7 % 1024));
    std::memcpy(&block[i], &h, 2);
  }
  std::vector<uint8_t> enc(encoded_block_bytes(l, BlockCodec::kInt8));
  double t0 = now_s();
  for (int i = 0; i < 5; ++i) encode_block(l, BlockCodec::kInt8, block.data(), enc.data());
  double e = 5 * static_cast<double>(l.kv_bytes()) / (now_s() - t0) / 1e9;
  t0 = now_s();
  for (int i = 0; i < 5; ++i) decode_block(l, BlockCodec::kInt8, enc.data(), block.data());
  double d = 5 * static_cast<double>(l.kv_bytes()) / (now_s() - t0) / 1e9;
  std::printf("int8 codec (scalar, one thread): encode %.2f GB/s, decode %.2f GB/s of f16 KV\n", e,
              d);
}

}  // namespace
}  // namespace strata::kv

int main(int argc, char** argv) {
  using namespace strata::kv;
  strata::set_log_level(strata::LogLevel::kWarn);
  std::string root = argc > 1 ? argv[1] : "/tmp";
  size_t mib = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 512;
  if (argc > 3 && std::string(argv[3]) == "nofsync") {  // one block size, no fdatasync
    g_fsync = false;
    std::vector<BlockRun> runs;
    for (int rep = 0; rep < 3; ++rep) runs.push_back(run_block_size(root, 64, mib, false));
    for (const BlockRun& r : runs) {
      std::printf("block 64, no fsync: write %.2f GB/s, restore %.2f GB/s\n", r.write_gbs,
                  r.restore_gbs);
    }
    return 0;
  }
  std::printf("kv_bench: dir %s, %zu MiB per run, %u hardware threads\n", root.c_str(), mib,
              std::thread::hardware_concurrency());
  double wgbs = 0, rgbs2[2] = {0, 0};
  disk_bandwidth(root, 1024, &wgbs, rgbs2);
  std::printf(
      "disk (O_DIRECT, 4 MiB requests, 1 GiB file): write %.2f GB/s, read %.2f GB/s (1 in flight), "
      "%.2f GB/s (2 in flight)\n",
      wgbs, rgbs2[0], rgbs2[1]);
  std::printf("(medians of 3 runs)\n");
  std::printf(
      "Qwen3-0.6B-shaped KV (28 x 8 x 128 x K,V x f16 = %zu B/token), fsync per record, 2 I/O "
      "threads:\n",
      qwen3_06b(64).bytes_per_token());
  std::printf(
      "raw1/raw2: plain read() of the same files before/after the restore (page cache "
      "dropped each time); of_raw = restore / max(raw1, raw2)\n");
  std::printf("%6s %9s %9s %10s %10s %8s %8s %12s %8s %9s %8s\n", "block", "MB/block", "commit_ms",
              "write_GB/s", "reindex_ms", "raw1", "raw2", "restore_GB/s", "of_raw", "warm_GB/s",
              "cached%");
  for (int32_t bt : {16, 32, 64, 128, 256}) {
    // Median of 3 runs per field: the disk and the 2 cores are shared, runs vary.
    std::vector<BlockRun> runs;
    for (int rep = 0; rep < 3; ++rep) runs.push_back(run_block_size(root, bt, mib, false));
    auto med = [&](double BlockRun::*f) {
      std::vector<double> v;
      for (const BlockRun& x : runs) v.push_back(x.*f);
      std::sort(v.begin(), v.end());
      return v[1];
    };
    std::printf("%6d %9.2f %9.1f %10.2f %10.1f %8.2f %8.2f %12.2f %7.0f%% %9.2f %7.0f%%\n", bt,
                static_cast<double>(qwen3_06b(bt).kv_bytes()) / 1e6, med(&BlockRun::commit_s) * 1e3,
                med(&BlockRun::write_gbs), med(&BlockRun::reindex_s) * 1e3, med(&BlockRun::raw_gbs),
                med(&BlockRun::raw_after_gbs), med(&BlockRun::restore_gbs),
                100 * med(&BlockRun::of_raw), med(&BlockRun::restore_warm_gbs),
                100 * med(&BlockRun::resident_after_drop));
  }
  BlockRun q = run_block_size(root, 64, mib, true);
  std::printf(
      "block 64, int8 lower tiers: write %.2f GB/s, restore %.2f GB/s (of f16 KV restored)\n",
      q.write_gbs, q.restore_gbs);
  lookup_cost();
  reindex_10k(root);
  codec_speed();
  return 0;
}
