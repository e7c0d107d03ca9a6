// CudaBackend: device memory, weights, staging of host index arrays, and step graphs (decode
// steps recorded once and replayed). The ops are in cuda_backend_ops.cpp; the state both
// share in cuda_backend_impl.h.
#include "backend/cuda/cuda_backend_impl.h"

namespace strata::backend::cuda {

bool CudaBackend::available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}

CudaBackend::CudaBackend(int device) : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  STRATA_CUDA_CHECK(cudaSetDevice(device));
  STRATA_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  STRATA_CUBLAS_CHECK(cublasCreate(&impl_->cublas));
  STRATA_CUBLAS_CHECK(cublasSetStream(impl_->cublas, impl_->stream));
  // Exact f32 products for F32 weights: no TF32.
  STRATA_CUBLAS_CHECK(cublasSetMathMode(impl_->cublas, CUBLAS_DEFAULT_MATH));
  // A workspace of our own: cuBLAS then allocates nothing inside a graph capture.
  STRATA_CUBLAS_CHECK(cublasSetWorkspace(impl_->cublas, impl_->cublas_ws.get(kCublasWorkspace),
                                         kCublasWorkspace));
  STRATA_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->step_copied, cudaEventDisableTiming));
}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(impl_->stream);
  impl_->prof_print();
  impl_->clear_graphs();
  if (impl_->step_host != nullptr) cudaFreeHost(impl_->step_host);
  if (impl_->step_dev != nullptr) cudaFree(impl_->step_dev);
  cudaEventDestroy(impl_->step_copied);
  if (impl_->argmax_host != nullptr) cudaFreeHost(impl_->argmax_host);
  impl_->argmax_keys.release();
  impl_->cublas_ws.release();
  for (void* p : impl_->weights) cudaFree(p);
  if (impl_->ring_host != nullptr) cudaFreeHost(impl_->ring_host);
  if (impl_->ring_dev != nullptr) cudaFree(impl_->ring_dev);
  impl_->w_bf16.release();
  impl_->x_bf16.release();
  impl_->partial.release();
  for (auto& q : impl_->q8s) q.buf.release();
  impl_->moe_y.release();
  impl_->dn_prep.release();
  cublasDestroy(impl_->cublas);
  cudaStreamDestroy(impl_->stream);
}

float* CudaBackend::alloc_f32(size_t count) {
  impl_->enter();
  void* p = nullptr;
  if (count == 0) return nullptr;
  STRATA_CUDA_CHECK(cudaMalloc(&p, count * sizeof(float)));
  return static_cast<float*>(p);
}

void* CudaBackend::alloc_shared(size_t bytes) {
  impl_->enter();
  void* p = nullptr;
  if (bytes == 0 || cudaMallocManaged(&p, bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  cudaMemLocation gpu{};
  gpu.type = cudaMemLocationTypeDevice;
  gpu.id = impl_->device;
  (void)cudaMemAdvise(p, bytes, cudaMemAdviseSetPreferredLocation, gpu);
  (void)cudaGetLastError();  // advice is a hint: ignore where unsupported
  return p;
}

void CudaBackend::free_shared(void* p) {
  impl_->enter();
  if (p == nullptr) return;
  STRATA_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
  STRATA_CUDA_CHECK(cudaFree(p));
}

void CudaBackend::free(void* p) {
  impl_->enter();
  if (p == nullptr) return;
  STRATA_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
  STRATA_CUDA_CHECK(cudaFree(p));
}

void CudaBackend::copy_to_host(const float* src, size_t count, float* dst) {
  impl_->enter(true);
  STRATA_CUDA_CHECK(
      cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyDeviceToHost, impl_->stream));
  STRATA_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
}

float* CudaBackend::alloc_host_f32(size_t count) {
  void* p = nullptr;
  STRATA_CUDA_CHECK(cudaMallocHost(&p, std::max<size_t>(count, 1) * sizeof(float)));
  return static_cast<float*>(p);
}

void CudaBackend::free_host(float* p) {
  if (p != nullptr) STRATA_CUDA_CHECK(cudaFreeHost(p));
}

void CudaBackend::argmax_rows(const float* x, int64_t rows, int64_t cols, int32_t* out) {
  Impl& m = *impl_;
  m.enter(true);
  if (rows == 0) return;
  if (static_cast<size_t>(rows) > m.argmax_cap) {
    if (m.argmax_host != nullptr) STRATA_CUDA_CHECK(cudaFreeHost(m.argmax_host));
    m.argmax_cap = std::max<size_t>(static_cast<size_t>(rows), 64);
    STRATA_CUDA_CHECK(cudaMallocHost(&m.argmax_host, m.argmax_cap * sizeof(unsigned long long)));
  }
  auto* keys = static_cast<unsigned long long*>(m.argmax_keys.get(m.argmax_cap * sizeof(unsigned long long)));
  cuda::argmax_rows(x, rows, cols, keys, m.stream);
  STRATA_CUDA_CHECK(cudaMemcpyAsync(m.argmax_host, keys, static_cast<size_t>(rows) * sizeof(unsigned long long),
                                    cudaMemcpyDeviceToHost, m.stream));
  STRATA_CUDA_CHECK(cudaStreamSynchronize(m.stream));
  for (int64_t r = 0; r < rows; ++r)
    out[r] = static_cast<int32_t>(0xffffffffu - static_cast<uint32_t>(m.argmax_host[r] & 0xffffffffu));
}

void CudaBackend::copy_from_host(const float* src, size_t count, float* dst) {
  impl_->enter();
  STRATA_CUDA_CHECK(
      cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyHostToDevice, impl_->stream));
  STRATA_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
}

