// SsdStore: re-index at open, budgeted write-behind, verified reads (format in ssd_record.h).
#include "kv/ssd_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/check.h"
#include "core/log.h"
#include "kv/ssd_record.h"

namespace strata::kv {

namespace {

constexpr const char* kExt = ".kvb";

uint64_t round_4k(uint64_t n) { return (n + 4095) & ~uint64_t{4095}; }

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status errno_status(int err, const std::string& what) {
  ErrorCode code =
      (err == ENOSPC || err == EDQUOT) ? ErrorCode::kResourceExhausted : ErrorCode::kIo;
  return error(code, fmt::format("{}: {}", what, std::strerror(err)));
}

class FileRecordWriter final : public RecordWriter {
 public:
  Status write(const std::string& dir, const std::string& name,
               std::span<const std::span<const uint8_t>> parts, bool fsync) override {
    std::string final_path = dir + "/" + name;
    std::string tmp_path = fmt::format("{}.{}.tmp", final_path, static_cast<long>(::getpid()));
    int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno_status(errno, "create " + tmp_path);
    Status st = write_all(fd, parts, tmp_path);
    if (st.is_ok() && fsync && ::fdatasync(fd) != 0) st = errno_status(errno, "fsync " + tmp_path);
    if (::close(fd) != 0 && st.is_ok()) st = errno_status(errno, "close " + tmp_path);
    if (st.is_ok() && ::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
      st = errno_status(errno, "rename " + tmp_path);
    }
    if (!st.is_ok()) ::unlink(tmp_path.c_str());
    return st;
  }

 private:
  static Status write_all(int fd, std::span<const std::span<const uint8_t>> parts,
                          const std::string& path) {
    for (std::span<const uint8_t> part : parts) {
      const uint8_t* p = part.data();
      size_t left = part.size();
      while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return errno_status(n < 0 ? errno : ENOSPC, "write " + path);
        p += n;
        left -= static_cast<size_t>(n);
      }
    }
    return Status::ok();
  }
};

// Read the whole file at `path`; kNotFound if it is gone.
Result<std::vector<uint8_t>> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return error(ErrorCode::kNotFound, "record gone: " + path);
    return errno_status(errno, "open " + path);
  }
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) {
    int err = errno;
    ::close(fd);
    return errno_status(err, "stat " + path);
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(sb.st_size));
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::futimens(fd, nullptr);  // last use survives a restart as the file's mtime
  ::close(fd);
  bytes.resize(got);
  return bytes;
}

}  // namespace

std::shared_ptr<RecordWriter> make_file_record_writer() {
  return std::make_shared<FileRecordWriter>();
}

SsdStore::SsdStore(SsdStoreOptions options)
    : opt_(std::move(options)),
      dir_(opt_.dir + "/" + opt_.fingerprint.to_hex()),
      record_bytes_(round_4k(kRecordHeaderBytes + 4ull * opt_.layout.block_tokens +
                             encoded_block_bytes(opt_.layout, opt_.codec) + 16)) {
  if (!opt_.writer) opt_.writer = make_file_record_writer();
}

Result<std::unique_ptr<SsdStore>> SsdStore::open(SsdStoreOptions options) {
  STRATA_RETURN_IF_ERROR(options.layout.validate());
  if (!codec_supports(options.codec, options.layout)) {
    return error(ErrorCode::kInvalidArgument, "int8 lower-tier storage needs F16, BF16 or F32 KV");
  }
  if (options.num_io_threads < 1) options.num_io_threads = 1;
  std::unique_ptr<SsdStore> store(new SsdStore(std::move(options)));
  std::error_code ec;
  std::filesystem::create_directories(store->dir_, ec);
  if (ec) {
    return error(ErrorCode::kIo, fmt::format("cannot create the KV cache directory {}: {}",
                                             store->dir_, ec.message()));
  }
  auto t0 = std::chrono::steady_clock::now();
  STRATA_RETURN_IF_ERROR(store->reindex());
  store->stats_.open_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int i = 0; i < store->opt_.num_io_threads; ++i) {
    store->threads_.emplace_back([s = store.get()] { s->io_loop(); });
  }
  return store;
}

