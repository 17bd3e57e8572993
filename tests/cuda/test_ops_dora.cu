// Tests for include/hyplora/cuda/ops_dora.cuh against the CPU's fused DoRA nodes on a Tape<double>
// (ad::dora_scale + ad::dora_linear_scaled, what nn::dora_linear builds): the value z, the scale s,
// the per-row "recomputed" flags, and every gradient (x, x_a, W0, A, B, m, bias), accumulated on
// top of random initial gradients. Cases cover x_a = x and a separate x_a, with and without bias,
// rows whose quadratic form cancels (V_i streamed, Eq. (261)), columns whose ∂s cannot be read
// back from z (a dominating bias, s_j = 0: recomputed, Eq. (269)), D_in > 256 and R > 256 (the
// device's shared-memory tiles and j-blocks), N > 4096 (the backward's token chunks), and B = 0.
// Without a CUDA device the binary prints "SKIPPED: no CUDA device" and returns 77.
//
// Tolerances (device_compare.cuh, normwise against the double reference): double 1e-10; float
// 2e-4 values, 5e-4 gradients — GEMM depths here are ≤ 4100 tokens (dW0, dB) and ≤ 300 widths.
// A formula or index error shows as O(1e-2) or worse.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include <hyplora/autodiff/ops_dora.hpp>
#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/device.hpp>
#include <hyplora/cuda/device_tensor.hpp>
#include <hyplora/cuda/ops_dora.cuh>
#include <hyplora/nn/dora.hpp>

#include "device_compare.cuh"

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace hc = hyplora::cuda;
namespace ad = hyplora::ad;
using namespace hyplora::cuda::testing;  // tol_value, tol_grad, rnd, rel_err, up, down, as

struct DoRACase {
  Index N, Din, Dout, r;
  bool bias, separate_xa;
  bool cancel;    // rows 1 and D_out − 2 of W0 ≈ −γ·B_i·A: the form cancels, V_i is streamed
  bool fallback;  // column 3's bias dominates its y (recomputed); m_4 = 0 so s_4 = 0 (recomputed)
  bool zero_B;    // B = 0: s = m/‖W0‖_row
  const char* what;
};
const DoRACase kCases[] = {
    {37, 29, 23, 5, true, false, false, false, false, "x_a = x, bias"},
    {37, 29, 23, 5, false, true, false, false, false, "separate x_a, no bias"},
    {37, 29, 23, 5, true, true, true, false, false, "separate x_a, cancelling rows"},
    {19, 29, 23, 5, true, false, true, true, false, "x_a = x, cancelling rows, recomputed columns"},
    {11, 300, 70, 260, true, false, true, true, false, "D_in > 256, R > 256, D_out > 32"},
    {11, 300, 70, 260, false, true, true, false, false, "D_in > 256, R > 256, separate x_a"},
    {4100, 16, 12, 3, true, true, false, false, false, "N > 4096: two token chunks, separate x_a"},
    {4100, 16, 12, 3, false, false, false, true, false, "N > 4096, x_a = x, recomputed column"},
    {37, 29, 23, 5, true, false, false, false, true, "B = 0"},
    {1, 1, 1, 1, true, false, false, false, false, "1×1 everything"},
};

struct DoRAData {
  MD X, Xa, W0, A, B, m, b, G;
  MD dX0, dXa0, dW00, dA0, dB0, dm0, db0;
};

DoRAData make_data(const DoRACase& c, double gamma) {
  DoRAData d;
  d.X = rnd(c.N, c.Din);
  d.Xa = c.separate_xa ? rnd(c.N, c.Din) : d.X;
  d.W0 = rnd(c.Dout, c.Din, 0.5);
  d.A = rnd(c.r, c.Din, 0.6);
  d.B = c.zero_B ? MD::Zero(c.Dout, c.r) : rnd(c.Dout, c.r, 0.7);
  d.m = rnd(1, c.Dout) + MD::Constant(1, c.Dout, 1.5);
  d.b = rnd(1, c.Dout);
  d.G = rnd(c.N, c.Dout);
  // Cancelling rows: V_i = 0.2·rms(γB_iA)·(uniform noise), ‖V_i‖ ≈ 0.12·‖γB_iA‖, so
  // ‖V_i‖² ≈ 0.003·(‖W0_i‖ + ‖γB_iA‖)², far below the 1/4 threshold, yet only ~9× cancellation:
  // float's rounding (times R-deep sums) stays well inside tol_grad.
  if (c.cancel)
    for (Index i : {Index(1), c.Dout - 2}) {
      const MD gba = gamma * d.B.row(i) * d.A;
      const double rms = gba.norm() / std::sqrt(static_cast<double>(c.Din));
      d.W0.row(i) = -gba + 0.2 * rms * rnd(1, c.Din);
    }
  if (c.fallback) {
    d.b(0, 3) = 60.0;  // |b_3|·Σ|G| far above 4·Σ|G·y| (|y| ~ 1)
    d.m(0, 4) = 0.0;   // s_4 = 0: y cannot be read back at all
  }
  d.dX0 = rnd(c.N, c.Din);
  d.dXa0 = rnd(c.N, c.Din);
  d.dW00 = rnd(c.Dout, c.Din);
  d.dA0 = rnd(c.r, c.Din);
  d.dB0 = rnd(c.Dout, c.r);
  d.dm0 = rnd(1, c.Dout);
  d.db0 = rnd(1, c.Dout);
  return d;
}

