// tests/cuda/radial_hyplora_data.hpp — host-side inputs of the radial HypLoRA device tests
// (test_ops_hyplora_official.cu, test_ops_hyplora_stereographic.cu): plain C++ and Eigen, no CUDA,
// so the inputs' branch coverage can be checked on the CPU alone.
//
// The adapter input's first rows are placed in chosen regimes: row 0 is zero, row 1 has norm 1e-9
// (below the official branch's n floor 1e-7), and each further "target" row gets the norm at which
// the radial input map sends it to a chosen |y| = |B·A·h| (official: |h| = R·sinh(n/(sR));
// stereographic: |h| = R·sinh(2n/R)), or a chosen tangent length ρ. The rest are random.
#pragma once

#include <cmath>
#include <vector>

#include <hyplora/core/types.hpp>

namespace hyplora::cuda::testing {

struct RadialCase {
  Index N, Din, Dout, r;
  bool bias, separate_xa, base;  // base = false: the adapter branch alone (no x, W0, b)
};

/// D_in = 300 > 256 threads per row block and R = 40 > 32 lanes exercise the strided loops;
/// R = 5 and D = 37 are odd on purpose.
inline const RadialCase kRadialCases[] = {
    {12, 37, 29, 5, true, false, true},
    {14, 300, 70, 40, false, true, true},
    {11, 37, 29, 5, false, false, false},
};

struct RadialData {
  MatrixR<double> X, Xa, W0, A, B, b, G;
  MatrixR<double> dX0, dXa0, dW00, dA0, dB0, db0;  // gradients the device accumulates onto
};

/// How a target row's norm n maps to |h| (per unit |B·A·x̂|): |h| = R·sinh(n/ell), ell = sR for
/// the official branch, R/2 for the stereographic node.
struct RadialTarget {
  enum Kind { kY, kRho } kind;  // kY: reach |y| = value; kRho: tangent length n/ell = value
  double value;
};

/// Random inputs for case c; the adapter input's rows 0, 1 and then one per target are placed
/// (radius R, length scale ell). G is scaled by g_scale.
inline RadialData make_radial_data(const RadialCase& c, const std::vector<RadialTarget>& targets, double R, double ell,
                                   double g_scale) {
  using MD = MatrixR<double>;
  RadialData d;
  d.X = MD::Random(c.N, c.Din);
  d.Xa = c.separate_xa ? MD(MD::Random(c.N, c.Din)) : d.X;
  d.W0 = MD::Random(c.Dout, c.Din);
  d.A = MD::Random(c.r, c.Din) * 0.3;
  d.B = MD::Random(c.Dout, c.r) * 0.3;
  d.b = MD::Random(1, c.Dout);
  d.G = MD::Random(c.N, c.Dout) * g_scale;
  d.dX0 = MD::Random(c.N, c.Din);
  d.dXa0 = MD::Random(c.N, c.Din);
  d.dW00 = MD::Random(c.Dout, c.Din);
  d.dA0 = MD::Random(c.r, c.Din);
  d.dB0 = MD::Random(c.Dout, c.r);
  d.db0 = MD::Random(1, c.Dout);
  MD& xa = d.Xa;
  xa.row(0).setZero();
  xa.row(1) *= 1e-9 / xa.row(1).norm();
  for (std::size_t t = 0; t < targets.size() && Index(t) + 2 < c.N; ++t) {
    const Index i = Index(t) + 2;
    const MD v = xa.row(i) / xa.row(i).norm();
    double rho = targets[t].value;
    if (targets[t].kind == RadialTarget::kY) {
      const double beta = (v * d.A.transpose() * d.B.transpose()).norm();  // |B·A·x̂|
      rho = std::asinh(targets[t].value / (beta * R));
    }
    xa.row(i) = v * (rho * ell);
  }
  if (!c.separate_xa) d.X = d.Xa;
  return d;
}

/// Each matrix rounded to T and back, so the references see exactly what the device sees.
template <class T>
void round_radial(RadialData& d) {
  for (MatrixR<double>* m : {&d.X, &d.Xa, &d.W0, &d.A, &d.B, &d.b, &d.G, &d.dX0, &d.dXa0, &d.dW00, &d.dA0, &d.dB0, &d.db0})
    *m = m->cast<T>().template cast<double>();
}

}  // namespace hyplora::cuda::testing
