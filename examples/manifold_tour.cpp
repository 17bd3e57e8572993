// A short walk through hyplora's two models of hyperbolic space: a geodesic, a parallel
// transport, a Lorentz boost and the isometry between the models. Every number printed is
// computed here; compare them with the formulas in docs/math.md.
#include <hyplora/manifold/conversions.hpp>
#include <hyplora/manifold/lorentz.hpp>
#include <hyplora/manifold/poincare_ball.hpp>

#include <cstdio>

using hyplora::Lorentz;
using hyplora::PoincareBall;
using Vec = hyplora::VectorX<double>;

// exp_o of the tangent vector (0, s) at the origin: a full point (x0, x_s) of the hyperboloid.
static Vec exp_origin(const Lorentz<double>& H, const Vec& s) {
  Vec u(s.size() + 1);
  u << 0.0, s;
  return H.expmap0(u);
}

static void print(const char* name, const Vec& v) {
  std::printf("  %-28s (", name);
  for (Eigen::Index i = 0; i < v.size(); ++i) std::printf("%s% .6f", i ? ", " : "", v(i));
  std::printf(")\n");
}

int main() {
  // Curvature convention (docs/math.md §1): K > 0 is the squared radius; curvature is -1/K.
  const double K = 2.0;
  const Lorentz<double> H(K);
  const PoincareBall<double> P(K);
  std::printf("Hyperbolic plane with K = %.1f (radius R = %.6f, sectional curvature %.3f)\n\n", K, H.R(), -1.0 / K);

  // 1. A geodesic from the origin: exp_o of a tangent vector, then walk along it.
  std::printf("1. Geodesic from the origin o = (R, 0, 0) of the hyperboloid\n");
  Vec v(2);
  v << 1.0, 0.5;  // spatial tangent vector at o; |v| = 1.118
  print("tangent v at o", v);
  for (double s : {0.0, 0.5, 1.0, 2.0}) {
    const Vec xa = exp_origin(H, s * v);
    std::printf("  s = %.1f: exp_o(s v) = (%.6f, %.6f, %.6f)   dist(o, .) = %.6f  (= s|v| = %.6f)\n", s, xa(0),
                xa(1), xa(2), H.dist0(xa), s * v.norm());
  }
  const Vec xv = exp_origin(H, v);
  std::printf("  On the hyperboloid: <x,x>_L = %.12f (should be -K = %.1f)\n\n", H.inner(xv, xv), -K);

  // 2. Two points, the log map between them and parallel transport along the geodesic.
  std::printf("2. Log map and parallel transport between two points\n");
  const Vec x = exp_origin(H, (Vec(2) << 0.3, -0.2).finished());
  const Vec y = exp_origin(H, (Vec(2) << -0.8, 0.9).finished());
  const Vec u = H.logmap(x, y);
  print("x", x);
  print("y", y);
  print("u = log_x(y)", u);
  std::printf("  |u|_L = %.12f and dist(x, y) = %.12f: the log map's length is the distance\n", H.norm(u),
              H.dist(x, y));
  print("exp_x(u) (back to y)", H.expmap(x, u));
  Vec w(3);
  w << 0.0, 1.0, 0.0;
  w = H.proju(x, w);  // a tangent vector at x
  const Vec tw = H.transp(x, y, w);
  std::printf("  transport keeps the inner product: <w,u>_L at x = %.12f, <PT w, PT u>_L at y = %.12f\n",
              H.inner(w, u), H.inner(tw, H.transp(x, y, u)));
  std::printf("  and lands in T_yH: <y, PT w>_L = %.3e\n\n", H.inner(y, tw));

  // 3. A Lorentz boost is an isometry that moves the origin a distance R|w| along w.
  std::printf("3. A Lorentz boost with rapidity w = (0.7, 0)\n");
  Vec rap(2);
  rap << 0.7, 0.0;
  const Vec o = H.origin(2);
  const Vec bo = H.apply_boost(rap, o);
  print("boost(w) o", bo);
  std::printf("  dist(o, boost o) = %.12f  (= R|w| = %.12f)\n", H.dist(o, bo), H.R() * rap.norm());
  std::printf("  distances are preserved: dist(x, y) = %.12f, dist(Bx, By) = %.12f\n\n", H.dist(x, y),
              H.dist(H.apply_boost(rap, x), H.apply_boost(rap, y)));

  // 4. The stereographic map to the Poincare ball of radius R is an isometry for every K.
  std::printf("4. Hyperboloid -> Poincare ball (radius R = %.6f)\n", P.R());
  const Vec px = hyplora::to_poincare(x, K), py = hyplora::to_poincare(y, K);
  print("p(x)", px);
  print("p(y)", py);
  std::printf("  dist on the ball %.12f = dist on the hyperboloid %.12f\n", P.dist(px, py), H.dist(x, y));
  print("back: p^-1(p(x))", hyplora::to_lorentz(px, K));
  std::printf("  The tangent spaces at the origins differ by a factor 1/2: p(exp_o(v)) = exp_0(v/2)\n");
  print("p(exp_o(v))", hyplora::to_poincare(xv, K));
  print("exp_0(v/2) on the ball", P.expmap0(Vec(v / 2)));
  std::printf("\n5. Mobius addition on the ball (the gyrogroup operation): x (+) y\n");
  print("p(x) (+) p(y)", P.mobius_add(px, py));
  print("(-p(x)) (+) (p(x) (+) p(y))", P.mobius_add(Vec(-px), P.mobius_add(px, py)));
  std::printf("  left cancellation gives back p(y).\n");
  return 0;
}
