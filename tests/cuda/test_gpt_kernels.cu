// Tests for the GPT step's device kernels: cuda/kernels/embedding.cuh, residual.cuh, attention.cuh,
// clip_grad.cuh — each against its CPU op (the tape or optim:: in double is the reference).
// Without a CUDA device the binary prints "SKIPPED: no CUDA device" and returns 77.
//
// Tolerances (normwise: max|got − ref| / max|ref|, ref in double on the CPU), test_cuda_backend.cu's:
//   double on the device: 1e-10 (only the reduction order differs);
//   float on the device:  2e-4 values, 5e-4 gradients (float rounding through the T×T and
//   T×Dh GEMMs and the softmax rows; a formula or index error shows as O(1e-1)).
// Embedding, residual add and clipping have no reduction deeper than N terms: same tolerances.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <vector>

#include <hyplora/autodiff/ops_attention.hpp>
#include <hyplora/autodiff/ops_elementwise.hpp>
#include <hyplora/autodiff/ops_shape.hpp>
#include <hyplora/autodiff/parameters.hpp>
#include <hyplora/cuda/buffer.hpp>
#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/device.hpp>
#include <hyplora/cuda/device_tensor.hpp>
#include <hyplora/cuda/kernels/attention.cuh>
#include <hyplora/cuda/kernels/clip_grad.cuh>
#include <hyplora/cuda/kernels/embedding.cuh>
#include <hyplora/cuda/kernels/residual.cuh>
#include <hyplora/optim/clip_grad.hpp>

#include "device_compare.cuh"

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace hc = hyplora::cuda;
namespace ad = hyplora::ad;
using namespace hyplora::cuda::testing;  // tol_value, tol_grad, rnd, rel_err, up, down, as

hc::DeviceBuffer<std::int64_t> up_ids(const std::vector<std::int64_t>& v) {
  hc::DeviceBuffer<std::int64_t> b(v.size());
  b.copy_from_host(v.data(), v.size());
  return b;
}
}  // namespace

// ---- embedding.cuh -------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("embedding forward/backward match ad::embedding + ad::add (repeated ids)", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const Index V = 11, Tmax = 6, C = 13, B = 3, Tn = 5, N = B * Tn;
  std::vector<std::int64_t> ids(N), pos(N);
  for (Index i = 0; i < N; ++i) {
    ids[static_cast<std::size_t>(i)] = (i * 7 + 3) % 5;  // only rows 0..4 used, each several times
    pos[static_cast<std::size_t>(i)] = i % Tn;
  }
  const MD W = as<T>(rnd(V, C)), P = as<T>(rnd(Tmax, C)), G = as<T>(rnd(N, C));
  const MD dW0 = as<T>(rnd(V, C)), dP0 = as<T>(rnd(Tmax, C));
  ad::Tape<double> t;
  auto w = t.leaf(W), p = t.leaf(P);
  auto y = ad::add(ad::embedding(w, ids), ad::embedding(p, pos));
  t.backward(y, G);

  auto dW = up<T>(W, ctx), dPt = up<T>(P, ctx), dG = up<T>(G, ctx), gW = up<T>(dW0, ctx), gP = up<T>(dP0, ctx);
  auto did = up_ids(ids), dpos = up_ids(pos);
  hc::DeviceTensor<T> out(N, C, *ctx.alloc);
  hc::embedding_forward<T>(ctx, dW.cview(), did.data(), dPt.cview(), dpos.data(), out.view());
  hc::embedding_backward<T>(ctx, dG.cview(), did.data(), gW.view());
  hc::embedding_backward<T>(ctx, dG.cview(), dpos.data(), gP.view());
  CHECK(rel_err(down(out, ctx), MD(y.value())) < tol_value<T>());
  CHECK(rel_err(down(gW, ctx), MD(dW0 + w.grad())) < tol_grad<T>());
  CHECK(rel_err(down(gP, ctx), MD(dP0 + p.grad())) < tol_grad<T>());
  // Rows no id names keep their initial gradient exactly.
  const MatrixR<T> gw = down(gW, ctx);
  for (Index v = 5; v < V; ++v) CHECK((gw.row(v).template cast<double>() - dW0.row(v)).cwiseAbs().maxCoeff() == 0.0);

  // Without a position table: a plain gather.
  hc::embedding_forward<T>(ctx, dW.cview(), did.data(), hc::DeviceView<const T>{}, nullptr, out.view());
  ad::Tape<double> t2;
  CHECK(rel_err(down(out, ctx), MD(ad::embedding(t2.leaf(W), ids).value())) < tol_value<T>());

  std::vector<std::int64_t> bad = ids;
  bad[4] = V;
  CHECK_THROWS_AS(hc::check_embedding_ids("test", bad, V), hyplora::value_error);
  hc::DeviceTensor<T> wrong(N, C + 1, *ctx.alloc);
  CHECK_THROWS_AS(hc::embedding_forward<T>(ctx, dW.cview(), did.data(), dPt.cview(), dpos.data(), wrong.view()),
                  hyplora::shape_error);
}

