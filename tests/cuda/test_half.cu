// Tests for include/hyplora/cuda/half.hpp and the half-precision (__half, __nv_bfloat16 storage)
// paths of cublas.hpp, ops_lora.cuh and ops_hyplora.cuh: forward and backward against the CPU
// node on ad::Tape<double>, run on the SAME half-rounded inputs, so the only differences are the
// device's roundings.
// Without a CUDA device the binary prints "SKIPPED: no CUDA device" and returns 77.
//
// Tolerances (normwise: max|got − ref| / max|ref|) from the format's unit roundoff u_T
// (round to nearest: fp16 u = 2^-11 ≈ 4.9e-4, bf16 u = 2^-8 ≈ 3.9e-3). Inputs are exact in both
// computations; GEMMs and kernels accumulate in float (error ~ depth·2^-24 ≪ u_T at depth ≤ 203);
// every stored result is rounded to T once (≤ u_T relative). An output element therefore carries
// a few such roundings: z gets the base GEMM's, the bias add's and the adapter GEMM's (3), and
// the adapter term inherits those of its (N, R) intermediates (U, or a and W_a: 1–2, each ≤ u_T
// of |U|, propagated through B). Gradients pass through more stored intermediates (P = G·B, c1·g_a,
// aw, and up to 3 read-add-write accumulations into the same gradient). Worst case is a sum of
// these bounds; random roundings add like a random walk, so the observed normwise error is
// ~1–2 u_T. Hence:
//   values 4·u_T, gradients 8·u_T,
// and for the scalar gradients ∂R, ∂σ (sums over tokens of terms of both signs) 8·u_T of the
// condition-aware scale |initial| + Σ_i |∂R_i| (per-token terms from one-token CPU tapes), checked
// for N ≥ 8 only (see there).
// A NumPy model of exactly these roundings (fp16 via float16, bf16 by rounding float32 bits), over
// 200 random draws of these shapes, gave worst normwise errors of 1.7 u_T (values), 2.9 u_T
// (gradients), 1.4 u_T (saved scalars) and 1.7 u_T (∂R, ∂σ at N ≥ 8); at N = 1 the ∂R error
// reached 465 u_T of Σ_i |∂R_i|. The same model with one deliberate error in the device path
// (the (D2/K)·s_y·M·a term of g_a dropped, the radial ∂x_a term dropped, ∂B's B·S dropped,
// c2 := 1, c1·g_a's rows shifted by one token) moved the worst fp16 error to 170–4000 u_T.
// A formula or index error (a wrong coefficient, a transposed operand, a row off by one) moves
// the result by O(1) of the adapter's share of the output, ≥ 1e-1 of max|ref| with these scales:
// far above 8·u_T = 3.9e-3 (fp16); bf16 (3.1e-2) still fails on anything beyond a ~3% error.
// The initial gradient buffers are 1/4 of the reference gradient's size, so the accumulated part
// dominates the comparison.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include <hyplora/autodiff/ops_hyplora.hpp>
#include <hyplora/autodiff/ops_lora.hpp>
#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/cublas.hpp>
#include <hyplora/cuda/detail/linear_base.cuh>
#include <hyplora/cuda/device.hpp>
#include <hyplora/cuda/device_tensor.hpp>
#include <hyplora/cuda/error.hpp>
#include <hyplora/cuda/half.hpp>
#include <hyplora/cuda/ops_hyplora.cuh>
#include <hyplora/cuda/ops_lora.cuh>

#include "device_compare.cuh"

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace hc = hyplora::cuda;
namespace ad = hyplora::ad;
using hyplora::cuda::testing::MD;
using hyplora::cuda::testing::rel_err;
using hyplora::cuda::testing::rnd;

template <class T>
double unit_roundoff() {
  return std::is_same_v<T, __half> ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
}
template <class T>
double tol_value() { return 4 * unit_roundoff<T>(); }
template <class T>
double tol_grad() { return 8 * unit_roundoff<T>(); }

