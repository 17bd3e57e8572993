// Tests for include/hyplora/cuda/: every kernel and device op against its CPU op (the tape in
// double is the reference), plus the buffer, allocator, error and GEMM plumbing.
// Without a CUDA device the binary prints "SKIPPED: no CUDA device" and returns 77 (CTest's
// SKIP_RETURN_CODE). One translation unit on purpose: nvcc's per-TU cost dominates CI time.
//
// Tolerances (normwise: max|got − ref| / max|ref|, ref in double on the CPU):
//   double on the device: 1e-10 (only the reduction order differs);
//   float on the device:  2e-4 values, 5e-4 gradients (float rounding through GEMMs of depth ≤ 96
//   and the per-row scalars; well below any formula error, which would show as O(1e-2)).
// The adapters are compared with the CPU node in the same dtype (Tape<T>), so both sides use
// numerics<T>'s clamps (float clamps the exp argument at 44 radii, double at 350).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <hyplora/autodiff/ops_elementwise.hpp>
#include <hyplora/autodiff/ops_hyplora.hpp>
#include <hyplora/autodiff/ops_lora.hpp>
#include <hyplora/autodiff/ops_norm.hpp>
#include <hyplora/autodiff/ops_softmax.hpp>
#include <hyplora/cuda/buffer.hpp>
#include <hyplora/cuda/caching_allocator.hpp>
#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/cublas.hpp>
#include <hyplora/cuda/device.hpp>
#include <hyplora/cuda/detail/linear_base.cuh>
#include <hyplora/cuda/device_tensor.hpp>
#include <hyplora/cuda/error.hpp>
#include <hyplora/cuda/kernels/adamw.cuh>
#include <hyplora/cuda/kernels/gelu.cuh>
#include <hyplora/cuda/kernels/layer_norm.cuh>
#include <hyplora/cuda/kernels/rms_norm.cuh>
#include <hyplora/cuda/kernels/softmax.cuh>
#include <hyplora/cuda/ops_hyplora.cuh>
#include <hyplora/cuda/ops_lora.cuh>
#include <hyplora/cuda/stream.hpp>
#include <hyplora/optim/adamw.hpp>

#include "device_compare.cuh"

namespace {
using hyplora::Index;
using hyplora::MatrixR;
namespace hc = hyplora::cuda;
namespace ad = hyplora::ad;
using namespace hyplora::cuda::testing;  // tol_value, tol_grad, rnd, rel_err, up, down, as

}  // namespace

// ---- error.hpp, device.hpp -----------------------------------------------------------------

TEST_CASE("error checks throw typed exceptions naming the call, file and error") {
  CHECK(hc::device_count() > 0);
  try {
    HYPLORA_CUDA_CHECK(cudaErrorInvalidValue);
    FAIL("no throw");
  } catch (const hc::cuda_error& e) {
    const std::string w = e.what();
    CHECK(e.code() == cudaErrorInvalidValue);
    CHECK(w.find("cudaErrorInvalidValue") != std::string::npos);
    CHECK(w.find("test_cuda_backend.cu") != std::string::npos);
  }
  // A real failing call: device-to-device copy from a null pointer.
  CHECK_THROWS_AS(HYPLORA_CUDA_CHECK(cudaMemcpy(nullptr, nullptr, 16, cudaMemcpyDeviceToDevice)), hc::cuda_error);
  CHECK(cudaGetLastError() == cudaSuccess);  // the check cleared it
  try {
    HYPLORA_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE);
    FAIL("no throw");
  } catch (const hc::cublas_error& e) {
    CHECK(std::string(e.what()).find("CUBLAS_STATUS_INVALID_VALUE") != std::string::npos);
    CHECK(dynamic_cast<const hyplora::error*>(&e) != nullptr);
  }
}

// ---- buffer.hpp, caching_allocator.hpp, device_tensor.hpp ------------------------------------

TEST_CASE("DeviceBuffer round-trips a batch and rejects a wrong element count") {
  MatrixR<float> m = MatrixR<float>::Random(5, 7);
  auto b = hc::to_device(m);
  CHECK(b.size() == 35);
  MatrixR<float> back = hc::to_host(b, 5, 7);
  CHECK(back == m);
  CHECK_THROWS_AS(hc::to_host(b, 5, 8), hyplora::shape_error);
  hc::DeviceBuffer<float> moved(std::move(b));
  CHECK(moved.size() == 35);
  CHECK(b.data() == nullptr);
  hc::DeviceBuffer<double> empty(0);
  CHECK(empty.data() == nullptr);
}