template <class T>
void round_to(DoRAData& d) {
  for (MD* p : {&d.X, &d.Xa, &d.W0, &d.A, &d.B, &d.m, &d.b, &d.G, &d.dX0, &d.dXa0, &d.dW00, &d.dA0, &d.dB0, &d.dm0,
                &d.db0})
    *p = as<T>(*p);
}

MD to_md(const ad::ConstTensorView<double>& v) { return MD(v); }
}  // namespace

TEST_CASE_TEMPLATE("dora_forward/backward match the CPU DoRA nodes (value, s, every gradient)", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const double gamma = 1.25;
  for (const auto& c : kCases) {
    const std::string what = c.what;  // CAPTURE of a const char* logs the pointer
    CAPTURE(what);
    DoRAData d = make_data(c, gamma);
    round_to<T>(d);

    ad::Tape<double> t;
    auto x = t.leaf(d.X), W0 = t.leaf(d.W0), A = t.leaf(d.A), B = t.leaf(d.B), m = t.leaf(d.m), b = t.leaf(d.b);
    auto xa = c.separate_xa ? t.leaf(d.Xa) : x;
    auto s = ad::dora_scale(W0, A, B, m, gamma);
    auto z = ad::dora_linear_scaled(x, W0, xa, A, B, s, gamma, c.bias ? b : ad::Var<double>{});
    t.backward(z, d.G);
    const MD& cpu_rows = t.node(s.id).saved[ad::detail::kDoraRows];
    Index n_exact = 0;
    for (Index i = 0; i < c.Dout; ++i) n_exact += cpu_rows(i, ad::detail::kDoraExact) != 0.0 ? 1 : 0;
    if (c.cancel) {  // the streamed path is exercised (a random row may cancel too: fine)
      REQUIRE(n_exact >= 2);
      REQUIRE(cpu_rows(1, ad::detail::kDoraExact) == 1.0);
      REQUIRE(cpu_rows(c.Dout - 2, ad::detail::kDoraExact) == 1.0);
    }
    if (c.fallback && c.bias) {  // column 3 fails the read-back test of Eq. (269) on the CPU
      const MD Zc = to_md(z.value());
      double sg = 0, sgy = 0;
      for (Index n = 0; n < c.N; ++n) {
        sg += std::abs(d.G(n, 3));
        sgy += std::abs(d.G(n, 3) * (Zc(n, 3) - d.b(0, 3)));
      }
      REQUIRE(std::abs(d.b(0, 3)) * sg > 4.0 * sgy);
    }

    auto dX = up<T>(d.X, ctx), dXa = up<T>(d.Xa, ctx), dW0 = up<T>(d.W0, ctx), dA = up<T>(d.A, ctx),
         dB = up<T>(d.B, ctx), dm = up<T>(d.m, ctx), db = up<T>(d.b, ctx), dG = up<T>(d.G, ctx);
    auto gX = up<T>(d.dX0, ctx), gXa = up<T>(d.dXa0, ctx), gW0 = up<T>(d.dW00, ctx), gA = up<T>(d.dA0, ctx),
         gB = up<T>(d.dB0, ctx), gm = up<T>(d.dm0, ctx), gb = up<T>(d.db0, ctx);
    hc::DoRAInputs<T> in{dX.cview(),  dW0.cview(), c.separate_xa ? dXa.cview() : dX.cview(),
                         dA.cview(),  dB.cview(),  dm.cview(),
                         c.bias ? db.cview() : hc::DeviceView<const T>{}, T(gamma)};
    hc::DoRAGrads<T> gr{gX.view(), gW0.view(), c.separate_xa ? gXa.view() : hc::DeviceView<T>{}, gA.view(), gB.view(),
                        gm.view(), c.bias ? gb.view() : hc::DeviceView<T>{}};
    hc::DeviceTensor<T> dz;
    hc::DoRASaved<T> saved;
    hc::dora_forward<T>(ctx, in, dz, saved);
    hc::dora_backward<T>(ctx, in, saved, dz.cview(), dG.cview(), gr);

    const MD zref = to_md(z.value());
    const MD bias_rows = c.bias ? MD(d.b.replicate(c.N, 1)) : MD::Zero(c.N, c.Dout);
    CHECK(rel_err(down(dz, ctx), zref) < tol_value<T>());
    // Without the bias too: a large bias column must not hide the error of the others.
    CHECK(rel_err(MD(down(dz, ctx).template cast<double>() - bias_rows), MD(zref - bias_rows)) < tol_value<T>());
    CHECK(rel_err(down(saved.s, ctx), to_md(s.value())) < tol_value<T>());
    const MatrixR<T> rows = down(saved.rows, ctx);
    for (Index i = 0; i < c.Dout; ++i) {
      CAPTURE(i);
      CHECK(static_cast<double>(rows(i, 1)) == cpu_rows(i, ad::detail::kDoraExact));  // same path per row
    }
    CHECK(rel_err(MatrixR<T>(rows.col(0)), MD(cpu_rows.col(ad::detail::kDoraNorm))) < tol_value<T>());
    if (c.zero_B) {  // s = m/‖W0‖_row exactly as in the CPU test; A's gradient is 0 on both sides
      MD s_expected(1, c.Dout);
      for (Index i = 0; i < c.Dout; ++i) s_expected(0, i) = d.m(0, i) / d.W0.row(i).norm();
      CHECK(rel_err(down(saved.s, ctx), s_expected) < tol_value<T>());
      CHECK(to_md(A.grad()).cwiseAbs().maxCoeff() == 0.0);
      CHECK(down(gA, ctx).template cast<double>() == d.dA0);
    }
    CHECK(rel_err(down(gX, ctx), MD(d.dX0 + to_md(x.grad()))) < tol_grad<T>());
    if (c.separate_xa) CHECK(rel_err(down(gXa, ctx), MD(d.dXa0 + to_md(xa.grad()))) < tol_grad<T>());
    CHECK(rel_err(down(gW0, ctx), MD(d.dW00 + to_md(W0.grad()))) < tol_grad<T>());
    CHECK(rel_err(down(gA, ctx), MD(d.dA0 + to_md(A.grad()))) < tol_grad<T>());
    CHECK(rel_err(down(gB, ctx), MD(d.dB0 + to_md(B.grad()))) < tol_grad<T>());
    CHECK(rel_err(down(gm, ctx), MD(d.dm0 + to_md(m.grad()))) < tol_grad<T>());
    if (c.bias) CHECK(rel_err(down(gb, ctx), MD(d.db0 + to_md(b.grad()))) < tol_grad<T>());
    // The gradients alone (initial values subtracted): the accumulated offsets must not hide errors.
    CHECK(rel_err(MD(down(gm, ctx).template cast<double>() - d.dm0), to_md(m.grad())) < tol_grad<T>());
    if (c.Din == 1 && c.Dout == 1) {
      // s·W = m·sign(W) for a 1×1 layer: the W0, A and B gradients vanish analytically, and both
      // sides hold rounding noise (first seen on the CUDA host emulator: the relative error of
      // noise against noise is meaningless). It must be noise at the scale of the other gradients.
      const double scale = to_md(x.grad()).cwiseAbs().maxCoeff() + to_md(m.grad()).cwiseAbs().maxCoeff();
      REQUIRE(scale > 0.0);
      for (const MD& cpu : {to_md(W0.grad()), to_md(A.grad()), to_md(B.grad())})
        CHECK(cpu.cwiseAbs().maxCoeff() <= 1e-12 * scale);
      CHECK(MD(down(gW0, ctx).template cast<double>() - d.dW00).cwiseAbs().maxCoeff() <= tol_grad<T>() * scale);
      CHECK(MD(down(gA, ctx).template cast<double>() - d.dA0).cwiseAbs().maxCoeff() <= tol_grad<T>() * scale);
      CHECK(MD(down(gB, ctx).template cast<double>() - d.dB0).cwiseAbs().maxCoeff() <= tol_grad<T>() * scale);
    } else {
      CHECK(rel_err(MD(down(gW0, ctx).template cast<double>() - d.dW00), to_md(W0.grad())) < tol_grad<T>());
      CHECK(rel_err(MD(down(gB, ctx).template cast<double>() - d.dB0), to_md(B.grad())) < tol_grad<T>());
      if (!c.zero_B)
        CHECK(rel_err(MD(down(gA, ctx).template cast<double>() - d.dA0), to_md(A.grad())) < tol_grad<T>());
    }
  }
}

