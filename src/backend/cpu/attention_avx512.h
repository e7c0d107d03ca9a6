// AVX-512 inner loops of the decode attention (attention.cpp: head_scores / head_pv, which
// the decode items and the long path's chunks share) for F16 K/V. Only attention_avx512.cpp is
// compiled with AVX-512; attention.cpp calls these when avx512_kernels_enabled(). Rows r < rows of
// one KV head, head_dim hd (a multiple of 16); key j's K and V rows are at k + j * key_stride and v
// + j * key_stride (row_bytes each).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace strata::backend::cpu {

// f(std::integral_constant<int, R>) for a row count R of 1, 2, 3, 4 or 8 (others: checked by
// the callers), so that a run-time count picks a kernel unrolled for it. Shared by
// attention.cpp and attention_avx512.cpp (each instantiates it with its own lambdas).
template <class F>
void with_rows(int rows, F&& f) {
  switch (rows) {
    case 1:
      f(std::integral_constant<int, 1>{});
      return;
    case 2:
      f(std::integral_constant<int, 2>{});
      return;
    case 3:
      f(std::integral_constant<int, 3>{});
      return;
    case 8:
      f(std::integral_constant<int, 8>{});
      return;
    default:
      f(std::integral_constant<int, 4>{});
      return;
  }
}

// p[r * p_stride + j] = qs[r * hd ...] . K_j for j < nj (rows 1-4 or 8); requests each K row 4 keys
// ahead and this key's V row (read by the P V pass after), as the AVX2 loop does.
void decode_scores_f16_avx512(int rows, const float* qs, int hd, const uint8_t* k, const uint8_t* v,
                              size_t key_stride, size_t row_bytes, int nj, float* p, int p_stride);
// acc[r * acc_stride + d] = acc[...] * corr[r] (corr null: 1) + sum_j p[r * p_stride + j] V_j[d].
void decode_pv_f16_avx512(int rows, const float* p, int p_stride, const uint8_t* v,
                          size_t key_stride, int nj, int hd, const float* corr, float* acc,
                          size_t acc_stride);

// Prefill items (run_item, 8 query rows at a time, f32 blocks), the AVX2 scores_block and
// pv_block in 512-bit form with the same order of sums: s[r * s_stride + j] = q_r . kT[:, j]
// for j < nk (nk a multiple of 16, kT [hd][kt_stride]); o[r * hd + d] = o[...] * corr[r] +
// sum_{j < nj} p[r * p_stride + j] v[j * hd + d] (hd a multiple of 32).
void prefill_scores8_avx512(const float* q, int hd, const float* kT, int kt_stride, int nk,
                            float* s, int s_stride);
void prefill_pv8_avx512(const float* p, int p_stride, const float* v, int hd, int nj,
                        const float* corr, float* o);

}  // namespace strata::backend::cpu
