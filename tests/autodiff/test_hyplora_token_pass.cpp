// Tests for include/hyplora/autodiff/detail/hyplora_token_pass.hpp: the token pass the CPU
// HypLoRA backwards share (every token once, in blocks of at most kHypLoRABlock, per-thread slots
// that do not overlap, sums added in thread order) and ∂B's R×R term B·(Vᵀ·diag(w)·V).
#include <doctest/doctest.h>

#include <hyplora/autodiff/detail/hyplora_token_pass.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace autodiff_test_hyplora_token_pass {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::Index;
using hyplora::MatrixR;
using hyplora::ad::Tensor;
namespace dt = hyplora::ad::detail;

struct PassRecord {
  std::vector<int> seen;                       // how often each token was visited
  std::vector<std::pair<Index, Index>> blocks;  // (i0, nb) per block, any order
  std::set<std::uintptr_t> slots;              // slot addresses handed out
  std::pair<double, double> sums;
};

PassRecord run_pass(Index N, Index r, bool parallel, Tensor<double>& scratch) {
  PassRecord rec;
  rec.seen.assign(static_cast<std::size_t>(N), 0);
  rec.sums = dt::hyplora_token_pass<double>(N, r, parallel, scratch,
                                            [&](Index i0, Index nb, double* Q, double* w, double& s0, double& s1) {
#ifdef _OPENMP
#pragma omp critical(test_token_pass)
#endif
    {
      rec.blocks.emplace_back(i0, nb);
      rec.slots.insert(reinterpret_cast<std::uintptr_t>(Q));
    }
    for (Index k = 0; k < nb * r; ++k) Q[k] = -1.0;  // the whole slot is the block's to write
    for (Index i = i0; i < i0 + nb; ++i) {
      ++rec.seen[static_cast<std::size_t>(i)];
      s0 += static_cast<double>(i);
      s1 += 0.5;
      w[i] = 3.0 * static_cast<double>(i) + 1.0;
    }
  });
  return rec;
}
}  // namespace

TEST_CASE("hyplora_token_pass: every token once, blocks of at most kHypLoRABlock, weights and sums kept") {
  const Index r = 5;
  for (const Index N : {Index(1), Index(7), Index(8), Index(9), Index(100), Index(257)}) {
    for (const bool parallel : {false, true}) {
      CAPTURE(N);
      CAPTURE(parallel);
      Tensor<double> scratch;
      const PassRecord rec = run_pass(N, r, parallel, scratch);
      for (Index i = 0; i < N; ++i) CHECK(rec.seen[static_cast<std::size_t>(i)] == 1);
      for (const auto& b : rec.blocks) {
        CHECK(b.second >= 1);
        CHECK(b.second <= dt::kHypLoRABlock);
        CHECK(b.first % dt::kHypLoRABlock == 0);
      }
      CHECK(rec.sums.first == doctest::Approx(static_cast<double>(N * (N - 1) / 2)));
      CHECK(rec.sums.second == doctest::Approx(0.5 * static_cast<double>(N)));
      // The weights are left in the scratch's first N entries for hyplora_add_bs, and the
      // per-thread slots (written whole above) lie after them.
      REQUIRE(scratch.size() >= N);
      for (Index i = 0; i < N; ++i) CHECK(scratch(i, 0) == 3.0 * static_cast<double>(i) + 1.0);
      for (const std::uintptr_t q : rec.slots) CHECK(q >= reinterpret_cast<std::uintptr_t>(scratch.data() + N));
      CHECK(scratch.size() >= r * r);  // S reuses it
    }
  }
}