SsdStore::~SsdStore() {
  flush();
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

std::string SsdStore::record_path(const BlockKey& key) const {
  return dir_ + "/" + key.to_hex() + kExt;
}

// Reads only each record's head (128 bytes + token ids) and its size; the payload is checked
// when the record is read for use. Heads are read by several threads: with a cold page cache
// each is a small random read, and the disk serves several at once.
Status SsdStore::reindex() {
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return errno_status(errno, "open KV cache directory " + dir_);
  std::vector<std::string> names;
  std::vector<std::string> drop;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (!name.ends_with(kExt) || name.size() != 32 + std::strlen(kExt)) {
      drop.push_back(dir_ + "/" + name);  // temporary files of an interrupted write, strays
    } else {
      names.push_back(std::move(name));
    }
  }
  ::closedir(d);
  struct Found {
    BlockKey key;
    Rec rec;
  };
  const size_t num_threads = std::min<size_t>(8, 1 + names.size() / 512);
  std::vector<std::vector<Found>> found(num_threads);
  std::vector<std::vector<std::string>> bad(num_threads);
  auto scan = [&](size_t t) {
    const size_t head_max = kRecordHeaderBytes + 4 * static_cast<size_t>(opt_.layout.block_tokens);
    const uint64_t payload_bytes = encoded_block_bytes(opt_.layout, opt_.codec);
    std::vector<uint8_t> head(head_max);
    for (size_t i = t; i < names.size(); i += num_threads) {
      std::string path = dir_ + "/" + names[i];
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      struct stat sb {};
      ssize_t n = ::fstat(fd, &sb) == 0 ? ::pread(fd, head.data(), head_max, 0) : -1;
      ::close(fd);
      Result<RecordInfo> info =
          n > 0 ? parse_record_head(std::span<const uint8_t>(head.data(), static_cast<size_t>(n)))
                : Result<RecordInfo>(error(ErrorCode::kCorrupt, "unreadable"));
      bool ok = info.is_ok() && info->fingerprint == opt_.fingerprint &&
                info->layout == opt_.layout && info->codec == opt_.codec &&
                info->payload_bytes == payload_bytes && info->key.to_hex() + kExt == names[i] &&
                static_cast<uint64_t>(sb.st_size) == info->file_bytes();
      if (ok) {
        found[t].push_back(
            {info->key, Rec{round_4k(info->file_bytes()), sb.st_mtim.tv_sec, info->depth, 0}});
      } else {
        bad[t].push_back(std::move(path));
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < num_threads; ++t) threads.emplace_back(scan, t);
  scan(0);
  for (std::thread& t : threads) t.join();
  std::lock_guard lock(mu_);
  for (size_t t = 0; t < num_threads; ++t) {
    for (const Found& f : found[t]) insert_locked(f.key, f.rec);
    drop.insert(drop.end(), bad[t].begin(), bad[t].end());
  }
  for (const std::string& p : drop) ::unlink(p.c_str());
  stats_.dropped_at_open = static_cast<int64_t>(drop.size());
  stats_.indexed_at_open = static_cast<int64_t>(index_.size());
  // The budget may have shrunk since the last run.
  std::vector<std::string> evict;
  reserve_locked(0, &evict);
  for (const std::string& p : evict) ::unlink(p.c_str());
  if (!drop.empty()) {
    STRATA_LOG_INFO("kv: {} dropped {} foreign, stale, truncated or corrupt records", dir_,
                    drop.size());
  }
  return Status::ok();
}

void SsdStore::insert_locked(const BlockKey& key, Rec rec) {
  auto [it, inserted] = index_.emplace(key, rec);
  if (!inserted) return;
  lru_.insert(lru_key(key, rec));
  stats_.used_bytes += rec.bytes;
  stats_.num_records++;
}

void SsdStore::erase_locked(const BlockKey& key, bool evicted) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  lru_.erase(lru_key(key, it->second));
  stats_.used_bytes -= it->second.bytes;
  stats_.num_records--;
  if (evicted) {
    stats_.blocks_evicted++;
    stats_.bytes_evicted += it->second.bytes;
  }
  index_.erase(it);
}

bool SsdStore::reserve_locked(uint64_t need, std::vector<std::string>* unlink_paths) {
  if (need > opt_.budget_bytes) return false;
  while (stats_.used_bytes + reserved_bytes_ + need > opt_.budget_bytes && !lru_.empty()) {
    const LruKey& k = *lru_.begin();
    BlockKey victim{std::get<4>(k), std::get<3>(k)};
    unlink_paths->push_back(record_path(victim));
    erase_locked(victim, /*evicted=*/true);
  }
  if (stats_.used_bytes + reserved_bytes_ + need > opt_.budget_bytes) return false;
  reserved_bytes_ += need;
  return true;
}

bool SsdStore::contains(const BlockKey& key) const {
  std::lock_guard lock(mu_);
  return index_.count(key) != 0;
}

std::vector<BlockKey> SsdStore::keys() const {
  std::lock_guard lock(mu_);
  std::vector<BlockKey> out;
  for (const auto& [k, r] : index_) out.push_back(k);
  return out;
}

bool SsdStore::submit_write(SsdWrite write) {
  {
    std::lock_guard lock(mu_);
    bool drop = stats_.writes_stopped || writes_.size() >= opt_.max_queued_writes ||
                record_bytes_ > opt_.budget_bytes;
    if (index_.count(write.key) || queued_.count(write.key)) return false;
    if (drop) {
      stats_.writes_dropped++;
      return false;
    }
    queued_.insert(write.key);
    writes_.push_back(std::move(write));
  }
  work_cv_.notify_one();
  return true;
}

uint64_t SsdStore::submit_read(const BlockKey& key, uint8_t* block) {
  uint64_t ticket;
  {
    std::lock_guard lock(mu_);
    ticket = next_ticket_++;
    reads_.push_back(ReadJob{ticket, key, block});
  }
  work_cv_.notify_one();
  return ticket;
}

std::vector<SsdReadDone> SsdStore::take_completed_reads() {
  std::lock_guard lock(mu_);
  std::vector<SsdReadDone> out;
  out.swap(done_);
  return out;
}

std::vector<uint64_t> SsdStore::take_completed_writes() {
  std::lock_guard lock(mu_);
  std::vector<uint64_t> out;
  out.swap(writes_done_);
  return out;
}

void SsdStore::set_on_read_done(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  on_read_done_ = std::move(fn);
}

void SsdStore::flush() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return writes_.empty() && writes_in_flight_ == 0; });
}

