// hyplora/cuda/graph.cuh — a small device tape: build a graph of device ops, run backward from a
// (1, 1) loss, read the gradients in your own parameter buffers (issue #6: the same tape on the GPU).
//
//   cuda::Graph<float> g(ctx);                       // one per model; reuse it every step
//   g.clear();                                       // start a build (tensors kept)
//   auto x = g.input(X.cview());                     // a frozen input (no dx): no gradient work
//   auto h = g.layer_norm(x, gamma, dgamma, beta, dbeta);
//   auto loss = g.cross_entropy(g.matmul_nt(h, W, dW), targets);
//   g.backward(loss);                                // dgamma, dbeta, dW += ∂loss/∂·
//
// Each op runs its forward kernels at once (the kernels and ops of include/hyplora/cuda/) on the
// context's stream and appends a node: the output value, its gradient, the op's saved tensors
// and what its backward needs. backward(loss) walks the nodes in reverse, as ad::Tape does.
// Gradient semantics:
//   - parameters are not nodes: an op takes views of their values and of their gradients, both
//     owned by the caller (e.g. a packed arena); backward ACCUMULATES into the gradient views
//     (zero them yourself between steps). An absent gradient view (DeviceView{}) means frozen;
//   - a node's own gradient is zeroed (or, for add, copied) right before its first contribution
//     and stays absent when nothing trainable lies upstream of it (needs_grad), so frozen inputs
//     and frozen prefixes of the network cost no backward work;
//   - clear() forgets the nodes but keeps their tensors: the next build with the same shapes
//     reuses them by position, so a steady training loop does no cudaMalloc (through a
//     CachingAllocator, ctx.alloc). A Var is valid only within the build that made it; value()
//     of another throws value_error.
// No host synchronisation anywhere (the constructor's upload of the constant 1 aside). Views
// (parameters, ids, targets, LinearParams) must stay valid until backward has been enqueued.
//
// Ops (N rows, C width, H heads, V vocabulary or classes, D_in/D_out projection widths, R rank):
//   input(x, dx)                         leaf: a copy of x (N, D); its gradient += into dx if present
//   embedding(W, dW, ids, P, dP, pos, N) W[ids] + P[pos]            W: (V, C)  P: (T_max, C) → (N, C)
//   layer_norm(x, γ, dγ, β, dβ)          eps 1e-5                    (N, C), γ, β: (1, C) → (N, C)
//   rms_norm(x, γ, dγ)                   eps 1e-6                    (N, C), γ: (1, C) → (N, C)
//   linear(x, LinearParams)              plain, LoRA, DoRA, exact / official / official_simplified /
//                                        stereographic HypLoRA (K, σ fixed or learned), adapter dropout
//                                                                    (N, D_in) → (N, D_out)
//   attention(q, k, v, B, T, H)          causal multi-head           (B·T, C) ×3 → (B·T, C)
//   add(a, b), gelu(x)                   elementwise (gelu: tanh approximation)
//   matmul_nt(x, W, dW)                  x·Wᵀ                        (N, C), W: (V, C) → (N, V)
//   cross_entropy(logits, targets)       mean over targets ≠ −1      (N, V) → (1, 1)
// These are the ops of the example GPT (examples/transformer/gpt_cuda.cuh runs GPT::build on it),
// not all of ad::: the CPU tape (autodiff/) has many more, and does not dispatch here. Each op's
// kernels are tested against their ad:: op (tests/cuda/), the graph itself in test_graph.cu (linear:
// every kind and dropout against nn::AdaptedLinear::forward).
//
// linear() is nn::AdaptedLinear::forward on the device. The adapter's scalars (R = √K, σ, θ, k) are
// host values of the build (the ops take host scalars): a caller whose scalars are learned reads
// their current values from the device before the build (examples/transformer/gpt_cuda.cuh does
// it once per step) and passes their (1, 1) gradient views. A learned curvature of the exact and
// stereographic kinds enters as R = √(softplus(θ) + 1e-6) (set_radius_from_theta): the op's ∂R goes
// to a (1, 1) scratch of the node, then ∂θ += ∂R·sigmoid(θ)/(2R) on the device. Dropout (p > 0)
// feeds the adapter x_a = dropout(x) (a tensor of the node, the mask of ad::dropout for the same
// seed), while the base map sees x; backward takes the adapter's x_a-gradient into node scratch
// and adds dropout's backward of it to x's gradient.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <deque>
#include <string>

