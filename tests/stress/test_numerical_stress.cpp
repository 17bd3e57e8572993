// Numerical stress: every manifold op (Lorentz and Poincaré APIs), the tape's fused ops and each
// adapter kind through nn::AdaptedLinear, on random inputs whose row norms are log-uniform in
// [1e-15, 1e4] and curvatures K log-uniform in [1e-3, 1e3], in float and double. Every output and
// gradient must be finite, or the call must throw one of hyplora's typed exceptions (the
// documented refusal; docs/hardening.md lists which). The clamps that make this hold are the
// ones in core/numerics.hpp (max_exp_arg, ball_eps, min_norm, ...). Cases are counted and printed.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include <hyplora/autodiff/ops_norm.hpp>
#include <hyplora/autodiff/ops_softmax.hpp>
#include <hyplora/autodiff/tape.hpp>
#include <hyplora/manifold/lorentz.hpp>
#include <hyplora/manifold/poincare_ball.hpp>
#include <hyplora/nn/adapted_linear.hpp>

namespace stress_test_numerical_stress {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace ad = hyplora::ad;
namespace nn = hyplora::nn;

constexpr double kNormLo = 1e-15, kNormHi = 1e4, kKLo = 1e-3, kKHi = 1e3;

struct Rng {
  std::mt19937_64 g;
  explicit Rng(std::uint64_t s) : g(s) {}
  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(g); }
  double log_uniform(double lo, double hi) { return std::exp(uniform(std::log(lo), std::log(hi))); }
  double normal() { return std::normal_distribution<double>(0.0, 1.0)(g); }
  // (N, d): random directions, each row scaled to a norm log-uniform in [kNormLo, kNormHi].
  template <class T>
  MatrixR<T> rows(Index N, Index d) {
    MatrixR<double> m(N, d);
    for (Index i = 0; i < N; ++i) {
      for (Index j = 0; j < d; ++j) m(i, j) = normal();
      m.row(i) *= log_uniform(kNormLo, kNormHi) / m.row(i).norm();
    }
    return m.cast<T>();
  }
  template <class T>
  MatrixR<T> plain(Index r, Index c, double scale) {
    MatrixR<double> m(r, c);
    for (Index i = 0; i < r; ++i)
      for (Index j = 0; j < c; ++j) m(i, j) = scale * normal();
    return m.cast<T>();
  }
};

// Counts of the cases run: finite results, and typed refusals (named by op).
struct Tally {
  long finite = 0;
  long refused = 0;
  std::string refusals;
  std::string failed;
  long overflow = 0;      // non-finite results for inputs past the representable range
  std::string overflows;  // the ops that produced them
};

// A Lorentz point exp_o(u) has coordinates ~ R·e^{|u|/R}/2; products of two coordinates (the
// Minkowski inner product every binary op starts from) stay representable only while
// |u|/R <= max_exp_arg/2. Beyond it the clamp keeps each point finite, but not their products.
template <class T>
bool lorentz_in_range(const MatrixR<T>& u, double R) {
  return static_cast<double>(u.rowwise().norm().maxCoeff()) / R <=
         0.5 * static_cast<double>(hyplora::numerics<T>::max_exp_arg());
}

template <class M>
bool all_finite(const M& m) {
  return m.array().isFinite().all();
}

// Runs f(); its result must be finite everywhere; a typed hyplora::error counts as a refusal.
template <class F>
void expect_finite(Tally& t, const char* op, double K, F&& f, bool in_range = true) {
  try {
    const auto r = f();
    const bool ok = all_finite(r);
    if (!ok && !in_range) {
      ++t.overflow;  // documented: beyond the clamp range (docs/hardening.md)
      if (t.overflows.find(std::string(op) + ";") == std::string::npos) t.overflows += std::string(op) + ";";
      return;
    }
    if (!ok && t.failed.find(std::string(op) + ";") == std::string::npos) {
      t.failed += std::string(op) + ";";  // report each op once
      const std::string name(op);
      INFO("op " << name << ", K " << K);
      CHECK(ok);
    }
    ++t.finite;
  } catch (const hyplora::error& e) {
    ++t.refused;
    if (t.refusals.find(op) == std::string::npos) t.refusals += std::string(op) + ": " + e.what() + "\n";
  }
}