SsdStats SsdStore::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void SsdStore::io_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !reads_.empty() || !writes_.empty(); });
    if (!reads_.empty()) {  // reads first: a request is waiting on them
      ReadJob job = reads_.front();
      reads_.pop_front();
      lock.unlock();
      do_read(job.ticket, job.key, job.block);
      lock.lock();
      continue;
    }
    if (!writes_.empty()) {
      SsdWrite w = std::move(writes_.front());
      writes_.pop_front();
      writes_in_flight_++;
      lock.unlock();
      do_write(w);
      lock.lock();
      if (w.block != nullptr) writes_done_.push_back(w.cookie);
      writes_in_flight_--;
      queued_.erase(w.key);
      if (writes_.empty() && writes_in_flight_ == 0) idle_cv_.notify_all();
      continue;
    }
    if (stop_) return;
  }
}

void SsdStore::do_write(SsdWrite& w) {
  std::vector<std::string> evict;
  {
    std::lock_guard lock(mu_);
    if (stats_.writes_stopped || !reserve_locked(record_bytes_, &evict)) {
      stats_.writes_dropped++;
      return;
    }
  }
  for (const std::string& p : evict) ::unlink(p.c_str());
  RecordInfo info;
  info.fingerprint = opt_.fingerprint;
  info.key = w.key;
  info.parent = w.parent;
  info.layout = opt_.layout;
  info.codec = opt_.codec;
  info.depth = w.depth;
  info.num_tokens = static_cast<int32_t>(w.tokens.size());
  info.tokens = std::move(w.tokens);
  info.payload_bytes = encoded_block_bytes(opt_.layout, opt_.codec);
  std::vector<uint8_t> head = encode_record_head(info);
  // Parts: head, payload (one or two pieces), trailer. A raw block is written straight from
  // its RAM-tier memory: KV, then the state blob.
  std::vector<std::span<const uint8_t>> parts = {head};
  if (w.block != nullptr && opt_.codec == BlockCodec::kRaw) {
    parts.emplace_back(w.block, opt_.layout.kv_bytes());
    parts.emplace_back(w.block + opt_.layout.state_offset(),
                       static_cast<size_t>(opt_.layout.state_bytes));
  } else {
    if (w.block != nullptr) {
      w.payload.resize(info.payload_bytes);
      encode_block(opt_.layout, opt_.codec, w.block, w.payload.data());
    }
    STRATA_CHECK(w.payload.size() == info.payload_bytes);
    parts.emplace_back(w.payload);
  }
  auto trailer = record_trailer(parts);
  parts.emplace_back(trailer);
  Status st = opt_.writer->write(dir_, w.key.to_hex() + kExt, parts, opt_.fsync);
  std::lock_guard lock(mu_);
  reserved_bytes_ -= record_bytes_;
  if (!st.is_ok()) {
    stats_.writes_dropped++;
    if (!stats_.writes_stopped) {  // logged once; serving goes on from what is on disk
      stats_.writes_stopped = true;
      STRATA_LOG_ERROR("kv: SSD cache writes stopped ({}); serving continues without them",
                       st.to_string());
    }
    return;
  }
  insert_locked(w.key, Rec{record_bytes_, now_seconds(), w.depth, next_use_seq_++});
  stats_.blocks_written++;
  stats_.bytes_written += info.file_bytes();
}

