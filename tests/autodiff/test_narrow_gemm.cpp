// Tests for include/hyplora/autodiff/detail/narrow_gemm.hpp: the register-tile product against a
// double reference over row counts around the 6-row tile, 8- and 16-column tiles, short and long
// K, both layouts of A, alpha/beta; strided operands leave C's padding alone; beta = 0 never
// reads C; the threaded split gives the same bits as one thread; shapes the kernel does not take
// (double, columns not a multiple of 8) go to detail::gemm with the same results.
#include <doctest/doctest.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <hyplora/autodiff/detail/narrow_gemm.hpp>

namespace autodiff_test_narrow_gemm {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::Index;
namespace detail = hyplora::ad::detail;

template <class T>
std::vector<T> random_vec(std::size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(u(g));
  return v;
}

// op(A) (M, K): A stored (M, K) with row stride lda, or (K, M) with ta.
template <class T>
double a_at(const std::vector<T>& A, Index lda, bool ta, Index i, Index k) {
  return static_cast<double>(ta ? A[k * lda + i] : A[i * lda + k]);
}

// Runs narrow_gemm<T> on padded operands and checks every element against a double reference,
// with a bound of 8·eps(T)·Σ_k |a_ik·b_kj| (+ the beta term), and that C's padding is untouched.
template <class T>
void check_shape(Index M, Index N, Index K, bool ta, T alpha, T beta, unsigned seed) {
  CAPTURE(M); CAPTURE(N); CAPTURE(K); CAPTURE(ta); CAPTURE(alpha); CAPTURE(beta);
  const Index lda = (ta ? M : K) + 3, ldb = N + 5, ldc = N + 7;
  const auto A = random_vec<T>(static_cast<std::size_t>((ta ? K : M) * lda), seed);
  const auto B = random_vec<T>(static_cast<std::size_t>(K * ldb), seed + 1);
  auto C = random_vec<T>(static_cast<std::size_t>(M * ldc), seed + 2);
  const auto C0 = C;
  if (beta == T(0))  // beta = 0 must not read C: fill it with NaN
    for (Index i = 0; i < M; ++i)
      for (Index j = 0; j < N; ++j) C[i * ldc + j] = std::numeric_limits<T>::quiet_NaN();
  detail::narrow_gemm<T>(M, N, K, alpha, A.data(), lda, ta, B.data(), ldb, beta, C.data(), ldc);
  const double eps = static_cast<double>(std::numeric_limits<T>::epsilon());
  int bad = 0;
  for (Index i = 0; i < M; ++i) {
    for (Index j = 0; j < N; ++j) {
      double ref = 0.0, mag = 0.0;
      for (Index k = 0; k < K; ++k) {
        const double p = a_at(A, lda, ta, i, k) * static_cast<double>(B[k * ldb + j]);
        ref += p;
        mag += std::abs(p);
      }
      const double c0 = static_cast<double>(C0[i * ldc + j]);
      ref = static_cast<double>(alpha) * ref + (beta == T(0) ? 0.0 : static_cast<double>(beta) * c0);
      const double tol = 8.0 * eps * (std::abs(static_cast<double>(alpha)) * mag + std::abs(static_cast<double>(beta) * c0)) + 1e-30;
      if (!(std::abs(static_cast<double>(C[i * ldc + j]) - ref) <= tol)) ++bad;
    }
    for (Index j = N; j < ldc; ++j)
      if (std::memcmp(&C[i * ldc + j], &C0[i * ldc + j], sizeof(T)) != 0) ++bad;  // padding untouched
  }
  CHECK(bad == 0);
}
}  // namespace

TEST_CASE("narrow_gemm: float against a double reference, tile edges, both layouts of A, alpha and beta") {
  MESSAGE("register-tile kernel on this CPU: " << std::string(detail::narrow_gemm_tiled<float>(32) ? "yes (AVX2 + FMA)" : "no (detail::gemm)"));
  unsigned seed = 1;
  for (Index M : {1, 5, 6, 7, 12, 13, 32, 100})
    for (Index N : {8, 16, 24, 32, 40, 64})
      for (Index K : {1, 3, 32, 257})
        for (int ta = 0; ta < 2; ++ta) check_shape<float>(M, N, K, ta != 0, 1.0f, 0.0f, seed++);
  for (float alpha : {1.0f, -0.5f})
    for (float beta : {0.0f, 1.0f, 0.25f})
      for (int ta = 0; ta < 2; ++ta) check_shape<float>(37, 32, 45, ta != 0, alpha, beta, seed++);
}

TEST_CASE("narrow_gemm: shapes it does not tile go to detail::gemm (double, columns not a multiple of 8)") {
  CHECK_FALSE(detail::narrow_gemm_tiled<double>(32));
  CHECK_FALSE(detail::narrow_gemm_tiled<float>(12));
  check_shape<double>(13, 32, 33, false, 1.0, 0.5, 7);
  check_shape<double>(13, 32, 33, true, -2.0, 0.0, 8);
  check_shape<float>(19, 12, 40, false, 1.0f, 1.0f, 9);
  check_shape<float>(19, 12, 40, true, 1.0f, 0.0f, 10);
}