TEST_CASE("CachingAllocator serves repeated sizes from its cache") {
  hc::CachingAllocator alloc;
  CHECK(hc::CachingAllocator::bucket_size(1) == 512);
  CHECK(hc::CachingAllocator::bucket_size(1000) == 1024);
  CHECK(hc::CachingAllocator::bucket_size((1u << 20) + 1) == (2u << 20));
  CHECK(hc::CachingAllocator::bucket_size(5u << 20) == (6u << 20));
  void* first = nullptr;
  {
    auto blk = alloc.allocate(1000);
    first = blk.get();
    CHECK(blk.capacity() == 1024);
    CHECK(alloc.stats().bytes_in_use == 1024);
  }
  CHECK(alloc.stats().bytes_cached == 1024);
  {
    auto blk = alloc.allocate(900);  // same bucket: reused
    CHECK(blk.get() == first);
    auto other = alloc.allocate(5000);  // new bucket
    CHECK(other.get() != first);
  }
  auto s = alloc.stats();
  CHECK(s.malloc_calls == 2);
  CHECK(s.cache_hits == 1);
  CHECK(s.bytes_in_use == 0);
  CHECK(s.bytes_cached == 1024 + 8192);
  alloc.release_cached();
  CHECK(alloc.stats().bytes_cached == 0);
  CHECK(alloc.stats().free_calls == 2);
  CHECK(alloc.allocate(0).get() == nullptr);

  // DeviceTensor::resize keeps a block that is large enough.
  hc::DeviceTensor<float> t(10, 10, alloc);
  const float* p = t.data();
  t.resize(5, 20);
  CHECK(t.data() == p);
  t.resize(4, 3);
  CHECK(t.data() == p);
  CHECK(t.rows() == 4);
  CHECK(t.cols() == 3);
  CHECK_THROWS_AS(t.resize(-1, 2), hyplora::value_error);
}

// ---- cublas.hpp ---------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("row-major gemm matches Eigen for every transpose combination", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const Index m = 7, n = 5, k = 9;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      CAPTURE(ta);
      CAPTURE(tb);
      const MD A = as<T>(ta ? rnd(k, m) : rnd(m, k));
      const MD B = as<T>(tb ? rnd(n, k) : rnd(k, n));
      const MD C0 = as<T>(rnd(m, n));
      const MD ref = 0.5 * (ta ? MD(A.transpose()) : A) * (tb ? MD(B.transpose()) : B) + 2.0 * C0;
      auto dA = up<T>(A, ctx), dB = up<T>(B, ctx), dC = up<T>(C0, ctx);
      hc::gemm<T>(ctx.blas, ta ? hc::Op::T : hc::Op::N, tb ? hc::Op::T : hc::Op::N, m, n, k, T(0.5), dA.data(),
                  A.cols(), dB.data(), B.cols(), T(2), dC.data(), n);
      CHECK(rel_err(down(dC, ctx), ref) < tol_value<T>());
    }
  // k = 0: C = beta·C.
  const MD C0 = as<T>(rnd(3, 4));
  auto dC = up<T>(C0, ctx);
  hc::gemm<T>(ctx.blas, hc::Op::N, hc::Op::N, 3, 4, 0, T(1), nullptr, 0, nullptr, 4, T(3), dC.data(), 4);
  CHECK(rel_err(down(dC, ctx), MD(3.0 * C0)) < tol_value<T>());
}

TEST_CASE_TEMPLATE("strided-batched gemm matches per-batch Eigen products", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const Index batch = 3, m = 4, n = 6, k = 5;
  const MD A = as<T>(rnd(batch * m, k)), B = as<T>(rnd(batch * n, k));  // C_b = A_b·B_bᵀ
  auto dA = up<T>(A, ctx), dB = up<T>(B, ctx);
  hc::DeviceTensor<T> dC(batch * m, n, *ctx.alloc);
  hc::gemm_strided_batched<T>(ctx.blas, hc::Op::N, hc::Op::T, m, n, k, T(1), dA.data(), k, m * k, dB.data(), k,
                              n * k, T(0), dC.data(), n, m * n, batch);
  MD ref(batch * m, n);
  for (Index b = 0; b < batch; ++b) ref.middleRows(b * m, m) = A.middleRows(b * m, m) * B.middleRows(b * n, n).transpose();
  CHECK(rel_err(down(dC, ctx), ref) < tol_value<T>());
}

