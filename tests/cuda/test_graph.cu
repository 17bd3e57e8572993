// Tests for hyplora/cuda/graph.cuh: every op of the device tape, alone, in a tiny graph built from
// input() leaves and parameter views, against the same expression on an ad::Tape<double> (the
// reference): the op's value, the loss and every gradient (inputs' and parameters'). A graph
// ends in a (1, 1) loss: cross_entropy(x·Wᵀ, targets) with fixed targets (one row ignored), the
// same composition on the CPU (ad::matmul(x, W, false, true), ad::cross_entropy(…, targets, −1)).
// Gradients are accumulated onto random initial values (the device's contract: caller-owned
// views that accumulate), and the initial value is subtracted before comparing. Also: clear() and
// rebuild make no cudaMalloc, a frozen input costs no gradient work, stale nodes throw.
// Without a CUDA device the binary prints "SKIPPED: no CUDA device" and returns 77.
//
// Tolerances: device_compare.cuh's (normwise; double 1e-10, float 2e-4 values / 5e-4 gradients).
// Sizes are tiny (N = 6 rows, C = 8, V = 5, H = 2): GEMM depths and reductions of at most 8
// terms, so float rounding stays near 1e-6; a formula or wiring error is O(1e-1).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include <hyplora/autodiff/ops_attention.hpp>
#include <hyplora/autodiff/ops_elementwise.hpp>
#include <hyplora/autodiff/ops_hyplora.hpp>
#include <hyplora/autodiff/ops_linear.hpp>
#include <hyplora/autodiff/ops_lora.hpp>
#include <hyplora/autodiff/ops_matmul.hpp>
#include <hyplora/autodiff/ops_norm.hpp>
#include <hyplora/autodiff/ops_shape.hpp>
#include <hyplora/autodiff/ops_softmax.hpp>
#include <hyplora/autodiff/tape.hpp>
#include <hyplora/core/errors.hpp>
#include <hyplora/cuda/buffer.hpp>
#include <hyplora/cuda/caching_allocator.hpp>
#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/device.hpp>
#include <hyplora/cuda/device_tensor.hpp>
#include <hyplora/cuda/error.hpp>
#include <hyplora/cuda/graph.cuh>

#include "device_compare.cuh"

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace hc = hyplora::cuda;
namespace ad = hyplora::ad;
using namespace hyplora::cuda::testing;  // tol_value, tol_grad, rnd, rel_err, up, down, as
using Tape = ad::Tape<double>;
using CVar = ad::Var<double>;

// B sequences of T tokens, N = B·T rows, C width, H heads, V classes of the loss head.
constexpr Index kB = 2, kT = 3, kN = kB * kT, kC = 8, kH = 2, kV = 5;
const std::vector<std::int64_t> kTargets = {0, 3, -1, 4, 1, 2};  // row 2 ignored

hc::DeviceBuffer<std::int64_t> up_ids(const std::vector<std::int64_t>& v) {
  hc::DeviceBuffer<std::int64_t> b(v.size());
  b.copy_from_host(v.data(), v.size());
  return b;
}

/// What a node holds now, on the host in double.
template <class T>
MD value_of(const hc::Graph<T>& g, typename hc::Graph<T>::Var v, const hc::Context& ctx) {
  const hc::DeviceView<const T> d = g.value(v);
  MatrixR<T> m(d.rows, d.cols);
  if (m.size() > 0)
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(m.data(), d.data, static_cast<std::size_t>(m.size()) * sizeof(T),
                                       cudaMemcpyDeviceToHost, ctx.stream));
  HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  return m.template cast<double>();
}