TEST_CASE_TEMPLATE("dora_backward with x_a = x takes the input gradient from dx or dx_a, and only needed ones",
                   T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const DoRACase c{9, 13, 7, 2, true, false, false, false, false, "small"};
  DoRAData d = make_data(c, 0.5);
  round_to<T>(d);
  ad::Tape<double> t;
  auto x = t.leaf(d.X), W0 = t.leaf(d.W0, false), A = t.leaf(d.A), B = t.leaf(d.B), m = t.leaf(d.m), b = t.leaf(d.b);
  auto z = hyplora::nn::dora_linear(x, W0, x, A, B, m, 0.5, b);  // W0 frozen, as in fine-tuning
  t.backward(z, d.G);
  auto dX = up<T>(d.X, ctx), dW0 = up<T>(d.W0, ctx), dA = up<T>(d.A, ctx), dB = up<T>(d.B, ctx), dm = up<T>(d.m, ctx),
       db = up<T>(d.b, ctx), dG = up<T>(d.G, ctx);
  hc::DoRAInputs<T> in{dX.cview(), dW0.cview(), dX.cview(), dA.cview(), dB.cview(), dm.cview(), db.cview(), T(0.5)};
  hc::DeviceTensor<T> dz;
  hc::DoRASaved<T> saved;
  hc::dora_forward<T>(ctx, in, dz, saved);
  CHECK(rel_err(down(dz, ctx), to_md(z.value())) < tol_value<T>());
  for (int variant = 0; variant < 3; ++variant) {  // dx only, dx_a only, both the same view
    CAPTURE(variant);
    auto gX = up<T>(d.dX0, ctx), gA = up<T>(d.dA0, ctx), gB = up<T>(d.dB0, ctx), gm = up<T>(d.dm0, ctx),
         gb = up<T>(d.db0, ctx);
    hc::DoRAGrads<T> gr{variant != 1 ? gX.view() : hc::DeviceView<T>{}, {}, variant != 0 ? gX.view() : hc::DeviceView<T>{},
                        gA.view(), gB.view(), gm.view(), gb.view()};
    hc::dora_backward<T>(ctx, in, saved, dz.cview(), dG.cview(), gr);
    CHECK(rel_err(down(gX, ctx), MD(d.dX0 + to_md(x.grad()))) < tol_grad<T>());
    CHECK(rel_err(down(gA, ctx), MD(d.dA0 + to_md(A.grad()))) < tol_grad<T>());
    CHECK(rel_err(down(gB, ctx), MD(d.dB0 + to_md(B.grad()))) < tol_grad<T>());
    CHECK(rel_err(down(gm, ctx), MD(d.dm0 + to_md(m.grad()))) < tol_grad<T>());
    CHECK(rel_err(down(gb, ctx), MD(d.db0 + to_md(b.grad()))) < tol_grad<T>());
  }
  // Only the magnitude: the other buffers are untouched.
  auto gm = up<T>(d.dm0, ctx), gA = up<T>(d.dA0, ctx);
  hc::DoRAGrads<T> only_m{{}, {}, {}, {}, {}, gm.view(), {}};
  hc::dora_backward<T>(ctx, in, saved, dz.cview(), dG.cview(), only_m);
  CHECK(rel_err(down(gm, ctx), MD(d.dm0 + to_md(m.grad()))) < tol_grad<T>());
  CHECK(down(gA, ctx).template cast<double>() == d.dA0);
  // Two different views for the one input: rejected.
  auto gX1 = up<T>(d.dX0, ctx), gX2 = up<T>(d.dX0, ctx);
  hc::DoRAGrads<T> two{gX1.view(), {}, gX2.view(), {}, {}, {}, {}};
  CHECK_THROWS_AS(hc::dora_backward<T>(ctx, in, saved, dz.cview(), dG.cview(), two), hyplora::value_error);
}