// ---- kernels --------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("gelu forward and backward match ad::gelu", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const MD X = as<T>(rnd(37, 29, 4.0)), G = as<T>(rnd(37, 29)), D0 = as<T>(rnd(37, 29));
  ad::Tape<double> t;
  auto x = t.leaf(X);
  auto y = ad::gelu(x);
  t.backward(y, G);
  auto dX = up<T>(X, ctx), dG = up<T>(G, ctx), dD = up<T>(D0, ctx);
  hc::DeviceTensor<T> dY(37, 29, *ctx.alloc);
  hc::gelu_forward<T>(ctx, dX.data(), dY.data(), dX.size());
  hc::gelu_backward<T>(ctx, dX.data(), dG.data(), dD.data(), dX.size());
  CHECK(rel_err(down(dY, ctx), MD(y.value())) < tol_value<T>());
  CHECK(rel_err(down(dD, ctx), MD(D0 + x.grad())) < tol_grad<T>());
}

TEST_CASE_TEMPLATE("softmax_rows matches ad::softmax, including huge logits", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  for (double scale : {1.0, 80.0}) {
    for (Index C : {Index(1), Index(7), Index(1000)}) {
      CAPTURE(C);
      const MD X = as<T>(rnd(6, C, scale));
      ad::Tape<double> t;
      auto y = ad::softmax(t.leaf(X));
      auto dX = up<T>(X, ctx);
      hc::DeviceTensor<T> dY(6, C, *ctx.alloc);
      hc::softmax_rows<T>(ctx, dX.cview(), dY.view());
      CHECK(rel_err(down(dY, ctx), MD(y.value())) < tol_value<T>());
    }
  }
}

TEST_CASE_TEMPLATE("cross_entropy forward/backward match ad::cross_entropy with ignored rows", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const Index N = 9, V = 300;
  const MD X = as<T>(rnd(N, V, 5.0)), D0 = as<T>(rnd(N, V));
  std::vector<std::int64_t> targets = {3, -1, 299, 0, 17, -1, 150, 42, 7};
  ad::Tape<double> t;
  auto x = t.leaf(X);
  auto loss = ad::cross_entropy(x, targets, -1);
  t.backward(loss, MD::Constant(1, 1, 0.7));
  auto dX = up<T>(X, ctx), dD = up<T>(D0, ctx), dg = up<T>(MD::Constant(1, 1, 0.7), ctx);
  hc::DeviceBuffer<std::int64_t> dt(targets.size());
  dt.copy_from_host(targets.data(), targets.size());
  hc::DeviceTensor<T> dL(1, 1, *ctx.alloc);
  hc::CrossEntropySaved<T> saved;
  hc::cross_entropy_forward<T>(ctx, dX.cview(), dt.data(), dL.view(), saved);
  hc::cross_entropy_backward<T>(ctx, dX.cview(), dt.data(), saved, dg.cview(), dD.view());
  CHECK(rel_err(down(dL, ctx), MD(loss.value())) < tol_value<T>());
  CHECK(rel_err(down(dD, ctx), MD(D0 + x.grad())) < tol_grad<T>());

  // Every row ignored: loss 0 and no gradient (not NaN).
  std::vector<std::int64_t> none(N, -1);
  dt.copy_from_host(none.data(), none.size());
  auto dD2 = up<T>(D0, ctx);
  hc::cross_entropy_forward<T>(ctx, dX.cview(), dt.data(), dL.view(), saved);
  hc::cross_entropy_backward<T>(ctx, dX.cview(), dt.data(), saved, dg.cview(), dD2.view());
  CHECK(down(dL, ctx)(0, 0) == T(0));
  CHECK(rel_err(down(dD2, ctx), D0) == 0.0);
}