/// A tensor on both sides: its value (rounded to T, so both sides see the same numbers) and a
/// gradient buffer on the device that starts at grad0 and must only be accumulated into.
template <class T>
struct Both {
  MD value, grad0;
  hc::DeviceTensor<T> dv, dg;
  Both(Index r, Index c, const hc::Context& ctx, double scale = 1.0)
      : value(as<T>(rnd(r, c, scale))), grad0(as<T>(rnd(r, c, 0.1))), dv(up<T>(value, ctx)), dg(up<T>(grad0, ctx)) {}
  hc::DeviceView<const T> v() const { return dv.cview(); }
  hc::DeviceView<T> g() { return dg.view(); }
  /// What the device added to grad0, against the tape's gradient of ref.
  double grad_err(const CVar& ref, const hc::Context& ctx) const {
    return rel_err(MD(down(dg, ctx).template cast<double>() - grad0), MD(ref.grad()));
  }
  /// True when the device gradient buffer still holds grad0 bit for bit.
  bool untouched(const hc::Context& ctx) const { return rel_err(down(dg, ctx), grad0) == 0.0; }
};

/// The loss every op test ends in: cross_entropy(x·Wᵀ, kTargets), W: (V, C) trainable.
template <class T>
struct Head {
  using Var = typename hc::Graph<T>::Var;
  Both<T> W;
  hc::DeviceBuffer<std::int64_t> targets;
  CVar w;  // W on the reference tape
  Head(Index width, const hc::Context& ctx) : W(kV, width, ctx), targets(up_ids(kTargets)) {}
  Var on(hc::Graph<T>& g, Var x) { return g.cross_entropy(g.matmul_nt(x, W.v(), W.g()), targets.data()); }
  CVar on(Tape& t, CVar x) {
    w = t.leaf(W.value);
    return ad::cross_entropy(ad::matmul(x, w, false, true), kTargets, -1);
  }
  void check(hc::Graph<T>& g, Var loss, const CVar& ref, const hc::Context& ctx) const {
    CHECK(rel_err(value_of(g, loss, ctx), MD(ref.value())) < tol_value<T>());
    CHECK(W.grad_err(w, ctx) < tol_grad<T>());
  }
};
}  // namespace

// ---- input, matmul_nt, cross_entropy ---------------------------------------------------------------

TEST_CASE_TEMPLATE("input + matmul_nt + cross_entropy match the tape; input copies x and accumulates into dx", T,
                   float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  Both<T> x(kN, kC, ctx, 2.0);
  Head<T> head(kC, ctx);
  hc::Graph<T> g(ctx);
  const auto xi = g.input(x.v(), x.g());
  const auto logits = g.matmul_nt(xi, head.W.v(), head.W.g());
  const auto loss = g.cross_entropy(logits, head.targets.data());
  x.dv.set_zero(ctx.stream);  // the node holds a copy: the caller may reuse x at once
  g.backward(loss);

  Tape t;
  const CVar cx = t.leaf(x.value);
  head.w = t.leaf(head.W.value);
  const CVar cl = ad::matmul(cx, head.w, false, true);
  const CVar closs = ad::cross_entropy(cl, kTargets, -1);
  t.backward(closs);

  CHECK(rel_err(value_of(g, xi, ctx), x.value) == 0.0);
  CHECK(rel_err(value_of(g, logits, ctx), MD(cl.value())) < tol_value<T>());
  head.check(g, loss, closs, ctx);
  CHECK(x.grad_err(cx, ctx) < tol_grad<T>());
  CHECK(g.size() == 3);

  hc::DeviceTensor<T> bad(kN, kC + 1, *ctx.alloc);
  CHECK_THROWS_AS(g.input(x.v(), bad.view()), hyplora::shape_error);
  CHECK_THROWS_AS(g.matmul_nt(xi, bad.cview(), hc::DeviceView<T>{}), hyplora::shape_error);  // W: (6, 9) vs C = 8
  CHECK_THROWS_AS(g.backward(logits), hyplora::shape_error);                                 // not (1, 1)
}