#include "hyplora/autodiff/detail/hyplora_official_rows.hpp"  // OfficialHypLoRAConstants::k_eps, official_curvature
#include "hyplora/autodiff/ops_elementwise.hpp"               // SoftplusF, stable_sigmoid (host side)
#include "hyplora/core/errors.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/cublas.hpp"
#include "hyplora/cuda/detail/linear_base.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"
#include "hyplora/cuda/kernels/attention.cuh"
#include "hyplora/cuda/kernels/dropout.cuh"
#include "hyplora/cuda/kernels/embedding.cuh"
#include "hyplora/cuda/kernels/gelu.cuh"
#include "hyplora/cuda/kernels/layer_norm.cuh"
#include "hyplora/cuda/kernels/residual.cuh"
#include "hyplora/cuda/kernels/rms_norm.cuh"
#include "hyplora/cuda/kernels/softmax.cuh"
#include "hyplora/cuda/ops_dora.cuh"
#include "hyplora/cuda/ops_hyplora.cuh"
#include "hyplora/cuda/ops_hyplora_official.cuh"
#include "hyplora/cuda/ops_hyplora_stereographic.cuh"
#include "hyplora/cuda/ops_lora.cuh"

namespace hyplora::cuda {

/// One projection's parameters on the device: z = x·Wᵀ + b, plus the adapter of nn::AdapterKind
/// `kind` (nn/adapted_linear.hpp). Matrices are views into the caller's arena; a gradient view is
/// absent when its parameter is frozen (or, for a scalar, fixed). Which fields a kind reads:
///   plain                        W, b
///   lora                         + A, B, gamma, dropout
///   dora                         + m (the magnitude)
///   hyplora (exact)              + R, sigma, sig_out; dtheta (through R, dR_dtheta), dsigma
///   hyplora_official             + theta, sigma (the published s); dtheta, dsigma
///   hyplora_official_simplified  + k; dk
///   hyplora_stereographic        + R; dtheta (through R, dR_dtheta)
///   W: (D_out, D_in)  b, m: (1, D_out) or absent  A: (R, D_in)  B: (D_out, R)  scalar gradients: (1, 1)
template <class T>
struct LinearParams {
  enum class Kind { plain, lora, hyplora, dora, hyplora_official, hyplora_official_simplified, hyplora_stereographic };
  Kind kind = Kind::plain;
  DeviceView<const T> W, b, A, B, m;
  DeviceView<T> dW, db, dA, dB, dm;
  T gamma = T(1);  // α/r (or α/√r)
  // The scalars of this build, on the host (a learned one: its current value, read before the build).
  T R = T(1);      // √K (hyplora, hyplora_stereographic)
  T sigma = T(1);  // feature scale σ (hyplora; hyplora_official's s)
  T theta = T(0);  // raw curvature θ, K = softplus(θ) + 1e-6 (hyplora_official)
  T k = T(1);      // raw k > 0 (hyplora_official_simplified)
  bool sig_out = false;  // σ_out = σ (hyplora)
  // Gradients of learned scalars. θ of the exact and stereographic kinds gets ∂R·dR_dtheta.
  DeviceView<T> dtheta, dsigma, dk;
  T dR_dtheta = T(0);  // ∂R/∂θ for a learned R = √(softplus(θ) + 1e-6) (set_radius_from_theta)
  // Adapter dropout: x_a = dropout(x) with probability p and this build's mask seed (p = 0: x_a = x).
  T dropout = T(0);
  std::uint64_t dropout_seed = 0;  // nn::AdaptedLinear::dropout_seed(step seed)

  static const char* name(Kind k) {
    switch (k) {
      case Kind::plain: return "plain";
      case Kind::lora: return "lora";
      case Kind::hyplora: return "hyplora";
      case Kind::dora: return "dora";
      case Kind::hyplora_official: return "hyplora_official";
      case Kind::hyplora_official_simplified: return "hyplora_official_simplified";
      case Kind::hyplora_stereographic: return "hyplora_stereographic";
    }
    return "unknown";
  }