#ifdef _OPENMP
TEST_CASE("hyplora_token_pass: threads get disjoint, line-padded slots; sums do not depend on who ran what") {
  const int prev = omp_get_max_threads();
  const Index N = 203, r = 7;
  std::pair<double, double> one{};
  for (const int threads : {1, 2, 3}) {
    CAPTURE(threads);
    omp_set_num_threads(threads);
    Tensor<double> scratch;
    const PassRecord rec = run_pass(N, r, true, scratch);
    CHECK(static_cast<int>(rec.slots.size()) <= threads);
    // Slots are a whole number of 64-byte lines apart and inside the scratch.
    const Index slot = dt::hyplora_thread_slot<double>(r);
    CHECK(slot * static_cast<Index>(sizeof(double)) % 64 == 0);
    CHECK(slot >= dt::kHypLoRABlock * r + 4);
    for (const std::uintptr_t q : rec.slots) {
      const auto off = static_cast<Index>((q - reinterpret_cast<std::uintptr_t>(scratch.data() + N)) / sizeof(double));
      CHECK(off % slot == 0);
      CHECK(N + off + slot <= scratch.size());
    }
    if (threads == 1) one = rec.sums;
    // Integer-valued sums: exact whatever the order.
    CHECK(rec.sums.first == one.first);
    CHECK(rec.sums.second == one.second);
  }
  omp_set_num_threads(prev);
}
#endif

TEST_CASE("hyplora_add_bs: dB += B·(Vᵀ·diag(w)·V), the work buffer overwritten with w ⊙ V") {
  std::srand(7);
  const Index N = 37, r = 6, d_out = 11;
  const MatrixR<double> V = MatrixR<double>::Random(N, r), B = MatrixR<double>::Random(d_out, r),
                        dB0 = MatrixR<double>::Random(d_out, r);
  const Eigen::VectorXd w = Eigen::VectorXd::Random(N);  // signed weights, as s_y gives them
  Tensor<double> scratch(std::max<Index>(N, r * r), 1);
  for (Index i = 0; i < N; ++i) scratch(i, 0) = w(i);
  MatrixR<double> work = MatrixR<double>::Constant(N, r, 99.0), dB = dB0;
  dt::hyplora_add_bs<double>(V.data(), N, r, work.data(), scratch, B.data(), d_out, dB.data());
  const MatrixR<double> S = V.transpose() * w.asDiagonal() * V;
  const MatrixR<double> expect = dB0 + B * S;
  CHECK((dB - expect).cwiseAbs().maxCoeff() <= 1e-13 * (1.0 + expect.cwiseAbs().maxCoeff()));
  CHECK((work - w.asDiagonal() * V).cwiseAbs().maxCoeff() <= 1e-15);
}

TEST_CASE("hyplora_add_bs in float: the register-tile path (w ⊙ V on the fly, N ≥ R) and the copy path (N < R)") {
  std::srand(11);
  for (const Index N : {Index(3), Index(8), Index(37)}) {
    for (const Index r : {Index(8), Index(16)}) {
      CAPTURE(N); CAPTURE(r);
      const Index d_out = 13;
      const MatrixR<double> V = MatrixR<double>::Random(N, r), B = MatrixR<double>::Random(d_out, r),
                            dB0 = MatrixR<double>::Random(d_out, r);
      const Eigen::VectorXd w = Eigen::VectorXd::Random(N);
      Tensor<float> scratch(std::max<Index>(N, r * r), 1);
      for (Index i = 0; i < N; ++i) scratch(i, 0) = static_cast<float>(w(i));
      const MatrixR<float> Vf = V.cast<float>(), Bf = B.cast<float>();
      MatrixR<float> work = MatrixR<float>::Constant(N, r, 99.0f), dB = dB0.cast<float>();
      dt::hyplora_add_bs<float>(Vf.data(), N, r, work.data(), scratch, Bf.data(), d_out, dB.data());
      const MatrixR<double> expect = dB0 + B * (V.transpose() * w.asDiagonal() * V);
      CHECK((dB.cast<double>() - expect).cwiseAbs().maxCoeff() <= 1e-5 * (1.0 + expect.cwiseAbs().maxCoeff()));
    }
  }
}

}  // namespace autodiff_test_hyplora_token_pass
