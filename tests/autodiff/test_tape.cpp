// Tests for include/hyplora/autodiff/tape.hpp: gradient accumulation into parameters, frozen
// parameters, grad_out's fresh flag, no_grad, anomaly detection, error cases, deep/shared graphs, a reused tape that
// allocates nothing after the first step, and a small MLP trained with hand-written SGD.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include <hyplora/autodiff/ops_elementwise.hpp>
#include <hyplora/autodiff/ops_matmul.hpp>
#include <hyplora/autodiff/ops_reduce.hpp>
#include <hyplora/autodiff/ops_shape.hpp>
#include <hyplora/autodiff/tape.hpp>

#include "support/alloc_counter.hpp"  // this executable's global allocation counter

namespace autodiff_test_tape {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::MatrixR;
using hyplora::ad::Parameter;
using hyplora::ad::ParameterStore;
using hyplora::ad::Tape;
using hyplora::ad::Var;
namespace ad = hyplora::ad;
using M = MatrixR<double>;

/// Counts allocations in its lifetime.
struct AllocScope {
  long long start = hyplora::testing::allocations();
  long count() const { return static_cast<long>(hyplora::testing::allocations() - start); }
};

// Deterministic uniform numbers in [-1, 1) (splitmix64), independent of the standard library.
struct Rng {
  std::uint64_t s;
  double next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53 * 2.0 - 1.0;
  }
  M matrix(hyplora::Index r, hyplora::Index c, double scale) {
    M m(r, c);
    for (hyplora::Index k = 0; k < m.size(); ++k) m.data()[k] = scale * next();
    return m;
  }
};

// A two-layer MLP: x (N, 2) → tanh/gelu hidden (N, H) → (N, 1).
struct Mlp {
  ParameterStore<double> store;
  Parameter W1, b1, W2, b2;
  explicit Mlp(int hidden, std::uint64_t seed) {
    Rng rng{seed};
    W1 = store.add("W1", rng.matrix(hidden, 2, 1.0));  // PyTorch layout (D_out, D_in)
    b1 = store.add("b1", rng.matrix(1, hidden, 0.1));
    W2 = store.add("W2", rng.matrix(1, hidden, 1.0 / std::sqrt(hidden)));
    b2 = store.add("b2", M::Zero(1, 1));
  }
  // Mean squared error of the MLP's prediction.
  Var<double> loss(Tape<double>& t, Var<double> x, Var<double> y, bool use_gelu) {
    Var<double> pre = ad::matmul(x, t.param(store, W1), false, true) + t.param(store, b1);
    Var<double> h = use_gelu ? ad::gelu(pre) : ad::tanh(pre);
    Var<double> out = ad::matmul(h, t.param(store, W2), false, true) + t.param(store, b2);
    return ad::mean(ad::square(out - y));
  }
};
}  // namespace

TEST_CASE("parameter gradients accumulate across backward calls until zero_grad") {
  ParameterStore<double> store;
  const M w0 = M::Random(3, 2), x = M::Random(4, 3);
  Parameter w = store.add("w", w0);
  Tape<double> t;
  M first;
  for (int k = 1; k <= 3; ++k) {
    t.clear();
    Var<double> loss = ad::sum(ad::square(ad::matmul(t.constant(x), t.param(store, w))));
    t.backward(loss);
    if (k == 1) first = store.grad(w);
    CHECK((M(store.grad(w)) - k * first).cwiseAbs().maxCoeff() <= 1e-13);
  }
  // d/dw Σ (x w)² = 2 xᵀ x w
  CHECK((first - 2.0 * x.transpose() * x * w0).cwiseAbs().maxCoeff() <= 1e-13);
  store.zero_grad();
  CHECK(M(store.grad(w)).cwiseAbs().maxCoeff() == 0.0);
  // A non-parameter leaf does not accumulate: its gradient is this pass's.
  Var<double> leaf = t.leaf(x);
  t.backward(ad::sum(leaf));
  t.backward(ad::sum(leaf));
  CHECK((M(leaf.grad()).array() - 1.0).abs().maxCoeff() == 0.0);
}

TEST_CASE("grad_out: fresh on the first contribution of a pass, never for a parameter slot") {
  ParameterStore<double> store;
  Parameter w = store.add("w", M::Ones(2, 2));
  Tape<double> t;
  Var<double> x = t.leaf(M::Ones(2, 2));
  Var<double> p = t.param(store, w);
  auto a = t.grad_out(x.id);
  CHECK(a.fresh);
  a.view.setConstant(std::numeric_limits<double>::quiet_NaN());  // garbage: the caller assigns
  CHECK_FALSE(t.grad_out(x.id).fresh);                            // a second contribution adds
  CHECK_FALSE(t.grad_out(p.id).fresh);
  // A new backward pass makes it fresh again; an op that reaches x twice (x + x, x·xᵀ through
  // matmul) assigns then adds, so no stale value from the previous pass survives.
  Var<double> y = ad::add(x, x);
  Var<double> z = ad::matmul(y, y, false, true);
  t.backward(ad::sum(z));
  // d/dy Σ y yᵀ = 2·(1ᵀ y) per column = 2·Σ_rows y = 8 (y = 2); d/dx = 2·8.
  CHECK((M(x.grad()).array() == 16.0).all());
  t.backward(ad::sum(z));
  CHECK((M(x.grad()).array() == 16.0).all());
}