// ---- residual.cuh ----------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("residual_add and accumulate_grad match ad::add", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const MD A = as<T>(rnd(9, 31)), Bm = as<T>(rnd(9, 31)), G = as<T>(rnd(9, 31)), dA0 = as<T>(rnd(9, 31));
  ad::Tape<double> t;
  auto a = t.leaf(A), b = t.leaf(Bm);
  auto y = ad::add(a, b);
  t.backward(y, G);
  auto da = up<T>(A, ctx), db = up<T>(Bm, ctx), dg = up<T>(G, ctx), ga = up<T>(dA0, ctx);
  hc::DeviceTensor<T> out(9, 31, *ctx.alloc);
  hc::residual_add<T>(ctx, da.data(), db.data(), out.data(), out.size());
  hc::accumulate_grad<T>(ctx, dg.data(), ga.data(), ga.size());
  CHECK(rel_err(down(out, ctx), MD(y.value())) < tol_value<T>());
  CHECK(rel_err(down(ga, ctx), MD(dA0 + a.grad())) < tol_grad<T>());
  // In place (out aliases a), as the transformer's x ← x + f(x).
  hc::residual_add<T>(ctx, da.data(), db.data(), da.data(), da.size());
  CHECK(rel_err(down(da, ctx), MD(y.value())) < tol_value<T>());
}

// ---- attention.cuh ----------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("causal_attention forward/backward match ad::causal_self_attention", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  struct Case { Index B, Tn, H, Dh; double scale; };
  // ordinary; one head; T = 1 (each token sees itself only); T above one block's 256 threads;
  // large logits (the max-subtraction matters).
  const Case cases[] = {{2, 7, 3, 4, 1.0}, {1, 9, 1, 5, 1.0}, {3, 1, 2, 3, 1.0}, {1, 300, 2, 4, 1.0}, {2, 6, 2, 8, 6.0}};
  for (const Case& c : cases) {
    CAPTURE(c.B);
    CAPTURE(c.Tn);
    CAPTURE(c.H);
    const Index N = c.B * c.Tn, C = c.H * c.Dh;
    const MD Q = as<T>(rnd(N, C, c.scale)), K = as<T>(rnd(N, C, c.scale)), Vv = as<T>(rnd(N, C)), G = as<T>(rnd(N, C));
    const MD dq0 = as<T>(rnd(N, C)), dk0 = as<T>(rnd(N, C)), dv0 = as<T>(rnd(N, C));
    ad::Tape<double> t;
    auto q = t.leaf(Q), k = t.leaf(K), v = t.leaf(Vv);
    auto o = ad::causal_self_attention(q, k, v, c.B, c.Tn, c.H);
    t.backward(o, G);

    auto dQ = up<T>(Q, ctx), dK = up<T>(K, ctx), dV = up<T>(Vv, ctx), dG = up<T>(G, ctx);
    auto gq = up<T>(dq0, ctx), gk = up<T>(dk0, ctx), gv = up<T>(dv0, ctx);
    hc::DeviceTensor<T> out(N, C, *ctx.alloc);
    hc::AttentionSaved<T> saved;
    hc::causal_attention_forward<T>(ctx, dQ.cview(), dK.cview(), dV.cview(), c.B, c.Tn, c.H, out.view(), saved);
    hc::causal_attention_backward<T>(ctx, saved, c.B, c.Tn, c.H, dG.cview(), gq.view(), gk.view(), gv.view());
    const double eo = rel_err(down(out, ctx), MD(o.value())), eq = rel_err(down(gq, ctx), MD(dq0 + q.grad())),
                 ek = rel_err(down(gk, ctx), MD(dk0 + k.grad())), ev = rel_err(down(gv, ctx), MD(dv0 + v.grad()));
    std::printf("attention %s B=%ld T=%ld H=%ld Dh=%ld: rel err out %.2e dq %.2e dk %.2e dv %.2e\n",
                sizeof(T) == 4 ? "float" : "double", static_cast<long>(c.B), static_cast<long>(c.Tn),
                static_cast<long>(c.H), static_cast<long>(c.Dh), eo, eq, ek, ev);
    CHECK(eo < tol_value<T>());
    CHECK(eq < tol_grad<T>());
    CHECK(ek < tol_grad<T>());
    CHECK(ev < tol_grad<T>());
    // The saved probabilities are the CPU op's P: rows sum to 1, exact zeros above the diagonal.
    // The CPU op leaves its P unwritten right of each row block's diagonal block (the backward
    // never reads there), so only j <= i of it is compared.
    const MatrixR<T> P = down(saved.P, ctx);
    MD Pc = t.node(o.id).saved[0];
    for (Index r = 0; r < Pc.rows(); ++r)
      for (Index j = r % c.Tn + 1; j < c.Tn; ++j) Pc(r, j) = 0.0;
    CHECK(rel_err(P, Pc) < tol_value<T>());
    for (Index r = 0; r < P.rows(); ++r)
      for (Index j = r % c.Tn + 1; j < c.Tn; ++j) CHECK(P(r, j) == T(0));

    // Only dv wanted: dq, dk untouched.
    auto gq2 = up<T>(dq0, ctx), gv2 = up<T>(dv0, ctx);
    hc::causal_attention_backward<T>(ctx, saved, c.B, c.Tn, c.H, dG.cview(), hc::DeviceView<T>{}, hc::DeviceView<T>{},
                                     gv2.view());
    CHECK(rel_err(down(gv2, ctx), MD(dv0 + v.grad())) < tol_grad<T>());
    CHECK(rel_err(down(gq2, ctx), dq0) == 0.0);
  }
  hc::DeviceTensor<T> q(6, 8, *ctx.alloc), k(6, 8, *ctx.alloc), kbad(6, 7, *ctx.alloc), out(6, 8, *ctx.alloc);
  hc::AttentionSaved<T> s;
  CHECK_THROWS_AS(hc::causal_attention_forward<T>(ctx, q.cview(), kbad.cview(), q.cview(), 2, 3, 2, out.view(), s),
                  hyplora::shape_error);
  CHECK_THROWS_AS(hc::causal_attention_forward<T>(ctx, q.cview(), k.cview(), q.cview(), 2, 3, 3, out.view(), s),
                  hyplora::shape_error);  // C = 8 not divisible by 3
  CHECK_THROWS_AS(hc::causal_attention_forward<T>(ctx, q.cview(), k.cview(), q.cview(), 3, 3, 2, out.view(), s),
                  hyplora::shape_error);  // 6 rows != 3·3
  CHECK_THROWS_AS(hc::causal_attention_forward<T>(ctx, q.cview(), k.cview(), q.cview(), 2, 3, 0, out.view(), s),
                  hyplora::value_error);
}

