// examples/transformer/gpt_device_graph.cuh — a small device tape: the GPU graph GPT::build
// (model.hpp) runs on, so the network is written once for both devices (issue #6).
//
// Each op runs its forward kernels at once (the kernels and ops of include/hyplora/cuda/) on the
// context's stream and appends a node: the output value, its gradient, the op's saved tensors
// and what its backward needs. backward(loss) walks the nodes in reverse, as ad::Tape does:
//   - parameters are not nodes: an op takes their value views and gradient views (absent when
//     frozen) in the caller's arena, and its backward accumulates into those views;
//   - a node's gradient is zeroed (or, for add, copied) right before its first contribution and
//     stays absent when no parameter upstream of it is trainable (needs_grad), so frozen inputs
//     cost no backward work;
//   - clear() forgets the nodes but keeps their tensors: the next build with the same shapes
//     reuses them by position, so a steady training loop allocates no device memory.
// No host synchronisation anywhere (the constructor's upload of the constant 1 aside).
//
// Shapes: N = B·T rows, C width, H heads, V vocabulary; D_in, D_out projection widths.
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

namespace hyplora::examples {

/// One projection's parameters on the device: z = x·Wᵀ + b, plus a LoRA or exact HypLoRA
/// adapter (fixed K and σ). Views into the caller's arena; gradient views absent when frozen.
///   W: (D_out, D_in)  b: (1, D_out) or absent  A: (R, D_in)  B: (D_out, R)
template <class T>
struct DeviceLinear {
  enum class Kind { plain, lora, hyplora };
  Kind kind = Kind::plain;
  cuda::DeviceView<const T> W, b, A, B;
  cuda::DeviceView<T> dW, db, dA, dB;
  T gamma = T(1);  // α/r
  T R = T(1);      // √K (hyplora)
  T sigma = T(1);  // feature scale σ (hyplora)
  bool sig_out = false;

  bool trainable() const { return dW.present() || db.present() || dA.present() || dB.present(); }
};

template <class T>
class DeviceGraph {
 public:
  /// A node of the current build (valid until clear()).
  struct Var {
    int id = -1;
  };

  explicit DeviceGraph(const cuda::Context& ctx) : ctx_(ctx) {
    one_.resize(1, 1, *ctx_.alloc);
    const T one = T(1);
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(one_.data(), &one, sizeof(T), cudaMemcpyHostToDevice, ctx_.stream));
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
  }
  DeviceGraph(const DeviceGraph&) = delete;
  DeviceGraph& operator=(const DeviceGraph&) = delete;

  /// Starts a new build; the nodes' tensors are kept for reuse.
  void clear() { size_ = 0; }
  std::size_t size() const { return size_; }
  cuda::DeviceView<const T> value(Var v) const { return at(v).value.cview(); }

  /// out = W[ids] + P[pos].  W: (V, C)  P: (T_max, C)  ids, pos: N device ids, validated.  out: (N, C)
  Var embedding(cuda::DeviceView<const T> W, cuda::DeviceView<T> dW, const std::int64_t* ids,
                cuda::DeviceView<const T> P, cuda::DeviceView<T> dP, const std::int64_t* pos, Index N) {
    Node& n = push(Op::embedding);
    n.p0 = W, n.dp0 = dW, n.p1 = P, n.dp1 = dP, n.i0 = ids, n.i1 = pos;
    n.needs_grad = dW.present() || dP.present();
    n.value.resize(N, W.cols, *ctx_.alloc);
    cuda::embedding_forward<T>(ctx_, W, ids, P, pos, n.value.view());
    return last();
  }