TEST_CASE("a repeated DoRA step calls cudaMalloc only in its first step") {
  hc::CachingAllocator alloc;
  hc::DeviceContext dc(alloc);
  const auto ctx = dc.context();
  const Index N = 64, Din = 96, Dout = 80, r = 8;
  auto X = up<float>(rnd(N, Din), ctx), W0 = up<float>(rnd(Dout, Din), ctx), A = up<float>(rnd(r, Din), ctx),
       B = up<float>(rnd(Dout, r), ctx), m = up<float>(MD::Constant(1, Dout, 2.0), ctx), G = up<float>(rnd(N, Dout), ctx);
  hc::DeviceTensor<float> gX(N, Din, alloc), gA(r, Din, alloc), gB(Dout, r, alloc), gm(1, Dout, alloc), z(0, 0, alloc);
  gX.set_zero(ctx.stream);
  gA.set_zero(ctx.stream);
  gB.set_zero(ctx.stream);
  gm.set_zero(ctx.stream);
  hc::DoRASaved<float> saved;
  hc::DoRAInputs<float> in{X.cview(), W0.cview(), X.cview(), A.cview(), B.cview(), m.cview(), {}, 2.f};
  hc::DoRAGrads<float> gr{gX.view(), {}, {}, gA.view(), gB.view(), gm.view(), {}};
  std::size_t after_first = 0;
  for (int step = 0; step < 4; ++step) {
    hc::dora_forward<float>(ctx, in, z, saved);
    hc::dora_backward<float>(ctx, in, saved, z.cview(), G.cview(), gr);
    if (step == 0) after_first = alloc.stats().malloc_calls;
  }
  dc.synchronize();
  CHECK(after_first > 0);
  CHECK(alloc.stats().malloc_calls == after_first);
  CHECK(down(gA, ctx).allFinite());
  CHECK(down(gm, ctx).allFinite());
}

