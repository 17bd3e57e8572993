// Tests for include/hyplora/autodiff/ops_hyplora.hpp: the fused exact HypLoRA node against a
// per-row reference built from the Lorentz row functions, central differences, its small-norm
// expansion (docs/math.md Eq. (170)), and its shape/value errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include "support/base_map.hpp"  // the base map through the tape's own linear node
#include "support/tape_bytes.hpp"
#include <hyplora/autodiff/ops_hyplora.hpp>
#include <hyplora/autodiff/ops_lora.hpp>
#include <hyplora/manifold/detail/lorentz_rows.hpp>
#include <hyplora/testing/gradcheck.hpp>
#include <limits>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace autodiff_test_ops_hyplora {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::MatrixR;
using hyplora::ad::Tape;
using hyplora::ad::Var;
namespace lr = hyplora::lorentz_rows;

// Reference: z_i = W0 x_i + b + γσ_out·f_R⁻¹(B·A·f_R(x_i/σ)) with the manifold's own row maps.
MatrixR<double> reference(const MatrixR<double>& X, const MatrixR<double>& W0, const MatrixR<double>& A,
                          const MatrixR<double>& B, double R, double sigma, double gamma, bool sig_out,
                          const MatrixR<double>* bias) {
  MatrixR<double> Z = X * W0.transpose();
  if (bias) Z.rowwise() += bias->row(0);
  std::vector<double> v(X.cols()), h(X.cols()), y(B.rows()), out(B.rows());
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    for (Eigen::Index j = 0; j < X.cols(); ++j) v[j] = X(i, j) / sigma;
    lr::expmap0_spatial(v.data(), h.data(), X.cols(), R);
    Eigen::Map<Eigen::VectorXd> hv(h.data(), X.cols());
    Eigen::VectorXd yv = B * (A * hv);
    lr::logmap0_spatial(yv.data(), out.data(), B.rows(), R);
    for (Eigen::Index j = 0; j < B.rows(); ++j) Z(i, j) += gamma * (sig_out ? sigma : 1.0) * out[j];
  }
  return Z;
}

MatrixR<double> rnd(Eigen::Index r, Eigen::Index c, double scale) { return MatrixR<double>::Random(r, c) * scale; }
MatrixR<double> scalar(double v) { return MatrixR<double>::Constant(1, 1, v); }
}  // namespace

TEST_CASE("hyplora_linear equals the per-row exp/LLR/log reference") {
  std::srand(3);
  for (bool sig_out : {false, true}) {
    for (double K : {0.3, 1.0, 4.0}) {
      for (double xs : {1e-3, 0.5, 3.0}) {
        CAPTURE(sig_out); CAPTURE(K); CAPTURE(xs);
        const MatrixR<double> X = rnd(5, 7, xs), W0 = rnd(6, 7, 0.5), A = rnd(3, 7, 0.4), B = rnd(6, 3, 0.7),
                              b = rnd(1, 6, 0.1);
        const double sigma = 1.7, gamma = 0.8;
        Tape<double> t;
        auto x = t.constant(X);
        Var<double> z = hyplora::ad::hyplora_linear(x, t.constant(W0), x, t.constant(A), t.constant(B),
                                                    t.constant(scalar(std::sqrt(K))), t.constant(scalar(sigma)),
                                                    {gamma, sig_out}, t.constant(b));
        const MatrixR<double> ref = reference(X, W0, A, B, std::sqrt(K), sigma, gamma, sig_out, &b);
        CHECK((z.value() - ref).cwiseAbs().maxCoeff() <= 1e-12 * (1.0 + ref.cwiseAbs().maxCoeff()));
      }
    }
  }
}