  /// y = layer_norm(x)·γ + β.  x, y: (N, C)  γ, β: (1, C).
  Var layer_norm(Var x, cuda::DeviceView<const T> gamma, cuda::DeviceView<T> dgamma, cuda::DeviceView<const T> beta,
                 cuda::DeviceView<T> dbeta) {
    const Node& a = at(x);
    Node& n = push(Op::layer_norm, x);
    n.p0 = gamma, n.dp0 = dgamma, n.p1 = beta, n.dp1 = dbeta;
    n.needs_grad = a.needs_grad || dgamma.present() || dbeta.present();
    n.value.resize(a.value.rows(), a.value.cols(), *ctx_.alloc);
    cuda::layer_norm_forward<T>(ctx_, a.value.cview(), gamma, beta, n.value.view(), n.stats);
    return last();
  }

  /// y = rms_norm(x)·γ, eps = 1e-6 (ad::rms_norm's default, as the CPU graph uses).  x, y: (N, C)  γ: (1, C).
  Var rms_norm(Var x, cuda::DeviceView<const T> gamma, cuda::DeviceView<T> dgamma) {
    const Node& a = at(x);
    Node& n = push(Op::rms_norm, x);
    n.p0 = gamma, n.dp0 = dgamma;
    n.needs_grad = a.needs_grad || dgamma.present();
    n.value.resize(a.value.rows(), a.value.cols(), *ctx_.alloc);
    cuda::rms_norm_forward<T>(ctx_, a.value.cview(), gamma, n.value.view(), n.stats, 1e-6);
    return last();
  }

