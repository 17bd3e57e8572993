// tests/interop/interop_dump.cpp — seeded inputs and hyplora's float64 results, printed as JSON
// for compare_geoopt.py, which recomputes every op with geoopt (Lorentz(k = K),
// PoincareBall(c = 1/K); docs/math.md §1 table) and reports the deviations.
#include <cmath>
#include <iomanip>
#include <iostream>
#include <random>
#include <string>

#include <hyplora/manifold/lorentz.hpp>
#include <hyplora/manifold/poincare_ball.hpp>

namespace {

using hyplora::Index;
using hyplora::MatrixR;
using hyplora::VectorX;
using M = MatrixR<double>;

void put(std::ostream& os, const std::string& name, const M& a, bool comma = true) {
  os << "\"" << name << "\": [";
  for (Index i = 0; i < a.rows(); ++i) {
    os << (i ? ", [" : "[");
    for (Index j = 0; j < a.cols(); ++j) os << (j ? ", " : "") << a(i, j);
    os << "]";
  }
  os << "]" << (comma ? ", " : "");
}
void put(std::ostream& os, const std::string& name, const VectorX<double>& a, bool comma = true) {
  os << "\"" << name << "\": [";
  for (Index i = 0; i < a.rows(); ++i) os << (i ? ", " : "") << a[i];
  os << "]" << (comma ? ", " : "");
}

/// N rows of dimension d, each a random direction times R·U(lo, hi).
M random_rows(std::mt19937& rng, Index N, Index d, double R, double lo, double hi) {
  std::normal_distribution<double> n(0.0, 1.0);
  std::uniform_real_distribution<double> u(lo, hi);
  M out(N, d);
  for (Index i = 0; i < N; ++i) {
    for (Index j = 0; j < d; ++j) out(i, j) = n(rng);
    out.row(i) *= R * u(rng) / out.row(i).norm();
  }
  return out;
}

}  // namespace

int main() {
  const Index N = 16, d = 6;
  std::mt19937 rng(2410);
  std::cout << std::setprecision(17) << "{\"cases\": [";
  bool first = true;
  for (double K : {0.25, 1.0, 4.0}) {
    const double R = std::sqrt(K);
    std::cout << (first ? "" : ", ") << "{\"K\": " << K << ", ";
    first = false;

    // Poincaré ball: points up to 0.9R, tangents scaled by 1/λ_x so exp_x stays inside.
    const hyplora::PoincareBall<double> P(K);
    const M X = random_rows(rng, N, d, R, 0.0, 0.9), Y = random_rows(rng, N, d, R, 0.0, 0.9);
    M U = random_rows(rng, N, d, R, 0.05, 2.0);
    for (Index i = 0; i < N; ++i) U.row(i) /= P.lambda(VectorX<double>(X.row(i).transpose()));
    const M U0 = random_rows(rng, N, d, R, 0.0, 3.0);
    std::cout << "\"ball\": {";
    put(std::cout, "x", X);
    put(std::cout, "y", Y);
    put(std::cout, "u", U);
    put(std::cout, "u0", U0);
    put(std::cout, "expmap0", P.expmap0(U0));
    put(std::cout, "logmap0", P.logmap0(Y));
    put(std::cout, "dist", P.dist(X, Y));
    put(std::cout, "transp", P.transp(X, Y, U));
    put(std::cout, "expmap", P.expmap(X, U));
    put(std::cout, "logmap", P.logmap(X, Y), false);
    std::cout << "}, ";

    // Lorentz: points exp_o of spatial tangents up to 3R; tangents P_x of random ambient vectors.
    const hyplora::Lorentz<double> L(K);
    auto at_origin = [&](const M& S) {
      M A = M::Zero(S.rows(), S.cols() + 1);
      A.rightCols(S.cols()) = S;
      return A;
    };
    const M A0 = at_origin(random_rows(rng, N, d, R, 0.0, 3.0));
    const M LX = L.expmap0(at_origin(random_rows(rng, N, d, R, 0.0, 3.0)));
    const M LY = L.expmap0(at_origin(random_rows(rng, N, d, R, 0.0, 3.0)));
    const M LU = L.proju(LX, random_rows(rng, N, d + 1, R, 0.05, 1.0));
    std::cout << "\"lorentz\": {";
    put(std::cout, "x", LX);
    put(std::cout, "y", LY);
    put(std::cout, "u", LU);
    put(std::cout, "u0", A0);
    put(std::cout, "expmap0", L.expmap0(A0));
    put(std::cout, "logmap0", L.logmap0(LY));
    put(std::cout, "dist", L.dist(LX, LY));
    put(std::cout, "transp", L.transp(LX, LY, LU));
    put(std::cout, "expmap", L.expmap(LX, LU));
    put(std::cout, "logmap", L.logmap(LX, LY), false);
    std::cout << "}}";
  }
  std::cout << "]}\n";
  return 0;
}