TEST_CASE_TEMPLATE("layer_norm forward/backward match ad::layer_norm", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  // N = 1000: more rows than the column reduction's 32 lanes, not a multiple of them.
  for (Index N : {Index(5), Index(1000)})
  for (Index C : {Index(1), Index(33), Index(700)}) {
    CAPTURE(N);
    CAPTURE(C);
    const MD X = as<T>((rnd(N, C, 3.0).array() + 2.0).matrix()), Gm = as<T>(rnd(1, C)), Bt = as<T>(rnd(1, C));
    const MD G = as<T>(rnd(N, C)), D0 = as<T>(rnd(N, C)), Dg0 = as<T>(rnd(1, C)), Db0 = as<T>(rnd(1, C));
    ad::Tape<double> t;
    auto x = t.leaf(X);
    auto gm = t.leaf(Gm);
    auto bt = t.leaf(Bt);
    auto y = ad::layer_norm(x, gm, bt, 1e-5);
    t.backward(y, G);
    auto dX = up<T>(X, ctx), dGm = up<T>(Gm, ctx), dBt = up<T>(Bt, ctx), dG = up<T>(G, ctx);
    auto dD = up<T>(D0, ctx), dDg = up<T>(Dg0, ctx), dDb = up<T>(Db0, ctx);
    hc::DeviceTensor<T> dY(N, C, *ctx.alloc), stats;
    hc::layer_norm_forward<T>(ctx, dX.cview(), dGm.cview(), dBt.cview(), dY.view(), stats, 1e-5);
    hc::layer_norm_backward<T>(ctx, dX.cview(), dGm.cview(), stats, dG.cview(), dD.view(), dDg.view(), dDb.view());
    CHECK(rel_err(down(dY, ctx), MD(y.value())) < tol_value<T>());
    // C = 1: x̂ = 0 and dx = 0 exactly; the normwise error is then against D0 alone.
    CHECK(rel_err(down(dD, ctx), MD(D0 + x.grad())) < tol_grad<T>());
    CHECK(rel_err(down(dDg, ctx), MD(Dg0 + gm.grad())) < tol_grad<T>());
    CHECK(rel_err(down(dDb, ctx), MD(Db0 + bt.grad())) < tol_grad<T>());
  }
  hc::DeviceTensor<T> x(2, 3), g(1, 4), b(1, 3), y(2, 3), st;
  CHECK_THROWS_AS(hc::layer_norm_forward<T>(ctx, x.cview(), g.cview(), b.cview(), y.view(), st), hyplora::shape_error);
}

TEST_CASE_TEMPLATE("rms_norm forward/backward match ad::rms_norm", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  // N = 1000: more rows than the column reduction's 32 lanes, not a multiple of them.
  for (Index N : {Index(5), Index(1000)})
  for (Index C : {Index(1), Index(33), Index(700)}) {
    CAPTURE(N);
    CAPTURE(C);
    const MD X = as<T>((rnd(N, C, 3.0).array() + 2.0).matrix()), Gm = as<T>(rnd(1, C));
    const MD G = as<T>(rnd(N, C)), D0 = as<T>(rnd(N, C)), Dg0 = as<T>(rnd(1, C));
    ad::Tape<double> t;
    auto x = t.leaf(X);
    auto gm = t.leaf(Gm);
    auto y = ad::rms_norm(x, gm, 1e-6);
    t.backward(y, G);
    auto dX = up<T>(X, ctx), dGm = up<T>(Gm, ctx), dG = up<T>(G, ctx);
    auto dD = up<T>(D0, ctx), dDg = up<T>(Dg0, ctx);
    hc::DeviceTensor<T> dY(N, C, *ctx.alloc), stats;
    hc::rms_norm_forward<T>(ctx, dX.cview(), dGm.cview(), dY.view(), stats, 1e-6);
    hc::rms_norm_backward<T>(ctx, dX.cview(), dGm.cview(), stats, dG.cview(), dD.view(), dDg.view());
    CHECK(rel_err(down(dY, ctx), MD(y.value())) < tol_value<T>());
    CHECK(rel_err(down(dD, ctx), MD(D0 + x.grad())) < tol_grad<T>());
    CHECK(rel_err(down(dDg, ctx), MD(Dg0 + gm.grad())) < tol_grad<T>());
    // Absent gradients are skipped: dγ alone still adds the same sum.
    auto dDg2 = up<T>(Dg0, ctx);
    hc::rms_norm_backward<T>(ctx, dX.cview(), dGm.cview(), stats, dG.cview(), hc::DeviceView<T>{}, dDg2.view());
    CHECK(rel_err(down(dDg2, ctx), MD(Dg0 + gm.grad())) < tol_grad<T>());
  }
  hc::DeviceTensor<T> x(2, 3), g(1, 4), y(2, 3), y2(3, 3), st;
  CHECK_THROWS_AS(hc::rms_norm_forward<T>(ctx, x.cview(), g.cview(), y.view(), st), hyplora::shape_error);
  hc::DeviceTensor<T> g3(1, 3);
  CHECK_THROWS_AS(hc::rms_norm_forward<T>(ctx, x.cview(), g3.cview(), y2.view(), st), hyplora::shape_error);
  CHECK_THROWS_AS(hc::rms_norm_forward<T>(ctx, x.cview(), g3.cview(), y.view(), st, -1.0), hyplora::value_error);
}