// ---- embedding ---------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("embedding: token + position tables' gradients match ad::embedding + ad::add", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const Index Ve = 7;                                           // token table rows
  const std::vector<std::int64_t> ids = {3, 0, 3, 6, 1, 3};    // repeats: the scatter-add sums them
  std::vector<std::int64_t> pos(kN);
  for (Index i = 0; i < kN; ++i) pos[static_cast<std::size_t>(i)] = i % kT;
  Both<T> W(Ve, kC, ctx), P(kT, kC, ctx);
  Head<T> head(kC, ctx);
  const auto dids = up_ids(ids), dpos = up_ids(pos);
  hc::Graph<T> g(ctx);
  const auto e = g.embedding(W.v(), W.g(), dids.data(), P.v(), P.g(), dpos.data(), kN);
  const auto loss = head.on(g, e);
  g.backward(loss);

  Tape t;
  const CVar cw = t.leaf(W.value), cp = t.leaf(P.value);
  const CVar ce = ad::add(ad::embedding(cw, ids), ad::embedding(cp, pos));
  const CVar closs = head.on(t, ce);
  t.backward(closs);

  CHECK(rel_err(value_of(g, e, ctx), MD(ce.value())) < tol_value<T>());
  head.check(g, loss, closs, ctx);
  CHECK(W.grad_err(cw, ctx) < tol_grad<T>());
  CHECK(P.grad_err(cp, ctx) < tol_grad<T>());
}

// ---- layer_norm, rms_norm ----------------------------------------------------------------------------

TEST_CASE_TEMPLATE("layer_norm: value and the gradients of x, gamma, beta match ad::layer_norm", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  Both<T> x(kN, kC, ctx, 2.0), gam(1, kC, ctx), bet(1, kC, ctx);
  Head<T> head(kC, ctx);
  hc::Graph<T> g(ctx);
  const auto y = g.layer_norm(g.input(x.v(), x.g()), gam.v(), gam.g(), bet.v(), bet.g());
  const auto loss = head.on(g, y);
  g.backward(loss);

  Tape t;
  const CVar cx = t.leaf(x.value), cg = t.leaf(gam.value), cb = t.leaf(bet.value);
  const CVar cy = ad::layer_norm(cx, cg, cb);  // eps 1e-5 on both sides
  const CVar closs = head.on(t, cy);
  t.backward(closs);

  CHECK(rel_err(value_of(g, y, ctx), MD(cy.value())) < tol_value<T>());
  head.check(g, loss, closs, ctx);
  CHECK(x.grad_err(cx, ctx) < tol_grad<T>());
  CHECK(gam.grad_err(cg, ctx) < tol_grad<T>());
  CHECK(bet.grad_err(cb, ctx) < tol_grad<T>());
}

TEST_CASE_TEMPLATE("rms_norm: value and the gradients of x, gamma match ad::rms_norm", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  Both<T> x(kN, kC, ctx, 2.0), gam(1, kC, ctx);
  Head<T> head(kC, ctx);
  hc::Graph<T> g(ctx);
  const auto y = g.rms_norm(g.input(x.v(), x.g()), gam.v(), gam.g());
  const auto loss = head.on(g, y);
  g.backward(loss);

  Tape t;
  const CVar cx = t.leaf(x.value), cg = t.leaf(gam.value);
  const CVar cy = ad::rms_norm(cx, cg);  // eps 1e-6 on both sides
  const CVar closs = head.on(t, cy);
  t.backward(closs);

  CHECK(rel_err(value_of(g, y, ctx), MD(cy.value())) < tol_value<T>());
  head.check(g, loss, closs, ctx);
  CHECK(x.grad_err(cx, ctx) < tol_grad<T>());
  CHECK(gam.grad_err(cg, ctx) < tol_grad<T>());
}

// ---- linear (plain, LoRA, HypLoRA) -----------------------------------------------------------------

