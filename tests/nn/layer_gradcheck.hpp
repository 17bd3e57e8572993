// Test support for tests/nn: central-difference check of a layer's gradients with respect to its
// input and every trainable parameter of a ParameterStore (testing::gradcheck checks tape leaves;
// layer parameters live in the store's arena, so this helper perturbs the arena directly, with
// gradcheck's error metric, step and tolerance).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <string>

#include <hyplora/autodiff/parameters.hpp>
#include <hyplora/autodiff/tape.hpp>
#include <hyplora/testing/gradcheck.hpp>

namespace nn_test {

struct LayerGradcheck {
  double worst = 0.0;
  std::string report;
  bool ok(double tol = hyplora::testing::GradcheckOptions{}.tol) const { return worst <= tol; }
};

/// f(tape, x) builds the layer's output from the input node x. Checks ∂L/∂x and ∂L/∂p for every
/// trainable p in `store`, with L = Σ W ⊙ f(x) for fixed random W in [-1, 1]. `numeric_map`
/// may transform a numeric derivative before comparison (e.g. the official θ-gradient clamp).
using Fwd = std::function<hyplora::ad::Var<double>(hyplora::ad::Tape<double>&, hyplora::ad::Var<double>)>;
inline LayerGradcheck check_layer(const Fwd& f, hyplora::ad::ParameterStore<double>& store,
                                  const hyplora::MatrixR<double>& X,
                                  const std::function<double(const std::string&, double)>& numeric_map = nullptr) {
  using hyplora::Index;
  using hyplora::MatrixR;
  const double eps = hyplora::testing::GradcheckOptions{}.eps;
  hyplora::ad::Tape<double> tape;
  auto x = tape.leaf(X);
  auto out = f(tape, x);
  MatrixR<double> W(out.rows(), out.cols());
  std::uint64_t s = 11;
  for (Index i = 0; i < W.size(); ++i) {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    W.data()[i] = static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53 * 2.0 - 1.0;
  }
  store.zero_grad();
  tape.backward(out, W);
  const MatrixR<double> gx = x.grad();
  auto loss = [&](const MatrixR<double>& Xv) {
    hyplora::ad::Tape<double> t;
    return (W.array() * f(t, t.constant(Xv)).value().array()).sum();
  };
  LayerGradcheck res;
  std::ostringstream rep;
  auto compare = [&](const std::string& name, double a, double num) {
    if (numeric_map) num = numeric_map(name, num);
    const double err = std::abs(a - num) / std::max({1.0, std::abs(a), std::abs(num)});
    return std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
  };
  double w = 0.0;
  MatrixR<double> Xp = X;
  for (Index e = 0; e < X.size(); ++e) {
    const double x0 = Xp.data()[e];
    Xp.data()[e] = x0 + eps;
    const double lp = loss(Xp);
    Xp.data()[e] = x0 - eps;
    const double lm = loss(Xp);
    Xp.data()[e] = x0;
    w = std::max(w, compare("x", gx.data()[e], (lp - lm) / (2 * eps)));
  }
  rep << "x: " << w << '\n';
  res.worst = w;
  const MatrixR<double> analytic = Eigen::Map<const MatrixR<double>>(store.grads().data(), 1, static_cast<Index>(store.grads().size()));
  for (int k = 0; k < store.count(); ++k) {
    const auto& info = store.infos()[static_cast<std::size_t>(k)];
    if (!info.trainable) continue;
    double wk = 0.0;
    for (std::size_t e = 0; e < info.size(); ++e) {
      double& v = store.values()[info.offset + e];
      const double v0 = v;
      v = v0 + eps;
      const double lp = loss(X);
      v = v0 - eps;
      const double lm = loss(X);
      v = v0;
      wk = std::max(wk, compare(info.name, analytic(0, static_cast<Index>(info.offset + e)), (lp - lm) / (2 * eps)));
    }
    rep << info.name << ": " << wk << '\n';
    res.worst = std::max(res.worst, wk);
  }
  res.report = rep.str();
  return res;
}

}  // namespace nn_test