// ---- clip_grad.cuh -------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("clip_grad_norm matches optim::clip_grad_norm (clipped, not clipped, inf)", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  for (Index n : {Index(1), Index(1000), Index(300001)}) {  // 300001: more than the 1024-block grid covers at once
    CAPTURE(n);
    for (double max_norm : {0.5, 1e9, std::numeric_limits<double>::infinity()}) {
      CAPTURE(max_norm);
      ad::ParameterStore<T> store;
      const auto p = store.add("g", 1, n);
      const MD G = as<T>(rnd(1, n, 0.1));
      store.grad(p) = G.cast<T>();
      const double ref_norm = hyplora::optim::clip_grad_norm(store, max_norm);
      auto dg = up<T>(G, ctx);
      hc::ClipGradSaved<T> saved;
      hc::clip_grad_norm<T>(ctx, dg.data(), n, max_norm, saved);
      const MatrixR<T> got = down(dg, ctx);
      if (std::isinf(max_norm)) {
        CHECK(rel_err(got, G) == 0.0);  // nothing done
        continue;
      }
      double norm = 0;
      HYPLORA_CUDA_CHECK(cudaMemcpy(&norm, saved.norm.data(), sizeof(double), cudaMemcpyDeviceToHost));
      CHECK(std::abs(norm - ref_norm) <= 1e-12 * ref_norm);  // double sums of the same squares
      if (ref_norm > max_norm) {
        CHECK(rel_err(got, MD(store.grad(p).template cast<double>())) < tol_value<T>());
      } else {
        CHECK(rel_err(got, G) == 0.0);  // below the threshold: untouched, bit for bit
      }
    }
  }
  hc::ClipGradSaved<T> saved;
  CHECK_THROWS_AS(hc::clip_grad_norm<T>(ctx, nullptr, 0, -1.0, saved), hyplora::value_error);
}