TEST_CASE("narrow_gemm_scaled: op(A)·diag(w)·B, float (tiled) and double (Eigen), both layouts, beta") {
  for (int ta = 0; ta < 2; ++ta) {
    for (const Index K : {Index(5), Index(300)}) {
      CAPTURE(ta); CAPTURE(K);
      const Index M = 14, N = 24;
      const auto A = random_vec<double>(static_cast<std::size_t>(M * K), 31);
      const auto B = random_vec<double>(static_cast<std::size_t>(K * N), 32);
      const auto w = random_vec<double>(static_cast<std::size_t>(K), 33);
      const auto C0 = random_vec<double>(static_cast<std::size_t>(M * N), 34);
      const Index lda = ta ? M : K;
      std::vector<double> ref(static_cast<std::size_t>(M * N)), mag(ref.size());
      for (Index i = 0; i < M; ++i)
        for (Index j = 0; j < N; ++j) {
          for (Index k = 0; k < K; ++k) {
            const double p = a_at(A, lda, ta != 0, i, k) * w[k] * B[k * N + j];
            ref[i * N + j] += -0.5 * p;
            mag[i * N + j] += std::abs(0.5 * p);
          }
          ref[i * N + j] += 2.0 * C0[i * N + j];
        }
      std::vector<double> Cd = C0;
      detail::narrow_gemm_scaled<double>(M, N, K, -0.5, A.data(), lda, ta != 0, w.data(), B.data(), N, 2.0, Cd.data(), N);
      std::vector<float> Af(A.begin(), A.end()), Bf(B.begin(), B.end()), wf(w.begin(), w.end()), Cf(C0.begin(), C0.end());
      detail::narrow_gemm_scaled<float>(M, N, K, -0.5f, Af.data(), lda, ta != 0, wf.data(), Bf.data(), N, 2.0f, Cf.data(), N);
      int bad_d = 0, bad_f = 0;
      for (std::size_t q = 0; q < ref.size(); ++q) {
        if (!(std::abs(Cd[q] - ref[q]) <= 1e-13 * (1.0 + mag[q]))) ++bad_d;
        if (!(std::abs(static_cast<double>(Cf[q]) - ref[q]) <= 1e-5 * (1.0 + mag[q]))) ++bad_f;
      }
      CHECK(bad_d == 0);
      CHECK(bad_f == 0);
    }
  }
}

TEST_CASE("narrow_gemm: empty products") {
  std::vector<float> A(64, 1.0f), B(64, 1.0f), C(64, 2.0f);
  detail::narrow_gemm<float>(0, 8, 4, 1.0f, A.data(), 4, false, B.data(), 8, 0.0f, C.data(), 8);
  CHECK(C[0] == 2.0f);
  detail::narrow_gemm<float>(2, 8, 0, 1.0f, A.data(), 1, false, B.data(), 8, 0.5f, C.data(), 8);  // empty sum: beta·C
  CHECK(C[0] == 1.0f);
  CHECK(C[15] == 1.0f);
  CHECK(C[16] == 2.0f);
}

#ifdef _OPENMP
TEST_CASE("narrow_gemm: the threaded row split gives the same bits as one thread") {
  // 512×32×32 and 32×32×2048 (Aᵀ, long K) are both above the split threshold.
  struct Shape { Index M, N, K; bool ta; };
  for (const Shape s : {Shape{512, 32, 32, false}, Shape{32, 32, 2048, true}, Shape{1000, 16, 24, false}}) {
    CAPTURE(s.M); CAPTURE(s.K); CAPTURE(s.ta);
    REQUIRE(double(s.M) * double(s.N) * double(s.K) >= detail::kNarrowSplitMinMacs);
    const Index lda = s.ta ? s.M : s.K;
    const auto A = random_vec<float>(static_cast<std::size_t>(s.M * s.K), 21);
    const auto B = random_vec<float>(static_cast<std::size_t>(s.K * s.N), 22);
    std::vector<float> C1(static_cast<std::size_t>(s.M * s.N)), C2(C1.size());
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    detail::narrow_gemm<float>(s.M, s.N, s.K, 1.0f, A.data(), lda, s.ta, B.data(), s.N, 0.0f, C1.data(), s.N);
    omp_set_num_threads(2);
    detail::narrow_gemm<float>(s.M, s.N, s.K, 1.0f, A.data(), lda, s.ta, B.data(), s.N, 0.0f, C2.data(), s.N);
    omp_set_num_threads(saved);
    CHECK(std::memcmp(C1.data(), C2.data(), C1.size() * sizeof(float)) == 0);
  }
}
#endif

}  // namespace autodiff_test_narrow_gemm