/// A host matrix rounded to T: the bits the device gets and the same values in double.
template <class T>
struct Rounded {
  std::vector<T> bits;
  MD value;
};
template <class T>
Rounded<T> round_to(const MD& m) {
  Rounded<T> r;
  r.bits.resize(static_cast<std::size_t>(m.size()));
  r.value.resize(m.rows(), m.cols());
  for (Index k = 0; k < m.size(); ++k) {
    r.bits[static_cast<std::size_t>(k)] = hc::detail::from_acc<T>(static_cast<float>(m.data()[k]));
    r.value.data()[k] = static_cast<double>(hc::detail::to_acc(r.bits[static_cast<std::size_t>(k)]));
  }
  return r;
}
/// A value as the device's float scalars hold it.
double as_float(double v) { return static_cast<double>(static_cast<float>(v)); }

template <class T>
hc::DeviceTensor<T> upload(const Rounded<T>& r, const hc::Context& ctx) {
  hc::DeviceTensor<T> d(r.value.rows(), r.value.cols(), *ctx.alloc);
  if (d.size() > 0) {
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(d.data(), r.bits.data(), d.bytes(), cudaMemcpyHostToDevice, ctx.stream));
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  }
  return d;
}
template <class T>
std::vector<T> download_bits(const hc::DeviceTensor<T>& d, const hc::Context& ctx) {
  std::vector<T> h(static_cast<std::size_t>(d.size()));
  if (d.size() > 0) {
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(h.data(), d.data(), d.bytes(), cudaMemcpyDeviceToHost, ctx.stream));
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  }
  return h;
}
template <class T>
MD download(const hc::DeviceTensor<T>& d, const hc::Context& ctx) {
  const std::vector<T> h = download_bits(d, ctx);
  MD m(d.rows(), d.cols());
  for (Index k = 0; k < m.size(); ++k) m.data()[k] = static_cast<double>(hc::detail::to_acc(h[static_cast<std::size_t>(k)]));
  return m;
}
/// Equal storage bits (compared as raw bytes: T has no host operator==).
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

struct Case {
  Index N, Din, Dout, r;
  double xscale;
  bool bias, separate_xa;
};
// x scales put ρ = |x_a|/(σR) near 1–2 (the exp coefficient far from 1, no clamp in float).
const Case kCases[] = {
    {16, 24, 20, 4, 0.5, true, false},    // ordinary, x_a = x
    {1, 13, 9, 3, 0.6, false, true},      // N = 1, D_in not a multiple of 8, no bias
    {48, 203, 72, 16, 0.15, true, true},  // deeper GEMMs, odd D_in
};

/// Inputs of one case, rounded to T.
template <class T>
struct Data {
  Rounded<T> X, Xa, W0, A, B, b, G;
  explicit Data(const Case& c)
      : X(round_to<T>(rnd(c.N, c.Din, c.xscale))),
        Xa(c.separate_xa ? round_to<T>(rnd(c.N, c.Din, c.xscale)) : X),
        W0(round_to<T>(rnd(c.Dout, c.Din, 0.3))),
        A(round_to<T>(rnd(c.r, c.Din, 0.5))),
        B(round_to<T>(rnd(c.Dout, c.r, 0.5))),
        b(round_to<T>(rnd(1, c.Dout))),
        G(round_to<T>(rnd(c.N, c.Dout))) {}
};

/// A gradient buffer's initial content: random, 1/4 of the size of the gradient it will receive.
template <class T>
Rounded<T> initial_grad(const MD& ref) {
  const double s = ref.size() > 0 ? 0.25 * ref.cwiseAbs().maxCoeff() : 0.0;
  return round_to<T>(rnd(ref.rows(), ref.cols(), s));
}
}  // namespace