TEST_CASE("dora_forward rejects bad shapes with the CPU nodes' messages") {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  struct Bad {
    Index xr, xc, xar, xac, wr, wc, ar, ac, br, bc, mr, mc, biasc;
    const char* what;
  };
  const Bad bads[] = {
      {4, 6, 4, 6, 5, 6, 2, 7, 5, 2, 1, 5, 5, "A's width"},
      {4, 6, 4, 6, 5, 6, 2, 6, 5, 3, 1, 5, 5, "B's rank"},
      {4, 6, 4, 6, 5, 6, 2, 6, 4, 2, 1, 5, 5, "B's rows"},
      {4, 6, 4, 6, 5, 6, 2, 6, 5, 2, 1, 4, 5, "magnitude"},
      {4, 6, 4, 6, 5, 6, 2, 6, 5, 2, 2, 5, 5, "magnitude rows"},
      {4, 7, 4, 7, 5, 6, 2, 6, 5, 2, 1, 5, 5, "x's width"},
      {4, 6, 4, 6, 5, 6, 2, 6, 5, 2, 1, 5, 4, "bias"},
      {4, 6, 3, 6, 5, 6, 2, 6, 5, 2, 1, 5, 5, "x_a"},
  };
  for (const Bad& k : bads) {
    CAPTURE(k.what);
    // CPU: what nn::dora_linear builds (dora_scale checks first, then dora_linear_scaled).
    std::string cpu, dev;
    try {
      ad::Tape<double> t;
      auto x = t.leaf(MD::Ones(k.xr, k.xc));
      auto xa = k.xar == k.xr && k.xac == k.xc ? x : t.leaf(MD::Ones(k.xar, k.xac));
      (void)hyplora::nn::dora_linear(x, t.leaf(MD::Ones(k.wr, k.wc)), xa, t.leaf(MD::Ones(k.ar, k.ac)),
                                     t.leaf(MD::Ones(k.br, k.bc)), t.leaf(MD::Ones(k.mr, k.mc)), 1.0,
                                     t.leaf(MD::Ones(1, k.biasc)));
    } catch (const hyplora::shape_error& e) {
      cpu = e.what();
    }
    hc::DeviceTensor<float> x(k.xr, k.xc), xa(k.xar, k.xac), W0(k.wr, k.wc), A(k.ar, k.ac), B(k.br, k.bc),
        m(k.mr, k.mc), bias(1, k.biasc), z;
    hc::DoRASaved<float> saved;
    const bool same = k.xar == k.xr && k.xac == k.xc;
    hc::DoRAInputs<float> in{x.cview(), W0.cview(), same ? x.cview() : xa.cview(), A.cview(), B.cview(), m.cview(),
                             bias.cview(), 1.f};
    try {
      hc::dora_forward<float>(ctx, in, z, saved);
    } catch (const hyplora::shape_error& e) {
      dev = e.what();
    }
    REQUIRE(cpu.find(": ") != std::string::npos);
    REQUIRE(dev.find(": ") != std::string::npos);
    CHECK(dev.substr(dev.find(": ")) == cpu.substr(cpu.find(": ")));  // the same shapes, named alike
    CHECK(dev.rfind("cuda::dora_forward", 0) == 0);
  }
}
