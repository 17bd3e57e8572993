// Tests for hyplora/cuda/graph.cuh: every op of the device tape, alone, in a tiny graph built from
// input() leaves and parameter views, against the same expression on an ad::Tape<double> (the
// reference): the op's value, the loss and every gradient (inputs' and parameters'). A graph
// ends in a (1, 1) loss: cross_entropy(x·Wᵀ, targets) with fixed targets (one row ignored), the
// same composition on the CPU (ad::matmul(x, W, false, true), ad::cross_entropy(…, targets, −1)).
// Gradients are accumulated onto random initial values (the device's contract: caller-owned
// views that accumulate), and the initial value is subtracted before comparing. Also: clear() and
// rebuild make no cudaMalloc, a frozen input costs no gradient work, stale nodes throw.
// linear() with every adapter kind, learned and fixed scalars and adapter dropout is compared with
// nn::AdaptedLinear::forward itself (same parameters, same step seed: the dropout masks are equal
// by construction), every gradient included: x, W, b, A, B, m, θ or k, σ.
// Without a CUDA device the binary prints "SKIPPED: no CUDA device" and returns 77.
//
// Tolerances: device_compare.cuh's (normwise; double 1e-10, float 2e-4 values / 5e-4 gradients).
// Sizes are tiny (N = 6 rows, C = 8, V = 5, H = 2): GEMM depths and reductions of at most 8
// terms, so float rounding stays near 1e-6; a formula or wiring error is O(1e-1). The (1, 1)
// gradients of learned scalars (θ, σ, k) are sums over tokens of terms of both signs: compared
// with 10× the gradient tolerance relative to their own size, as the ops' own tests do
// (test_ops_hyplora_official.cu, test_ops_hyplora_stereographic.cu).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
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
#include <hyplora/nn/adapted_linear.hpp>

#include "device_compare.cuh"

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace hc = hyplora::cuda;
namespace ad = hyplora::ad;
namespace nn = hyplora::nn;
using namespace hyplora::cuda::testing;  // tol_value, tol_grad, rnd, rel_err, up, down, as
using Tape = ad::Tape<double>;
using CVar = ad::Var<double>;

// B sequences of T tokens, N = B·T rows, C width, H heads, V classes of the loss head.
constexpr Index kB = 2, kT = 3, kN = kB * kT, kC = 8, kH = 2, kV = 5;
const std::vector<std::int64_t> kTargets = {0, 3, -1, 4, 1, 2};  // row 2 ignored
// Not a permutation of the classes: with a small head (near-uniform softmax) the gradient's column
// sums (∂b of the projection before the head) do not cancel to rounding level.
const std::vector<std::int64_t> kSkewTargets = {0, 0, -1, 4, 0, 2};

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
  /// Holds v (rounded to T).
  Both(const MD& v, const hc::Context& ctx)
      : value(as<T>(v)), grad0(as<T>(rnd(v.rows(), v.cols(), 0.1))), dv(up<T>(value, ctx)), dg(up<T>(grad0, ctx)) {}
  hc::DeviceView<const T> v() const { return dv.cview(); }
  hc::DeviceView<T> g() { return dg.view(); }
  /// What the device added to grad0, against the tape's gradient of ref.
  double grad_err(const CVar& ref, const hc::Context& ctx) const { return grad_err(MD(ref.grad()), ctx); }
  double grad_err(const MD& ref, const hc::Context& ctx) const {
    return rel_err(MD(down(dg, ctx).template cast<double>() - grad0), ref);
  }
  /// True when the device gradient buffer still holds grad0 bit for bit.
  bool untouched(const hc::Context& ctx) const { return rel_err(down(dg, ctx), grad0) == 0.0; }
};

