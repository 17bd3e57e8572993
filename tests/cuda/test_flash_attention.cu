// Tests for cuda/kernels/flash_attention.cuh: the fused causal attention against the CPU op
// ad::causal_self_attention on ad::Tape<double> (the reference) and against the simple device
// kernels (kernels/attention.cuh). Without a CUDA device the binary prints "SKIPPED: no CUDA
// device" and returns 77.
//
// Tolerances: device_compare.cuh's (normwise max|got − ref| / max|ref|): double 1e-10; float 2e-4
// values, 5e-4 gradients. The flash kernels' sums have the depths of the simple ones (Dh for a
// score, up to T for an output or gradient element) plus the online rescaling (one multiply per
// key tile), so the same float bounds hold; an index, mask or tile-edge error shows as O(1e-1)
// or as a non-finite value (every output starts as NaN, see poison()). Flash vs simple: both are
// within these bounds of the reference and their measured differences are rounding-sized, so
// the same bounds are used (not doubled). The saved log-sum-exp L is compared with a host
// evaluation in double, relative to max(1, max|L|) (L of a short row can be ≈ 0).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <hyplora/autodiff/ops_attention.hpp>
#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/device.hpp>
#include <hyplora/cuda/device_tensor.hpp>
#include <hyplora/cuda/kernels/attention.cuh>
#include <hyplora/cuda/kernels/flash_attention.cuh>

#include "device_compare.cuh"

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace hc = hyplora::cuda;
namespace ad = hyplora::ad;
using namespace hyplora::cuda::testing;  // tol_value, tol_grad, rnd, rel_err, up, down, as

/// Fills a device tensor with all-ones bytes (NaN in float and double), so an element a kernel
/// forgets to write shows as non-finite.
template <class T>
void poison(hc::DeviceTensor<T>& t, const hc::Context& ctx) {
  if (t.size() > 0) HYPLORA_CUDA_CHECK(cudaMemsetAsync(t.data(), 0xFF, t.bytes(), ctx.stream));
}

template <class T>
bool finite(const MatrixR<T>& m) {
  return m.allFinite();
}

template <class T>
bool bitwise_equal(const MatrixR<T>& a, const MatrixR<T>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && (a.array() == b.array()).all();
}

/// L (B·H, T) in double on the host: L_bh,i = log Σ_{j ≤ i} exp(s·q_i·k_j), max-subtracted.
MD lse_reference(const MD& Q, const MD& K, Index B, Index Tn, Index H) {
  const Index C = Q.cols(), Dh = C / H;
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
  MD L(B * H, Tn);
  for (Index b = 0; b < B; ++b)
    for (Index h = 0; h < H; ++h)
      for (Index i = 0; i < Tn; ++i) {
        const auto qi = Q.row(b * Tn + i).segment(h * Dh, Dh);
        std::vector<double> s(static_cast<std::size_t>(i + 1));
        double m = -HUGE_VAL;
        for (Index j = 0; j <= i; ++j) {
          s[static_cast<std::size_t>(j)] = scale * qi.dot(K.row(b * Tn + j).segment(h * Dh, Dh));
          m = std::max(m, s[static_cast<std::size_t>(j)]);
        }
        double l = 0;
        for (double x : s) l += std::exp(x - m);
        L(b * H + h, i) = m + std::log(l);
      }
  return L;
}

struct Case {
  Index B, Tn, H, Dh;
  double qscale;  // q multiplied by this (large logits)
  bool ramp;      // key row j scaled by 0.25 + 1.75·j/T: the running max grows along the keys
};
}  // namespace