  /// z = the projection p of x.  x: (N, D_in)  z: (N, D_out). p must outlive the build.
  Var linear(Var x, const DeviceLinear<T>& p) {
    const Node& a = at(x);
    Node& n = push(Op::linear, x);
    n.lin = &p;
    n.needs_grad = a.needs_grad || p.trainable();
    const cuda::DeviceView<const T> xv = a.value.cview();
    switch (p.kind) {
      case DeviceLinear<T>::Kind::plain:
        cuda::detail::check_linear_shapes<T>("DeviceGraph::linear", xv, p.W, p.b);
        n.value.resize(xv.rows, p.W.rows, *ctx_.alloc);
        cuda::detail::linear_base_forward<T>(ctx_, xv, p.W, p.b, n.value.view());
        break;
      case DeviceLinear<T>::Kind::lora:
        cuda::lora_forward<T>(ctx_, lora_inputs(p, xv), n.value, n.lora);
        break;
      case DeviceLinear<T>::Kind::hyplora:
        cuda::hyplora_forward<T>(ctx_, hyplora_inputs(p, xv), n.value, n.hyp);
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
    cuda::causal_attention_forward<T>(ctx_, nq.value.cview(), nk.value.cview(), nv.value.cview(), B, Tn, H,
                                      n.value.view(), n.attn);
    return last();
  }

  /// out = a + b (same shape).
  Var add(Var a, Var b) {
    const Node &na = at(a), &nb = at(b);
    if (na.value.rows() != nb.value.rows() || na.value.cols() != nb.value.cols())
      throw_shape("DeviceGraph::add", "a", na.value.rows(), na.value.cols(), "b", nb.value.rows(), nb.value.cols());
    Node& n = push(Op::add, a, b);
    n.needs_grad = na.needs_grad || nb.needs_grad;
    n.value.resize(na.value.rows(), na.value.cols(), *ctx_.alloc);
    cuda::residual_add<T>(ctx_, na.value.data(), nb.value.data(), n.value.data(), n.value.size());
    return last();
  }

  /// y = gelu(x) (tanh approximation), elementwise.
  Var gelu(Var x) {
    const Node& a = at(x);
    Node& n = push(Op::gelu, x);
    n.needs_grad = a.needs_grad;
    n.value.resize(a.value.rows(), a.value.cols(), *ctx_.alloc);
    cuda::gelu_forward<T>(ctx_, a.value.data(), n.value.data(), n.value.size());
    return last();
  }

  /// z = x·Wᵀ (the tied head).  x: (N, C)  W: (V, C)  z: (N, V).
  Var matmul_nt(Var x, cuda::DeviceView<const T> W, cuda::DeviceView<T> dW) {
    const Node& a = at(x);
    if (a.value.cols() != W.cols) throw_shape("DeviceGraph::matmul_nt", "x", a.value.rows(), a.value.cols(), "W", W.rows, W.cols);
    Node& n = push(Op::matmul_nt, x);
    n.p0 = W, n.dp0 = dW;
    n.needs_grad = a.needs_grad || dW.present();
    const Index N = a.value.rows(), C = a.value.cols(), V = W.rows;
    n.value.resize(N, V, *ctx_.alloc);
    cuda::gemm<T>(ctx_.blas, cuda::Op::N, cuda::Op::T, N, V, C, T(1), a.value.data(), C, W.data, C, T(0), n.value.data(), V);
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
    cuda::cross_entropy_forward<T>(ctx_, a.value.cview(), targets, n.value.view(), n.ce);
    return last();
  }

  /// Runs the recorded backward with ∂loss = 1: every parameter gradient view accumulates.
  void backward(Var loss) {
    Node& L = at(loss);
    if (L.value.rows() != 1 || L.value.cols() != 1)
      throw_shape("DeviceGraph::backward", "loss", L.value.rows(), L.value.cols(), "expected", 1, 1);
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
  enum class Op { embedding, layer_norm, rms_norm, linear, attention, add, gelu, matmul_nt, cross_entropy };
  struct Node {
    Op op = Op::add;
    int a = -1, b = -1, c = -1;  // parent nodes
    bool needs_grad = false;     // a trainable parameter lies upstream
    bool grad_ready = false;     // grad holds this build's gradient (zeroed, then accumulated)
    cuda::DeviceTensor<T> value, grad;
    // Arguments: parameter views (values and gradients, absent when frozen), device ids, sizes.
    cuda::DeviceView<const T> p0, p1;
    cuda::DeviceView<T> dp0, dp1;
    const std::int64_t* i0 = nullptr;
    const std::int64_t* i1 = nullptr;
    const DeviceLinear<T>* lin = nullptr;
    Index B = 0, Tn = 0, H = 0;
    // Saved by the forward and scratch of the backward; only the op's own ever gets memory.
    cuda::DeviceTensor<T> stats;
    cuda::AttentionSaved<T> attn;
    cuda::LoRASaved<T> lora;
    cuda::HypLoRASaved<T> hyp;
    cuda::CrossEntropySaved<T> ce;
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
      throw value_error("DeviceGraph: node " + std::to_string(v.id) + " is not in the current build of " +
                        std::to_string(size_) + " nodes");
    return nodes_[static_cast<std::size_t>(v.id)];
  }
  const Node& at(Var v) const { return const_cast<DeviceGraph*>(this)->at(v); }

  /// The gradient of node id to accumulate into: zeroed before its first use in this backward;
  /// absent when the node needs none.
  cuda::DeviceView<T> grad_in(int id) {
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
      cuda::accumulate_grad<T>(ctx_, g, n.grad.data(), n.grad.size());
      return;
    }
    n.grad.resize(n.value.rows(), n.value.cols(), *ctx_.alloc);
    if (n.grad.size() > 0)
      HYPLORA_CUDA_CHECK(cudaMemcpyAsync(n.grad.data(), g, n.grad.bytes(), cudaMemcpyDeviceToDevice, ctx_.stream));
    n.grad_ready = true;
  }

  static cuda::LoRAInputs<T> lora_inputs(const DeviceLinear<T>& p, cuda::DeviceView<const T> x) {
    return cuda::LoRAInputs<T>{x, p.W, x, p.A, p.B, p.b, p.gamma};
  }
  static cuda::HypLoRAInputs<T> hyplora_inputs(const DeviceLinear<T>& p, cuda::DeviceView<const T> x) {
    return cuda::HypLoRAInputs<T>{x, p.W, x, p.A, p.B, p.b, p.R, p.sigma, p.gamma, p.sig_out};
  }

  void backward_node(Node& n) {
    const cuda::DeviceView<const T> g = n.grad.cview();
    switch (n.op) {
      case Op::embedding:
        if (n.dp0.present()) cuda::embedding_backward<T>(ctx_, g, n.i0, n.dp0);
        if (n.dp1.present()) cuda::embedding_backward<T>(ctx_, g, n.i1, n.dp1);
        return;
      case Op::layer_norm: {
        const cuda::DeviceView<T> dx = grad_in(n.a);
        cuda::layer_norm_backward<T>(ctx_, nodes_[static_cast<std::size_t>(n.a)].value.cview(), n.p0, n.stats, g, dx,
                                     n.dp0, n.dp1);
        return;
      }
      case Op::rms_norm: {
        const cuda::DeviceView<T> dx = grad_in(n.a);
        cuda::rms_norm_backward<T>(ctx_, nodes_[static_cast<std::size_t>(n.a)].value.cview(), n.p0, n.stats, g, dx, n.dp0);
        return;
      }
      case Op::linear: {
        const DeviceLinear<T>& p = *n.lin;
        const cuda::DeviceView<const T> x = nodes_[static_cast<std::size_t>(n.a)].value.cview();
        const cuda::DeviceView<T> dx = grad_in(n.a);
        switch (p.kind) {
          case DeviceLinear<T>::Kind::plain:
            cuda::detail::linear_base_backward<T>(ctx_, x, p.W, g, dx, p.dW, p.b.present() ? p.db : cuda::DeviceView<T>{});
            return;
          case DeviceLinear<T>::Kind::lora:
            cuda::lora_backward<T>(ctx_, lora_inputs(p, x), n.lora, g, cuda::LoRAGrads<T>{dx, p.dW, dx, p.dA, p.dB, p.db});
            return;
          case DeviceLinear<T>::Kind::hyplora:
            cuda::hyplora_backward<T>(ctx_, hyplora_inputs(p, x), n.hyp, g,
                                      cuda::HypLoRAGrads<T>{dx, p.dW, dx, p.dA, p.dB, p.db, {}, {}});
            return;
        }
        return;
      }
      case Op::attention: {
        const cuda::DeviceView<T> dq = grad_in(n.a), dk = grad_in(n.b), dv = grad_in(n.c);
        cuda::causal_attention_backward<T>(ctx_, n.attn, n.B, n.Tn, n.H, g, dq, dk, dv);
        return;
      }
      case Op::add:
        accumulate(n.a, g.data);
        accumulate(n.b, g.data);
        return;
      case Op::gelu: {
        const cuda::DeviceView<T> dx = grad_in(n.a);
        if (dx.present()) cuda::gelu_backward<T>(ctx_, nodes_[static_cast<std::size_t>(n.a)].value.data(), g.data, dx.data, g.size());
        return;
      }
      case Op::matmul_nt: {  // z = x·Wᵀ: dx += G·W, dW += Gᵀ·x
        const Node& a = nodes_[static_cast<std::size_t>(n.a)];
        const Index N = a.value.rows(), C = a.value.cols(), V = n.p0.rows;
        const cuda::DeviceView<T> dx = grad_in(n.a);
        if (dx.present())
          cuda::gemm<T>(ctx_.blas, cuda::Op::N, cuda::Op::N, N, C, V, T(1), g.data, V, n.p0.data, C, T(1), dx.data, C);
        if (n.dp0.present())
          cuda::gemm<T>(ctx_.blas, cuda::Op::T, cuda::Op::N, V, C, N, T(1), g.data, V, a.value.data(), C, T(1), n.dp0.data, C);
        return;
      }
      case Op::cross_entropy: {
        const Node& a = nodes_[static_cast<std::size_t>(n.a)];
        const cuda::DeviceView<T> dl = grad_in(n.a);
        if (dl.present()) cuda::cross_entropy_backward<T>(ctx_, a.value.cview(), n.i0, n.ce, g, dl);
        return;
      }
    }
  }

  cuda::Context ctx_;
  std::deque<Node> nodes_;
  std::size_t size_ = 0;  // nodes of the current build
  cuda::DeviceTensor<T> one_;
};

}  // namespace hyplora::examples