TEST_CASE("hyplora_linear gradients match central differences for every input") {
  std::srand(5);
  for (bool sig_out : {false, true}) {
    for (double xs : {1e-2, 0.8, 2.5}) {
      CAPTURE(sig_out); CAPTURE(xs);
      const std::vector<MatrixR<double>> in = {rnd(4, 5, xs), rnd(3, 5, 0.5), rnd(2, 5, 0.6), rnd(3, 2, 0.8),
                                               scalar(0.9), scalar(1.3), rnd(1, 3, 0.2)};
      auto f = [sig_out](Tape<double>&, const std::vector<Var<double>>& v) {
        return hyplora::ad::hyplora_linear(v[0], v[1], v[0], v[2], v[3], v[4], v[5], {0.7, sig_out}, v[6]);
      };
      auto res = hyplora::testing::gradcheck(f, in);
      CHECK_MESSAGE(res.ok, res.report);
    }
  }
}

TEST_CASE("hyplora_linear gradients with a separate adapter input and degenerate shapes") {
  std::srand(9);
  // x_a ≠ x (dropout case); one row; rank 1; one output column.
  const std::vector<MatrixR<double>> in = {rnd(1, 4, 1.0), rnd(1, 4, 0.5), rnd(1, 4, 0.5), rnd(1, 4, 0.6),
                                           rnd(1, 1, 0.8), scalar(1.1), scalar(0.9)};
  auto f = [](Tape<double>&, const std::vector<Var<double>>& v) {
    return hyplora::ad::hyplora_linear(v[0], v[1], v[2], v[3], v[4], v[5], v[6], {1.5, true});
  };
  auto res = hyplora::testing::gradcheck(f, in);
  CHECK_MESSAGE(res.ok, res.report);
}

TEST_CASE("hyplora_linear gradients over many tokens (N = 150): ∂B's R×R term sums every token") {
  // ∂B's second term Σ wy·a aᵀ is formed after the token pass from per-token weights kept in the
  // scratch (detail/hyplora_token_pass.hpp); a token dropped or counted twice shows here.
  std::srand(11);
  const Eigen::Index n = 150;
  const std::vector<MatrixR<double>> in = {rnd(n, 4, 1.2), rnd(3, 4, 0.5), rnd(3, 4, 0.6), rnd(3, 3, 0.8),
                                           scalar(1.2), scalar(0.8)};
  auto f = [](Tape<double>&, const std::vector<Var<double>>& v) {
    return hyplora::ad::hyplora_linear(v[0], v[1], v[0], v[2], v[3], v[4], v[5], {0.9, true});
  };
  auto res = hyplora::testing::gradcheck(f, in);
  CHECK_MESSAGE(res.ok, res.report);
}

TEST_CASE("the backward's per-block M·a: loop up to kHypLoRALoopMaxRank, GEMM above, same product") {
  // detail/hyplora_token_pass.hpp picks the loop or one BLAS call by rank; both must be V·M.
  using hyplora::ad::detail::hyplora_block_times_m;
  using hyplora::ad::detail::kHypLoRABlock;
  using hyplora::ad::detail::kHypLoRALoopMaxRank;
  std::srand(23);
  for (Eigen::Index r : {Eigen::Index(1), Eigen::Index(8), kHypLoRALoopMaxRank, kHypLoRALoopMaxRank + 1, Eigen::Index(32)}) {
    for (Eigen::Index nb : {Eigen::Index(1), Eigen::Index(5), kHypLoRABlock}) {
      CAPTURE(r); CAPTURE(nb);
      const MatrixR<double> V = rnd(nb, r, 1.0), M = rnd(r, r, 1.0);
      MatrixR<double> Q = MatrixR<double>::Constant(nb, r, std::numeric_limits<double>::quiet_NaN());  // never read
      hyplora_block_times_m(V.data(), nb, r, M.data(), Q.data());
      const MatrixR<double> ref = V * M;
      CHECK((Q - ref).cwiseAbs().maxCoeff() <= 1e-13 * (1.0 + ref.cwiseAbs().maxCoeff()));
    }
  }
}