template <class T>
MatrixR<T> with_time(const MatrixR<T>& s) {  // (N, d) spatial -> (N, d+1) with a 0 first column
  MatrixR<T> u(s.rows(), s.cols() + 1);
  u.col(0).setZero();
  u.rightCols(s.cols()) = s;
  return u;
}

template <class T>
void stress_lorentz(Rng& rng, Tally& t, int trials) {
  constexpr Index N = 24, d = 6;
  for (int k = 0; k < trials; ++k) {
    const double K = rng.log_uniform(kKLo, kKHi);
    const hyplora::Lorentz<T> L(static_cast<T>(K));
    const MatrixR<T> us = rng.rows<T>(N, d), vs = rng.rows<T>(N, d);
    const MatrixR<T> X = L.expmap0(with_time(us)), Y = L.expmap0(with_time(vs));
    REQUIRE(all_finite(X));
    REQUIRE(all_finite(Y));
    const MatrixR<T> amb = rng.rows<T>(N, d + 1);
    const bool ok = lorentz_in_range(us, std::sqrt(K)) && lorentz_in_range(vs, std::sqrt(K));
    const MatrixR<T> V = L.proju(X, amb);
    expect_finite(t, "lorentz.expmap0_spatial", K, [&] { return L.expmap0_spatial(us); });
    expect_finite(t, "lorentz.logmap0_spatial", K, [&] { return L.logmap0_spatial(X.rightCols(d)); }, ok);
    expect_finite(t, "lorentz.logmap0", K, [&] { return L.logmap0(X); }, ok);
    expect_finite(t, "lorentz.projx", K, [&] { return L.projx(amb); });
    expect_finite(t, "lorentz.proju", K, [&] { return V; }, ok);
    expect_finite(t, "lorentz.inner", K, [&] { return L.inner(X, V); }, ok);
    expect_finite(t, "lorentz.norm", K, [&] { return L.norm(V); }, ok);
    expect_finite(t, "lorentz.expmap", K, [&] { return L.expmap(X, V); }, ok);
    expect_finite(t, "lorentz.logmap", K, [&] { return L.logmap(X, Y); }, ok);
    expect_finite(t, "lorentz.dist", K, [&] { return L.dist(X, Y); }, ok);
    expect_finite(t, "lorentz.dist0", K, [&] { return L.dist0(X); }, ok);
    expect_finite(t, "lorentz.transp", K, [&] { return L.transp(X, Y, V); }, ok);
    expect_finite(t, "lorentz.transp0", K, [&] { return L.transp0(Y, with_time(us)); }, ok);
    expect_finite(t, "lorentz.transp0back", K, [&] { return L.transp0back(X, V); }, ok);
    expect_finite(t, "lorentz.egrad2rgrad", K, [&] { return L.egrad2rgrad(X, amb); }, ok);
    expect_finite(t, "lorentz.retr", K, [&] { return L.retr(X, V); }, ok);
  }
}