TEST_CASE_TEMPLATE("bias gradients: the column reduction adds Σ_rows G for any shape", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  // Rows below, at and past the 32 row lanes; columns below and past one 32-wide block, and past
  // col_blocks' 65535-block grid (the grid-stride path).
  const std::vector<std::pair<Index, Index>> shapes{{1, 1}, {31, 5}, {32, 33}, {1000, 70}, {3, 65535 * 32 + 40}};
  for (const auto& sh : shapes) {
    const Index N = sh.first, D = sh.second;
    CAPTURE(N);
    CAPTURE(D);
    const MD G = as<T>(rnd(N, D)), B0 = as<T>(rnd(1, D));
    auto dG = up<T>(G, ctx), dB = up<T>(B0, ctx);
    hc::DeviceTensor<T> x(N, 1, *ctx.alloc), W(D, 1, *ctx.alloc);  // only their shapes are read
    hc::detail::linear_base_backward<T>(ctx, x.cview(), W.cview(), dG.cview(), {}, {}, dB.view());
    CHECK(rel_err(down(dB, ctx), MD(B0 + G.colwise().sum())) < tol_grad<T>());
  }
}

TEST_CASE_TEMPLATE("adamw_step matches optim::detail::adam_update over several steps", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  const Index n = 1000;
  for (int variant = 0; variant < 3; ++variant) {
    CAPTURE(variant);
    hyplora::optim::AdamConfig cfg;
    cfg.lr = 1e-2;
    cfg.weight_decay = variant == 0 ? 0.0 : 0.1;
    cfg.decoupled_weight_decay = variant != 2;
    cfg.amsgrad = variant == 2;
    MD x = as<T>(rnd(1, n)), m = MD::Zero(1, n), v = MD::Zero(1, n), vmax = MD::Zero(1, n);
    auto dx = up<T>(x, ctx), dm = up<T>(m, ctx), dv = up<T>(v, ctx), dvmax = up<T>(vmax, ctx);
    for (int step = 1; step <= 5; ++step) {
      const MD g = as<T>(rnd(1, n));
      auto dg = up<T>(g, ctx);
      hyplora::optim::detail::adam_update(x.data(), g.data(), m.data(), v.data(), vmax.data(), static_cast<std::size_t>(n), cfg, step);
      hc::adamw_step<T>(ctx, dx.data(), dg.data(), dm.data(), dv.data(), dvmax.data(), n, cfg, step);
    }
    CHECK(rel_err(down(dx, ctx), x) < tol_value<T>());
    CHECK(rel_err(down(dm, ctx), m) < tol_value<T>());
    CHECK(rel_err(down(dv, ctx), v) < tol_value<T>());
  }
  CHECK_THROWS_AS(hc::adamw_step<T>(ctx, nullptr, nullptr, nullptr, nullptr, nullptr, 0, hyplora::optim::AdamConfig{}, 0),
                  hyplora::value_error);
}

// ---- ops_lora.cuh, ops_hyplora.cuh --------------------------------------------------------------

