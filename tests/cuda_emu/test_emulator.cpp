// Tests of the CUDA host emulator itself (tests/support/cuda_emu): that its barriers, shuffles,
// launch checks, memory registry, half conversions and GEMMs behave as the hardware and cuBLAS
// do, and that it exposes what it claims to (a missing __syncthreads, host pointers handed to
// the device). The CUDA tests that run on it (cuda_emu.*) are only as good as this.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace cuda_emu_test_emulator {  // one per test file

// ---- kernels ------------------------------------------------------------------------------

// Block-wide reversal through shared memory: correct only with the barrier.
template <bool kSync>
__global__ void reverse_kernel(const int* in, int* out) {
  __shared__ int buf[256];
  const unsigned t = threadIdx.x;
  buf[t] = in[blockIdx.x * blockDim.x + t];
  if (kSync) __syncthreads();
  out[blockIdx.x * blockDim.x + t] = buf[blockDim.x - 1 - t];
}

// Warp sums by __shfl_down_sync, then a block sum through shared memory.
__global__ void warp_sum_kernel(const float* in, float* warp_out, float* block_out) {
  __shared__ float part[32];
  const unsigned t = threadIdx.x, lane = t & 31, warp = t >> 5;
  float v = in[t];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if (lane == 0) {
    warp_out[warp] = v;
    part[warp] = v;
  }
  __syncthreads();
  if (t == 0) {
    float s = 0.0f;
    for (unsigned w = 0; w < (blockDim.x + 31) / 32; ++w) s += part[w];
    *block_out = s;
  }
}

__global__ void xor_kernel(int* out) {
  const int lane = static_cast<int>(threadIdx.x);
  out[lane] = __shfl_xor_sync(0xffffffffu, lane * 10, 1);
}

__global__ void index_kernel(unsigned* out) {
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[b * (blockDim.x * blockDim.y * blockDim.z) + t] = b * 1000 + t;
}

__global__ void touch_kernel(float* p) { p[threadIdx.x] = 1.0f; }

// ---- helpers ------------------------------------------------------------------------------

template <class T>
T* dev_alloc(std::size_t n) {
  T* p = nullptr;
  REQUIRE(cudaMalloc(&p, n * sizeof(T)) == cudaSuccess);
  return p;
}

template <class T>
std::vector<T> down(const T* d, std::size_t n) {
  std::vector<T> h(n);
  REQUIRE(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
  return h;
}

// ---- tests --------------------------------------------------------------------------------

TEST_CASE("barriers make shared memory visible; without one, the reversed schedule shows the race") {
  const int blocks = 4, threads = 256, n = blocks * threads;
  std::vector<int> h(n);
  for (int i = 0; i < n; ++i) h[static_cast<std::size_t>(i)] = i * 7 + 3;
  int* in = dev_alloc<int>(n);
  int* out = dev_alloc<int>(n);
  REQUIRE(cudaMemcpy(in, h.data(), n * sizeof(int), cudaMemcpyHostToDevice) == cudaSuccess);

  HYPLORA_LAUNCH(blocks, threads, 0, nullptr, reverse_kernel<true>)(in, out);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  std::vector<int> r = down(out, n);
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t)
      CHECK(r[static_cast<std::size_t>(b * threads + t)] == h[static_cast<std::size_t>(b * threads + threads - 1 - t)]);

  HYPLORA_LAUNCH(blocks, threads, 0, nullptr, reverse_kernel<false>)(in, out);
  r = down(out, n);
  int wrong = 0;
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t)
      wrong += r[static_cast<std::size_t>(b * threads + t)] != h[static_cast<std::size_t>(b * threads + threads - 1 - t)];
  CHECK(wrong > n / 4);  // the missing barrier is visible (a GPU would often hide it)
  cudaFree(in);
  cudaFree(out);
}

