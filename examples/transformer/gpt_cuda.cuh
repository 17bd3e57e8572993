// examples/transformer/gpt_cuda.cuh — the GPT of model.hpp trained on the GPU: forward, backward,
// global grad-norm clip and AdamW, with the CPU Trainer's (train.hpp) hyper-parameters and schedule.
//
// A stage toward device dispatch in the tape: issue #6 wants ONE model definition that runs on
// either device, and we are not there yet. This file mirrors GPT::forward (model.hpp) op by op
// with the device kernels and ops of include/hyplora/cuda/, so any change to model.hpp must be
// made here too; tests/cuda/test_gpt_cuda.cu compares the two (losses over 20 steps, gradients).
//
// Built FROM a CPU GPT<T> + ParameterStore<T>: every parameter is copied to the device once, the
// trainable ones first (packed, so clipping and AdamW are one pass each over one arena), then the
// frozen ones. Supported: layer norm; projections that are plain (frozen, or trainable with
// --adapter full), LoRA, or exact HypLoRA with fixed K and σ; adapter dropout 0. Anything else
// throws value_error "... not supported on cuda yet". Steady state allocates no device memory:
// every buffer is a DeviceTensor resized to the same shape each step (caching allocator).
//
// Shapes: B sequences of T tokens, N = B·T, C width, H heads, V vocabulary, L layers.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "hyplora/core/errors.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/cublas.hpp"
#include "hyplora/cuda/detail/linear_base.cuh"
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"
#include "hyplora/cuda/kernels/adamw.cuh"
#include "hyplora/cuda/kernels/attention.cuh"
#include "hyplora/cuda/kernels/clip_grad.cuh"
#include "hyplora/cuda/kernels/embedding.cuh"
#include "hyplora/cuda/kernels/gelu.cuh"
#include "hyplora/cuda/kernels/layer_norm.cuh"
#include "hyplora/cuda/kernels/residual.cuh"
#include "hyplora/cuda/kernels/softmax.cuh"
#include "hyplora/cuda/ops_hyplora.cuh"
#include "hyplora/cuda/ops_lora.cuh"
#include "hyplora/optim/adamw.hpp"
#include "hyplora/optim/lr_schedule.hpp"
#include "model.hpp"
#include "train.hpp"

namespace hyplora::examples {

template <class T>
class DeviceGPT {
 public:
  /// Copies the model's parameters to the device; a fresh optimizer (step 0), as a new Trainer.
  /// value_error for what the device path does not support yet (see the file comment).
  DeviceGPT(const cuda::Context& ctx, GPT<T>& model, const ad::ParameterStore<T>& store, const TrainConfig& cfg)
      : ctx_(ctx), mcfg_(model.config()), cfg_(cfg), adam_(Trainer<T>::adam_config(cfg)),
        sched_(cfg.lr, cfg.min_lr, std::min<std::int64_t>(cfg.warmup, cfg.steps), std::max(1, cfg.steps)) {
    const char* op = "DeviceGPT";
    if (mcfg_.rms_norm) throw value_error(std::string(op) + ": RMS norm is not supported on cuda yet (use layer norm)");
    if (!(cfg_.clip >= 0.0)) throw value_error(std::string(op) + ": clip must be >= 0 (or inf), got " + std::to_string(cfg_.clip));
    optim::check_config(adam_, op);
    layout(store);
    wte_ = store.find("wte");
    wpe_ = store.find("wpe");
    lnf_g_ = store.find("ln_f.weight");
    lnf_b_ = store.find("ln_f.bias");
    for (const auto& b : model.blocks()) {
      Layer L;
      L.g1 = b.n1.gamma;
      L.b1 = b.n1.beta;
      L.g2 = b.n2.gamma;
      L.b2 = b.n2.beta;
      for (std::size_t j = 0; j < 6; ++j) L.proj[j] = make_proj(b.proj[j]);
      layers_.push_back(std::move(L));
    }
    xs_.resize(layers_.size() + 1);
    one_.resize(1, 1, *ctx_.alloc);
    const T one = T(1);
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(one_.data(), &one, sizeof(T), cudaMemcpyHostToDevice, ctx_.stream));
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
  }