TEST_CASE("frozen parameters get no gradient; nodes depending only on them need none") {
  ParameterStore<double> store;
  Parameter frozen = store.add("frozen", M::Random(2, 2), /*trainable=*/false);
  Parameter live = store.add("live", M::Random(2, 2));
  Tape<double> t;
  Var<double> f = t.param(store, frozen);
  Var<double> l = t.param(store, live);
  Var<double> ff = ad::exp(f);
  CHECK_FALSE(t.needs_grad(ff.id));
  Var<double> loss = ad::sum(ad::matmul(ff, l));
  CHECK(t.needs_grad(loss.id));
  t.backward(loss);
  CHECK(M(store.grad(frozen)).cwiseAbs().maxCoeff() == 0.0);
  CHECK(M(store.grad(live)).cwiseAbs().maxCoeff() > 0.0);
  CHECK(store.trainable_size() == 4);
}

TEST_CASE("no_grad scope records no gradients and restores the mode") {
  ParameterStore<double> store;
  Parameter w = store.add("w", M::Random(2, 3));
  Tape<double> t;
  {
    ad::NoGradGuard<double> guard(t);
    CHECK_FALSE(t.grad_enabled());
    Var<double> p = t.param(store, w);
    Var<double> loss = ad::sum(ad::tanh(p));
    CHECK_FALSE(t.needs_grad(p.id));
    CHECK_FALSE(t.needs_grad(loss.id));
    CHECK(loss.item() == doctest::Approx(M(store.value(w)).array().tanh().sum()));
    t.backward(loss);
  }
  CHECK(t.grad_enabled());
  CHECK(M(store.grad(w)).cwiseAbs().maxCoeff() == 0.0);
  Var<double> p = t.param(store, w);
  t.backward(ad::sum(p));
  CHECK((M(store.grad(w)).array() - 1.0).abs().maxCoeff() == 0.0);
}

TEST_CASE("detect_anomaly names the first op producing a non-finite value") {
  Tape<double> t;
  ad::DetectAnomalyGuard<double> guard(t);
  Var<double> x = t.leaf(M::Constant(2, 2, -1.0));
  Var<double> lg = ad::log(x);  // NaN, reported when the next op is recorded
  try {
    (void)ad::exp(lg);
    FAIL("expected value_error");
  } catch (const hyplora::value_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("'log'") != std::string::npos);
    CHECK(msg.find("(2, 2)") != std::string::npos);
    CHECK(msg.find("'exp'") == std::string::npos);
  }
  // As the last op, it is reported by backward().
  Tape<double> u;
  ad::DetectAnomalyGuard<double> guard2(u);
  Var<double> z = u.leaf(M::Constant(1, 1, -2.0));
  Var<double> last = ad::sqrt(z);
  CHECK_THROWS_WITH_AS(u.backward(last), doctest::Contains("'sqrt'"), hyplora::value_error);
}

TEST_CASE("detect_anomaly names the first op producing a non-finite gradient") {
  Tape<double> t;
  ad::DetectAnomalyGuard<double> guard(t);
  Var<double> x = t.leaf(M::Zero(1, 3));
  Var<double> r = ad::sqrt(x);            // finite value 0, infinite gradient 1/(2·0)
  Var<double> loss = ad::sum(ad::mul_scalar(r, 2.0));
  try {
    t.backward(loss);
    FAIL("expected value_error");
  } catch (const hyplora::value_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("gradient") != std::string::npos);
    CHECK(msg.find("'sqrt'") != std::string::npos);
    CHECK(msg.find("'mul_scalar'") == std::string::npos);
  }
  // Without the guard the same graph runs and yields the (infinite) gradient.
  Tape<double> u;
  Var<double> y = u.leaf(M::Zero(1, 3));
  u.backward(ad::sum(ad::sqrt(y)));
  CHECK(std::isinf(y.grad()(0, 0)));
}