TEST_CASE_TEMPLATE("linear: plain, LoRA and HypLoRA projections match ad::linear / lora_linear / hyplora_linear", T,
                   float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  using Kind = typename hc::LinearParams<T>::Kind;
  const Index Dout = 6, R = 2;
  const double gamma = 0.5, sigma = 2.0, radius = 1.0;  // HypLoRA: K = 1, σ_out = σ
  for (const Kind kind : {Kind::plain, Kind::lora, Kind::hyplora}) {
    CAPTURE(static_cast<int>(kind));
    Both<T> x(kN, kC, ctx), W(Dout, kC, ctx, 0.5), b(1, Dout, ctx), A(R, kC, ctx, 0.5), Bm(Dout, R, ctx, 0.5);
    Head<T> head(Dout, ctx);
    hc::LinearParams<T> p;
    p.kind = kind;
    p.W = W.v(), p.b = b.v(), p.db = b.g();
    if (kind == Kind::plain) {
      p.dW = W.g();  // trainable base; the adapters keep it frozen, as fine-tuning does
    } else {
      p.A = A.v(), p.dA = A.g(), p.B = Bm.v(), p.dB = Bm.g();
      p.gamma = static_cast<T>(gamma);
      p.R = static_cast<T>(radius), p.sigma = static_cast<T>(sigma), p.sig_out = true;
    }
    hc::Graph<T> g(ctx);
    const auto z = g.linear(g.input(x.v(), x.g()), p);
    const auto loss = head.on(g, z);
    g.backward(loss);

    Tape t;
    const CVar cx = t.leaf(x.value), cb = t.leaf(b.value);
    const CVar cW = kind == Kind::plain ? t.leaf(W.value) : t.constant(W.value);
    const CVar cA = t.leaf(A.value), cB = t.leaf(Bm.value);
    CVar cz;
    if (kind == Kind::plain) cz = ad::linear(cx, cW, cb);
    if (kind == Kind::lora) cz = ad::lora_linear(cx, cW, cx, cA, cB, gamma, cb);
    if (kind == Kind::hyplora)
      cz = ad::hyplora_linear(cx, cW, cx, cA, cB, t.constant(MD::Constant(1, 1, radius)),
                              t.constant(MD::Constant(1, 1, sigma)), ad::HypLoRANodeOptions{gamma, true}, cb);
    const CVar closs = head.on(t, cz);
    t.backward(closs);

    CHECK(rel_err(value_of(g, z, ctx), MD(cz.value())) < tol_value<T>());
    head.check(g, loss, closs, ctx);
    CHECK(x.grad_err(cx, ctx) < tol_grad<T>());  // both uses of x (x and x_a) summed
    CHECK(b.grad_err(cb, ctx) < tol_grad<T>());
    if (kind == Kind::plain) {
      CHECK(W.grad_err(cW, ctx) < tol_grad<T>());
      CHECK(A.untouched(ctx));
    } else {
      CHECK(W.untouched(ctx));  // frozen: absent dW
      CHECK(A.grad_err(cA, ctx) < tol_grad<T>());
      CHECK(Bm.grad_err(cB, ctx) < tol_grad<T>());
    }
  }
}

// ---- attention ---------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("attention: value and the gradients of q, k, v match ad::causal_self_attention", T, float,
                   double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  Both<T> q(kN, kC, ctx, 2.0), k(kN, kC, ctx, 2.0), v(kN, kC, ctx);
  Head<T> head(kC, ctx);
  hc::Graph<T> g(ctx);
  const auto o = g.attention(g.input(q.v(), q.g()), g.input(k.v(), k.g()), g.input(v.v(), v.g()), kB, kT, kH);
  const auto loss = head.on(g, o);
  g.backward(loss);

  Tape t;
  const CVar cq = t.leaf(q.value), ck = t.leaf(k.value), cv = t.leaf(v.value);
  const CVar co = ad::causal_self_attention(cq, ck, cv, kB, kT, kH);
  const CVar closs = head.on(t, co);
  t.backward(closs);

  CHECK(rel_err(value_of(g, o, ctx), MD(co.value())) < tol_value<T>());
  head.check(g, loss, closs, ctx);
  CHECK(q.grad_err(cq, ctx) < tol_grad<T>());
  CHECK(k.grad_err(ck, ctx) < tol_grad<T>());
  CHECK(v.grad_err(cv, ctx) < tol_grad<T>());
}