template <class T>
void stress_poincare(Rng& rng, Tally& t, int trials) {
  constexpr Index N = 24, d = 6;
  for (int k = 0; k < trials; ++k) {
    const double K = rng.log_uniform(kKLo, kKHi);
    const hyplora::PoincareBall<T> P(static_cast<T>(K));
    const MatrixR<T> us = rng.rows<T>(N, d), vs = rng.rows<T>(N, d), gs = rng.rows<T>(N, d);
    const MatrixR<T> X = P.expmap0(us), Y = P.expmap0(vs);
    REQUIRE(all_finite(X));
    REQUIRE(all_finite(Y));
    const MatrixR<T> M = rng.plain<T>(d, d, 1.0);
    const T r = static_cast<T>(rng.log_uniform(1e-3, 1e3));
    expect_finite(t, "poincare.projx", K, [&] { return P.projx(gs); });
    expect_finite(t, "poincare.logmap0", K, [&] { return P.logmap0(X); });
    expect_finite(t, "poincare.mobius_add", K, [&] { return P.mobius_add(X, Y); });
    expect_finite(t, "poincare.mobius_scalar_mul", K, [&] { return P.mobius_scalar_mul(r, X); });
    expect_finite(t, "poincare.mobius_matvec", K, [&] { return P.mobius_matvec(M, X); });
    expect_finite(t, "poincare.expmap", K, [&] { return P.expmap(X, gs); });
    expect_finite(t, "poincare.logmap", K, [&] { return P.logmap(X, Y); });
    expect_finite(t, "poincare.dist", K, [&] { return P.dist(X, Y); });
    expect_finite(t, "poincare.transp", K, [&] { return P.transp(X, Y, gs); });
    expect_finite(t, "poincare.transp0", K, [&] { return P.transp0(Y, gs); });
    expect_finite(t, "poincare.transp0back", K, [&] { return P.transp0back(Y, gs); });
    expect_finite(t, "poincare.egrad2rgrad", K, [&] { return P.egrad2rgrad(X, gs); });
    expect_finite(t, "poincare.expmap0_backward", K, [&] { return P.expmap0_backward(us, gs); });
    expect_finite(t, "poincare.logmap0_backward", K, [&] { return P.logmap0_backward(X, gs); });
    // Single-point API on the first row.
    const hyplora::VectorX<T> x0 = X.row(0).transpose(), y0 = Y.row(0).transpose();
    expect_finite(t, "poincare.lambda", K, [&] { return Eigen::Matrix<T, 1, 1>::Constant(P.lambda(x0)); });
    expect_finite(t, "poincare.gyration", K, [&] { return P.gyration(x0, y0, hyplora::VectorX<T>(gs.row(0).transpose())); });
  }
}