TEST_CASE_TEMPLATE("flash_attention matches ad::causal_self_attention and the simple kernels", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  // Tiles: forward 32 rows (16 for double with Dh > 64), backward 32/16/8 by dtype and Dh class.
  // T = 1, 7 (one partial tile), 33 (one row past a tile), 64 (exact tiles), 130 (several tiles
  // plus 2 rows); Dh = 1, 8, 32 (≤ 32 class), 33, 64 (64 class), 100, 128 (128 class).
  const Case cases[] = {
      {1, 1, 1, 8, 1.0, false},    {2, 7, 3, 8, 1.0, false},   {3, 33, 2, 32, 1.0, false},
      {1, 64, 2, 32, 1.0, false},  {2, 130, 4, 64, 1.0, false}, {1, 130, 1, 128, 1.0, false},
      {3, 33, 4, 128, 1.0, false}, {2, 40, 3, 33, 1.0, false},  {1, 50, 2, 100, 1.0, false},
      {2, 9, 2, 1, 1.0, false},    {2, 130, 2, 64, 30.0, true}, {1, 33, 3, 128, 30.0, true},
      {3, 7, 1, 32, 30.0, false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.B);
    CAPTURE(c.Tn);
    CAPTURE(c.H);
    CAPTURE(c.Dh);
    CAPTURE(c.qscale);
    const Index N = c.B * c.Tn, C = c.H * c.Dh;
    MD Kr = rnd(N, C);
    if (c.ramp)
      for (Index r = 0; r < N; ++r) Kr.row(r) *= 0.25 + 1.75 * static_cast<double>(r % c.Tn) / static_cast<double>(c.Tn);
    const MD Q = as<T>(rnd(N, C, c.qscale)), K = as<T>(Kr), Vv = as<T>(rnd(N, C)), G = as<T>(rnd(N, C));
    const MD dq0 = as<T>(rnd(N, C)), dk0 = as<T>(rnd(N, C)), dv0 = as<T>(rnd(N, C));
    ad::Tape<double> t;
    auto q = t.leaf(Q), k = t.leaf(K), v = t.leaf(Vv);
    auto o = ad::causal_self_attention(q, k, v, c.B, c.Tn, c.H);
    t.backward(o, G);
    const MD ref_dq = dq0 + q.grad(), ref_dk = dk0 + k.grad(), ref_dv = dv0 + v.grad();

    auto dQ = up<T>(Q, ctx), dK = up<T>(K, ctx), dV = up<T>(Vv, ctx), dG = up<T>(G, ctx);

    // Flash, accumulating into non-zero gradients.
    auto gq = up<T>(dq0, ctx), gk = up<T>(dk0, ctx), gv = up<T>(dv0, ctx);
    hc::DeviceTensor<T> out(N, C, *ctx.alloc);
    poison(out, ctx);
    hc::FlashAttentionSaved<T> saved;
    hc::flash_attention_forward<T>(ctx, dQ.cview(), dK.cview(), dV.cview(), c.B, c.Tn, c.H, out.view(), saved);
    hc::flash_attention_backward<T>(ctx, saved, c.B, c.Tn, c.H, dG.cview(), gq.view(), gk.view(), gv.view());
    const MatrixR<T> fo = down(out, ctx), fq = down(gq, ctx), fk = down(gk, ctx), fv = down(gv, ctx);
    CHECK(finite(fo));
    CHECK(finite(fq));
    CHECK(finite(fk));
    CHECK(finite(fv));
    const double eo = rel_err(fo, MD(o.value())), eq = rel_err(fq, ref_dq), ek = rel_err(fk, ref_dk),
                 ev = rel_err(fv, ref_dv);
    std::printf("flash %s B=%ld T=%ld H=%ld Dh=%ld qscale=%g: rel err out %.2e dq %.2e dk %.2e dv %.2e\n",
                sizeof(T) == 4 ? "float" : "double", static_cast<long>(c.B), static_cast<long>(c.Tn),
                static_cast<long>(c.H), static_cast<long>(c.Dh), c.qscale, eo, eq, ek, ev);
    CHECK(eo < tol_value<T>());
    CHECK(eq < tol_grad<T>());
    CHECK(ek < tol_grad<T>());
    CHECK(ev < tol_grad<T>());

    // The saved log-sum-exp: (B·H, T), against a host evaluation.
    REQUIRE(saved.lse.rows() == c.B * c.H);
    REQUIRE(saved.lse.cols() == c.Tn);
    const MatrixR<T> L = down(saved.lse, ctx);
    CHECK(finite(L));
    const MD Lref = lse_reference(Q, K, c.B, c.Tn, c.H);
    const double el = (L.template cast<double>() - Lref).cwiseAbs().maxCoeff() / std::max(1.0, Lref.cwiseAbs().maxCoeff());
    CHECK(el < tol_value<T>());

    // The simple kernels, same inputs and initial gradients.
    auto sq = up<T>(dq0, ctx), sk = up<T>(dk0, ctx), sv = up<T>(dv0, ctx);
    hc::DeviceTensor<T> sout(N, C, *ctx.alloc);
    hc::AttentionSaved<T> ssaved;
    hc::causal_attention_forward<T>(ctx, dQ.cview(), dK.cview(), dV.cview(), c.B, c.Tn, c.H, sout.view(), ssaved);
    hc::causal_attention_backward<T>(ctx, ssaved, c.B, c.Tn, c.H, dG.cview(), sq.view(), sk.view(), sv.view());
    CHECK(rel_err(fo, MD(down(sout, ctx).template cast<double>())) < tol_value<T>());
    CHECK(rel_err(fq, MD(down(sq, ctx).template cast<double>())) < tol_grad<T>());
    CHECK(rel_err(fk, MD(down(sk, ctx).template cast<double>())) < tol_grad<T>());
    CHECK(rel_err(fv, MD(down(sv, ctx).template cast<double>())) < tol_grad<T>());

    // Deterministic: a second forward and backward (fresh zero gradients, twice) are bit-identical.
    hc::DeviceTensor<T> out2(N, C, *ctx.alloc);
    poison(out2, ctx);
    hc::FlashAttentionSaved<T> saved2;
    hc::flash_attention_forward<T>(ctx, dQ.cview(), dK.cview(), dV.cview(), c.B, c.Tn, c.H, out2.view(), saved2);
    CHECK(bitwise_equal(down(out2, ctx), fo));
    CHECK(bitwise_equal(down(saved2.lse, ctx), L));
    MatrixR<T> first[3];
    for (int rep = 0; rep < 2; ++rep) {
      hc::DeviceTensor<T> zq(N, C, *ctx.alloc), zk(N, C, *ctx.alloc), zv(N, C, *ctx.alloc);
      zq.set_zero(ctx.stream);
      zk.set_zero(ctx.stream);
      zv.set_zero(ctx.stream);
      hc::flash_attention_backward<T>(ctx, saved2, c.B, c.Tn, c.H, dG.cview(), zq.view(), zk.view(), zv.view());
      const MatrixR<T> got[3] = {down(zq, ctx), down(zk, ctx), down(zv, ctx)};
      for (int g = 0; g < 3; ++g) {
        if (rep == 0)
          first[g] = got[g];
        else
          CHECK(bitwise_equal(got[g], first[g]));
      }
      if (rep == 0) {  // from zero: the gradients alone
        CHECK(rel_err(got[0], MD(q.grad())) < tol_grad<T>());
        CHECK(rel_err(got[1], MD(k.grad())) < tol_grad<T>());
        CHECK(rel_err(got[2], MD(v.grad())) < tol_grad<T>());
      }
    }

    // Absent gradient views: each gradient alone (the dK/dV pass with one of its outputs, the dQ
    // pass alone) equals the full call's; nothing else is touched.
    const hc::DeviceView<T> none{};
    {
      auto only = up<T>(dk0, ctx), other = up<T>(dq0, ctx);
      hc::flash_attention_backward<T>(ctx, saved, c.B, c.Tn, c.H, dG.cview(), none, only.view(), none);
      CHECK(bitwise_equal(down(only, ctx), fk));
      CHECK(rel_err(down(other, ctx), dq0) == 0.0);
    }
    {
      auto only = up<T>(dv0, ctx);
      hc::flash_attention_backward<T>(ctx, saved, c.B, c.Tn, c.H, dG.cview(), none, none, only.view());
      CHECK(bitwise_equal(down(only, ctx), fv));
    }
    {
      auto only = up<T>(dq0, ctx);
      hc::flash_attention_backward<T>(ctx, saved, c.B, c.Tn, c.H, dG.cview(), only.view(), none, none);
      CHECK(bitwise_equal(down(only, ctx), fq));
    }
    hc::flash_attention_backward<T>(ctx, saved, c.B, c.Tn, c.H, dG.cview(), none, none, none);  // nothing to do
  }
}