namespace {
struct AdapterCase {
  Index N, Din, Dout, r;
  double xscale;
  bool bias, separate_xa;
};
const AdapterCase kCases[] = {
    {16, 24, 20, 4, 1.0, true, false},   // ordinary
    {8, 96, 40, 8, 30.0, false, true},   // large |x|: the exp coefficient is clamped in float
    {1, 1, 1, 1, 0.5, true, true},       // 1×1 everything
    {1, 12, 9, 3, 1e-3, false, false},   // one token, near the origin (series branches)
    {7, 10, 1, 2, 2.0, true, false},     // one output column
};

struct AdapterData {
  MD X, Xa, W0, A, B, b, G;
  MD dX0, dXa0, dW00, dA0, dB0, db0;
};
AdapterData make_data(const AdapterCase& c) {
  AdapterData d;
  d.X = rnd(c.N, c.Din, c.xscale);
  d.Xa = c.separate_xa ? rnd(c.N, c.Din, c.xscale) : d.X;
  d.W0 = rnd(c.Dout, c.Din, 0.3);
  d.A = rnd(c.r, c.Din, 0.5);
  d.B = rnd(c.Dout, c.r, 0.5);
  d.b = rnd(1, c.Dout);
  d.G = rnd(c.N, c.Dout);
  d.dX0 = rnd(c.N, c.Din);
  d.dXa0 = rnd(c.N, c.Din);
  d.dW00 = rnd(c.Dout, c.Din);
  d.dA0 = rnd(c.r, c.Din);
  d.dB0 = rnd(c.Dout, c.r);
  d.db0 = rnd(1, c.Dout);
  return d;
}
template <class T>
void round_to(AdapterData& d) {
  for (MD* m : {&d.X, &d.Xa, &d.W0, &d.A, &d.B, &d.b, &d.G, &d.dX0, &d.dXa0, &d.dW00, &d.dA0, &d.dB0, &d.db0}) *m = as<T>(*m);
}
}  // namespace

TEST_CASE_TEMPLATE("lora_forward/backward match ad::lora_linear", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  for (const auto& c : kCases) {
    CAPTURE(c.N);
    CAPTURE(c.Din);
    AdapterData d = make_data(c);
    round_to<T>(d);
    const double gamma = 0.75;
    ad::Tape<T> t;  // the CPU op in the same dtype: both sides clamp at numerics<T>'s thresholds
    auto x = t.leaf(d.X), W0 = t.leaf(d.W0), A = t.leaf(d.A), B = t.leaf(d.B), b = t.leaf(d.b);
    auto xa = c.separate_xa ? t.leaf(d.Xa) : x;
    auto z = ad::lora_linear(x, W0, xa, A, B, T(gamma), c.bias ? b : ad::Var<T>{});
    t.backward(z, d.G.cast<T>());

    auto dX = up<T>(d.X, ctx), dXa = up<T>(d.Xa, ctx), dW0 = up<T>(d.W0, ctx), dA = up<T>(d.A, ctx),
         dB = up<T>(d.B, ctx), db = up<T>(d.b, ctx), dG = up<T>(d.G, ctx);
    auto gX = up<T>(d.dX0, ctx), gXa = up<T>(d.dXa0, ctx), gW0 = up<T>(d.dW00, ctx), gA = up<T>(d.dA0, ctx),
         gB = up<T>(d.dB0, ctx), gb = up<T>(d.db0, ctx);
    hc::LoRAInputs<T> in{dX.cview(), dW0.cview(), c.separate_xa ? dXa.cview() : dX.cview(), dA.cview(), dB.cview(),
                         c.bias ? db.cview() : hc::DeviceView<const T>{}, T(gamma)};
    hc::LoRAGrads<T> gr{gX.view(), gW0.view(), c.separate_xa ? gXa.view() : gX.view(), gA.view(), gB.view(),
                        c.bias ? gb.view() : hc::DeviceView<T>{}};
    hc::DeviceTensor<T> dz;
    hc::LoRASaved<T> saved;
    hc::lora_forward<T>(ctx, in, dz, saved);
    hc::lora_backward<T>(ctx, in, saved, dG.cview(), gr);
    CHECK(rel_err(down(dz, ctx), MD(z.value().template cast<double>())) < tol_value<T>());
    CHECK(rel_err(down(gX, ctx), MD(d.dX0 + x.grad().template cast<double>())) < tol_grad<T>());
    if (c.separate_xa) CHECK(rel_err(down(gXa, ctx), MD(d.dXa0 + xa.grad().template cast<double>())) < tol_grad<T>());
    CHECK(rel_err(down(gW0, ctx), MD(d.dW00 + W0.grad().template cast<double>())) < tol_grad<T>());
    CHECK(rel_err(down(gA, ctx), MD(d.dA0 + A.grad().template cast<double>())) < tol_grad<T>());
    CHECK(rel_err(down(gB, ctx), MD(d.dB0 + B.grad().template cast<double>())) < tol_grad<T>());
    if (c.bias) CHECK(rel_err(down(gb, ctx), MD(d.db0 + b.grad().template cast<double>())) < tol_grad<T>());
  }
}