// ---- add, gelu ---------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("add: (a + b) + a matches the tape; a node used twice sums its gradients", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  Both<T> a(kN, kC, ctx), b(kN, kC, ctx);
  Head<T> head(kC, ctx);
  hc::Graph<T> g(ctx);
  const auto ai = g.input(a.v(), a.g());
  const auto y = g.add(g.add(ai, g.input(b.v(), b.g())), ai);
  const auto loss = head.on(g, y);
  g.backward(loss);

  Tape t;
  const CVar ca = t.leaf(a.value), cb = t.leaf(b.value);
  const CVar cy = ad::add(ad::add(ca, cb), ca);
  const CVar closs = head.on(t, cy);
  t.backward(closs);

  CHECK(rel_err(value_of(g, y, ctx), MD(cy.value())) < tol_value<T>());
  head.check(g, loss, closs, ctx);
  CHECK(a.grad_err(ca, ctx) < tol_grad<T>());
  CHECK(b.grad_err(cb, ctx) < tol_grad<T>());
  hc::DeviceTensor<T> other(kN, kC + 1, *ctx.alloc);
  CHECK_THROWS_AS(g.add(ai, g.input(other.cview())), hyplora::shape_error);
}

TEST_CASE_TEMPLATE("gelu: value and the gradient of x match ad::gelu (tanh approximation)", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  Both<T> x(kN, kC, ctx, 3.0);
  Head<T> head(kC, ctx);
  hc::Graph<T> g(ctx);
  const auto y = g.gelu(g.input(x.v(), x.g()));
  const auto loss = head.on(g, y);
  g.backward(loss);

  Tape t;
  const CVar cx = t.leaf(x.value);
  const CVar cy = ad::gelu(cx);
  const CVar closs = head.on(t, cy);
  t.backward(closs);

  CHECK(rel_err(value_of(g, y, ctx), MD(cy.value())) < tol_value<T>());
  head.check(g, loss, closs, ctx);
  CHECK(x.grad_err(cx, ctx) < tol_grad<T>());
}

// ---- the graph itself ----------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("clear() and the same build again: no cudaMalloc, same loss, gradients accumulate", T, float,
                   double) {
  hc::CachingAllocator alloc;
  hc::DeviceContext dc(alloc);
  const auto ctx = dc.context();
  using Kind = typename hc::LinearParams<T>::Kind;
  const Index Ve = 7, R = 2;
  std::vector<std::int64_t> ids(kN), pos(kN);
  for (Index i = 0; i < kN; ++i) {
    ids[static_cast<std::size_t>(i)] = (3 * i + 1) % Ve;
    pos[static_cast<std::size_t>(i)] = i % kT;
  }
  const auto dids = up_ids(ids), dpos = up_ids(pos);
  Both<T> x(kN, kC, ctx), E(Ve, kC, ctx), P(kT, kC, ctx), g1(1, kC, ctx), g2(1, kC, ctx), b2(1, kC, ctx);
  Both<T> Wq(kC, kC, ctx, 0.5), Wk(kC, kC, ctx, 0.5), Wv(kC, kC, ctx, 0.5), A(R, kC, ctx, 0.5), Bm(kC, R, ctx, 0.5);
  Head<T> head(kC, ctx);
  hc::LinearParams<T> pq, pk, pv;  // plain (trainable), LoRA, HypLoRA: every op and linear kind
  pq.W = Wq.v(), pq.dW = Wq.g();
  pk.kind = Kind::lora, pk.W = Wk.v(), pk.A = A.v(), pk.dA = A.g(), pk.B = Bm.v(), pk.dB = Bm.g();
  pv.kind = Kind::hyplora, pv.W = Wv.v(), pv.A = A.v(), pv.dA = A.g(), pv.B = Bm.v(), pv.dB = Bm.g(), pv.sigma = T(2);
  hc::Graph<T> g(ctx);
  const auto build = [&] {
    g.clear();
    const auto e = g.add(g.embedding(E.v(), E.g(), dids.data(), P.v(), P.g(), dpos.data(), kN), g.input(x.v(), x.g()));
    const auto h = g.rms_norm(e, g1.v(), g1.g());
    const auto att = g.attention(g.linear(h, pq), g.linear(h, pk), g.linear(h, pv), kB, kT, kH);
    const auto y = g.gelu(g.layer_norm(g.add(e, att), g2.v(), g2.g(), b2.v(), b2.g()));
    const auto loss = head.on(g, y);
    g.backward(loss);
    return value_of(g, loss, ctx);
  };
  const MD loss1 = build();
  const std::size_t nodes = g.size(), mallocs = alloc.stats().malloc_calls;
  const MD dx1 = down(x.dg, ctx).template cast<double>() - x.grad0;
  const MD dA1 = down(A.dg, ctx).template cast<double>() - A.grad0;
  CHECK(mallocs > 0);
  for (int rebuild = 0; rebuild < 2; ++rebuild) {
    const MD loss = build();
    CHECK(g.size() == nodes);
    CHECK(rel_err(loss, loss1) < tol_value<T>());
  }
  CHECK(alloc.stats().malloc_calls == mallocs);
  // Three backward passes into the same caller-owned views: three times the first's gradient.
  CHECK(rel_err(MD(down(x.dg, ctx).template cast<double>() - x.grad0), MD(3.0 * dx1)) < tol_grad<T>());
  CHECK(rel_err(MD(down(A.dg, ctx).template cast<double>() - A.grad0), MD(3.0 * dA1)) < tol_grad<T>());
  CHECK(dx1.cwiseAbs().maxCoeff() > 0.0);
  CHECK(dA1.cwiseAbs().maxCoeff() > 0.0);
}