  /// One update on (ids, targets) of B sequences of T tokens (Trainer::step's order: zero grads,
  /// loss, backward, clip, AdamW at lr(step)); returns the loss before the update.
  double step(const std::vector<std::int64_t>& ids, const std::vector<std::int64_t>& targets, Index B, Index Tn) {
    const double loss = forward_backward(ids, targets, B, Tn);
    update();
    return loss;
  }

  /// Zeroes the gradients, then forward and backward; returns the loss (waits for the device).
  double forward_backward(const std::vector<std::int64_t>& ids, const std::vector<std::int64_t>& targets, Index B, Index Tn) {
    upload_batch(ids, targets, B, Tn);
    grads_.set_zero(ctx_.stream);
    forward(B, Tn);
    backward(B, Tn);
    T loss = T(0);
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(&loss, loss_.data(), sizeof(T), cudaMemcpyDeviceToHost, ctx_.stream));
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    return static_cast<double>(loss);
  }

  /// Clip (when cfg.clip is finite) and one AdamW update at lr(step); advances the step.
  void update() {
    const std::int64_t n = static_cast<std::int64_t>(n_train_);
    if (std::isfinite(cfg_.clip)) cuda::clip_grad_norm<T>(ctx_, grads_.data(), n, cfg_.clip, clip_);
    optim::AdamConfig a = adam_;
    a.lr = sched_.lr(step_);
    cuda::adamw_step<T>(ctx_, values_.data(), grads_.data(), m_.data(), v_.data(), nullptr, n, a, step_ + 1);
    ++step_;
  }

  /// Writes the device values (and, with grads, the trainable gradients; frozen ones are set to
  /// 0) into a store laid out like the one this was built from.
  void copy_to_host(ad::ParameterStore<T>& store, bool grads = false) const {
    if (store.count() != static_cast<int>(dev_.size()))
      throw value_error("DeviceGPT::copy_to_host: the store has " + std::to_string(store.count()) +
                        " parameters, the model " + std::to_string(dev_.size()));
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    for (int k = 0; k < store.count(); ++k) {
      const ad::Parameter p = store.at_index(k);
      const Slot& s = dev_[static_cast<std::size_t>(k)];
      if (store.info(p).size() != s.size)
        throw value_error("DeviceGPT::copy_to_host: parameter '" + store.info(p).name + "' has another shape");
      if (s.size == 0) continue;
      HYPLORA_CUDA_CHECK(cudaMemcpy(store.value(p).data(), values_.data() + s.offset, s.size * sizeof(T), cudaMemcpyDeviceToHost));
      if (grads) {
        if (s.trainable)
          HYPLORA_CUDA_CHECK(cudaMemcpy(store.grad(p).data(), grads_.data() + s.offset, s.size * sizeof(T), cudaMemcpyDeviceToHost));
        else
          store.grad(p).setZero();
      }
    }
  }

  /// The pre-clip gradient norm of the last update (waits for the device); NaN when clip is inf.
  double last_grad_norm() const {
    if (!std::isfinite(cfg_.clip) || clip_.norm.size() == 0) return NAN;
    double n = 0;
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(&n, clip_.norm.data(), sizeof(double), cudaMemcpyDeviceToHost, ctx_.stream));
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    return n;
  }

  std::int64_t step_index() const { return step_; }
  std::size_t trainable_size() const { return n_train_; }

 private:
  struct Slot {
    std::size_t offset = 0, size = 0;
    Index rows = 0, cols = 0;
    bool trainable = false;
  };
  enum class ProjKind { plain, lora, hyplora };
  struct Proj {
    ProjKind kind = ProjKind::plain;
    ad::Parameter W, b, A, B;
    T gamma = T(1), R = T(1), sigma = T(1);
    bool sig_out = false;
    cuda::LoRASaved<T> ls;
    cuda::HypLoRASaved<T> hs;
  };
  struct Layer {
    ad::Parameter g1, b1, g2, b2;
    Proj proj[6];  // q, k, v, o, fc1, fc2 (gpt_target_names order)
  };
  // Activations of one block (kept for the backward) and its scratch.
  struct Acts {
    cuda::DeviceTensor<T> st1, h, q, k, v, att, o, x1, st2, h2, f, m, z5;
    cuda::AttentionSaved<T> attn;
  };

  // ---- parameters ------------------------------------------------------------------------------
  void layout(const ad::ParameterStore<T>& store) {
    dev_.resize(static_cast<std::size_t>(store.count()));
    std::size_t off = 0;
    for (int pass = 0; pass < 2; ++pass)  // trainable first, then frozen
      for (int k = 0; k < store.count(); ++k) {
        const auto& info = store.info(store.at_index(k));
        if (info.trainable != (pass == 0)) continue;
        dev_[static_cast<std::size_t>(k)] = Slot{off, info.size(), info.rows, info.cols, info.trainable};
        off += info.size();
        if (pass == 0) n_train_ = off;
      }
    const Index total = static_cast<Index>(off), nt = static_cast<Index>(n_train_);
    values_.resize(total, 1, *ctx_.alloc);
    grads_.resize(nt, 1, *ctx_.alloc);
    m_.resize(nt, 1, *ctx_.alloc);
    v_.resize(nt, 1, *ctx_.alloc);
    m_.set_zero(ctx_.stream);
    v_.set_zero(ctx_.stream);
    for (int k = 0; k < store.count(); ++k) {
      const Slot& s = dev_[static_cast<std::size_t>(k)];
      if (s.size == 0) continue;
      HYPLORA_CUDA_CHECK(cudaMemcpyAsync(values_.data() + s.offset, store.value(store.at_index(k)).data(),
                                         s.size * sizeof(T), cudaMemcpyHostToDevice, ctx_.stream));
    }
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
  }

  cuda::DeviceView<T> val(ad::Parameter p) {
    if (!p.valid()) return {};
    const Slot& s = dev_.at(static_cast<std::size_t>(p.index));
    return cuda::DeviceView<T>{values_.data() + s.offset, s.rows, s.cols};
  }
  /// The gradient view of a trainable parameter; absent for a frozen (or invalid) one.
  cuda::DeviceView<T> grad(ad::Parameter p) {
    if (!p.valid()) return {};
    const Slot& s = dev_.at(static_cast<std::size_t>(p.index));
    if (!s.trainable) return {};
    return cuda::DeviceView<T>{grads_.data() + s.offset, s.rows, s.cols};
  }

  Proj make_proj(const nn::AdaptedLinear<T>& al) const {
    const std::string nm = al.base().name();
    const nn::AdapterConfig& c = al.config();
    if (al.merged()) throw value_error("DeviceGPT: '" + nm + "' is merged; merged adapters are not supported on cuda yet");
    Proj p;
    p.W = al.base().weight();
    p.b = al.base().bias();
    if (c.kind == nn::AdapterKind::none || c.kind == nn::AdapterKind::full) return p;
    if (c.kind != nn::AdapterKind::lora && c.kind != nn::AdapterKind::hyplora)
      throw value_error("DeviceGPT: '" + nm + "': adapter kind " + nn::to_string(c.kind) +
                        " is not supported on cuda yet (full, lora, hyplora)");
    if (c.dropout != 0.0)
      throw value_error("DeviceGPT: '" + nm + "': adapter dropout " + std::to_string(c.dropout) +
                        " is not supported on cuda yet (dropout must be 0)");
    p.A = al.lora_A();
    p.B = al.lora_B();
    p.gamma = static_cast<T>(c.scaling());
    if (c.kind == nn::AdapterKind::lora) {
      p.kind = ProjKind::lora;
      return p;
    }
    if (c.learn_curvature || c.learn_feature_scale)
      throw value_error("DeviceGPT: '" + nm + "': a learned curvature or feature scale is not supported on cuda yet "
                        "(HypLoRA with fixed K and sigma only)");
    p.kind = ProjKind::hyplora;
    p.R = static_cast<T>(std::sqrt(c.K));  // as AdaptedLinear::radius: a constant √K
    p.sigma = static_cast<T>(c.feature_scale);
    p.sig_out = c.scale_out_by_sigma;
    return p;
  }

  // z (resized) = the projection of x.  x: (N, D_in)  z: (N, D_out).
  void proj_forward(Proj& p, cuda::DeviceView<const T> x, cuda::DeviceTensor<T>& z) {
    const cuda::DeviceView<const T> W = val(p.W), b = val(p.b);
    switch (p.kind) {
      case ProjKind::plain:
        z.resize(x.rows, W.rows, *ctx_.alloc);
        cuda::detail::linear_base_forward<T>(ctx_, x, W, b, z.view());
        return;
      case ProjKind::lora:
        cuda::lora_forward<T>(ctx_, cuda::LoRAInputs<T>{x, W, x, val(p.A), val(p.B), b, p.gamma}, z, p.ls);
        return;
      case ProjKind::hyplora:
        cuda::hyplora_forward<T>(ctx_, cuda::HypLoRAInputs<T>{x, W, x, val(p.A), val(p.B), b, p.R, p.sigma, p.gamma, p.sig_out},
                                 z, p.hs);
        return;
    }
  }

  // dx += ∂L/∂x, and the parameter gradients of the trainable ones, for G = ∂L/∂z.
  void proj_backward(Proj& p, cuda::DeviceView<const T> x, cuda::DeviceView<const T> G, cuda::DeviceView<T> dx) {
    const cuda::DeviceView<const T> W = val(p.W), b = val(p.b);
    switch (p.kind) {
      case ProjKind::plain:
        cuda::detail::linear_base_backward<T>(ctx_, x, W, G, dx, grad(p.W), b.present() ? grad(p.b) : cuda::DeviceView<T>{});
        return;
      case ProjKind::lora:
        cuda::lora_backward<T>(ctx_, cuda::LoRAInputs<T>{x, W, x, val(p.A), val(p.B), b, p.gamma}, p.ls, G,
                               cuda::LoRAGrads<T>{dx, grad(p.W), dx, grad(p.A), grad(p.B), grad(p.b)});
        return;
      case ProjKind::hyplora:
        cuda::hyplora_backward<T>(ctx_, cuda::HypLoRAInputs<T>{x, W, x, val(p.A), val(p.B), b, p.R, p.sigma, p.gamma, p.sig_out},
                                  p.hs, G, cuda::HypLoRAGrads<T>{dx, grad(p.W), dx, grad(p.A), grad(p.B), grad(p.b), {}, {}});
        return;
    }
  }

  // ---- one step ----------------------------------------------------------------------------------
  void upload_batch(const std::vector<std::int64_t>& ids, const std::vector<std::int64_t>& targets, Index B, Index Tn) {
    const Index V = mcfg_.vocab;
    if (B < 1 || Tn < 1 || Tn > mcfg_.block_size || static_cast<Index>(ids.size()) != B * Tn ||
        targets.size() != ids.size())
      throw shape_error("DeviceGPT: ids has " + std::to_string(ids.size()) + " and targets " +
                        std::to_string(targets.size()) + " tokens for B = " + std::to_string(B) + ", T = " +
                        std::to_string(Tn) + " (need B·T, 1 <= T <= block_size " + std::to_string(mcfg_.block_size) + ")");
    cuda::check_embedding_ids("DeviceGPT (ids)", ids, V);
    for (std::size_t k = 0; k < targets.size(); ++k)
      if (targets[k] < -1 || targets[k] >= static_cast<std::int64_t>(V))
        throw value_error("DeviceGPT: target " + std::to_string(targets[k]) + " at position " + std::to_string(k) +
                          " is outside [0, V) for V = " + std::to_string(V) + " (and not -1, ignored)");
    const Index N = B * Tn;
    ids_.resize(N, 1, *ctx_.alloc);
    targets_.resize(N, 1, *ctx_.alloc);
    const std::size_t bytes = static_cast<std::size_t>(N) * sizeof(std::int64_t);
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(ids_.data(), ids.data(), bytes, cudaMemcpyHostToDevice, ctx_.stream));
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(targets_.data(), targets.data(), bytes, cudaMemcpyHostToDevice, ctx_.stream));
    if (pos_B_ != B || pos_T_ != Tn) {  // positions i mod T, as GPT::forward's pos_
      pos_host_.resize(static_cast<std::size_t>(N));
      for (std::size_t i = 0; i < pos_host_.size(); ++i) pos_host_[i] = static_cast<std::int64_t>(i % static_cast<std::size_t>(Tn));
      pos_.resize(N, 1, *ctx_.alloc);
      HYPLORA_CUDA_CHECK(cudaMemcpyAsync(pos_.data(), pos_host_.data(), bytes, cudaMemcpyHostToDevice, ctx_.stream));
      pos_B_ = B;
      pos_T_ = Tn;
    }
    acts_.resize(layers_.size());
  }

  // GPT::forward, then the mean cross-entropy into loss_.
  void forward(Index B, Index Tn) {
    const Index N = B * Tn, C = mcfg_.width, V = mcfg_.vocab, H = mcfg_.heads;
    auto& A = *ctx_.alloc;
    xs_[0].resize(N, C, A);
    cuda::embedding_forward<T>(ctx_, val(wte_), ids_.data(), val(wpe_), pos_.data(), xs_[0].view());
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = layers_[l];
      Acts& a = acts_[l];
      const cuda::DeviceView<const T> x = xs_[l].cview();
      a.h.resize(N, C, A);
      cuda::layer_norm_forward<T>(ctx_, x, val(L.g1), val(L.b1), a.h.view(), a.st1);
      proj_forward(L.proj[0], a.h.cview(), a.q);
      proj_forward(L.proj[1], a.h.cview(), a.k);
      proj_forward(L.proj[2], a.h.cview(), a.v);
      a.att.resize(N, C, A);
      cuda::causal_attention_forward<T>(ctx_, a.q.cview(), a.k.cview(), a.v.cview(), B, Tn, H, a.att.view(), a.attn);
      proj_forward(L.proj[3], a.att.cview(), a.o);
      a.x1.resize(N, C, A);
      cuda::residual_add<T>(ctx_, x.data, a.o.data(), a.x1.data(), N * C);  // x1 = x + o(att)
      a.h2.resize(N, C, A);
      cuda::layer_norm_forward<T>(ctx_, a.x1.cview(), val(L.g2), val(L.b2), a.h2.view(), a.st2);
      proj_forward(L.proj[4], a.h2.cview(), a.f);  // (N, 4C)
      a.m.resize(a.f.rows(), a.f.cols(), A);
      cuda::gelu_forward<T>(ctx_, a.f.data(), a.m.data(), a.f.size());
      proj_forward(L.proj[5], a.m.cview(), a.z5);
      xs_[l + 1].resize(N, C, A);
      cuda::residual_add<T>(ctx_, a.x1.data(), a.z5.data(), xs_[l + 1].data(), N * C);  // x ← x1 + fc2(gelu(fc1(h2)))
    }
    const cuda::DeviceTensor<T>& xL = xs_.back();
    hf_.resize(N, C, A);
    cuda::layer_norm_forward<T>(ctx_, xL.cview(), val(lnf_g_), val(lnf_b_), hf_.view(), stf_);
    logits_.resize(N, V, A);  // tied head: (N, C)·(V, C)ᵀ
    cuda::gemm<T>(ctx_.blas, cuda::Op::N, cuda::Op::T, N, V, C, T(1), hf_.data(), C, val(wte_).data, C, T(0),
                  logits_.data(), V);
    loss_.resize(1, 1, A);
    cuda::cross_entropy_forward<T>(ctx_, logits_.cview(), targets_.data(), loss_.view(), ce_);
  }

  // The tape's backward of forward(), with ∂loss = 1; every gradient buffer accumulates.
  void backward(Index B, Index Tn) {
    const Index N = B * Tn, C = mcfg_.width, V = mcfg_.vocab, H = mcfg_.heads;
    auto& A = *ctx_.alloc;
    dlogits_.resize(N, V, A);
    dlogits_.set_zero(ctx_.stream);
    cuda::cross_entropy_backward<T>(ctx_, logits_.cview(), targets_.data(), ce_, one_.cview(), dlogits_.view());
    const cuda::DeviceView<T> E = val(wte_), dE = grad(wte_);
    dhf_.resize(N, C, A);  // dhf = dlogits·E
    cuda::gemm<T>(ctx_.blas, cuda::Op::N, cuda::Op::N, N, C, V, T(1), dlogits_.data(), V, E.data, C, T(0), dhf_.data(), C);
    if (dE.present())  // dE += dlogitsᵀ·hf
      cuda::gemm<T>(ctx_.blas, cuda::Op::T, cuda::Op::N, V, C, N, T(1), dlogits_.data(), V, hf_.data(), C, T(1), dE.data, C);
    dx_.resize(N, C, A);  // the residual stream's gradient, updated in place block by block
    dx_.set_zero(ctx_.stream);
    cuda::layer_norm_backward<T>(ctx_, xs_.back().cview(), val(lnf_g_), stf_, dhf_.cview(), dx_.view(), grad(lnf_g_),
                                 grad(lnf_b_));
    for (std::size_t l = layers_.size(); l-- > 0;) {
      Layer& L = layers_[l];
      Acts& a = acts_[l];
      // x_out = x1 + fc2(m): fc2's output gradient is dx (the residual passes it to x1 unchanged).
      zeroed(dm_, a.m.rows(), a.m.cols());
      proj_backward(L.proj[5], a.m.cview(), dx_.cview(), dm_.view());
      zeroed(df_, a.f.rows(), a.f.cols());
      cuda::gelu_backward<T>(ctx_, a.f.data(), dm_.data(), df_.data(), a.f.size());
      zeroed(dh2_, N, C);
      proj_backward(L.proj[4], a.h2.cview(), df_.cview(), dh2_.view());
      cuda::layer_norm_backward<T>(ctx_, a.x1.cview(), val(L.g2), a.st2, dh2_.cview(), dx_.view(), grad(L.g2), grad(L.b2));
      // dx is now ∂L/∂x1; x1 = x + o(att).
      zeroed(datt_, N, C);
      proj_backward(L.proj[3], a.att.cview(), dx_.cview(), datt_.view());
      zeroed(dq_, N, C);
      zeroed(dk_, N, C);
      zeroed(dv_, N, C);
      cuda::causal_attention_backward<T>(ctx_, a.attn, B, Tn, H, datt_.cview(), dq_.view(), dk_.view(), dv_.view());
      zeroed(dh_, N, C);
      proj_backward(L.proj[0], a.h.cview(), dq_.cview(), dh_.view());
      proj_backward(L.proj[1], a.h.cview(), dk_.cview(), dh_.view());
      proj_backward(L.proj[2], a.h.cview(), dv_.cview(), dh_.view());
      cuda::layer_norm_backward<T>(ctx_, xs_[l].cview(), val(L.g1), a.st1, dh_.cview(), dx_.view(), grad(L.g1), grad(L.b1));
    }
    // x0 = wte[ids] + wpe[pos].
    if (dE.present()) cuda::embedding_backward<T>(ctx_, dx_.cview(), ids_.data(), dE);
    const cuda::DeviceView<T> dP = grad(wpe_);
    if (dP.present()) cuda::embedding_backward<T>(ctx_, dx_.cview(), pos_.data(), dP);
  }

  void zeroed(cuda::DeviceTensor<T>& t, Index rows, Index cols) {
    t.resize(rows, cols, *ctx_.alloc);
    t.set_zero(ctx_.stream);
  }

  cuda::Context ctx_;
  GPTConfig mcfg_;
  TrainConfig cfg_;
  optim::AdamConfig adam_;
  optim::WarmupCosineLR sched_;
  std::int64_t step_ = 0;

  std::vector<Slot> dev_;  // by store index
  std::size_t n_train_ = 0;
  cuda::DeviceTensor<T> values_, grads_, m_, v_;  // values: trainable (packed) then frozen; the rest: trainable
  ad::Parameter wte_, wpe_, lnf_g_, lnf_b_;
  std::vector<Layer> layers_;

  cuda::DeviceTensor<std::int64_t> ids_, targets_, pos_;
  std::vector<std::int64_t> pos_host_;
  Index pos_B_ = -1, pos_T_ = -1;
  std::vector<cuda::DeviceTensor<T>> xs_;  // residual stream: block inputs, then the last output
  std::vector<Acts> acts_;
  cuda::DeviceTensor<T> hf_, stf_, logits_, loss_, one_;
  cuda::CrossEntropySaved<T> ce_;
  cuda::DeviceTensor<T> dlogits_, dhf_, dx_, dm_, df_, dh2_, datt_, dq_, dk_, dv_, dh_;
  cuda::ClipGradSaved<T> clip_;
};

}  // namespace hyplora::examples