  bool trainable() const {
    return dW.present() || db.present() || dA.present() || dB.present() || dm.present() || dtheta.present() ||
           dsigma.present() || dk.present();
  }

  /// R = √(softplus(θ) + 1e-6) and dR_dtheta = sigmoid(θ)/(2R), in T as AdaptedLinear::radius's
  /// tape ops compute them (a learned curvature of the exact or stereographic kind).
  void set_radius_from_theta(T th) {
    using std::sqrt;
    R = sqrt(ad::detail::official_curvature(ad::detail::SoftplusF::f(th, T(0), T(0))));
    dR_dtheta = T(0.5) / R * ad::detail::stable_sigmoid(th);  // the sqrt's then the softplus's derivative
  }
};

namespace detail {
// dst += factor·src, one element: a learned θ's gradient from the op's ∂R (∂θ = ∂R·∂R/∂θ).
template <class T>
__global__ void add_scaled_scalar_kernel(const T* __restrict__ src, T* __restrict__ dst, T factor) {
  dst[0] += factor * src[0];
}
}  // namespace detail

/// The device tape (see the file comment). Not copyable: it owns its nodes' device tensors.
template <class T>
class Graph {
 public:
  /// A node of the current build (valid until clear()).
  struct Var {
    int id = -1;
  };

  explicit Graph(const Context& ctx) : ctx_(ctx) {
    one_.resize(1, 1, *ctx_.alloc);
    const T one = T(1);
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(one_.data(), &one, sizeof(T), cudaMemcpyHostToDevice, ctx_.stream));
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
  }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  /// Starts a new build; the nodes' tensors are kept for reuse.
  void clear() { size_ = 0; }
  std::size_t size() const { return size_; }
  DeviceView<const T> value(Var v) const { return at(v).value.cview(); }

  /// A leaf holding a copy of the caller's activations x (taken on ctx.stream, so x may be
  /// reused once later work on that stream is enqueued). backward ACCUMULATES the node's gradient
  /// into dx when present; absent dx: a constant, no gradient work.  x, dx: (N, D).
  Var input(DeviceView<const T> x, DeviceView<T> dx = {}) {
    if (x.size() > 0 && !x.present())
      throw value_error("cuda::Graph::input: x is absent but shaped " + std::to_string(x.rows) + " x " + std::to_string(x.cols));
    if (dx.present() && (dx.rows != x.rows || dx.cols != x.cols))
      throw_shape("cuda::Graph::input", "x", x.rows, x.cols, "dx", dx.rows, dx.cols);
    Node& n = push(Op::input);
    n.dp0 = dx;
    n.needs_grad = dx.present();
    n.value.resize(x.rows, x.cols, *ctx_.alloc);
    if (n.value.size() > 0)
      HYPLORA_CUDA_CHECK(cudaMemcpyAsync(n.value.data(), x.data, n.value.bytes(), cudaMemcpyDeviceToDevice, ctx_.stream));
    return last();
  }

  /// out = W[ids] + P[pos].  W: (V, C)  P: (T_max, C)  ids, pos: N device ids, validated.  out: (N, C)
  Var embedding(DeviceView<const T> W, DeviceView<T> dW, const std::int64_t* ids,
                DeviceView<const T> P, DeviceView<T> dP, const std::int64_t* pos, Index N) {
    Node& n = push(Op::embedding);
    n.p0 = W, n.dp0 = dW, n.p1 = P, n.dp1 = dP, n.i0 = ids, n.i1 = pos;
    n.needs_grad = dW.present() || dP.present();
    n.value.resize(N, W.cols, *ctx_.alloc);
    embedding_forward<T>(ctx_, W, ids, P, pos, n.value.view());
    return last();
  }

  /// y = layer_norm(x)·γ + β.  x, y: (N, C)  γ, β: (1, C).
  Var layer_norm(Var x, DeviceView<const T> gamma, DeviceView<T> dgamma, DeviceView<const T> beta,
                 DeviceView<T> dbeta) {
    const Node& a = at(x);
    Node& n = push(Op::layer_norm, x);
    n.p0 = gamma, n.dp0 = dgamma, n.p1 = beta, n.dp1 = dbeta;
    n.needs_grad = a.needs_grad || dgamma.present() || dbeta.present();
    n.value.resize(a.value.rows(), a.value.cols(), *ctx_.alloc);
    layer_norm_forward<T>(ctx_, a.value.cview(), gamma, beta, n.value.view(), n.stats);
    return last();
  }