TEST_CASE_TEMPLATE("a frozen input gets no gradient work; an all-frozen graph's backward does nothing", T, float,
                   double) {
  hc::CachingAllocator alloc;
  hc::DeviceContext dc(alloc);
  const auto ctx = dc.context();
  Both<T> x(kN, kC, ctx);
  Head<T> head(kC, ctx);
  // The device memory backward takes (node gradients), for a graph input → matmul_nt → loss.
  const auto backward_bytes = [&](bool train_x, bool train_W) {
    hc::Graph<T> g(ctx);
    const auto xi = g.input(x.v(), train_x ? x.g() : hc::DeviceView<T>{});
    const auto loss = g.cross_entropy(g.matmul_nt(xi, head.W.v(), train_W ? head.W.g() : hc::DeviceView<T>{}),
                                      head.targets.data());
    const std::size_t before = alloc.stats().bytes_in_use;
    g.backward(loss);
    return alloc.stats().bytes_in_use - before;
  };
  const std::size_t frozen_x = backward_bytes(false, true);
  CHECK(x.untouched(ctx));
  Tape t;
  const CVar closs = head.on(t, t.constant(x.value));
  t.backward(closs);
  CHECK(head.W.grad_err(head.w, ctx) < tol_grad<T>());  // W still gets its gradient

  const std::size_t mallocs = alloc.stats().malloc_calls;
  CHECK(backward_bytes(false, false) == 0);  // nothing trainable: backward returns at once
  CHECK(alloc.stats().malloc_calls == mallocs);
  CHECK(x.untouched(ctx));

  const std::size_t trainable_x = backward_bytes(true, false);
  CHECK(frozen_x > 0);
  CHECK(trainable_x > frozen_x);  // x's node gradient exists only when x has a dx
  CHECK(!x.untouched(ctx));
}

TEST_CASE_TEMPLATE("value() of a node not in the current build throws value_error", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  Both<T> x(kN, kC, ctx);
  hc::Graph<T> g(ctx);
  const auto a = g.input(x.v());
  const auto b = g.gelu(a);
  CHECK(g.size() == 2);
  CHECK_NOTHROW(g.value(b));
  CHECK_THROWS_AS(g.value(typename hc::Graph<T>::Var{}), hyplora::value_error);  // never built
  g.clear();
  CHECK(g.size() == 0);
  CHECK_THROWS_AS(g.value(a), hyplora::value_error);
  const auto a2 = g.input(x.v());  // the new build reuses node 0
  CHECK(rel_err(value_of(g, a2, ctx), x.value) == 0.0);
  CHECK_THROWS_AS(g.value(b), hyplora::value_error);  // node 1 is not in this build
  CHECK_THROWS_AS(g.gelu(b), hyplora::value_error);
  CHECK_THROWS_AS(g.backward(b), hyplora::value_error);
}

int main(int argc, char** argv) {
  if (hc::skip_without_device()) return hc::kSkipReturnCode;
  doctest::Context context(argc, argv);
  return context.run();
}