WeightView CudaBackend::upload_weight(const WeightView& host) {
  impl_->enter();
  if (host.data == nullptr) return host;
  WeightView w = host;
  const int64_t experts = std::max<int64_t>(1, host.num_experts);
  const size_t expert_bytes =
      host.expert_bytes != 0 ? host.expert_bytes : host.row_bytes * static_cast<size_t>(host.rows);
  std::vector<uint8_t> converted;
  const void* src = host.data;
  size_t bytes = expert_bytes * static_cast<size_t>(experts);
  if (!native_type(host.type) || host.cols % native_block_elems(host.type) != 0) {
    // Generic path: decode on the host to F16 (F32 if the row does not fit the F16 kernel).
    STRATA_CHECK_MSG(can_dequantize(host.type), "weight type cannot be dequantized");
    const bool f16 = host.cols % 8 == 0;
    w.type = f16 ? DType::kF16 : DType::kF32;
    w.row_bytes = static_cast<size_t>(host.cols) * (f16 ? 2 : 4);
    w.expert_bytes = w.row_bytes * static_cast<size_t>(host.rows);
    bytes = w.expert_bytes * static_cast<size_t>(experts);
    converted.resize(bytes);
    std::vector<float> row(static_cast<size_t>(host.cols));
    for (int64_t e = 0; e < experts; ++e) {
      for (int64_t r = 0; r < host.rows; ++r) {
        const auto* in =
            static_cast<const uint8_t*>(host.data) + e * expert_bytes + r * host.row_bytes;
        dequantize_row(host.type, in, row.data(), host.cols);
        uint8_t* out = converted.data() + e * w.expert_bytes + r * w.row_bytes;
        if (f16) {
          for (int64_t i = 0; i < host.cols; ++i) {
            const uint16_t h = f32_to_fp16(row[static_cast<size_t>(i)]);
            std::memcpy(out + 2 * i, &h, 2);
          }
        } else {
          std::memcpy(out, row.data(), w.row_bytes);
        }
      }
    }
    src = converted.data();
  } else {
    w.expert_bytes = expert_bytes;
  }
  void* d = nullptr;
  // 16 bytes of padding: the 2-byte-aligned formats load whole words past a block's end.
  STRATA_CUDA_CHECK(cudaMalloc(&d, bytes + 16));
  STRATA_CUDA_CHECK(cudaMemset(static_cast<uint8_t*>(d) + bytes, 0, 16));
  STRATA_CUDA_CHECK(cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice));
  impl_->weights.push_back(d);
  w.data = d;
  return w;
}