  /// y = rms_norm(x)·γ, eps = 1e-6 (ad::rms_norm's default, as the CPU graph uses).  x, y: (N, C)  γ: (1, C).
  Var rms_norm(Var x, DeviceView<const T> gamma, DeviceView<T> dgamma) {
    const Node& a = at(x);
    Node& n = push(Op::rms_norm, x);
    n.p0 = gamma, n.dp0 = dgamma;
    n.needs_grad = a.needs_grad || dgamma.present();
    n.value.resize(a.value.rows(), a.value.cols(), *ctx_.alloc);
    rms_norm_forward<T>(ctx_, a.value.cview(), gamma, n.value.view(), n.stats, 1e-6);
    return last();
  }

  /// z = the projection p of x (nn::AdaptedLinear::forward while training; see LinearParams and
  /// the file comment).  x: (N, D_in)  z: (N, D_out). p must outlive the build (backward reads it).
  Var linear(Var x, const LinearParams<T>& p) {
    check_linear_params(p);
    const Node& a = at(x);
    Node& n = push(Op::linear, x);
    n.lin = &p;
    n.needs_grad = a.needs_grad || p.trainable();
    const DeviceView<const T> xv = a.value.cview();
    DeviceView<const T> xa = xv;
    if (p.dropout != T(0)) {  // x_a = dropout(x) for the adapter only; the base map sees x
      n.xa.resize(xv.rows, xv.cols, *ctx_.alloc);
      dropout_forward<T>(ctx_, xv, n.xa.view(), p.dropout, p.dropout_seed);
      n.dropped = true;
      xa = n.xa.cview();
    }
    switch (p.kind) {
      case Kind::plain:
        detail::check_linear_shapes<T>("cuda::Graph::linear", xv, p.W, p.b);
        n.value.resize(xv.rows, p.W.rows, *ctx_.alloc);
        detail::linear_base_forward<T>(ctx_, xv, p.W, p.b, n.value.view());
        break;
      case Kind::lora: lora_forward<T>(ctx_, lora_inputs(p, xv, xa), n.value, n.lora); break;
      case Kind::hyplora: hyplora_forward<T>(ctx_, hyplora_inputs(p, xv, xa), n.value, n.hyp); break;
      case Kind::dora: dora_forward<T>(ctx_, dora_inputs(p, xv, xa), n.value, n.dora); break;
      case Kind::hyplora_official:
        hyplora_official_forward<T>(ctx_, official_inputs(p, xv, xa), n.value, n.radial);
        break;
      case Kind::hyplora_official_simplified:
        hyplora_official_simplified_forward<T>(ctx_, simplified_inputs(p, xv, xa), n.value, n.radial);
        break;
      case Kind::hyplora_stereographic:
        hyplora_stereographic_forward<T>(ctx_, stereographic_inputs(p, xv, xa), n.value, n.radial);
        break;
    }
    return last();
  }

  /// Causal multi-head self-attention.  q, k, v, out: (B·T, C), C = H·Dh.
  Var attention(Var q, Var k, Var v, Index B, Index Tn, Index H) {
    const Node &nq = at(q), &nk = at(k), &nv = at(v);
    Node& n = push(Op::attention, q, k, v);
    n.B = B, n.Tn = Tn, n.H = H;
    n.needs_grad = nq.needs_grad || nk.needs_grad || nv.needs_grad;
    n.value.resize(nq.value.rows(), nq.value.cols(), *ctx_.alloc);
    causal_attention_forward<T>(ctx_, nq.value.cview(), nk.value.cview(), nv.value.cview(), B, Tn, H,
                                      n.value.view(), n.attn);
    return last();
  }

  /// out = a + b (same shape).
  Var add(Var a, Var b) {
    const Node &na = at(a), &nb = at(b);
    if (na.value.rows() != nb.value.rows() || na.value.cols() != nb.value.cols())
      throw_shape("cuda::Graph::add", "a", na.value.rows(), na.value.cols(), "b", nb.value.rows(), nb.value.cols());
    Node& n = push(Op::add, a, b);
    n.needs_grad = na.needs_grad || nb.needs_grad;
    n.value.resize(na.value.rows(), na.value.cols(), *ctx_.alloc);
    residual_add<T>(ctx_, na.value.data(), nb.value.data(), n.value.data(), n.value.size());
    return last();
  }