TEST_CASE("hyplora_linear gradients above kHypLoRALoopMaxRank (the backward's M·a as a GEMM)") {
  // The other gradchecks run at rank ≤ 3, i.e. through the loop; this one through the BLAS call,
  // with N = 11 tokens (a full 8-token block and a partial one).
  using hyplora::ad::detail::kHypLoRALoopMaxRank;
  std::srand(29);
  const Eigen::Index n = 11, d = 5, r = kHypLoRALoopMaxRank + 3;
  const std::vector<MatrixR<double>> in = {rnd(n, d, 1.1), rnd(4, d, 0.5), rnd(r, d, 0.3), rnd(4, r, 0.3),
                                           scalar(1.2), scalar(0.8)};
  auto f = [](Tape<double>&, const std::vector<Var<double>>& v) {
    return hyplora::ad::hyplora_linear(v[0], v[1], v[0], v[2], v[3], v[4], v[5], {0.8, true});
  };
  auto res = hyplora::testing::gradcheck(f, in);
  CHECK_MESSAGE(res.ok, res.report);
}

TEST_CASE("memory: a training step's tape buffers stay within 1.02x LoRA's at N 128, D 256, R 32") {
  // The adapter benchmarks' tightest shape (R² = 4·D, a 0.56 MB step): the node's own buffers
  // (4 scalars per token, BᵀB, and the backward's scratch, detail/hyplora_token_pass.hpp) must
  // not outgrow 2 % of LoRA's step, with any thread count (the scratch has a slot per thread).
  // Counts every tape buffer: values, gradients, saved tensors.
  const Eigen::Index n = 128, d = 256, r = 32;
  std::srand(41);
  const MatrixR<float> X = MatrixR<float>::Random(n, d), W0 = MatrixR<float>::Random(d, d) * 0.05f,
                       A = MatrixR<float>::Random(r, d) * 0.05f, B = MatrixR<float>::Random(d, r) * 0.02f,
                       G = MatrixR<float>::Random(n, d);
  const auto step_bytes = [&](bool hyp) {
    Tape<float> t;
    auto x = t.leaf(X), W = t.constant(W0), a = t.leaf(A), b = t.leaf(B);
    const Var<float> z = hyp ? hyplora::ad::hyplora_linear(x, W, x, a, b, t.constant(MatrixR<float>::Constant(1, 1, 1.0f)),
                                                           t.constant(MatrixR<float>::Constant(1, 1, 1.0f)), {2.0, false})
                             : hyplora::ad::lora_linear(x, W, x, a, b, 2.0f);
    t.backward(z, G);
    return hyplora::testing::tape_bytes(t);
  };
#ifdef _OPENMP
  const int prev = omp_get_max_threads();
  for (int threads : {1, 2, 4}) {
    omp_set_num_threads(threads);
#else
  for (int threads : {1}) {
#endif
    CAPTURE(threads);
    const long long lora = step_bytes(false), hyp = step_bytes(true);
    MESSAGE("tape bytes of a step, " << threads << " thread(s): LoRA " << lora << ", HypLoRA " << hyp);
    CHECK(static_cast<double>(hyp) <= 1.02 * static_cast<double>(lora));
  }
#ifdef _OPENMP
  omp_set_num_threads(prev);
#endif
}

TEST_CASE("hyplora_branch is hyplora_linear less the base map, and its gradients match central differences") {
  std::srand(13);
  const MatrixR<double> X = rnd(5, 6, 1.1), W0 = rnd(4, 6, 0.5), A = rnd(2, 6, 0.6), B = rnd(4, 2, 0.8);
  Tape<double> t;
  auto x = t.constant(X);
  auto R = t.constant(scalar(1.3)), s = t.constant(scalar(0.7));
  auto full = hyplora::ad::hyplora_linear(x, t.constant(W0), x, t.constant(A), t.constant(B), R, s, {0.6, true});
  auto br = hyplora::ad::hyplora_branch(x, t.constant(A), t.constant(B), R, s, {0.6, true});
  const MatrixR<double> base = X * W0.transpose();
  CHECK((full.value() - base - br.value()).cwiseAbs().maxCoeff() <= 1e-14);
  CHECK(br.value().cwiseAbs().maxCoeff() > 0.05);
  const std::vector<MatrixR<double>> in = {X, A, B, scalar(1.3), scalar(0.7)};
  auto f = [](Tape<double>&, const std::vector<Var<double>>& v) {
    return hyplora::ad::hyplora_branch(v[0], v[1], v[2], v[3], v[4], {0.6, true});
  };
  auto res = hyplora::testing::gradcheck(f, in);
  CHECK_MESSAGE(res.ok, res.report);
  CHECK_THROWS_AS(hyplora::ad::hyplora_branch(x, t.constant(rnd(2, 5, 1.0)), t.constant(B), R, s), hyplora::shape_error);
}

TEST_CASE("zero-initialised B gives exactly the base output, and frozen inputs get no gradient") {
  const MatrixR<double> X = rnd(4, 6, 1.0), W0 = rnd(5, 6, 1.0), A = rnd(2, 6, 1.0);
  const MatrixR<double> B = MatrixR<double>::Zero(5, 2);
  Tape<double> t;
  auto x = t.leaf(X, false);
  auto W = t.leaf(W0, false);
  auto Av = t.leaf(A), Bv = t.leaf(B);
  auto z = hyplora::ad::hyplora_linear(x, W, x, Av, Bv, t.constant(scalar(1.0)), t.constant(scalar(1.0)));
  const MatrixR<double> base = hyplora::testing::base_output(X, W0);
  CHECK((z.value() - base).cwiseAbs().maxCoeff() == 0.0);
  t.backward(z, MatrixR<double>::Ones(4, 5));
  CHECK(Av.grad().cwiseAbs().maxCoeff() == 0.0);  // B = 0 blocks A's gradient, as in LoRA
  CHECK(Bv.grad().cwiseAbs().maxCoeff() > 0.0);
  CHECK_FALSE(t.needs_grad(x.id));
}

TEST_CASE("small-norm limit: HypLoRA − LoRA = (|x|² − |Wx|²)/(6K)·Wx + O(|x|⁵)") {
  std::srand(11);
  const MatrixR<double> A = rnd(3, 8, 0.5), B = rnd(6, 3, 0.5), W0 = MatrixR<double>::Zero(6, 8);
  const MatrixR<double> u = rnd(1, 8, 1.0);
  const double K = 2.0;
  double prev_rel = 0.0;
  for (double s : {1e-1, 1e-2, 1e-3}) {
    const MatrixR<double> X = u * s;
    Tape<double> t;
    auto x = t.constant(X);
    auto z = hyplora::ad::hyplora_linear(x, t.constant(W0), x, t.constant(A), t.constant(B),
                                         t.constant(scalar(std::sqrt(K))), t.constant(scalar(1.0)));
    const Eigen::RowVectorXd Wx = X.row(0) * (B * A).transpose();
    const Eigen::RowVectorXd predicted = Wx + (X.squaredNorm() - Wx.squaredNorm()) / (6 * K) * Wx;
    const double rel = (z.value().row(0) - predicted).norm() / Wx.norm();
    CAPTURE(s);
    // Remainder is O(|x|⁴) relative to |Wx|: shrinking |x| by 10 shrinks it by ~10⁴.
    CHECK(rel < 1e-2 * s * s * s * s / 1e-4 + 1e-15);
    if (prev_rel > 0 && rel > 1e-13) CHECK(prev_rel / rel > 5e3);
    prev_rel = rel;
    // And the plain LoRA output differs at order |x|² relative, as the paper's Prop. 5.1 says.
    const double lora_rel = (z.value().row(0) - Wx).norm() / Wx.norm();
    CHECK(lora_rel > 0.01 * s * s);
  }
}

TEST_CASE("hyplora_linear rejects bad shapes, bad curvature and non-finite input") {
  Tape<double> t;
  auto x = t.constant(rnd(2, 4, 1.0));
  auto W0 = t.constant(rnd(3, 4, 1.0));
  auto A = t.constant(rnd(2, 4, 1.0)), B = t.constant(rnd(3, 2, 1.0));
  auto one = t.constant(scalar(1.0));
  CHECK_THROWS_AS(hyplora::ad::hyplora_linear(x, W0, x, t.constant(rnd(2, 5, 1.0)), B, one, one), hyplora::shape_error);
  CHECK_THROWS_AS(hyplora::ad::hyplora_linear(x, W0, x, A, t.constant(rnd(3, 3, 1.0)), one, one), hyplora::shape_error);
  CHECK_THROWS_AS(hyplora::ad::hyplora_linear(x, W0, x, A, B, t.constant(scalar(0.0)), one), hyplora::value_error);
  CHECK_THROWS_AS(hyplora::ad::hyplora_linear(x, W0, x, A, B, one, t.constant(scalar(-1.0))), hyplora::value_error);
  MatrixR<double> bad = rnd(2, 4, 1.0);
  bad(1, 2) = std::nan("");
  auto xb = t.constant(bad);
  CHECK_THROWS_AS(hyplora::ad::hyplora_linear(xb, W0, xb, A, B, one, one), hyplora::value_error);
  try {
    hyplora::ad::hyplora_linear(x, W0, x, t.constant(rnd(2, 5, 1.0)), B, one, one);
  } catch (const hyplora::shape_error& e) {
    CHECK(std::string(e.what()).find("(2, 4)") != std::string::npos);
    CHECK(std::string(e.what()).find("(2, 5)") != std::string::npos);
  }
}

TEST_CASE("hyplora_linear stays finite in float32 over tiny and huge inputs") {
  for (float s : {1e-15f, 1e-8f, 1e-3f, 1.0f, 1e2f, 1e4f}) {
    CAPTURE(s);
    Tape<float> t;
    MatrixR<float> X = MatrixR<float>::Random(3, 16) * s;
    auto x = t.leaf(X);
    auto A = t.leaf(MatrixR<float>::Random(4, 16));
    auto B = t.leaf(MatrixR<float>::Random(8, 4));
    auto R = t.leaf(MatrixR<float>::Constant(1, 1, 1.0f));
    auto sg = t.leaf(MatrixR<float>::Constant(1, 1, 1.0f));
    auto z = hyplora::ad::hyplora_linear(x, t.constant(MatrixR<float>::Random(8, 16)), x, A, B, R, sg, {1.0, true});
    t.backward(z, MatrixR<float>::Ones(3, 8));
    CHECK(z.value().allFinite());
    CHECK(x.grad().allFinite());
    CHECK(A.grad().allFinite());
    CHECK(B.grad().allFinite());
    CHECK(R.grad().allFinite());
    CHECK(sg.grad().allFinite());
  }
}

namespace {
// One forward + backward of hyplora_linear in T (separate x_a, bias, σ_out = σ, every input
// trainable): {z, ∂x, ∂W0, ∂x_a, ∂A, ∂B, ∂R, ∂σ, ∂b} as double.
template <class T>
std::vector<MatrixR<double>> exact_step_in(const std::vector<MatrixR<double>>& in, const MatrixR<double>& G) {
  Tape<T> t;
  std::vector<Var<T>> v;
  for (const auto& m : in) v.push_back(t.leaf(m.cast<T>()));
  auto z = hyplora::ad::hyplora_linear(v[0], v[1], v[2], v[3], v[4], v[5], v[6], {0.8, true}, v[7]);
  t.backward(z, G.cast<T>());
  std::vector<MatrixR<double>> out = {z.value().template cast<double>()};
  for (const auto& vi : v) out.push_back(vi.grad().template cast<double>());
  return out;
}
}  // namespace

TEST_CASE("a second backward over the same tape gives the same gradients bit for bit (W_a kept, then recomputed)") {
  // The first backward reads W_a = γσ_out·c2·a that the forward left in the node's work buffer
  // and overwrites it; a second backward must recompute it, identically.
  std::srand(43);
  const Eigen::Index n = 21, d_in = 24, d_out = 16, r = 8;
  const std::vector<MatrixR<double>> in = {rnd(n, d_in, 1.0), rnd(d_out, d_in, 0.3), rnd(n, d_in, 1.5),
                                           rnd(r, d_in, 0.4),  rnd(d_out, r, 0.5),   scalar(1.3),
                                           scalar(0.9),        rnd(1, d_out, 0.1)};
  const MatrixR<double> G = rnd(n, d_out, 1.0);
  auto run = [&](auto zero) {
    using T = decltype(zero);
    Tape<T> t;
    std::vector<Var<T>> v;
    for (const auto& m : in) v.push_back(t.leaf(m.cast<T>()));
    auto z = hyplora::ad::hyplora_linear(v[0], v[1], v[2], v[3], v[4], v[5], v[6], {0.8, true}, v[7]);
    std::vector<MatrixR<T>> first, second;
    t.backward(z, G.cast<T>());
    for (const auto& vi : v) first.push_back(vi.grad());
    t.backward(z, G.cast<T>());
    for (const auto& vi : v) second.push_back(vi.grad());
    for (std::size_t k = 0; k < first.size(); ++k) {
      CAPTURE(k);
      CHECK(first[k].cwiseAbs().maxCoeff() > 0);
      CHECK((first[k].array() == second[k].array()).all());
    }
  };
  run(0.0);
  run(0.0f);
}

TEST_CASE("float at ranks 8, 16, 32 (the R×R products on the register-tile kernel) agrees with double") {
  // In double every R×R product goes through detail::gemm; in float with R a multiple of 8 through
  // detail::narrow_gemm (on CPUs with AVX2). N = 37: full and partial 8-token blocks and 6-row tiles.
  MESSAGE("register-tile kernel on this CPU: " << std::string(hyplora::ad::detail::narrow_gemm_tiled<float>(8) ? "yes" : "no"));
  std::srand(31);
  const Eigen::Index n = 37, d_in = 48, d_out = 40;
  const char* names[] = {"z", "dx", "dW0", "dx_a", "dA", "dB", "dR", "dsigma", "db"};
  for (const Eigen::Index r : {Eigen::Index(8), Eigen::Index(16), Eigen::Index(32)}) {
    CAPTURE(r);
    const std::vector<MatrixR<double>> in = {rnd(n, d_in, 1.0), rnd(d_out, d_in, 0.3), rnd(n, d_in, 1.5),
                                             rnd(r, d_in, 0.4),  rnd(d_out, r, 0.5),   scalar(1.3),
                                             scalar(0.9),        rnd(1, d_out, 0.1)};
    const MatrixR<double> G = rnd(n, d_out, 1.0);
    const auto d = exact_step_in<double>(in, G), f = exact_step_in<float>(in, G);
    double worst = 0.0;
    for (std::size_t k = 0; k < d.size(); ++k)
      worst = std::max(worst, (f[k] - d[k]).cwiseAbs().maxCoeff() / (1.0 + d[k].cwiseAbs().maxCoeff()));
    MESSAGE("rank " << r << ": worst |float − double| / (1 + max|double|) = " << worst);
    for (std::size_t k = 0; k < d.size(); ++k) {
      CAPTURE(names[k]);
      REQUIRE(f[k].allFinite());
      const double scale = d[k].cwiseAbs().maxCoeff();
      CHECK(scale > 1e-6);  // every output is exercised
      // float rounding of sums over ≤ 48 terms: ~1e-6 relative; a wrong tile or a missed block is O(1).
      CHECK((f[k] - d[k]).cwiseAbs().maxCoeff() <= 2e-5 * (1.0 + scale));
    }
  }
}

#ifdef _OPENMP
namespace {
// One forward + backward of hyplora_linear (separate x_a, bias, σ_out = σ) with every input
// trainable, on `threads` OpenMP threads: returns {z, ∂x, ∂W0, ∂x_a, ∂A, ∂B, ∂R, ∂σ, ∂b}.
std::vector<MatrixR<double>> exact_step(int threads, const std::vector<MatrixR<double>>& in, const MatrixR<double>& G) {
  const int prev = omp_get_max_threads();
  omp_set_num_threads(threads);
  Tape<double> t;
  std::vector<Var<double>> v;
  for (const auto& m : in) v.push_back(t.leaf(m));
  auto z = hyplora::ad::hyplora_linear(v[0], v[1], v[2], v[3], v[4], v[5], v[6], {0.8, true}, v[7]);
  t.backward(z, G);
  omp_set_num_threads(prev);
  std::vector<MatrixR<double>> out = {z.value()};
  for (const auto& vi : v) out.push_back(vi.grad());
  return out;
}
}  // namespace

TEST_CASE("threads: 1 and 2 OpenMP threads agree to rounding; a fixed thread count is bitwise reproducible") {
  // N = 201 tokens: two threads take 100 and 101 of them in the per-token passes (forward and
  // backward).
  using hyplora::ad::detail::kHypLoRAParallelMinWork;
  std::srand(17);
  const Eigen::Index n = 201, d_in = 96, d_out = 80, r = 8;
  REQUIRE(n * d_in >= kHypLoRAParallelMinWork);  // else the forward's pass would stay serial
  const std::vector<MatrixR<double>> in = {rnd(n, d_in, 1.0), rnd(d_out, d_in, 0.3), rnd(n, d_in, 1.5),
                                           rnd(r, d_in, 0.4),  rnd(d_out, r, 0.5),   scalar(1.3),
                                           scalar(0.9),        rnd(1, d_out, 0.1)};
  const MatrixR<double> G = rnd(n, d_out, 1.0);
  const auto one = exact_step(1, in, G);
  const auto two = exact_step(2, in, G);
  const auto again = exact_step(2, in, G);
  const char* names[] = {"z", "dx", "dW0", "dx_a", "dA", "dB", "dR", "dsigma", "db"};
  for (std::size_t k = 0; k < one.size(); ++k) {
    CAPTURE(names[k]);
    REQUIRE(one[k].allFinite());
    // The only thread-count dependence is the order in which per-thread partial sums are added
    // (∂B's R×R term, ∂R and ∂σ): rounding-level differences, far below 1e-12 relative in double
    // (a thread's share lost or counted twice would be off by half the value).
    const double scale = 1.0 + one[k].cwiseAbs().maxCoeff();
    CHECK((one[k] - two[k]).cwiseAbs().maxCoeff() <= 1e-12 * scale);
    CHECK((two[k].array() == again[k].array()).all());  // bitwise, same thread count
  }
  CHECK(one[5].cwiseAbs().maxCoeff() > 1e-3);  // ∂B, ∂R, ∂σ are not trivially zero
  CHECK(std::abs(one[6](0, 0)) > 1e-6);
  CHECK(std::abs(one[7](0, 0)) > 1e-6);
}

TEST_CASE("threads: a non-finite input row is reported by its smallest index whatever the thread count") {
  std::srand(19);
  MatrixR<double> X = rnd(200, 96, 1.0);
  X(150, 3) = std::nan("");
  X(37, 90) = std::numeric_limits<double>::infinity();
  const int prev = omp_get_max_threads();
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    omp_set_num_threads(threads);
    Tape<double> t;
    auto x = t.constant(X);
    try {
      hyplora::ad::hyplora_branch(x, t.constant(rnd(4, 96, 0.5)), t.constant(rnd(8, 4, 0.5)),
                                  t.constant(scalar(1.0)), t.constant(scalar(1.0)));
      CHECK_MESSAGE(false, "expected value_error");
    } catch (const hyplora::value_error& e) {
      CHECK(std::string(e.what()).find("row 37 ") != std::string::npos);
    }
  }
  omp_set_num_threads(prev);
}
#else
TEST_CASE("threads: 1 vs 2 OpenMP threads (skipped: built without OpenMP)") { MESSAGE("built without OpenMP"); }
#endif

}  // namespace autodiff_test_ops_hyplora