Status SsdStore::check_info(const RecordInfo& info, const BlockKey& key) const {
  if (info.key == key && info.fingerprint == opt_.fingerprint && info.layout == opt_.layout &&
      info.codec == opt_.codec &&
      info.payload_bytes == encoded_block_bytes(opt_.layout, opt_.codec)) {
    return Status::ok();
  }
  return error(ErrorCode::kCorrupt, "record does not match its name or this model");
}

namespace {
Status read_exact(int fd, void* dst, size_t n, uint64_t offset, const std::string& path) {
  auto* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    ssize_t got = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errno_status(errno, "read " + path);
    if (got == 0) return error(ErrorCode::kCorrupt, "record truncated: " + path);
    p += got;
    n -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
  return Status::ok();
}
}  // namespace

// Head, then the payload straight into the block (raw) or through a buffer (int8), then the
// trailer; the checksum covers all of it before the block counts as restored.
Status SsdStore::read_into_block(const std::string& path, const BlockKey& key, uint8_t* block,
                                 uint64_t* file_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return error(ErrorCode::kNotFound, "record gone: " + path);
    return errno_status(errno, "open " + path);
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) return errno_status(errno, "stat " + path);
  const size_t head_bytes = kRecordHeaderBytes + 4 * static_cast<size_t>(opt_.layout.block_tokens);
  std::vector<uint8_t> head(std::min<size_t>(head_bytes, static_cast<size_t>(sb.st_size)));
  STRATA_RETURN_IF_ERROR(read_exact(fd, head.data(), head.size(), 0, path));
  STRATA_ASSIGN_OR_RETURN(RecordInfo info, parse_record_head(head));
  STRATA_RETURN_IF_ERROR(check_info(info, key));
  if (static_cast<uint64_t>(sb.st_size) != info.file_bytes()) {
    return error(ErrorCode::kCorrupt, "record size does not match its header: " + path);
  }
  head.resize(kRecordHeaderBytes + 4 * static_cast<size_t>(info.num_tokens));
  uint64_t off = head.size();
  std::vector<std::span<const uint8_t>> parts = {head};
  std::vector<uint8_t> payload;
  if (opt_.codec == BlockCodec::kRaw) {
    const size_t kv = opt_.layout.kv_bytes();
    const size_t state = static_cast<size_t>(opt_.layout.state_bytes);
    STRATA_RETURN_IF_ERROR(read_exact(fd, block, kv, off, path));
    STRATA_RETURN_IF_ERROR(
        read_exact(fd, block + opt_.layout.state_offset(), state, off + kv, path));
    parts.emplace_back(block, kv);
    parts.emplace_back(block + opt_.layout.state_offset(), state);
  } else {
    payload.resize(info.payload_bytes);
    STRATA_RETURN_IF_ERROR(read_exact(fd, payload.data(), payload.size(), off, path));
    parts.emplace_back(payload);
  }
  std::array<uint8_t, 16> trailer;
  STRATA_RETURN_IF_ERROR(read_exact(fd, trailer.data(), 16, off + info.payload_bytes, path));
  if (record_trailer(parts) != trailer)
    return error(ErrorCode::kCorrupt, "record checksum mismatch");
  if (opt_.codec != BlockCodec::kRaw) decode_block(opt_.layout, opt_.codec, payload.data(), block);
  ::futimens(fd, nullptr);  // last use survives a restart as the file's mtime
  *file_bytes = info.file_bytes();
  return Status::ok();
}