  /// y = gelu(x) (tanh approximation), elementwise.
  Var gelu(Var x) {
    const Node& a = at(x);
    Node& n = push(Op::gelu, x);
    n.needs_grad = a.needs_grad;
    n.value.resize(a.value.rows(), a.value.cols(), *ctx_.alloc);
    gelu_forward<T>(ctx_, a.value.data(), n.value.data(), n.value.size());
    return last();
  }

  /// z = x·Wᵀ (the tied head).  x: (N, C)  W: (V, C)  z: (N, V).
  Var matmul_nt(Var x, DeviceView<const T> W, DeviceView<T> dW) {
    const Node& a = at(x);
    if (a.value.cols() != W.cols) throw_shape("cuda::Graph::matmul_nt", "x", a.value.rows(), a.value.cols(), "W", W.rows, W.cols);
    Node& n = push(Op::matmul_nt, x);
    n.p0 = W, n.dp0 = dW;
    n.needs_grad = a.needs_grad || dW.present();
    const Index N = a.value.rows(), C = a.value.cols(), V = W.rows;
    n.value.resize(N, V, *ctx_.alloc);
    gemm<T>(ctx_.blas, cuda::Op::N, cuda::Op::T, N, V, C, T(1), a.value.data(), C, W.data, C, T(0), n.value.data(), V);
    return last();
  }

  /// Mean cross-entropy of the rows whose target is not −1.  logits: (N, V)  targets: N device
  /// ids in [0, V) or −1, validated on the host  loss: (1, 1).
  Var cross_entropy(Var logits, const std::int64_t* targets) {
    const Node& a = at(logits);
    Node& n = push(Op::cross_entropy, logits);
    n.i0 = targets;
    n.needs_grad = a.needs_grad;
    n.value.resize(1, 1, *ctx_.alloc);
    cross_entropy_forward<T>(ctx_, a.value.cview(), targets, n.value.view(), n.ce);
    return last();
  }