TEST_CASE("warp shuffles: down and xor give the hardware's lane values, partial warps included") {
  for (const int threads : {32, 64, 256, 96}) {
    CAPTURE(threads);
    std::vector<float> h(static_cast<std::size_t>(threads));
    for (int i = 0; i < threads; ++i) h[static_cast<std::size_t>(i)] = static_cast<float>(i % 13) - 4.0f;
    float* in = dev_alloc<float>(static_cast<std::size_t>(threads));
    float* ws = dev_alloc<float>(32);
    float* bs = dev_alloc<float>(1);
    REQUIRE(cudaMemcpy(in, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
    HYPLORA_LAUNCH(1, threads, 0, nullptr, warp_sum_kernel)(in, ws, bs);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    const std::vector<float> w = down(ws, 32), b = down(bs, 1);
    float total = 0.0f;
    for (int wi = 0; wi < threads / 32; ++wi) {
      float s = 0.0f;
      for (int l = 0; l < 32; ++l) s += h[static_cast<std::size_t>(wi * 32 + l)];
      CHECK(w[static_cast<std::size_t>(wi)] == s);
      total += s;
    }
    CHECK(b[0] == total);
    cudaFree(in);
    cudaFree(ws);
    cudaFree(bs);
  }
  int* out = dev_alloc<int>(32);
  HYPLORA_LAUNCH(1, 32, 0, nullptr, xor_kernel)(out);
  const std::vector<int> x = down(out, 32);
  for (int l = 0; l < 32; ++l) CHECK(x[static_cast<std::size_t>(l)] == (l ^ 1) * 10);
  cudaFree(out);
}

TEST_CASE("3-D grids and blocks index every thread once") {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  const unsigned n = 3 * 2 * 2 * 4 * 3 * 2;
  unsigned* out = dev_alloc<unsigned>(n);
  HYPLORA_LAUNCH(grid, block, 0, nullptr, index_kernel)(out);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  const std::vector<unsigned> r = down(out, n);
  for (unsigned i = 0; i < n; ++i) CHECK(r[i] == (i / 24) * 1000 + i % 24);
  cudaFree(out);
}

TEST_CASE("bad launches set the runtime's error and run nothing") {
  float* p = dev_alloc<float>(1024);
  const unsigned long long before = hyplora_emu::launch_count();
  HYPLORA_LAUNCH(1, 1025, 0, nullptr, touch_kernel)(p);  // > 1024 threads
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaSuccess);  // read and cleared
  HYPLORA_LAUNCH(0, 32, 0, nullptr, touch_kernel)(p);  // empty grid
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  HYPLORA_LAUNCH(1, 32, 64 * 1024, nullptr, touch_kernel)(p);  // > 48 KB shared without opt-in
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  std::vector<float> host(32);
  HYPLORA_LAUNCH(1, 32, 0, nullptr, touch_kernel)(host.data());  // a host pointer
  CHECK(cudaGetLastError() == cudaErrorIllegalAddress);
  CHECK(host[0] == 0.0f);
  CHECK(hyplora_emu::launch_count() == before);
  cudaFree(p);
}

TEST_CASE("device memory: poisoned on allocation, copies checked against the registry") {
  double* d = dev_alloc<double>(8);
  const std::vector<double> fresh = down(d, 8);
  for (const double v : fresh) CHECK(std::isnan(v));
  std::vector<double> h(8, 1.5);
  CHECK(cudaMemcpy(d, h.data(), 8 * sizeof(double), cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(d, h.data(), 9 * sizeof(double), cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // overrun
  CHECK(cudaMemcpy(h.data(), h.data() + 4, 4 * sizeof(double), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(d, d + 4, 4 * sizeof(double), cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // src on device
  CHECK(cudaMemsetAsync(d, 0, 8 * sizeof(double), nullptr) == cudaSuccess);
  for (const double v : down(d, 8)) CHECK(v == 0.0);
  CHECK(cudaFree(d + 1) == cudaErrorInvalidDevicePointer);
  CHECK(cudaFree(d) == cudaSuccess);
  CHECK(!hyplora_emu::is_device_pointer(d));
  (void)cudaGetLastError();
}

// binary16 by value, independently of the emulator's bit manipulation: the nearest multiple of
// the binade's quantum 2^(e−10) (e ≥ −14: subnormals share the smallest normal binade's quantum),
// ties to even (nearbyint in the default rounding mode), ±∞ beyond 65504.
float half_by_value(float f) {
  if (std::isnan(f) || std::isinf(f) || f == 0.0f) return f;
  const double a = std::fabs(static_cast<double>(f));
  const int e = std::max(std::ilogb(a), -14);
  const double q = std::ldexp(1.0, e - 10), r = std::nearbyint(a / q) * q;
  const double v = r > 65504.0 ? HUGE_VAL : r;
  return static_cast<float>(std::copysign(v, static_cast<double>(f)));
}

TEST_CASE("__half conversions round to nearest even as IEEE binary16 does") {
  std::mt19937 gen(7);
  std::uniform_int_distribution<std::uint32_t> any;
  auto check = [](float f) {
    const float got = __half2float(__float2half_rn(f)), want = half_by_value(f);
    if (std::isnan(f)) {
      CHECK(std::isnan(got));
    } else {
      CAPTURE(f);
      CHECK(std::memcmp(&got, &want, sizeof got) == 0);  // sign of zero included
    }
  };
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t b = any(gen);
    float f;
    std::memcpy(&f, &b, 4);
    check(f);
  }
  // Ties, subnormals, the overflow threshold and the edges of the normal range.
  for (const float f : {0.0f, -0.0f, 1.0f, 65504.0f, 65519.99f, 65520.0f, 1e9f, std::ldexp(1.0f, -24),
                        std::ldexp(1.0f, -25), std::ldexp(1.5f, -25), std::ldexp(3.0f, -26), std::ldexp(1.0f, -14),
                        std::ldexp(1023.0f, -24), 1.0f + std::ldexp(1.0f, -11), 1.0f + std::ldexp(3.0f, -11),
                        std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                        std::numeric_limits<float>::quiet_NaN()})
    check(f);
  CHECK(__float2half_rn(1.0f).__x == 0x3c00);  // encodings
  CHECK(__float2half_rn(-2.0f).__x == 0xc000);
  CHECK(__float2half_rn(65504.0f).__x == 0x7bff);
  CHECK(__float2half_rn(65520.0f).__x == 0x7c00);
  CHECK(__float2half_rn(std::ldexp(1.0f, -24)).__x == 0x0001);
  CHECK(__float2half_rn(-0.0f).__x == 0x8000);
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {  // every half value survives the round trip
    __half h;
    h.__x = static_cast<std::uint16_t>(b);
    const float f = __half2float(h);
    if (!std::isnan(f)) CHECK(__float2half_rn(f).__x == h.__x);
  }
}

TEST_CASE("__nv_bfloat16 rounds float bits to nearest even") {
  CHECK(__float2bfloat16_rn(1.0f).__x == 0x3f80);
  CHECK(__bfloat162float(__float2bfloat16_rn(1.0f + std::ldexp(1.0f, -8))) == 1.0f);                    // tie → even
  CHECK(__bfloat162float(__float2bfloat16_rn(1.0f + std::ldexp(3.0f, -8))) == 1.0f + std::ldexp(1.0f, -6));  // tie → even
  CHECK(__bfloat162float(__float2bfloat16_rn(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20))) ==
        1.0f + std::ldexp(1.0f, -7));
  CHECK(std::isnan(__bfloat162float(__float2bfloat16_rn(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isinf(__bfloat162float(__float2bfloat16_rn(3.4e38f))));  // rounds past the largest finite
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    __nv_bfloat16 h;
    h.__x = static_cast<std::uint16_t>(b);
    const float f = __bfloat162float(h);
    if (!std::isnan(f)) CHECK(__float2bfloat16_rn(f).__x == h.__x);
  }
}

TEST_CASE("cuBLAS GEMMs: column-major ops, beta = 0 never reads C, arguments checked") {
  cublasHandle_t h = nullptr;
  REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
  const int m = 5, n = 3, k = 4, lda = 6, ldb = 7, ldc = 8;
  std::mt19937 gen(3);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (const auto ta : {CUBLAS_OP_N, CUBLAS_OP_T})
    for (const auto tb : {CUBLAS_OP_N, CUBLAS_OP_T}) {
      std::vector<double> A(static_cast<std::size_t>(lda * 5)), B(static_cast<std::size_t>(ldb * 4)),
          C0(static_cast<std::size_t>(ldc * n));
      for (auto* v : {&A, &B, &C0})
        for (double& x : *v) x = u(gen);
      double *dA = dev_alloc<double>(A.size()), *dB = dev_alloc<double>(B.size()), *dC = dev_alloc<double>(C0.size());
      REQUIRE(cudaMemcpy(dA, A.data(), A.size() * 8, cudaMemcpyHostToDevice) == cudaSuccess);
      REQUIRE(cudaMemcpy(dB, B.data(), B.size() * 8, cudaMemcpyHostToDevice) == cudaSuccess);
      for (const double beta : {0.0, 0.5}) {
        if (beta == 0.0) {
          std::vector<double> nan(C0.size(), std::numeric_limits<double>::quiet_NaN());
          REQUIRE(cudaMemcpy(dC, nan.data(), nan.size() * 8, cudaMemcpyHostToDevice) == cudaSuccess);
        } else {
          REQUIRE(cudaMemcpy(dC, C0.data(), C0.size() * 8, cudaMemcpyHostToDevice) == cudaSuccess);
        }
        const double alpha = 1.5;
        REQUIRE(cublasDgemm(h, ta, tb, m, n, k, &alpha, dA, lda, dB, ldb, &beta, dC, ldc) == CUBLAS_STATUS_SUCCESS);
        const std::vector<double> C = down(dC, C0.size());
        for (int j = 0; j < n; ++j)
          for (int i = 0; i < m; ++i) {
            double s = 0.0;
            for (int l = 0; l < k; ++l)
              s += (ta == CUBLAS_OP_N ? A[static_cast<std::size_t>(i + l * lda)] : A[static_cast<std::size_t>(l + i * lda)]) *
                   (tb == CUBLAS_OP_N ? B[static_cast<std::size_t>(l + j * ldb)] : B[static_cast<std::size_t>(j + l * ldb)]);
            const double want = alpha * s + (beta == 0.0 ? 0.0 : beta * C0[static_cast<std::size_t>(i + j * ldc)]);
            CHECK(C[static_cast<std::size_t>(i + j * ldc)] == doctest::Approx(want).epsilon(1e-14));
          }
      }
      const double one = 1.0;
      // lda below the stored rows of A is refused as cuBLAS refuses it.
      CHECK(cublasDgemm(h, ta, tb, m, n, k, &one, dA, ta == CUBLAS_OP_N ? m - 1 : k - 1, dB, ldb, &one, dC, ldc) ==
            CUBLAS_STATUS_INVALID_VALUE);
      std::vector<double> hostC(C0.size());
      CHECK(cublasDgemm(h, ta, tb, m, n, k, &one, dA, lda, dB, ldb, &one, hostC.data(), ldc) ==
            CUBLAS_STATUS_EXECUTION_FAILED);
      cudaFree(dA);
      cudaFree(dB);
      cudaFree(dC);
    }
  CHECK(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS);
}

}  // namespace cuda_emu_test_emulator