void SsdStore::do_read(uint64_t ticket, const BlockKey& key, uint8_t* block) {
  SsdReadDone done;
  done.ticket = ticket;
  done.key = key;
  std::string path = record_path(key);
  uint64_t file_bytes = 0;
  if (block != nullptr) {
    done.status = read_into_block(path, key, block, &file_bytes);
  } else {
    Result<std::vector<uint8_t>> bytes = read_file(path);
    if (bytes.is_ok()) {
      done.bytes = std::move(bytes).value();
      file_bytes = done.bytes.size();
      Result<RecordInfo> info = verify_record(done.bytes, &done.payload_offset);
      done.status = info.is_ok() ? check_info(*info, key) : info.status();
      if (done.status.is_ok()) done.payload_bytes = info->payload_bytes;
    } else {
      done.status = bytes.status();
    }
  }
  std::function<void()> notify;
  {
    std::lock_guard lock(mu_);
    if (done.status.is_ok()) {
      auto it = index_.find(key);
      if (it != index_.end()) {  // touch: last use for eviction
        lru_.erase(lru_key(key, it->second));
        it->second.last_use = now_seconds();
        it->second.use_seq = next_use_seq_++;
        lru_.insert(lru_key(key, it->second));
      }
      stats_.blocks_read++;
      stats_.bytes_read += file_bytes;
    } else {
      // Never served; a corrupt record is deleted so it is not found again.
      stats_.read_failures++;
      erase_locked(key, /*evicted=*/false);
      if (done.status.code() == ErrorCode::kCorrupt) ::unlink(path.c_str());
      STRATA_LOG_WARN("kv: SSD block {} not served: {}", key.to_hex(), done.status.to_string());
      done.bytes.clear();
    }
    done_.push_back(std::move(done));
    notify = on_read_done_;
  }
  if (notify) notify();
}

}  // namespace strata::kv