  /// Runs the recorded backward with ∂loss = 1: every parameter gradient view accumulates.
  void backward(Var loss) {
    Node& L = at(loss);
    if (L.value.rows() != 1 || L.value.cols() != 1)
      throw_shape("cuda::Graph::backward", "loss", L.value.rows(), L.value.cols(), "expected", 1, 1);
    if (!L.needs_grad) return;  // nothing trainable upstream
    L.grad.resize(1, 1, *ctx_.alloc);
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(L.grad.data(), one_.data(), sizeof(T), cudaMemcpyDeviceToDevice, ctx_.stream));
    L.grad_ready = true;
    for (std::size_t i = static_cast<std::size_t>(loss.id) + 1; i-- > 0;) {
      Node& n = nodes_[i];
      if (n.needs_grad && n.grad_ready) backward_node(n);  // else nothing reached it: its gradient is 0
    }
  }

 private:
  using Kind = typename LinearParams<T>::Kind;
  enum class Op { input, embedding, layer_norm, rms_norm, linear, attention, add, gelu, matmul_nt, cross_entropy };
  struct Node {
    Op op = Op::add;
    int a = -1, b = -1, c = -1;  // parent nodes
    bool needs_grad = false;     // a trainable parameter lies upstream
    bool grad_ready = false;     // grad holds this build's gradient (zeroed, then accumulated)
    bool dropped = false;        // linear: the adapter's input is xa = dropout(x)
    DeviceTensor<T> value, grad;
    // Arguments: parameter views (values and gradients, absent when frozen), device ids, sizes.
    DeviceView<const T> p0, p1;
    DeviceView<T> dp0, dp1;
    const std::int64_t* i0 = nullptr;
    const std::int64_t* i1 = nullptr;
    const LinearParams<T>* lin = nullptr;
    Index B = 0, Tn = 0, H = 0;
    // Saved by the forward and scratch of the backward; only the op's own ever gets memory.
    DeviceTensor<T> stats;
    AttentionSaved<T> attn;
    LoRASaved<T> lora;
    HypLoRASaved<T> hyp;
    DoRASaved<T> dora;
    RadialHypLoRASaved<T> radial;  // official, official_simplified, stereographic
    DeviceTensor<T> xa, dxa;       // linear with dropout: x_a = dropout(x) and its gradient (N, D_in)
    DeviceTensor<T> dR;            // linear with a learned R: the op's ∂R (1, 1), before the chain to θ
    CrossEntropySaved<T> ce;
  };

  // The next node, reused by position (a deque: references to the others stay valid while it
  // grows, so an op may hold its parents' nodes across push).
  Node& push(Op op, Var a = {}, Var b = {}, Var c = {}) {
    if (size_ == nodes_.size()) nodes_.emplace_back();
    Node& n = nodes_[size_++];
    n.op = op;
    n.a = a.id, n.b = b.id, n.c = c.id;
    n.needs_grad = n.grad_ready = n.dropped = false;
    n.p0 = n.p1 = {};
    n.dp0 = n.dp1 = {};
    n.i0 = n.i1 = nullptr;
    n.lin = nullptr;
    n.B = n.Tn = n.H = 0;
    return n;
  }
  Var last() const { return Var{static_cast<int>(size_) - 1}; }
  Node& at(Var v) {
    if (v.id < 0 || static_cast<std::size_t>(v.id) >= size_)
      throw value_error("cuda::Graph: node " + std::to_string(v.id) + " is not in the current build of " +
                        std::to_string(size_) + " nodes");
    return nodes_[static_cast<std::size_t>(v.id)];
  }
  const Node& at(Var v) const { return const_cast<Graph*>(this)->at(v); }

  /// The gradient of node id to accumulate into: zeroed before its first use in this backward;
  /// absent when the node needs none.
  DeviceView<T> grad_in(int id) {
    Node& n = nodes_[static_cast<std::size_t>(id)];
    if (!n.needs_grad) return {};
    if (!n.grad_ready) {
      n.grad.resize(n.value.rows(), n.value.cols(), *ctx_.alloc);
      n.grad.set_zero(ctx_.stream);
      n.grad_ready = true;
    }
    return n.grad.view();
  }
  /// grad(id) += g (g shaped like node id's value); a copy on the first contribution.
  void accumulate(int id, const T* g) {
    Node& n = nodes_[static_cast<std::size_t>(id)];
    if (!n.needs_grad) return;
    if (n.grad_ready) {
      accumulate_grad<T>(ctx_, g, n.grad.data(), n.grad.size());
      return;
    }
    n.grad.resize(n.value.rows(), n.value.cols(), *ctx_.alloc);
    if (n.grad.size() > 0)
      HYPLORA_CUDA_CHECK(cudaMemcpyAsync(n.grad.data(), g, n.grad.bytes(), cudaMemcpyDeviceToDevice, ctx_.stream));
    n.grad_ready = true;
  }

  /// value_error for a scalar gradient (or a magnitude, or dropout) the kind has no use for:
  /// it would silently stay untouched.
  static void check_linear_params(const LinearParams<T>& p) {
    const bool adapter = p.kind != Kind::plain, dora = p.kind == Kind::dora;
    const bool has_theta = p.kind == Kind::hyplora || p.kind == Kind::hyplora_official || p.kind == Kind::hyplora_stereographic;
    const bool has_sigma = p.kind == Kind::hyplora || p.kind == Kind::hyplora_official;
    const bool has_k = p.kind == Kind::hyplora_official_simplified;
    const char* bad = nullptr;
    if (p.dropout != T(0) && !adapter) bad = "adapter dropout";
    if ((p.m.present() || p.dm.present()) && !dora) bad = "a magnitude m";
    if (p.dtheta.present() && !has_theta) bad = "a theta gradient";
    if (p.dsigma.present() && !has_sigma) bad = "a sigma gradient";
    if (p.dk.present() && !has_k) bad = "a k gradient";
    if (bad)
      throw value_error(std::string("cuda::Graph::linear: ") + bad + " given to a projection of kind " +
                        LinearParams<T>::name(p.kind) + ", which has none");
  }
  // Each op's operands: x for the base map, xa (x itself, or dropout(x)) for the adapter.
  static LoRAInputs<T> lora_inputs(const LinearParams<T>& p, DeviceView<const T> x, DeviceView<const T> xa) {
    return LoRAInputs<T>{x, p.W, xa, p.A, p.B, p.b, p.gamma};
  }
  static HypLoRAInputs<T> hyplora_inputs(const LinearParams<T>& p, DeviceView<const T> x, DeviceView<const T> xa) {
    return HypLoRAInputs<T>{x, p.W, xa, p.A, p.B, p.b, p.R, p.sigma, p.gamma, p.sig_out};
  }
  static DoRAInputs<T> dora_inputs(const LinearParams<T>& p, DeviceView<const T> x, DeviceView<const T> xa) {
    return DoRAInputs<T>{x, p.W, xa, p.A, p.B, p.m, p.b, p.gamma};  // xa viewing x's memory: no dropout
  }
  static HypLoRAOfficialInputs<T> official_inputs(const LinearParams<T>& p, DeviceView<const T> x,
                                                  DeviceView<const T> xa) {
    return HypLoRAOfficialInputs<T>{x, p.W, xa, p.A, p.B, p.b, p.theta, p.sigma, p.gamma};
  }
  static HypLoRAOfficialSimplifiedInputs<T> simplified_inputs(const LinearParams<T>& p, DeviceView<const T> x,
                                                              DeviceView<const T> xa) {
    return HypLoRAOfficialSimplifiedInputs<T>{x, p.W, xa, p.A, p.B, p.b, p.k, p.gamma};
  }
  static HypLoRAStereographicInputs<T> stereographic_inputs(const LinearParams<T>& p, DeviceView<const T> x,
                                                            DeviceView<const T> xa) {
    return HypLoRAStereographicInputs<T>{x, p.W, xa, p.A, p.B, p.b, p.R, p.gamma};
  }

  /// The linear node's backward: the op's, with the adapter's x_a-gradient through dropout's
  /// backward and a learned R's gradient chained to θ.
  void linear_backward(Node& n, DeviceView<const T> g) {
    const LinearParams<T>& p = *n.lin;
    const DeviceView<const T> x = nodes_[static_cast<std::size_t>(n.a)].value.cview();
    const DeviceView<T> dx = grad_in(n.a);
    const DeviceView<T> db = p.b.present() ? p.db : DeviceView<T>{};
    const DeviceView<const T> xa = n.dropped ? n.xa.cview() : x;
    DeviceView<T> dxa = dx;  // no dropout: x_a is x, one gradient
    if (n.dropped) {
      dxa = {};
      if (dx.present()) {
        n.dxa.resize(x.rows, x.cols, *ctx_.alloc);
        n.dxa.set_zero(ctx_.stream);
        dxa = n.dxa.view();
      }
    }
    DeviceView<T> dR;  // a learned R = √(softplus(θ) + 1e-6): the op's ∂R, then chained to θ
    if (p.dtheta.present() && (p.kind == Kind::hyplora || p.kind == Kind::hyplora_stereographic)) {
      n.dR.resize(1, 1, *ctx_.alloc);
      n.dR.set_zero(ctx_.stream);
      dR = n.dR.view();
    }
    switch (p.kind) {
      case Kind::plain:
        detail::linear_base_backward<T>(ctx_, x, p.W, g, dx, p.dW, db);
        return;  // no adapter: no dropout, no scalars
      case Kind::lora:
        lora_backward<T>(ctx_, lora_inputs(p, x, xa), n.lora, g, LoRAGrads<T>{dx, p.dW, dxa, p.dA, p.dB, db});
        break;
      case Kind::hyplora:
        hyplora_backward<T>(ctx_, hyplora_inputs(p, x, xa), n.hyp, g,
                            HypLoRAGrads<T>{dx, p.dW, dxa, p.dA, p.dB, db, dR, p.dsigma});
        break;
      case Kind::dora:  // reads the forward's z back (the node's value, unchanged)
        dora_backward<T>(ctx_, dora_inputs(p, x, xa), n.dora, n.value.cview(), g,
                         DoRAGrads<T>{dx, p.dW, dxa, p.dA, p.dB, p.dm, db});
        break;
      case Kind::hyplora_official:
        hyplora_official_backward<T>(ctx_, official_inputs(p, x, xa), n.radial, g,
                                     HypLoRAOfficialGrads<T>{dx, p.dW, dxa, p.dA, p.dB, db, p.dtheta, p.dsigma});
        break;
      case Kind::hyplora_official_simplified:
        hyplora_official_simplified_backward<T>(ctx_, simplified_inputs(p, x, xa), n.radial, g,
                                                HypLoRAOfficialSimplifiedGrads<T>{dx, p.dW, dxa, p.dA, p.dB, db, p.dk});
        break;
      case Kind::hyplora_stereographic:
        hyplora_stereographic_backward<T>(ctx_, stereographic_inputs(p, x, xa), n.radial, g,
                                          HypLoRAStereographicGrads<T>{dx, p.dW, dxa, p.dA, p.dB, db, dR});
        break;
    }
    if (dR.present()) {  // ∂θ += ∂R·sigmoid(θ)/(2R)
      HYPLORA_LAUNCH(1, 1, 0, ctx_.stream, detail::add_scaled_scalar_kernel<T>)(
          n.dR.data(), p.dtheta.data, p.dR_dtheta);
      HYPLORA_CUDA_CHECK_LAUNCH();
    }
    if (n.dropped && dx.present()) dropout_backward<T>(ctx_, n.dxa.cview(), dx, p.dropout, p.dropout_seed);
  }

  void backward_node(Node& n) {
    const DeviceView<const T> g = n.grad.cview();
    switch (n.op) {
      case Op::input:  // dx += g
        if (n.dp0.present()) accumulate_grad<T>(ctx_, g.data, n.dp0.data, g.size());
        return;
      case Op::embedding:
        if (n.dp0.present()) embedding_backward<T>(ctx_, g, n.i0, n.dp0);
        if (n.dp1.present()) embedding_backward<T>(ctx_, g, n.i1, n.dp1);
        return;
      case Op::layer_norm: {
        const DeviceView<T> dx = grad_in(n.a);
        layer_norm_backward<T>(ctx_, nodes_[static_cast<std::size_t>(n.a)].value.cview(), n.p0, n.stats, g, dx,
                                     n.dp0, n.dp1);
        return;
      }
      case Op::rms_norm: {
        const DeviceView<T> dx = grad_in(n.a);
        rms_norm_backward<T>(ctx_, nodes_[static_cast<std::size_t>(n.a)].value.cview(), n.p0, n.stats, g, dx, n.dp0);
        return;
      }
      case Op::linear:
        linear_backward(n, g);
        return;
      case Op::attention: {
        const DeviceView<T> dq = grad_in(n.a), dk = grad_in(n.b), dv = grad_in(n.c);
        causal_attention_backward<T>(ctx_, n.attn, n.B, n.Tn, n.H, g, dq, dk, dv);
        return;
      }
      case Op::add:
        accumulate(n.a, g.data);
        accumulate(n.b, g.data);
        return;
      case Op::gelu: {
        const DeviceView<T> dx = grad_in(n.a);
        if (dx.present()) gelu_backward<T>(ctx_, nodes_[static_cast<std::size_t>(n.a)].value.data(), g.data, dx.data, g.size());
        return;
      }
      case Op::matmul_nt: {  // z = x·Wᵀ: dx += G·W, dW += Gᵀ·x
        const Node& a = nodes_[static_cast<std::size_t>(n.a)];
        const Index N = a.value.rows(), C = a.value.cols(), V = n.p0.rows;
        const DeviceView<T> dx = grad_in(n.a);
        if (dx.present())
          gemm<T>(ctx_.blas, cuda::Op::N, cuda::Op::N, N, C, V, T(1), g.data, V, n.p0.data, C, T(1), dx.data, C);
        if (n.dp0.present())
          gemm<T>(ctx_.blas, cuda::Op::T, cuda::Op::N, V, C, N, T(1), g.data, V, a.value.data(), C, T(1), n.dp0.data, C);
        return;
      }
      case Op::cross_entropy: {
        const Node& a = nodes_[static_cast<std::size_t>(n.a)];
        const DeviceView<T> dl = grad_in(n.a);
        if (dl.present()) cross_entropy_backward<T>(ctx_, a.value.cview(), n.i0, n.ce, g, dl);
        return;
      }
    }
  }

  Context ctx_;
  std::deque<Node> nodes_;
  std::size_t size_ = 0;  // nodes of the current build
  DeviceTensor<T> one_;
};

}  // namespace hyplora::cuda