void CudaBackend::get_rows(const WeightView& w, const int32_t* ids, int64_t n, float* out) {
  impl_->prof_mark("get_rows");
  impl_->enter();
  if (n == 0) return;
  const int32_t* d_ids = impl_->stage_i32(ids, static_cast<size_t>(n));
  if (impl_->replay()) return;
  cuda::get_rows(w, d_ids, n, out, impl_->stream);
}

void* CudaBackend::stream() const { return impl_->stream; }

void CudaBackend::synchronize() {
  impl_->prof_mark(nullptr);
  impl_->enter(true);
  STRATA_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
}

void CudaBackend::set_step_graphs(bool on) {
  STRATA_CHECK(impl_->mode == Impl::Mode::kEager);
  impl_->graphs_enabled = on;
}

void CudaBackend::begin_step(const StepInfo& step) {
  Impl& m = *impl_;
  STRATA_CHECK_MSG(m.mode == Impl::Mode::kEager, "begin_step inside a step");
  m.enter();
  m.step_decode_only = step.decode_only;
  // The first large step is left out (lazy module loading, first allocations).
  if (step.num_tokens > kGraphMaxTokens) ++m.prof_big_steps;
  m.prof_step = step.num_tokens > kGraphMaxTokens && m.prof_big_steps > 1;
  m.prof_mark(nullptr);
  if (!m.graphs_enabled || step.num_tokens > kGraphMaxTokens) return;
  // Capacity: the next power of two of the longest context, at least 256 keys.
  int64_t cap = 256;
  while (cap < step.max_kv_len) cap *= 2;
  m.kv_cap = cap;
  m.step_tokens = step.num_tokens;
  m.step_key = mix_key(step.key, static_cast<uint64_t>(cap));
  m.step_off = 0;
  if (m.graphs.count(m.step_key) != 0) {
    m.mode = Impl::Mode::kReplay;
    // The pinned step buffer is rewritten now: the last step's copy must have read it.
    STRATA_CUDA_CHECK(cudaEventSynchronize(m.step_copied));
    return;
  }
  const auto seen = m.measured.find(m.step_key);
  if (seen == m.measured.end()) {
    m.mode = Impl::Mode::kMeasure;
    return;
  }
  if (m.graphs.size() >= kMaxGraphs) {
    STRATA_CUDA_CHECK(cudaStreamSynchronize(m.stream));
    m.clear_graphs();
  }
  m.ensure_step_buffer(seen->second);
  STRATA_CUDA_CHECK(cudaEventSynchronize(m.step_copied));
  m.mode = Impl::Mode::kCapture;
  STRATA_CUDA_CHECK(cudaStreamBeginCapture(m.stream, cudaStreamCaptureModeRelaxed));
}

void CudaBackend::end_step() {
  Impl& m = *impl_;
  m.flush();
  m.prof_mark(nullptr);
  m.prof_step = false;
  m.invalidate();
  m.step_decode_only = false;
  const Impl::Mode mode = m.mode;
  m.mode = Impl::Mode::kEager;
  switch (mode) {
    case Impl::Mode::kEager:
      return;
    case Impl::Mode::kMeasure:
      m.measured[m.step_key] = m.step_off;
      return;
    case Impl::Mode::kCapture: {
      cudaGraph_t graph = nullptr;
      STRATA_CUDA_CHECK(cudaStreamEndCapture(m.stream, &graph));
      Impl::StepGraph g;
      STRATA_CUDA_CHECK(cudaGraphInstantiate(&g.exec, graph, 0));
      STRATA_CUDA_CHECK(cudaGraphDestroy(graph));
      g.staged_bytes = m.step_off;
      m.graphs[m.step_key] = g;
      break;
    }
    case Impl::Mode::kReplay:
      break;
  }
  const Impl::StepGraph& g = m.graphs.at(m.step_key);
  STRATA_CHECK_MSG(m.step_off == g.staged_bytes, "step does not match its recorded graph");
  if (m.step_off > 0) {
    STRATA_CUDA_CHECK(cudaMemcpyAsync(m.step_dev, m.step_host, m.step_off, cudaMemcpyHostToDevice,
                                      m.stream));
  }
  STRATA_CUDA_CHECK(cudaEventRecord(m.step_copied, m.stream));
  STRATA_CUDA_CHECK(cudaGraphLaunch(g.exec, m.stream));
}

}  // namespace strata::backend::cuda