TEST_CASE_TEMPLATE("flash_attention: dk and dv may be one buffer (q, k, v from one node)", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const Index B = 2, Tn = 37, H = 2, Dh = 16, N = B * Tn, C = H * Dh;
  const MD X = as<T>(rnd(N, C)), G = as<T>(rnd(N, C)), g0 = as<T>(rnd(N, C));
  ad::Tape<double> t;
  auto x = t.leaf(X);
  auto o = ad::causal_self_attention(x, x, x, B, Tn, H);  // self-attention of one tensor: x gets all three
  t.backward(o, G);
  auto dX = up<T>(X, ctx), dG = up<T>(G, ctx), gx = up<T>(g0, ctx);
  hc::DeviceTensor<T> out(N, C, *ctx.alloc);
  hc::FlashAttentionSaved<T> saved;
  hc::flash_attention_forward<T>(ctx, dX.cview(), dX.cview(), dX.cview(), B, Tn, H, out.view(), saved);
  hc::flash_attention_backward<T>(ctx, saved, B, Tn, H, dG.cview(), gx.view(), gx.view(), gx.view());
  CHECK(rel_err(down(out, ctx), MD(o.value())) < tol_value<T>());
  CHECK(rel_err(down(gx, ctx), MD(g0 + x.grad())) < tol_grad<T>());
}

