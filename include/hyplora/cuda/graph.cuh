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
//   linear(x, LinearParams)              plain, LoRA or exact HypLoRA (fixed K, σ)  (N, D_in) → (N, D_out)
//   attention(q, k, v, B, T, H)          causal multi-head           (B·T, C) ×3 → (B·T, C)
//   add(a, b), gelu(x)                   elementwise (gelu: tanh approximation)
//   matmul_nt(x, W, dW)                  x·Wᵀ                        (N, C), W: (V, C) → (N, V)
//   cross_entropy(logits, targets)       mean over targets ≠ −1      (N, V) → (1, 1)
// These are the ops of the example GPT (examples/transformer/gpt_cuda.cuh runs GPT::build on it),
// not all of ad::: the CPU tape (autodiff/) has many more, and does not dispatch here. Each op's
// kernels are tested against their ad:: op (tests/cuda/), the graph itself in test_graph.cu.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <deque>
#include <string>

#include "hyplora/core/errors.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/cublas.hpp"
#include "hyplora/cuda/detail/linear_base.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"
#include "hyplora/cuda/kernels/attention.cuh"
#include "hyplora/cuda/kernels/embedding.cuh"
#include "hyplora/cuda/kernels/gelu.cuh"
#include "hyplora/cuda/kernels/layer_norm.cuh"
#include "hyplora/cuda/kernels/residual.cuh"
#include "hyplora/cuda/kernels/rms_norm.cuh"
#include "hyplora/cuda/kernels/softmax.cuh"
#include "hyplora/cuda/ops_hyplora.cuh"
#include "hyplora/cuda/ops_lora.cuh"

namespace hyplora::cuda {

/// One projection's parameters on the device: z = x·Wᵀ + b, plus a LoRA or exact HypLoRA
/// adapter (fixed K and σ). Views into the caller's arena; gradient views absent when frozen.
///   W: (D_out, D_in)  b: (1, D_out) or absent  A: (R, D_in)  B: (D_out, R)
template <class T>
struct LinearParams {
  enum class Kind { plain, lora, hyplora };
  Kind kind = Kind::plain;
  DeviceView<const T> W, b, A, B;
  DeviceView<T> dW, db, dA, dB;
  T gamma = T(1);  // α/r
  T R = T(1);      // √K (hyplora)
  T sigma = T(1);  // feature scale σ (hyplora)
  bool sig_out = false;

  bool trainable() const { return dW.present() || db.present() || dA.present() || dB.present(); }
};

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

  /// z = the projection p of x.  x: (N, D_in)  z: (N, D_out). p must outlive the build.
  Var linear(Var x, const LinearParams<T>& p) {
    const Node& a = at(x);
    Node& n = push(Op::linear, x);
    n.lin = &p;
    n.needs_grad = a.needs_grad || p.trainable();
    const DeviceView<const T> xv = a.value.cview();
    switch (p.kind) {
      case LinearParams<T>::Kind::plain:
        detail::check_linear_shapes<T>("cuda::Graph::linear", xv, p.W, p.b);
        n.value.resize(xv.rows, p.W.rows, *ctx_.alloc);
        detail::linear_base_forward<T>(ctx_, xv, p.W, p.b, n.value.view());
        break;
      case LinearParams<T>::Kind::lora:
        lora_forward<T>(ctx_, lora_inputs(p, xv), n.value, n.lora);
        break;
      case LinearParams<T>::Kind::hyplora:
        hyplora_forward<T>(ctx_, hyplora_inputs(p, xv), n.value, n.hyp);
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
  enum class Op { input, embedding, layer_norm, rms_norm, linear, attention, add, gelu, matmul_nt, cross_entropy };
  struct Node {
    Op op = Op::add;
    int a = -1, b = -1, c = -1;  // parent nodes
    bool needs_grad = false;     // a trainable parameter lies upstream
    bool grad_ready = false;     // grad holds this build's gradient (zeroed, then accumulated)
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
    CrossEntropySaved<T> ce;
  };

  // The next node, reused by position (a deque: references to the others stay valid while it
  // grows, so an op may hold its parents' nodes across push).
  Node& push(Op op, Var a = {}, Var b = {}, Var c = {}) {
    if (size_ == nodes_.size()) nodes_.emplace_back();
    Node& n = nodes_[size_++];
    n.op = op;
    n.a = a.id, n.b = b.id, n.c = c.id;
    n.needs_grad = n.grad_ready = false;
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

  static LoRAInputs<T> lora_inputs(const LinearParams<T>& p, DeviceView<const T> x) {
    return LoRAInputs<T>{x, p.W, x, p.A, p.B, p.b, p.gamma};
  }
  static HypLoRAInputs<T> hyplora_inputs(const LinearParams<T>& p, DeviceView<const T> x) {
    return HypLoRAInputs<T>{x, p.W, x, p.A, p.B, p.b, p.R, p.sigma, p.gamma, p.sig_out};
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
      case Op::linear: {
        const LinearParams<T>& p = *n.lin;
        const DeviceView<const T> x = nodes_[static_cast<std::size_t>(n.a)].value.cview();
        const DeviceView<T> dx = grad_in(n.a);
        switch (p.kind) {
          case LinearParams<T>::Kind::plain:
            detail::linear_base_backward<T>(ctx_, x, p.W, g, dx, p.dW, p.b.present() ? p.db : DeviceView<T>{});
            return;
          case LinearParams<T>::Kind::lora:
            lora_backward<T>(ctx_, lora_inputs(p, x), n.lora, g, LoRAGrads<T>{dx, p.dW, dx, p.dA, p.dB, p.db});
            return;
          case LinearParams<T>::Kind::hyplora:
            hyplora_backward<T>(ctx_, hyplora_inputs(p, x), n.hyp, g,
                                      HypLoRAGrads<T>{dx, p.dW, dx, p.dA, p.dB, p.db, {}, {}});
            return;
        }
        return;
      }
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
