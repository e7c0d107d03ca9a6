// Encoding and checking SSD records (format in ssd_record.h).
#include "kv/ssd_record.h"

#define XXH_STATIC_LINKING_ONLY
#include <fmt/format.h>
#include <xxhash.h>

#include <array>
#include <cstring>

namespace strata::kv {

namespace {
constexpr char kMagic[8] = {'S', 'T', 'R', 'K', 'V', 'B', 'L', 'K'};

template <typename T>
void put(uint8_t* p, size_t off, T v) {
  std::memcpy(p + off, &v, sizeof v);
}
template <typename T>
T get(const uint8_t* p, size_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof v);
  return v;
}

uint64_t head_check(const uint8_t* head, const uint8_t* tokens, size_t token_bytes) {
  XXH3_state_t st;
  XXH3_INITSTATE(&st);
  XXH3_64bits_reset(&st);
  XXH3_64bits_update(&st, head, 112);
  XXH3_64bits_update(&st, tokens, token_bytes);
  return XXH3_64bits_digest(&st);
}
}  // namespace

std::vector<uint8_t> encode_record_head(const RecordInfo& info) {
  size_t token_bytes = 4 * info.tokens.size();
  std::vector<uint8_t> out(kRecordHeaderBytes + token_bytes, 0);
  uint8_t* p = out.data();
  std::memcpy(p, kMagic, 8);
  put<uint32_t>(p, 8, kRecordVersion);
  put<uint32_t>(p, 12, kRecordHeaderBytes);
  put(p, 16, info.fingerprint.lo);
  put(p, 24, info.fingerprint.hi);
  put(p, 32, info.key.lo);
  put(p, 40, info.key.hi);
  put(p, 48, info.parent.lo);
  put(p, 56, info.parent.hi);
  const KvLayout& l = info.layout;
  int32_t fields[8] = {l.num_layers,   l.num_kv_heads,
                       l.head_dim,     static_cast<int32_t>(l.dtype),
                       l.block_tokens, static_cast<int32_t>(info.tokens.size()),
                       info.depth,     static_cast<int32_t>(info.codec)};
  std::memcpy(p + 64, fields, sizeof fields);
  put<uint64_t>(p, 96, info.payload_bytes);
  put<uint64_t>(p, 104, static_cast<uint64_t>(l.state_bytes));
  std::memcpy(p + kRecordHeaderBytes, info.tokens.data(), token_bytes);
  put<uint64_t>(p, 112, head_check(p, p + kRecordHeaderBytes, token_bytes));
  return out;
}

std::array<uint8_t, 16> record_trailer(std::span<const std::span<const uint8_t>> parts) {
  XXH3_state_t st;
  XXH3_INITSTATE(&st);
  XXH3_128bits_reset(&st);
  for (std::span<const uint8_t> p : parts) XXH3_128bits_update(&st, p.data(), p.size());
  XXH128_hash_t h = XXH3_128bits_digest(&st);
  std::array<uint8_t, 16> out;
  std::memcpy(out.data(), &h.low64, 8);
  std::memcpy(out.data() + 8, &h.high64, 8);
  return out;
}

Result<RecordInfo> parse_record_head(std::span<const uint8_t> bytes) {
  if (bytes.size() < kRecordHeaderBytes)
    return error(ErrorCode::kCorrupt, "record shorter than its header");
  const uint8_t* p = bytes.data();
  if (std::memcmp(p, kMagic, 8) != 0)
    return error(ErrorCode::kCorrupt, "not a KV block record (bad magic)");
  uint32_t version = get<uint32_t>(p, 8);
  if (version != kRecordVersion) {
    return error(ErrorCode::kUnsupported,
                 fmt::format("KV record format {} (this build reads {})", version, kRecordVersion));
  }
  if (get<uint32_t>(p, 12) != kRecordHeaderBytes)
    return error(ErrorCode::kCorrupt, "bad header size");
  int32_t fields[8];
  std::memcpy(fields, p + 64, sizeof fields);
  int32_t num_tokens = fields[5];
  if (num_tokens < 0 || num_tokens > fields[4] || fields[4] <= 0) {
    return error(ErrorCode::kCorrupt, "bad token count in record header");
  }
  size_t token_bytes = 4 * static_cast<size_t>(num_tokens);
  if (bytes.size() < kRecordHeaderBytes + token_bytes)
    return error(ErrorCode::kCorrupt, "record truncated in its token ids");
  if (get<uint64_t>(p, 112) != head_check(p, p + kRecordHeaderBytes, token_bytes)) {
    return error(ErrorCode::kCorrupt, "record header checksum mismatch");
  }
  RecordInfo info;
  info.fingerprint = {get<uint64_t>(p, 16), get<uint64_t>(p, 24)};
  info.key = {get<uint64_t>(p, 32), get<uint64_t>(p, 40)};
  info.parent = {get<uint64_t>(p, 48), get<uint64_t>(p, 56)};
  info.layout.num_layers = fields[0];
  info.layout.num_kv_heads = fields[1];
  info.layout.head_dim = fields[2];
  info.layout.dtype = static_cast<DType>(fields[3]);
  info.layout.block_tokens = fields[4];
  info.num_tokens = num_tokens;
  info.depth = fields[6];
  info.codec = static_cast<BlockCodec>(fields[7]);
  info.payload_bytes = get<uint64_t>(p, 96);
  info.layout.state_bytes = static_cast<int64_t>(get<uint64_t>(p, 104));
  info.tokens.resize(static_cast<size_t>(num_tokens));
  std::memcpy(info.tokens.data(), p + kRecordHeaderBytes, token_bytes);
  return info;
}

Result<RecordInfo> verify_record(std::span<const uint8_t> bytes, size_t* payload_offset) {
  STRATA_ASSIGN_OR_RETURN(RecordInfo info, parse_record_head(bytes));
  if (bytes.size() != info.file_bytes()) {
    return error(ErrorCode::kCorrupt, fmt::format("record is {} bytes, header says {}",
                                                  bytes.size(), info.file_bytes()));
  }
  size_t head = kRecordHeaderBytes + 4 * static_cast<size_t>(info.num_tokens);
  std::span<const uint8_t> parts[2] = {bytes.subspan(0, head),
                                       bytes.subspan(head, info.payload_bytes)};
  auto trailer = record_trailer(parts);
  if (std::memcmp(trailer.data(), bytes.data() + bytes.size() - 16, 16) != 0) {
    return error(ErrorCode::kCorrupt, "record checksum mismatch");
  }
  *payload_offset = head;
  return info;
}

}  // namespace strata::kv