TEST_CASE("errors: shape errors name both shapes, backward of a non-1×1 needs a seed") {
  Tape<double> t;
  Var<double> a = t.leaf(M::Random(2, 3));
  Var<double> b = t.leaf(M::Random(3, 2));
  CHECK_THROWS_WITH_AS(ad::add(a, b), doctest::Contains("(2, 3) vs b (3, 2)"), hyplora::shape_error);
  CHECK_THROWS_WITH_AS(ad::matmul(a, a), doctest::Contains("(2, 3)"), hyplora::shape_error);
  CHECK_THROWS_WITH_AS(t.backward(a), doctest::Contains("(2, 3)"), hyplora::shape_error);
  CHECK_THROWS_AS(t.backward(a, M::Ones(3, 2)), hyplora::shape_error);
  t.backward(a, M::Ones(2, 3));
  CHECK((M(a.grad()).array() - 1.0).abs().maxCoeff() == 0.0);
  CHECK_THROWS_AS(a.item(), hyplora::shape_error);
}

TEST_CASE("a deep chain and a doubly shared graph run in linear time without recursion") {
  // 20000 nodes: a recursive backward would overflow the stack.
  Tape<double> t;
  Var<double> x = t.leaf(M::Constant(1, 1, 0.5));
  Var<double> y = x;
  for (int k = 0; k < 20000; ++k) y = ad::add_scalar(y, 1e-4);
  t.backward(y);
  CHECK(y.item() == doctest::Approx(2.5));
  CHECK(x.grad()(0, 0) == 1.0);
  // y_{k+1} = y_k + y_k, 60 times: 2^60 paths, but 60 nodes and one backward step each.
  Tape<double> u;
  Var<double> z = u.leaf(M::Constant(1, 1, 1.0));
  Var<double> w = z;
  for (int k = 0; k < 60; ++k) w = w + w;
  u.backward(w);
  CHECK(z.grad()(0, 0) == std::ldexp(1.0, 60));
}

TEST_CASE("a tape reused for many steps allocates nothing after the first") {
  Mlp mlp(16, 11);
  Rng rng{5};
  const M X = rng.matrix(32, 2, 1.0);
  const M Y = rng.matrix(32, 1, 1.0);
  const M table = rng.matrix(10, 4, 1.0);
  const std::vector<std::int64_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
  Tape<double> t;
  double first_loss = 0.0;
  auto step = [&]() {
    t.clear();
    Var<double> x = t.constant(X);
    Var<double> y = t.constant(Y);
    Var<double> loss = mlp.loss(t, x, y, /*use_gelu=*/true);
    // Exercise the other ops too: gather, slices, concat, norms, broadcasting, scalar ops.
    Var<double> e = ad::embedding(t.leaf(table), ids);                         // (8, 4)
    Var<double> cat = ad::concat_cols({ad::slice_cols(e, 0, 2), ad::slice_rows(x, 0, 8)});  // (8, 4)
    Var<double> extra = ad::mean(ad::row_norm(cat) + ad::row_dot(e, cat) / 4.0);
    Var<double> r = ad::reshape(ad::transpose(ad::softplus(e)), 2, 16);
    Var<double> total = loss + 1e-3 * (extra + ad::mean_cols(ad::sigmoid(r)) * ad::sum_rows(ad::clamp(r, -1.0, 1.0)));
    Var<double> scalar = ad::sum(total);
    t.backward(scalar);
    return scalar.item();
  };
  first_loss = step();
  long allocs = -1;
  double last_loss = 0.0;
  {
    AllocScope scope;
    for (int k = 2; k <= 10; ++k) last_loss = step();
    allocs = scope.count();
  }
  CHECK(allocs == 0);
  CHECK(last_loss == first_loss);  // parameters unchanged: same graph, same value
  // The counter does count: a new shape must allocate.
  {
    AllocScope scope;
    t.clear();
    (void)ad::exp(t.constant(M::Zero(1000, 3)));
    allocs = scope.count();
  }
  CHECK(allocs > 0);
}

TEST_CASE("a small MLP learns y = x0·x1 on [-1, 1]² with hand-written SGD") {
  Mlp mlp(16, 3);
  Rng rng{42};
  const M X = rng.matrix(128, 2, 1.0);
  const M Y = (X.col(0).array() * X.col(1).array()).matrix();
  Tape<double> t;
  double initial = 0.0, loss = 0.0;
  const double lr = 0.2;
  for (int step = 0; step < 3000; ++step) {
    t.clear();
    mlp.store.zero_grad();
    Var<double> l = mlp.loss(t, t.constant(X), t.constant(Y), /*use_gelu=*/false);
    t.backward(l);
    loss = l.item();
    if (step == 0) initial = loss;
    auto& v = mlp.store.values();
    const auto& g = mlp.store.grads();
    for (std::size_t k = 0; k < v.size(); ++k) v[k] -= lr * g[k];  // the arena is one flat loop
  }
  MESSAGE("MLP loss: initial " << initial << ", after 3000 SGD steps " << loss);
  CHECK(initial > 0.05);  // Var(x0·x1) = 1/9 plus the initial prediction's error
  CHECK(loss < 0.005);
}

}  // namespace autodiff_test_tape