TEST_CASE_TEMPLATE("half.hpp conversions round to nearest and are exact on representable values", T, __half,
                   __nv_bfloat16) {
  using hc::detail::from_acc;
  using hc::detail::to_acc;
  static_assert(std::is_same_v<hc::compute_t<T>, float>);
  static_assert(std::is_same_v<hc::compute_t<float>, float> && std::is_same_v<hc::compute_t<double>, double>);
  static_assert(hc::is_half_v<T> && !hc::is_half_v<float>);
  const double u = unit_roundoff<T>();
  for (double v : {1.0, -0.5, 0.75, 3.0, 1024.0}) CHECK(static_cast<double>(to_acc(from_acc<T>(float(v)))) == v);
  // 1 + u/2 is below the tie: rounds to 1; 1 + 3u/2 (tie-free) rounds to 1 + 2u.
  CHECK(static_cast<double>(to_acc(from_acc<T>(float(1.0 + 0.5 * u)))) == 1.0);
  CHECK(static_cast<double>(to_acc(from_acc<T>(float(1.0 + 1.5 * u)))) == 1.0 + 2 * u);
}

TEST_CASE_TEMPLATE("half GEMMs: FP32 compute, T or float output, row-major ops as for float", T, __half,
                   __nv_bfloat16) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const Index m = 7, n = 5, k = 37;
  const auto A = round_to<T>(rnd(k, m)), B = round_to<T>(rnd(n, k)), C0 = round_to<T>(rnd(m, n));
  auto dA = upload(A, ctx), dB = upload(B, ctx), dC = upload(C0, ctx);
  // C = 0.5·Aᵀ·Bᵀ + 2·C0 (A stored (k, m), B stored (n, k)): both transpose flags.
  hc::gemm<T>(ctx.blas, hc::Op::T, hc::Op::T, m, n, k, 0.5f, dA.data(), m, dB.data(), k, 2.0f, dC.data(), n);
  const MD ref = 0.5 * A.value.transpose() * B.value.transpose() + 2.0 * C0.value;
  // one rounding of a float result: ≤ u_T of max|ref| (plus float accumulation, ≪ u_T)
  CHECK(rel_err(download(dC, ctx), ref) < 2 * unit_roundoff<T>());
  // The float-output GEMM: AᵀA of depth k in float, error ~ k·2^-24 (≪ u_T: proves no rounding to T).
  hc::DeviceTensor<float> M(m, m, *ctx.alloc);
  hc::gemm_mixed<T, float>(ctx.blas, hc::Op::T, hc::Op::N, m, m, k, 1.0f, dA.data(), m, dA.data(), m, 0.0f, M.data(), m);
  const MD Mref = A.value.transpose() * A.value;
  CHECK(rel_err(MD(M.to_host(ctx.stream).template cast<double>()), Mref) < 3e-5);
  // Strided batched: two (m × k)·(k × n) products, batch stride m·k / k·n / m·n.
  const auto X = round_to<T>(rnd(2 * m, k)), Y = round_to<T>(rnd(2 * k, n));
  auto dX = upload(X, ctx), dY = upload(Y, ctx);
  hc::DeviceTensor<T> dZ(2 * m, n, *ctx.alloc);
  hc::gemm_strided_batched<T>(ctx.blas, hc::Op::N, hc::Op::N, m, n, k, 1.0f, dX.data(), k, m * k, dY.data(), n, k * n,
                              0.0f, dZ.data(), n, m * n, 2);
  MD Zref(2 * m, n);
  for (Index bi = 0; bi < 2; ++bi)
    Zref.middleRows(bi * m, m) = X.value.middleRows(bi * m, m) * Y.value.middleRows(bi * k, k);
  CHECK(rel_err(download(dZ, ctx), Zref) < 2 * unit_roundoff<T>());
}