/// The loss every op test ends in: cross_entropy(x·Wᵀ, targets), W: (V, C) trainable (entries
/// uniform in ±scale), targets kTargets unless given.
template <class T>
struct Head {
  using Var = typename hc::Graph<T>::Var;
  Both<T> W;
  std::vector<std::int64_t> tg;
  hc::DeviceBuffer<std::int64_t> targets;
  CVar w;  // W on the reference tape
  Head(Index width, const hc::Context& ctx, double scale = 1.0, const std::vector<std::int64_t>& t = kTargets)
      : W(kV, width, ctx, scale), tg(t), targets(up_ids(tg)) {}
  Var on(hc::Graph<T>& g, Var x) { return g.cross_entropy(g.matmul_nt(x, W.v(), W.g()), targets.data()); }
  CVar on(Tape& t, CVar x) {
    w = t.leaf(W.value);
    return ad::cross_entropy(ad::matmul(x, w, false, true), tg, -1);
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

// ---- linear: every adapter kind, learned scalars, dropout (against nn::AdaptedLinear) ---------------

namespace {
struct AdapterCase {
  const char* name;
  nn::AdapterKind kind;
  double dropout;  // 0.25: exactly representable, so the float and double masks use one threshold
  bool learn_k, learn_s;
};

bool ends_with(const std::string& s, const char* suffix) {
  const std::string t(suffix);
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

/// The device twin of `al`: every parameter of `store` in dev (by store index), the LinearParams
/// filled from the layer's config as examples/transformer/gpt_cuda.cuh does (learned scalars: their
/// stored values as host scalars, gradients into their device buffers).
template <class T>
hc::LinearParams<T> twin(const nn::AdaptedLinear<double>& al, const ad::ParameterStore<double>& store,
                         std::vector<Both<T>>& dev, std::uint64_t step) {
  using Kind = typename hc::LinearParams<T>::Kind;
  const nn::AdapterConfig& c = al.config();
  const auto v = [&](ad::Parameter q) { return q.valid() ? dev[static_cast<std::size_t>(q.index)].v() : hc::DeviceView<const T>{}; };
  const auto g = [&](ad::Parameter q) {
    return q.valid() && store.trainable(q) ? dev[static_cast<std::size_t>(q.index)].g() : hc::DeviceView<T>{};
  };
  const auto host = [&](ad::Parameter q) { return static_cast<T>(dev[static_cast<std::size_t>(q.index)].value(0, 0)); };
  hc::LinearParams<T> p;
  p.W = v(al.base().weight()), p.dW = g(al.base().weight()), p.b = v(al.base().bias()), p.db = g(al.base().bias());
  p.A = v(al.lora_A()), p.dA = g(al.lora_A()), p.B = v(al.lora_B()), p.dB = g(al.lora_B());
  p.gamma = static_cast<T>(c.scaling());
  p.dropout = static_cast<T>(c.dropout);
  p.dropout_seed = al.dropout_seed(step);
  const ad::Parameter k = al.lora_k(), s = al.lora_norm_scale();
  p.sigma = s.valid() ? host(s) : static_cast<T>(c.feature_scale);
  p.dsigma = g(s);
  switch (c.kind) {
    case nn::AdapterKind::lora: p.kind = Kind::lora; break;
    case nn::AdapterKind::dora:
      p.kind = Kind::dora, p.m = v(al.lora_magnitude()), p.dm = g(al.lora_magnitude());
      break;
    case nn::AdapterKind::hyplora:
    case nn::AdapterKind::hyplora_stereographic:
      p.kind = c.kind == nn::AdapterKind::hyplora ? Kind::hyplora : Kind::hyplora_stereographic;
      p.sig_out = c.scale_out_by_sigma;
      if (k.valid()) p.set_radius_from_theta(host(k)), p.dtheta = g(k);
      else p.R = static_cast<T>(std::sqrt(c.K));
      break;
    case nn::AdapterKind::hyplora_official:
      p.kind = Kind::hyplora_official;
      p.theta = k.valid() ? host(k) : static_cast<T>(nn::detail::curvature_to_theta(c.K));
      p.dtheta = g(k);
      break;
    case nn::AdapterKind::hyplora_official_simplified:
      p.kind = Kind::hyplora_official_simplified;
      p.k = k.valid() ? host(k) : static_cast<T>(c.K);
      p.dk = g(k);
      break;
    default: FAIL("no adapter"); break;
  }
  return p;
}
}  // namespace

TEST_CASE_TEMPLATE("linear: every adapter kind, learned and fixed scalars, dropout: value and every gradient match "
                   "nn::AdaptedLinear::forward",
                   T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  using NK = nn::AdapterKind;
  const Index Dout = 6;
  const std::uint64_t step = 7;  // the step seed of both sides
  const std::vector<AdapterCase> cases = {
      {"lora, dropout", NK::lora, 0.25, false, false},
      {"dora", NK::dora, 0.0, false, false},  // x_a = x: ∂s read back from z
      {"dora, dropout", NK::dora, 0.25, false, false},
      {"hyplora, fixed K and sigma, dropout", NK::hyplora, 0.25, false, false},
      {"hyplora, learned K and sigma", NK::hyplora, 0.0, true, true},
      {"hyplora_official, fixed theta and s", NK::hyplora_official, 0.0, false, false},
      {"hyplora_official, learned theta and s", NK::hyplora_official, 0.0, true, true},
      {"hyplora_official, learned theta and s, dropout", NK::hyplora_official, 0.25, true, true},
      {"hyplora_official_simplified, fixed k", NK::hyplora_official_simplified, 0.0, false, false},
      {"hyplora_official_simplified, learned k, dropout", NK::hyplora_official_simplified, 0.25, true, false},
      {"hyplora_stereographic, fixed K", NK::hyplora_stereographic, 0.0, false, false},
      {"hyplora_stereographic, learned K, dropout", NK::hyplora_stereographic, 0.25, true, false},
  };
  for (const AdapterCase& ac : cases) {
    CAPTURE(ac.name);
    nn::AdapterConfig cfg;
    cfg.kind = ac.kind;
    cfg.r = 2;
    cfg.alpha = 1.0;  // γ = 0.5
    cfg.dropout = ac.dropout;
    cfg.seed = 11;
    cfg.learn_curvature = ac.learn_k;
    cfg.learn_feature_scale = ac.learn_s;
    if (nn::is_hyplora(ac.kind)) cfg.K = 0.8;
    if (ac.kind == NK::hyplora || ac.kind == NK::hyplora_official) cfg.feature_scale = 1.7;
    cfg.scale_out_by_sigma = ac.kind == NK::hyplora;
    ad::ParameterStore<double> store;
    nn::AdaptedLinear<double> al(store, "h.0.q", kC, Dout);
    al.attach(store, cfg);
    store.set_trainable(al.base().weight(), true);  // the base trains too: every op's ∂W0 and ∂b
    store.set_trainable(al.base().bias(), true);
    // Every parameter set (the layer leaves W0 and b at 0, B = 0, scalars at their config
    // values), rounded to T; the CPU layer then reads exactly what the device holds. The DoRA
    // magnitude is ‖W0‖_row (its initial value) scaled by 1 ± 0.3 per row.
    REQUIRE(store.count() >= 4);
    REQUIRE(al.base().weight().index == 0);  // W0 first: the magnitude below reads it
    std::vector<Both<T>> dev;
    dev.reserve(static_cast<std::size_t>(store.count()));
    for (int i = 0; i < store.count(); ++i) {
      const ad::Parameter q = store.at_index(i);
      const std::string& nm = store.info(q).name;
      MD v = store.value(q);
      if (q.index == al.base().weight().index) v = rnd(v.rows(), v.cols(), 0.5);
      if (q.index == al.base().bias().index) v = rnd(v.rows(), v.cols(), 0.5);
      if (ends_with(nm, ".lora_B")) v = rnd(v.rows(), v.cols(), 0.5);
      if (ends_with(nm, ".lora_magnitude"))
        v = MD(dev[0].value.rowwise().norm().transpose()).cwiseProduct(MD(MD::Ones(1, v.cols()) + rnd(1, v.cols(), 0.3)));
      if (ends_with(nm, ".lora_k") || ends_with(nm, ".lora_norm_scale")) v.array() += 0.1 * rnd(1, 1).array();
      dev.emplace_back(v, ctx);
      store.value(q) = dev.back().value;
    }
    Both<T> x(kN, kC, ctx, 1.5);
    // A small head keeps the official θ-gradient inside its ±0.01 clamp (|∂θ| ≲ 1e-3 here), so
    // the comparison sees the real gradient; relative errors do not depend on the head's scale.
    Head<T> head(Dout, ctx, 0.005, kSkewTargets);
    const hc::LinearParams<T> p = twin<T>(al, store, dev, step);
    hc::Graph<T> g(ctx);
    const auto z = g.linear(g.input(x.v(), x.g()), p);
    const auto loss = head.on(g, z);
    g.backward(loss);

    store.zero_grad();
    Tape t;
    const CVar cx = t.leaf(x.value);
    const CVar cz = al.forward(t, store, cx, /*training=*/true, step);
    const CVar closs = head.on(t, cz);
    t.backward(closs);

    CHECK(rel_err(value_of(g, z, ctx), MD(cz.value())) < tol_value<T>());
    head.check(g, loss, closs, ctx);
    CHECK(x.grad_err(cx, ctx) < tol_grad<T>());  // the base map's and (through dropout) the adapter's
    for (int i = 0; i < store.count(); ++i) {
      const ad::Parameter q = store.at_index(i);
      const std::string& nm = store.info(q).name;
      CAPTURE(nm);
      const MD ref = store.grad(q);
      REQUIRE(store.trainable(q));
      CHECK(ref.cwiseAbs().maxCoeff() > 0.0);  // every parameter is reached (else the check says little)
      const bool scalar = ends_with(nm, ".lora_k") || ends_with(nm, ".lora_norm_scale");
      CHECK(dev[static_cast<std::size_t>(i)].grad_err(ref, ctx) < (scalar ? 10 : 1) * tol_grad<T>());
      if (ac.kind == NK::hyplora_official && ends_with(nm, ".lora_k"))
        CHECK_MESSAGE(std::abs(ref(0, 0)) < 0.01, "theta's gradient ", ref(0, 0), " is clamped: a weaker comparison");
    }
    if (ac.dropout > 0) {  // the mask drops something: without dropout the CPU layer gives another z
      Tape te;
      const CVar ce = al.forward(te, store, te.constant(x.value), /*training=*/false, step);
      CHECK(rel_err(MatrixR<double>(ce.value()), MD(cz.value())) > 1e-3);
    }
  }
}

TEST_CASE_TEMPLATE("linear rejects dropout, a magnitude or a scalar gradient its kind has no use for", T, float,
                   double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  using Kind = typename hc::LinearParams<T>::Kind;
  const Index Dout = 6, R = 2;
  Both<T> x(kN, kC, ctx), W(Dout, kC, ctx), A(R, kC, ctx), Bm(Dout, R, ctx), m(1, Dout, ctx), th(1, 1, ctx);
  hc::Graph<T> g(ctx);
  const auto xi = g.input(x.v(), x.g());
  hc::LinearParams<T> plain;
  plain.W = W.v();
  plain.dropout = T(0.25);
  CHECK_THROWS_AS(g.linear(xi, plain), hyplora::value_error);  // plain has no adapter input
  hc::LinearParams<T> lora;
  lora.kind = Kind::lora, lora.W = W.v(), lora.A = A.v(), lora.B = Bm.v();
  CHECK_NOTHROW(g.linear(xi, lora));
  lora.dtheta = th.g();
  CHECK_THROWS_AS(g.linear(xi, lora), hyplora::value_error);
  lora.dtheta = {};
  lora.m = m.v();
  CHECK_THROWS_AS(g.linear(xi, lora), hyplora::value_error);
  hc::LinearParams<T> st = lora;
  st.m = {};
  st.kind = Kind::hyplora_stereographic;
  st.dsigma = th.g();  // the stereographic kind has no σ
  CHECK_THROWS_AS(g.linear(xi, st), hyplora::value_error);
  st.dsigma = {};
  st.dk = th.g();
  CHECK_THROWS_AS(g.linear(xi, st), hyplora::value_error);
  st.dk = {};
  st.dropout = T(1);  // p must be < 1 (dropout_forward's check)
  CHECK_THROWS_AS(g.linear(xi, st), hyplora::value_error);
  st.dropout = T(0);
  st.dtheta = th.g();
  CHECK_NOTHROW(g.linear(xi, st));
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
