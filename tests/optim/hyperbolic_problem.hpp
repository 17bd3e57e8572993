// Test support for tests/optim/test_riemannian_*.cpp: the two manifolds behind one small traits
// type, and the Fréchet-mean problem min_x Σ_i d(x, p_i)² whose Riemannian gradient is
// −2 Σ_i log_x(p_i) (docs/math.md Eq. (227)). Each parameter row has its own point cloud,
// built as exp_c(±v_k) around a chosen centre c, so c is the exact minimiser.
#pragma once

#include <cmath>
#include <random>
#include <vector>

#include <hyplora/autodiff/parameters.hpp>
#include <hyplora/manifold/lorentz.hpp>
#include <hyplora/manifold/poincare_ball.hpp>

namespace optim_test {

using hyplora::Index;
using hyplora::Lorentz;
using hyplora::MatrixR;
using hyplora::PoincareBall;
using Vec = hyplora::VectorX<double>;

template <class M>
struct Geo;

template <>
struct Geo<Lorentz<double>> {
  static constexpr const char* name = "Lorentz";
  static Lorentz<double> make() { return Lorentz<double>(2.0); }
  static Index width(Index d) { return d + 1; }
  static Vec random_point(const Lorentz<double>& m, Index d, std::mt19937& rng, double scale) {
    std::normal_distribution<double> n(0.0, scale);
    Vec u = Vec::Zero(d + 1);
    for (Index i = 1; i <= d; ++i) u(i) = n(rng);
    return m.expmap0(u);
  }
  static Vec random_tangent(const Lorentz<double>& m, const Vec& x, std::mt19937& rng, double scale) {
    std::normal_distribution<double> n(0.0, scale);
    Vec u(x.size());
    for (Index i = 0; i < x.size(); ++i) u(i) = n(rng);
    return m.proju(x, u);
  }
  /// An ambient gradient whose egrad2rgrad is the tangent vector r: J r (Eq. (212)).
  static Vec egrad_for(const Lorentz<double>&, const Vec&, const Vec& r) {
    Vec g = r;
    g(0) = -g(0);
    return g;
  }
  static double sqnorm(const Lorentz<double>& m, const Vec&, const Vec& u) { return m.inner(u, u); }
  static Vec retr(const Lorentz<double>& m, const Vec& x, const Vec& u) { return m.retr(x, u); }
  static Vec proju(const Lorentz<double>& m, const Vec& x, const Vec& u) { return m.proju(x, u); }
  static bool on_manifold(const Lorentz<double>& m, const Vec& x) { return m.check_point(x).ok; }
};

template <>
struct Geo<PoincareBall<double>> {
  static constexpr const char* name = "PoincareBall";
  static PoincareBall<double> make() { return PoincareBall<double>(0.5); }
  static Index width(Index d) { return d; }
  static Vec random_point(const PoincareBall<double>& m, Index d, std::mt19937& rng, double scale) {
    std::normal_distribution<double> n(0.0, scale);
    Vec u(d);
    for (Index i = 0; i < d; ++i) u(i) = n(rng);
    return m.expmap0(u);
  }
  static Vec random_tangent(const PoincareBall<double>& m, const Vec& x, std::mt19937& rng, double scale) {
    std::normal_distribution<double> n(0.0, scale);
    Vec u(x.size());
    for (Index i = 0; i < x.size(); ++i) u(i) = n(rng);
    return u / m.lambda(x);  // a Riemannian length of about `scale`
  }
  /// An ambient gradient whose egrad2rgrad is r: λ_x² r (Eq. (212)).
  static Vec egrad_for(const PoincareBall<double>& m, const Vec& x, const Vec& r) {
    const double l = m.lambda(x);
    return l * l * r;
  }
  static double sqnorm(const PoincareBall<double>& m, const Vec& x, const Vec& u) { return m.inner(x, u, u); }
  static Vec retr(const PoincareBall<double>& m, const Vec& x, const Vec& u) { return m.projx(Vec(x + u)); }
  static Vec proju(const PoincareBall<double>&, const Vec&, const Vec& u) { return u; }
  static bool on_manifold(const PoincareBall<double>& m, const Vec& x) {
    return m.check_point(x).ok && x.norm() < m.R();
  }
};

/// Row j of the parameter minimises Σ_i d(x, p_ij)² over its own cloud p_·j.
template <class M>
struct FrechetProblem {
  using G = Geo<M>;
  M m = G::make();
  Index rows = 0, d = 0;
  MatrixR<double> centres;            // (rows, n): the exact minimisers
  MatrixR<double> start;              // (rows, n): initial points, away from the centres
  std::vector<MatrixR<double>> clouds;  // rows × (2C, n)

  FrechetProblem(Index rows_, Index d_, int pairs, unsigned seed) : rows(rows_), d(d_) {
    std::mt19937 rng(seed);
    const Index n = G::width(d);
    centres.resize(rows, n);
    start.resize(rows, n);
    for (Index j = 0; j < rows; ++j) {
      const Vec c = G::random_point(m, d, rng, 0.6);
      centres.row(j) = c.transpose();
      start.row(j) = G::random_point(m, d, rng, 0.6).transpose();
      MatrixR<double> P(2 * pairs, n);
      for (int k = 0; k < pairs; ++k) {
        const Vec v = G::random_tangent(m, c, rng, 0.5);
        P.row(2 * k) = m.expmap(c, v).transpose();
        P.row(2 * k + 1) = m.expmap(c, Vec(-v)).transpose();
      }
      clouds.push_back(P);
    }
  }

  /// −2 Σ_i log_x(p_i), the Riemannian gradient at x for row j (Eq. (227)).
  Vec rgrad(Index j, const Vec& x) const {
    Vec r = Vec::Zero(x.size());
    for (Index i = 0; i < clouds[j].rows(); ++i) r -= 2.0 * m.logmap(x, Vec(clouds[j].row(i).transpose()));
    return r;
  }

  /// Writes the Euclidean gradient of every row into the store.
  void set_grad(hyplora::ad::ParameterStore<double>& s, hyplora::ad::Parameter p) const {
    for (Index j = 0; j < rows; ++j) {
      const Vec x = s.value(p).row(j).transpose();
      s.grad(p).row(j) = G::egrad_for(m, x, rgrad(j, x)).transpose();
    }
  }

  /// Largest geodesic distance of a row from its centre.
  double max_dist(const MatrixR<double>& X) const {
    double e = 0;
    for (Index j = 0; j < rows; ++j)
      e = std::max(e, m.dist(Vec(X.row(j).transpose()), Vec(centres.row(j).transpose())));
    return e;
  }

  bool all_on_manifold(const MatrixR<double>& X) const {
    for (Index j = 0; j < rows; ++j)
      if (!G::on_manifold(m, Vec(X.row(j).transpose()))) return false;
    return true;
  }
};

}  // namespace optim_test