TEST_CASE_TEMPLATE("half lora_forward/backward match ad::lora_linear on the same rounded inputs", T, __half,
                   __nv_bfloat16) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  for (const auto& c : kCases) {
    CAPTURE(c.N);
    CAPTURE(c.Din);
    const Data<T> d(c);
    const double gamma = 0.75;  // exact in float
    ad::Tape<double> t;
    auto x = t.leaf(d.X.value), W0 = t.leaf(d.W0.value), A = t.leaf(d.A.value), B = t.leaf(d.B.value),
         b = t.leaf(d.b.value);
    auto xa = c.separate_xa ? t.leaf(d.Xa.value) : x;
    auto z = ad::lora_linear(x, W0, xa, A, B, gamma, c.bias ? b : ad::Var<double>{});
    t.backward(z, d.G.value);
    const MD gx = x.grad(), gxa = c.separate_xa ? MD(xa.grad()) : MD(), gW0 = W0.grad(), gA = A.grad(),
             gB = B.grad(), gb = b.grad();
    const auto iX = initial_grad<T>(gx), iXa = initial_grad<T>(c.separate_xa ? gxa : gx),
               iW0 = initial_grad<T>(gW0), iA = initial_grad<T>(gA), iB = initial_grad<T>(gB),
               ib = initial_grad<T>(gb);

    auto dX = upload(d.X, ctx), dXa = upload(d.Xa, ctx), dW0 = upload(d.W0, ctx), dA = upload(d.A, ctx),
         dB = upload(d.B, ctx), db = upload(d.b, ctx), dG = upload(d.G, ctx);
    auto rX = upload(iX, ctx), rXa = upload(iXa, ctx), rW0 = upload(iW0, ctx), rA = upload(iA, ctx),
         rB = upload(iB, ctx), rb = upload(ib, ctx);
    hc::LoRAInputs<T> in{dX.cview(), dW0.cview(), c.separate_xa ? dXa.cview() : dX.cview(), dA.cview(), dB.cview(),
                         c.bias ? db.cview() : hc::DeviceView<const T>{}, static_cast<float>(gamma)};
    hc::LoRAGrads<T> gr{rX.view(), rW0.view(), c.separate_xa ? rXa.view() : rX.view(), rA.view(), rB.view(),
                        c.bias ? rb.view() : hc::DeviceView<T>{}};
    hc::DeviceTensor<T> dz;
    hc::LoRASaved<T> saved;
    hc::lora_forward<T>(ctx, in, dz, saved);
    hc::lora_backward<T>(ctx, in, saved, dG.cview(), gr);
    const double ez = rel_err(download(dz, ctx), MD(z.value()));
    const double ex = rel_err(download(rX, ctx), MD(iX.value + gx));
    const double eA = rel_err(download(rA, ctx), MD(iA.value + gA));
    const double eB = rel_err(download(rB, ctx), MD(iB.value + gB));
    MESSAGE("lora worst errors / u_T: z " << ez / unit_roundoff<T>() << "  dx " << ex / unit_roundoff<T>() << "  dA "
                                          << eA / unit_roundoff<T>() << "  dB " << eB / unit_roundoff<T>());
    CHECK(ez < tol_value<T>());
    CHECK(ex < tol_grad<T>());
    if (c.separate_xa) CHECK(rel_err(download(rXa, ctx), MD(iXa.value + gxa)) < tol_grad<T>());
    CHECK(rel_err(download(rW0, ctx), MD(iW0.value + gW0)) < tol_grad<T>());
    CHECK(eA < tol_grad<T>());
    CHECK(eB < tol_grad<T>());
    if (c.bias) CHECK(rel_err(download(rb, ctx), MD(ib.value + gb)) < tol_grad<T>());
  }
}