// Layer norm, softmax, log-softmax and cross-entropy on logits with log-uniform row norms;
// backward with a random seed.
template <class T>
void stress_tape_ops(Rng& rng, Tally& t, int trials) {
  constexpr Index N = 16, V = 12;
  for (int k = 0; k < trials; ++k) {
    ad::Tape<T> tape;
    const MatrixR<T> X = rng.rows<T>(N, V);
    std::vector<std::int64_t> targets(N);
    for (Index i = 0; i < N; ++i) targets[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(rng.g() % V);
    auto x = tape.leaf(X);
    auto g = tape.leaf(rng.plain<T>(1, V, 1.0));
    auto b = tape.leaf(rng.plain<T>(1, V, 1.0));
    const MatrixR<T> seed = rng.plain<T>(N, V, 1.0);
    auto check_grads = [&](const char* op, ad::Var<T> out, bool scalar) {
      expect_finite(t, op, 1.0, [&] { return MatrixR<T>(out.value()); });
      if (scalar) {
        tape.backward(out);
      } else {
        tape.backward(out, seed);
      }
      expect_finite(t, op, 1.0, [&] { return MatrixR<T>(x.grad()); });
    };
    check_grads("tape.layer_norm", ad::layer_norm(x, g, b), false);
    check_grads("tape.rms_norm", ad::rms_norm(x, g), false);
    check_grads("tape.softmax", ad::softmax(x), false);
    check_grads("tape.log_softmax", ad::log_softmax(x), false);
    check_grads("tape.cross_entropy", ad::cross_entropy(x, targets), true);
  }
}

// Every adapter kind through nn::AdaptedLinear: forward and backward; z and the gradients of x,
// A, B (and the learned curvature / feature scale) finite.
template <class T>
void stress_adapters(Rng& rng, Tally& t, int trials) {
  constexpr Index N = 12, Din = 10, Dout = 8;
  const nn::AdapterKind kinds[] = {nn::AdapterKind::lora,
                                   nn::AdapterKind::dora,
                                   nn::AdapterKind::hyplora,
                                   nn::AdapterKind::hyplora_official,
                                   nn::AdapterKind::hyplora_stereographic,
                                   nn::AdapterKind::hyplora_official_simplified};
  for (int k = 0; k < trials; ++k) {
    for (nn::AdapterKind kind : kinds) {
      for (int learn = 0; learn < 2; ++learn) {
        nn::AdapterConfig c;
        c.kind = kind;
        c.r = 1 + static_cast<int>(rng.g() % 4);
        c.alpha = 16.0;
        c.K = rng.log_uniform(kKLo, kKHi);
        c.learn_curvature = nn::is_hyplora(kind) && learn == 1;
        const bool has_sigma = kind == nn::AdapterKind::hyplora || kind == nn::AdapterKind::hyplora_official;
        c.learn_feature_scale = has_sigma && learn == 1 && kind == nn::AdapterKind::hyplora_official;
        c.feature_scale = has_sigma ? std::sqrt(static_cast<double>(Din)) : 1.0;
        c.seed = rng.g();
        ad::ParameterStore<T> store;
        nn::AdaptedLinear<T> layer(store, "blk.fc", Din, Dout, true);
        layer.base().init_kaiming_uniform(store, rng.g());
        layer.attach(store, c);
        store.value(layer.lora_B()) = rng.plain<T>(Dout, c.r, rng.log_uniform(1e-4, 1e1));
        ad::Tape<T> tape;
        const MatrixR<T> X = rng.rows<T>(N, Din);
        auto x = tape.leaf(X);
        const bool ok = !nn::is_hyplora(kind) ||
                        lorentz_in_range(X, c.feature_scale * std::sqrt(c.K));
        const std::string op = "adapter." + nn::to_string(kind) + (learn ? ".learned" : "");
        try {
          auto z = layer.forward(tape, store, x, /*training=*/false);
          expect_finite(t, op.c_str(), c.K, [&] { return MatrixR<T>(z.value()); }, ok);
          store.zero_grad();
          tape.backward(z, rng.plain<T>(N, Dout, 1.0));
          expect_finite(t, (op + ".dx").c_str(), c.K, [&] { return MatrixR<T>(x.grad()); }, ok);
          expect_finite(t, (op + ".dA").c_str(), c.K, [&] { return MatrixR<T>(store.grad(layer.lora_A())); }, ok);
          expect_finite(t, (op + ".dB").c_str(), c.K, [&] { return MatrixR<T>(store.grad(layer.lora_B())); }, ok);
          if (layer.lora_k().valid())
            expect_finite(t, (op + ".dk").c_str(), c.K, [&] { return MatrixR<T>(store.grad(layer.lora_k())); }, ok);
          if (layer.lora_norm_scale().valid())
            expect_finite(t, (op + ".dsigma").c_str(), c.K, [&] { return MatrixR<T>(store.grad(layer.lora_norm_scale())); }, ok);
        } catch (const hyplora::error& e) {
          ++t.refused;
          if (t.refusals.find(op) == std::string::npos) t.refusals += op + ": " + e.what() + "\n";
        }
      }
    }
  }
}

template <class T>
Tally run_all(std::uint64_t seed) {
  Rng rng(seed);
  Tally t;
  stress_lorentz<T>(rng, t, 40);
  stress_poincare<T>(rng, t, 40);
  stress_tape_ops<T>(rng, t, 40);
  stress_adapters<T>(rng, t, 25);
  return t;
}

}  // namespace

TEST_CASE_TEMPLATE("numerical stress: finite outputs and gradients, or a typed refusal", T, float, double) {
  const Tally t = run_all<T>(sizeof(T) == 4 ? 20241004u : 20241005u);
  const int bits = static_cast<int>(sizeof(T) * 8);
  MESSAGE(bits << "-bit: " << t.finite + t.overflow + t.refused << " cases: " << t.finite << " finite, "
               << t.overflow << " non-finite past the representable range (" << t.overflows << "), "
               << t.refused << " typed refusals\n" << t.refusals);
  CHECK(t.finite > 1000);
  // Refusals are the documented exception, not the rule.
  CHECK(t.refused * 20 < t.finite);
}

}  // namespace stress_test_numerical_stress