TEST_CASE_TEMPLATE("flash_attention: bad shapes, Dh > 128, aliasing and empty inputs", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  hc::DeviceTensor<T> q(6, 8, *ctx.alloc), k(6, 8, *ctx.alloc), kbad(6, 7, *ctx.alloc), out(6, 8, *ctx.alloc);
  hc::DeviceTensor<T> out_bad(6, 9, *ctx.alloc);
  q.set_zero(ctx.stream);
  k.set_zero(ctx.stream);
  hc::FlashAttentionSaved<T> s;
  CHECK_THROWS_AS(hc::flash_attention_forward<T>(ctx, q.cview(), kbad.cview(), q.cview(), 2, 3, 2, out.view(), s),
                  hyplora::shape_error);
  CHECK_THROWS_AS(hc::flash_attention_forward<T>(ctx, q.cview(), k.cview(), kbad.cview(), 2, 3, 2, out.view(), s),
                  hyplora::shape_error);
  CHECK_THROWS_AS(hc::flash_attention_forward<T>(ctx, q.cview(), k.cview(), q.cview(), 2, 3, 3, out.view(), s),
                  hyplora::shape_error);  // C = 8 not divisible by 3
  CHECK_THROWS_AS(hc::flash_attention_forward<T>(ctx, q.cview(), k.cview(), q.cview(), 3, 3, 2, out.view(), s),
                  hyplora::shape_error);  // 6 rows != 3·3
  CHECK_THROWS_AS(hc::flash_attention_forward<T>(ctx, q.cview(), k.cview(), q.cview(), 2, 3, 0, out.view(), s),
                  hyplora::value_error);
  CHECK_THROWS_AS(hc::flash_attention_forward<T>(ctx, q.cview(), k.cview(), q.cview(), 2, -3, 2, out.view(), s),
                  hyplora::value_error);
  CHECK_THROWS_AS(hc::flash_attention_forward<T>(ctx, q.cview(), k.cview(), q.cview(), 2, 3, 2, out_bad.view(), s),
                  hyplora::shape_error);
  try {  // the message names both shapes
    hc::flash_attention_forward<T>(ctx, q.cview(), kbad.cview(), q.cview(), 2, 3, 2, out.view(), s);
    FAIL("no throw");
  } catch (const hyplora::shape_error& e) {
    const std::string m = e.what();
    CHECK(m.find("(6, 8)") != std::string::npos);
    CHECK(m.find("(6, 7)") != std::string::npos);
  }
  // out aliasing an input.
  CHECK_THROWS_AS(hc::flash_attention_forward<T>(ctx, q.cview(), k.cview(), q.cview(), 2, 3, 2, q.view(), s),
                  hyplora::value_error);

  // Dh = 129 > 128 (C = 258 over 2 heads; C = 129 over 1 head): value_error naming it. Dh = 128
  // itself runs in the comparison cases above.
  for (const Index H : {Index(1), Index(2)}) {
    hc::DeviceTensor<T> w(4, 129 * H, *ctx.alloc), wo(4, 129 * H, *ctx.alloc);
    hc::FlashAttentionSaved<T> sw;
    try {
      hc::flash_attention_forward<T>(ctx, w.cview(), w.cview(), w.cview(), 2, 2, H, wo.view(), sw);
      FAIL("no throw for Dh = 129");
    } catch (const hyplora::value_error& e) {
      CHECK(std::string(e.what()).find("129") != std::string::npos);
    }
    hc::DeviceTensor<T> gw(4, 129 * H, *ctx.alloc);
    CHECK_THROWS_AS(hc::flash_attention_backward<T>(ctx, sw, 2, 2, H, gw.cview(), gw.view(), {}, {}), hyplora::error);
  }

  // Backward against a valid forward: mismatched G, heads, gradient shapes, aliasing.
  hc::flash_attention_forward<T>(ctx, q.cview(), k.cview(), q.cview(), 2, 3, 2, out.view(), s);
  hc::DeviceTensor<T> G(6, 8, *ctx.alloc), G16(6, 16, *ctx.alloc), dq(6, 8, *ctx.alloc), dbad(6, 9, *ctx.alloc);
  G.set_zero(ctx.stream);
  dq.set_zero(ctx.stream);
  CHECK_THROWS_AS(hc::flash_attention_backward<T>(ctx, s, 2, 3, 2, G16.cview(), dq.view(), {}, {}), hyplora::shape_error);
  CHECK_THROWS_AS(hc::flash_attention_backward<T>(ctx, s, 2, 3, 4, G.cview(), dq.view(), {}, {}), hyplora::shape_error);
  CHECK_THROWS_AS(hc::flash_attention_backward<T>(ctx, s, 3, 2, 2, G.cview(), dq.view(), {}, {}), hyplora::shape_error);
  CHECK_THROWS_AS(hc::flash_attention_backward<T>(ctx, s, 2, 3, 2, G.cview(), {}, dbad.view(), {}), hyplora::shape_error);
  CHECK_THROWS_AS(hc::flash_attention_backward<T>(ctx, s, 2, 3, 2, G.cview(), G.view(), {}, {}), hyplora::value_error);
  CHECK_THROWS_AS(hc::flash_attention_backward<T>(ctx, s, 2, 3, 2, G.cview(), {}, {}, q.view()), hyplora::value_error);
  CHECK_NOTHROW(hc::flash_attention_backward<T>(ctx, s, 2, 3, 2, G.cview(), dq.view(), {}, {}));
  const MatrixR<T> z = down(dq, ctx);  // zero inputs and G: the gradient stays 0
  CHECK(finite(z));
  CHECK(z.cwiseAbs().maxCoeff() == T(0));

  // Empty batch or sequence: nothing to do, no launch, no throw.
  hc::DeviceTensor<T> e0(0, 8, *ctx.alloc), eo(0, 8, *ctx.alloc);
  hc::FlashAttentionSaved<T> se;
  CHECK_NOTHROW(hc::flash_attention_forward<T>(ctx, e0.cview(), e0.cview(), e0.cview(), 0, 3, 2, eo.view(), se));
  CHECK_NOTHROW(hc::flash_attention_backward<T>(ctx, se, 0, 3, 2, e0.cview(), eo.view(), eo.view(), eo.view()));
  CHECK_NOTHROW(hc::flash_attention_forward<T>(ctx, e0.cview(), e0.cview(), e0.cview(), 2, 0, 2, eo.view(), se));
  CHECK_NOTHROW(hc::flash_attention_backward<T>(ctx, se, 2, 0, 2, e0.cview(), eo.view(), eo.view(), eo.view()));
  dc.synchronize();
}