TEST_CASE_TEMPLATE("half hyplora_forward/backward match ad::hyplora_linear, R and sigma gradients included", T, __half,
                   __nv_bfloat16) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  for (const auto& c : kCases)
    for (int sig_out = 0; sig_out < 2; ++sig_out) {
      CAPTURE(c.N);
      CAPTURE(c.Din);
      CAPTURE(sig_out);
      const Data<T> d(c);
      const double gamma = 0.75, Rv = as_float(1.3), sv = as_float(0.8);  // the device's float scalars
      ad::HypLoRANodeOptions opt;
      opt.gamma = gamma;
      opt.scale_out_by_sigma = sig_out != 0;
      ad::Tape<double> t;
      auto x = t.leaf(d.X.value), W0 = t.leaf(d.W0.value), A = t.leaf(d.A.value), B = t.leaf(d.B.value),
           b = t.leaf(d.b.value);
      auto R = t.leaf(MD::Constant(1, 1, Rv)), S = t.leaf(MD::Constant(1, 1, sv));
      auto xa = c.separate_xa ? t.leaf(d.Xa.value) : x;
      auto z = ad::hyplora_linear(x, W0, xa, A, B, R, S, opt, c.bias ? b : ad::Var<double>{});
      t.backward(z, d.G.value);
      const MD gx = x.grad(), gxa = c.separate_xa ? MD(xa.grad()) : MD(), gW0 = W0.grad(), gA = A.grad(),
               gB = B.grad(), gb = b.grad();
      const double gR = R.grad()(0, 0), gS = S.grad()(0, 0);
      // Condition-aware scale of ∂R, ∂σ: Σ_i |per-token term|, from one-token tapes (the node is
      // row-wise, so token i's terms are its own tape's gradients).
      double sumR = 0, sumS = 0;
      for (Index i = 0; i < c.N; ++i) {
        ad::Tape<double> ti;
        auto xi = ti.leaf(MD(d.X.value.row(i))), W0i = ti.leaf(d.W0.value), Ai = ti.leaf(d.A.value),
             Bi = ti.leaf(d.B.value), bi = ti.leaf(d.b.value);
        auto Ri = ti.leaf(MD::Constant(1, 1, Rv)), Si = ti.leaf(MD::Constant(1, 1, sv));
        auto xai = c.separate_xa ? ti.leaf(MD(d.Xa.value.row(i))) : xi;
        auto zi = ad::hyplora_linear(xi, W0i, xai, Ai, Bi, Ri, Si, opt, c.bias ? bi : ad::Var<double>{});
        ti.backward(zi, MD(d.G.value.row(i)));
        sumR += std::abs(Ri.grad()(0, 0));
        sumS += std::abs(Si.grad()(0, 0));
      }
      const auto iX = initial_grad<T>(gx), iXa = initial_grad<T>(c.separate_xa ? gxa : gx),
                 iW0 = initial_grad<T>(gW0), iA = initial_grad<T>(gA), iB = initial_grad<T>(gB),
                 ib = initial_grad<T>(gb);
      const double iR = as_float(0.25 * sumR), iS = as_float(-0.25 * sumS);  // the float (1, 1) gradients' start

      auto dX = upload(d.X, ctx), dXa = upload(d.Xa, ctx), dW0 = upload(d.W0, ctx), dA = upload(d.A, ctx),
           dB = upload(d.B, ctx), db = upload(d.b, ctx), dG = upload(d.G, ctx);
      auto rX = upload(iX, ctx), rXa = upload(iXa, ctx), rW0 = upload(iW0, ctx), rA = upload(iA, ctx),
           rB = upload(iB, ctx), rb = upload(ib, ctx);
      auto rR = hc::DeviceTensor<float>::from_host(MatrixR<float>::Constant(1, 1, static_cast<float>(iR)), ctx.stream,
                                                   *ctx.alloc);
      auto rS = hc::DeviceTensor<float>::from_host(MatrixR<float>::Constant(1, 1, static_cast<float>(iS)), ctx.stream,
                                                   *ctx.alloc);
      hc::HypLoRAInputs<T> in{dX.cview(), dW0.cview(), c.separate_xa ? dXa.cview() : dX.cview(), dA.cview(),
                              dB.cview(), c.bias ? db.cview() : hc::DeviceView<const T>{}, static_cast<float>(Rv),
                              static_cast<float>(sv), static_cast<float>(gamma), sig_out != 0};
      hc::HypLoRAGrads<T> gr{rX.view(), rW0.view(), c.separate_xa ? rXa.view() : rX.view(), rA.view(), rB.view(),
                             c.bias ? rb.view() : hc::DeviceView<T>{}, rR.view(), rS.view()};
      hc::DeviceTensor<T> dz;
      hc::HypLoRASaved<T> saved;
      hc::hyplora_forward<T>(ctx, in, dz, saved);
      hc::hyplora_backward<T>(ctx, in, saved, dG.cview(), gr);
      const double u = unit_roundoff<T>();
      const double ez = rel_err(download(dz, ctx), MD(z.value()));
      const double ex = rel_err(download(rX, ctx), MD(iX.value + gx));
      const double eA = rel_err(download(rA, ctx), MD(iA.value + gA));
      const double eB = rel_err(download(rB, ctx), MD(iB.value + gB));
      const double eR = std::abs(static_cast<double>(rR.to_host(ctx.stream)(0, 0)) - (iR + gR)) / (std::abs(iR) + sumR);
      const double eS = std::abs(static_cast<double>(rS.to_host(ctx.stream)(0, 0)) - (iS + gS)) / (std::abs(iS) + sumS);
      MESSAGE("hyplora worst errors / u_T: z " << ez / u << "  dx " << ex / u << "  dA " << eA / u << "  dB " << eB / u
                                               << "  dR " << eR / u << "  dsigma " << eS / u);
      CHECK(ez < tol_value<T>());
      CHECK(ex < tol_grad<T>());
      if (c.separate_xa) CHECK(rel_err(download(rXa, ctx), MD(iXa.value + gxa)) < tol_grad<T>());
      CHECK(rel_err(download(rW0, ctx), MD(iW0.value + gW0)) < tol_grad<T>());
      CHECK(eA < tol_grad<T>());
      CHECK(eB < tol_grad<T>());
      if (c.bias) CHECK(rel_err(download(rb, ctx), MD(ib.value + gb)) < tol_grad<T>());
      if (c.N >= 8) {  // one token's ∂R term can cancel within the token (s_x, s_y are sums of R
                       // terms of both signs), which Σ_i |∂R_i| cannot see; over many tokens it averages
        CHECK(eR < tol_grad<T>());
        CHECK(eS < tol_grad<T>());
      }
      // The saved per-token scalars (float) are the CPU node's (ρ, c, τ, c2); τ and c2 see the
      // rounded a, so a few u_T.
      const auto& cpu_sc = t.node(z.id).saved[ad::detail::kScalars];
      CHECK(rel_err(MD(saved.scalars.to_host(ctx.stream).template cast<double>()), MD(cpu_sc)) < tol_value<T>());
    }
}