TEST_CASE_TEMPLATE("hyplora_forward/backward match ad::hyplora_linear, R and sigma gradients included", T, float, double) {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  for (const auto& c : kCases)
    for (int sig_out = 0; sig_out < 2; ++sig_out) {
      CAPTURE(c.N);
      CAPTURE(c.Din);
      CAPTURE(sig_out);
      AdapterData d = make_data(c);
      round_to<T>(d);
      const double gamma = 0.75, Rv = static_cast<double>(T(1.3)), sv = static_cast<double>(T(0.8));
      const MD dR0 = as<T>(rnd(1, 1)), dS0 = as<T>(rnd(1, 1));
      ad::Tape<T> t;  // the CPU op in the same dtype: both sides clamp at numerics<T>'s thresholds
      auto x = t.leaf(d.X), W0 = t.leaf(d.W0), A = t.leaf(d.A), B = t.leaf(d.B), b = t.leaf(d.b);
      auto R = t.leaf(MD::Constant(1, 1, Rv)), S = t.leaf(MD::Constant(1, 1, sv));
      auto xa = c.separate_xa ? t.leaf(d.Xa) : x;
      ad::HypLoRANodeOptions opt;
      opt.gamma = gamma;
      opt.scale_out_by_sigma = sig_out != 0;
      auto z = ad::hyplora_linear(x, W0, xa, A, B, R, S, opt, c.bias ? b : ad::Var<T>{});
      t.backward(z, d.G.cast<T>());

      auto dX = up<T>(d.X, ctx), dXa = up<T>(d.Xa, ctx), dW0 = up<T>(d.W0, ctx), dA = up<T>(d.A, ctx),
           dB = up<T>(d.B, ctx), db = up<T>(d.b, ctx), dG = up<T>(d.G, ctx);
      auto gX = up<T>(d.dX0, ctx), gXa = up<T>(d.dXa0, ctx), gW0 = up<T>(d.dW00, ctx), gA = up<T>(d.dA0, ctx),
           gB = up<T>(d.dB0, ctx), gb = up<T>(d.db0, ctx), gR = up<T>(dR0, ctx), gS = up<T>(dS0, ctx);
      hc::HypLoRAInputs<T> in{dX.cview(), dW0.cview(), c.separate_xa ? dXa.cview() : dX.cview(), dA.cview(),
                              dB.cview(), c.bias ? db.cview() : hc::DeviceView<const T>{}, T(Rv), T(sv), T(gamma),
                              sig_out != 0};
      hc::HypLoRAGrads<T> gr{gX.view(), gW0.view(), c.separate_xa ? gXa.view() : gX.view(), gA.view(), gB.view(),
                             c.bias ? gb.view() : hc::DeviceView<T>{}, gR.view(), gS.view()};
      hc::DeviceTensor<T> dz;
      hc::HypLoRASaved<T> saved;
      hc::hyplora_forward<T>(ctx, in, dz, saved);
      hc::hyplora_backward<T>(ctx, in, saved, dG.cview(), gr);
      CHECK(rel_err(down(dz, ctx), MD(z.value().template cast<double>())) < tol_value<T>());
      CHECK(rel_err(down(gX, ctx), MD(d.dX0 + x.grad().template cast<double>())) < tol_grad<T>());
      if (c.separate_xa) CHECK(rel_err(down(gXa, ctx), MD(d.dXa0 + xa.grad().template cast<double>())) < tol_grad<T>());
      CHECK(rel_err(down(gW0, ctx), MD(d.dW00 + W0.grad().template cast<double>())) < tol_grad<T>());
      CHECK(rel_err(down(gA, ctx), MD(d.dA0 + A.grad().template cast<double>())) < tol_grad<T>());
      CHECK(rel_err(down(gB, ctx), MD(d.dB0 + B.grad().template cast<double>())) < tol_grad<T>());
      if (c.bias) CHECK(rel_err(down(gb, ctx), MD(d.db0 + b.grad().template cast<double>())) < tol_grad<T>());
      // The scalar gradients are sums over tokens of terms of both signs: compare against the
      // size of the accumulated value plus the initial offset.
      CHECK(rel_err(down(gR, ctx), MD(dR0 + R.grad().template cast<double>())) < 10 * tol_grad<T>());
      CHECK(rel_err(down(gS, ctx), MD(dS0 + S.grad().template cast<double>())) < 10 * tol_grad<T>());
      // The saved per-token scalars are the CPU node's (ρ, c, τ, c2).
      const auto& cpu_sc = t.node(z.id).saved[ad::detail::kScalars];
      CHECK(rel_err(down(saved.scalars, ctx), MD(cpu_sc.template cast<double>())) < tol_value<T>());
    }
}

