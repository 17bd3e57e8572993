// hyplora/testing/gradcheck.hpp — check a tape function's gradients against central differences.
//
// Public and installed, so users can check their own ops the way hyplora checks its own.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "hyplora/autodiff/tape.hpp"

namespace hyplora::testing {

struct GradcheckResult {
  std::vector<double> max_error;  // per input: max over elements of |analytic − numeric| / max(1, |analytic|, |numeric|)
  double worst = 0.0;
  bool ok = true;
  std::string report;             // one line per input
};

struct GradcheckOptions {
  double eps = 1e-6;        // central-difference step
  double tol = 1e-6;        // pass threshold on the mixed relative error above
  std::uint64_t seed = 7;   // for the random output weights
  std::vector<bool> check;  // which inputs to check (default: all)
};

/// f(tape, inputs) -> output Var (any shape). The scalar checked is L = Σ W ⊙ f(x) with fixed
/// random weights W, so every output element's gradient is exercised. Analytic gradients come from
/// one backward pass; numeric ones from central differences on fresh tapes, in double.
template <class F>
GradcheckResult gradcheck(F&& f, const std::vector<MatrixR<double>>& inputs, GradcheckOptions opt = {}) {
  using ad::Tape;
  using ad::Var;
  auto run = [&](Tape<double>& tape, const std::vector<MatrixR<double>>& xs, bool grads) {
    std::vector<Var<double>> vars;
    vars.reserve(xs.size());
    for (std::size_t k = 0; k < xs.size(); ++k) {
      const bool want = grads && (opt.check.empty() || opt.check[k]);
      vars.push_back(tape.leaf(xs[k], want));
    }
    Var<double> out = f(tape, vars);
    return std::make_pair(out, vars);
  };

  // Fixed pseudo-random output weights (splitmix64 -> uniform in [-1, 1]).
  std::uint64_t state = opt.seed;
  auto next = [&]() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53 * 2.0 - 1.0;
  };

  Tape<double> tape;
  auto [out, vars] = run(tape, inputs, true);
  MatrixR<double> W(out.rows(), out.cols());
  for (Index i = 0; i < W.size(); ++i) W.data()[i] = next();
  tape.backward(out, W);

  GradcheckResult res;
  res.max_error.assign(inputs.size(), 0.0);
  std::ostringstream rep;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    if (!opt.check.empty() && !opt.check[k]) continue;
    const MatrixR<double> analytic = vars[k].grad();
    std::vector<MatrixR<double>> xs = inputs;
    double worst = 0.0;
    for (Index e = 0; e < xs[k].size(); ++e) {
      const double x0 = xs[k].data()[e];
      auto eval = [&](double x) {
        xs[k].data()[e] = x;
        Tape<double> t;
        auto r = run(t, xs, false);
        return (W.array() * r.first.value().array()).sum();
      };
      const double num = (eval(x0 + opt.eps) - eval(x0 - opt.eps)) / (2.0 * opt.eps);
      xs[k].data()[e] = x0;
      const double a = analytic.data()[e];
      const double err = std::abs(a - num) / std::max({1.0, std::abs(a), std::abs(num)});
      worst = std::isnan(err) ? std::numeric_limits<double>::infinity() : std::max(worst, err);
    }
    res.max_error[k] = worst;
    res.worst = std::max(res.worst, worst);
    if (!(worst <= opt.tol)) res.ok = false;
    rep << "input " << k << " " << shape_str(inputs[k].rows(), inputs[k].cols()) << ": max error " << worst << '\n';
  }
  res.report = rep.str();
  return res;
}

}  // namespace hyplora::testing