TEST_CASE_TEMPLATE("half adapters with B = 0 give exactly the base output x·W0ᵀ + b", T, __half, __nv_bfloat16) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  for (const auto& c : kCases) {
    CAPTURE(c.N);
    CAPTURE(c.Din);
    const Data<T> d(c);
    const auto B0 = round_to<T>(MD::Zero(c.Dout, c.r));
    auto dX = upload(d.X, ctx), dW0 = upload(d.W0, ctx), dA = upload(d.A, ctx), dB = upload(B0, ctx),
         db = upload(d.b, ctx);
    const hc::DeviceView<const T> bias = c.bias ? db.cview() : hc::DeviceView<const T>{};
    hc::DeviceTensor<T> base(c.N, c.Dout, *ctx.alloc), zl, zh;
    hc::detail::linear_base_forward<T>(ctx, dX.cview(), dW0.cview(), bias, base.view());
    hc::LoRASaved<T> ls;
    hc::lora_forward<T>(ctx, hc::LoRAInputs<T>{dX.cview(), dW0.cview(), dX.cview(), dA.cview(), dB.cview(), bias, 2.0f},
                        zl, ls);
    hc::HypLoRASaved<T> hs;
    hc::hyplora_forward<T>(ctx,
                           hc::HypLoRAInputs<T>{dX.cview(), dW0.cview(), dX.cview(), dA.cview(), dB.cview(), bias,
                                                1.3f, 0.8f, 2.0f, true},
                           zh, hs);
    const std::vector<T> bb = download_bits(base, ctx);
    CHECK(same_bits(download_bits(zl, ctx), bb));
    CHECK(same_bits(download_bits(zh, ctx), bb));
    // and the base itself is x·W0ᵀ + b to the value tolerance
    MD ref = d.X.value * d.W0.value.transpose();
    if (c.bias) ref.rowwise() += d.b.value.row(0);
    CHECK(rel_err(download(base, ctx), ref) < tol_value<T>());
  }
}