TEST_CASE("device ops reject bad shapes and values with the CPU node's messages") {
  hc::DeviceContext dc;
  const auto ctx = dc.context();
  hc::DeviceTensor<float> x(4, 6), W0(5, 6), A(2, 6), B(5, 3), Bbad(4, 2), z;
  hc::LoRASaved<float> ls;
  hc::LoRAInputs<float> li{x.cview(), W0.cview(), x.cview(), A.cview(), B.cview(), {}, 1.f};
  CHECK_THROWS_AS(hc::lora_forward<float>(ctx, li, z, ls), hyplora::shape_error);
  hc::HypLoRASaved<float> hs;
  hc::HypLoRAInputs<float> hi{x.cview(), W0.cview(), x.cview(), A.cview(), Bbad.cview(), {}, 1.f, 1.f, 1.f, false};
  CHECK_THROWS_AS(hc::hyplora_forward<float>(ctx, hi, z, hs), hyplora::shape_error);
  hc::DeviceTensor<float> Bok(5, 2);
  hi.B = Bok.cview();
  hi.R = 0.f;
  CHECK_THROWS_AS(hc::hyplora_forward<float>(ctx, hi, z, hs), hyplora::value_error);
  hi.R = 1.f;
  hi.sigma = -1.f;
  CHECK_THROWS_AS(hc::hyplora_forward<float>(ctx, hi, z, hs), hyplora::value_error);
}

TEST_CASE("a repeated HypLoRA training step calls cudaMalloc only in its first step") {
  hc::CachingAllocator alloc;
  hc::DeviceContext dc(alloc);
  const auto ctx = dc.context();
  const Index N = 64, Din = 128, Dout = 96, r = 8;
  auto X = up<float>(rnd(N, Din), ctx), W0 = up<float>(rnd(Dout, Din), ctx), A = up<float>(rnd(r, Din), ctx),
       B = up<float>(rnd(Dout, r), ctx), G = up<float>(rnd(N, Dout), ctx);
  hc::DeviceTensor<float> gX(N, Din, alloc), gA(r, Din, alloc), gB(Dout, r, alloc), z(0, 0, alloc);
  gX.set_zero(ctx.stream);  // the backward accumulates: cudaMalloc's memory is not zeroed
  gA.set_zero(ctx.stream);
  gB.set_zero(ctx.stream);
  hc::HypLoRASaved<float> saved;
  hc::HypLoRAInputs<float> in{X.cview(), W0.cview(), X.cview(), A.cview(), B.cview(), {}, 1.f, 1.f, 2.f, false};
  hc::HypLoRAGrads<float> gr{gX.view(), {}, gX.view(), gA.view(), gB.view(), {}, {}, {}};
  std::size_t after_first = 0;
  for (int step = 0; step < 4; ++step) {
    hc::hyplora_forward<float>(ctx, in, z, saved);
    hc::hyplora_backward<float>(ctx, in, saved, G.cview(), gr);
    if (step == 0) after_first = alloc.stats().malloc_calls;
  }
  dc.synchronize();
  CHECK(after_first > 0);
  CHECK(alloc.stats().malloc_calls == after_first);
  CHECK(down(gA, ctx).allFinite());
}
