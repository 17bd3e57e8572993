// examples/transformer/gpt_cuda.cuh — the GPT of model.hpp trained on the GPU: forward, backward,
// global grad-norm clip and AdamW, with the CPU Trainer's (train.hpp) hyper-parameters and schedule.
//
// One model definition (issue #6): the network is GPT::build (model.hpp), run here on a device
// tape (cuda::Graph, include/hyplora/cuda/graph.cuh) instead of the CPU's autodiff tape; this file adds
// only what is device-specific: the parameter arena, the batch upload, clipping and AdamW.
// tests/cuda/test_gpt_cuda.cu compares the two devices (losses over 20 steps, gradients).
//
// Built FROM a CPU GPT<T> + ParameterStore<T>: the model is copied (only its structure is used:
// config, parameter handles, adapter configs), every parameter is copied to the device once, the
// trainable ones first (packed, so clipping and AdamW are one pass each over one arena), then the
// frozen ones. Supported: layer norm and RMS norm (eps 1e-6, as the CPU); projections that are
// plain (frozen, or trainable with --adapter full) or carry any adapter kind (lora, dora, hyplora,
// hyplora_official, hyplora_official_simplified, hyplora_stereographic), with fixed or learned
// curvature / feature scale and adapter dropout (the CPU's mask: seed AdaptedLinear::dropout_seed of
// the step index, as the Trainer passes step_). Merged adapters throw value_error "... not
// supported on cuda yet". Learned scalars (lora_k, lora_norm_scale) enter the device ops as host
// values: before each step's build they are gathered from the arena into a small device buffer and
// copied to the host in one transfer (one host sync per step, only when the model has any).
// Steady state allocates no device memory: the graph is rebuilt each step on nodes reused by
// position (same shapes, caching allocator).
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
#include "hyplora/cuda/device_tensor.hpp"
#include "hyplora/cuda/error.hpp"
#include "hyplora/cuda/graph.cuh"
#include "hyplora/cuda/kernels/adamw.cuh"
#include "hyplora/cuda/kernels/clip_grad.cuh"
#include "hyplora/cuda/kernels/embedding.cuh"
#include "hyplora/nn/adapted_linear.hpp"
#include "hyplora/optim/adamw.hpp"
#include "hyplora/optim/lr_schedule.hpp"
#include "model.hpp"
#include "train.hpp"

namespace hyplora::examples {

namespace detail {
// out[i] = values[at[i]]: the learned scalars of the arena, gathered for one copy to the host.
template <class T>
__global__ void gather_scalars_kernel(const T* __restrict__ values, const std::int64_t* __restrict__ at,
                                      std::int64_t n, T* __restrict__ out) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[i] = values[at[i]];
}
}  // namespace detail

template <class T>
class DeviceGPT {
 public:
  /// Copies the model's structure and parameters to the device; a fresh optimizer (step 0), as a
  /// new Trainer. value_error for what the device path does not support yet (see the file comment).
  DeviceGPT(const cuda::Context& ctx, const GPT<T>& model, const ad::ParameterStore<T>& store, const TrainConfig& cfg)
      : ctx_(ctx), model_(model), cfg_(cfg), adam_(Trainer<T>::adam_config(cfg)),
        sched_(cfg.lr, cfg.min_lr, std::min<std::int64_t>(cfg.warmup, cfg.steps), std::max(1, cfg.steps)), graph_(ctx) {
    const char* op = "DeviceGPT";
    if (!(cfg_.clip >= 0.0)) throw value_error(std::string(op) + ": clip must be >= 0 (or inf), got " + std::to_string(cfg_.clip));
    optim::check_config(adam_, op);
    layout(store);  // the arena is never resized again: the views below stay valid
    lin_of_.assign(static_cast<std::size_t>(store.count()), -1);
    for (const auto& b : model_.blocks())
      for (const nn::AdaptedLinear<T>& p : b.proj) {
        const int w = p.base().weight().index;
        if (w < 0 || w >= store.count())
          throw value_error("DeviceGPT: projection '" + p.base().name() + "' is not in the store (" +
                            std::to_string(store.count()) + " parameters)");
        lin_of_[static_cast<std::size_t>(w)] = static_cast<int>(lins_.size());
        lin_src_.push_back(LinSource{&p, -1, -1});
        lins_.push_back(make_linear(p, lin_src_.back()));
      }
    if (!scalar_at_.empty()) {
      const Index n = static_cast<Index>(scalar_at_.size());
      scalar_at_dev_.resize(n, 1, *ctx_.alloc);
      scalar_dev_.resize(n, 1, *ctx_.alloc);
      scalar_host_.resize(scalar_at_.size());
      HYPLORA_CUDA_CHECK(cudaMemcpyAsync(scalar_at_dev_.data(), scalar_at_.data(), scalar_at_.size() * sizeof(std::int64_t),
                                         cudaMemcpyHostToDevice, ctx_.stream));
      HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));  // scalar_at_ is host memory
    }
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
    prepare_linears();
    grads_.set_zero(ctx_.stream);
    graph_.clear();
    Graph g{*this, B * Tn};
    const Var l = graph_.cross_entropy(model_.build(g, B, Tn), targets_.data());  // GPT::loss's graph
    graph_.backward(l);
    T loss = T(0);
    HYPLORA_CUDA_CHECK(cudaMemcpyAsync(&loss, graph_.value(l).data, sizeof(T), cudaMemcpyDeviceToHost, ctx_.stream));
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

  /// Replaces every device value by the store's (laid out like the one this was built from), e.g.
  /// after loading a checkpoint into it; the optimizer state is load_optimizer's.
  void copy_from_host(const ad::ParameterStore<T>& store) {
    if (store.count() != static_cast<int>(dev_.size()))
      throw value_error("DeviceGPT::copy_from_host: the store has " + std::to_string(store.count()) +
                        " parameters, the model " + std::to_string(dev_.size()));
    for (int k = 0; k < store.count(); ++k)  // all checked before anything is overwritten
      if (store.info(store.at_index(k)).size() != dev_[static_cast<std::size_t>(k)].size)
        throw value_error("DeviceGPT::copy_from_host: parameter '" + store.info(store.at_index(k)).name +
                          "' has another shape");
    for (int k = 0; k < store.count(); ++k) {
      const Slot& s = dev_[static_cast<std::size_t>(k)];
      if (s.size == 0) continue;
      HYPLORA_CUDA_CHECK(cudaMemcpyAsync(values_.data() + s.offset, store.value(store.at_index(k)).data(),
                                         s.size * sizeof(T), cudaMemcpyHostToDevice, ctx_.stream));
    }
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
  }

  /// Writes the AdamW state (m, v, step counts) into `opt`, an optimizer over a store laid out like
  /// the one this was built from — with copy_to_host, what a checkpoint needs (checkpoint.hpp).
  void copy_optimizer_to_host(optim::AdamW<T>& opt) const {
    HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    for (const auto& s : checked_slots(opt, "copy_optimizer_to_host")) {
      if (s.size == 0) continue;
      const std::size_t off = dev_[static_cast<std::size_t>(s.index)].offset;
      HYPLORA_CUDA_CHECK(cudaMemcpy(opt.exp_avg_arena().data() + s.state, m_.data() + off, s.size * sizeof(T), cudaMemcpyDeviceToHost));
      HYPLORA_CUDA_CHECK(cudaMemcpy(opt.exp_avg_sq_arena().data() + s.state, v_.data() + off, s.size * sizeof(T), cudaMemcpyDeviceToHost));
    }
    for (auto& c : opt.step_counts()) c = step_;
  }

  /// Continues from `opt`'s state (a checkpoint's): m and v are copied to the device and the
  /// schedule resumes at `step`. Every parameter must have taken `step` updates: the device
  /// optimizer keeps one step count for the arena (value_error otherwise).
  void load_optimizer(const optim::AdamW<T>& opt, std::int64_t step) {
    if (step < 0) throw value_error("DeviceGPT::load_optimizer: step must be >= 0, got " + std::to_string(step));
    for (std::size_t k = 0; k < opt.step_counts().size(); ++k)
      if (opt.step_counts()[k] != step)
        throw value_error("DeviceGPT::load_optimizer: parameter slot " + std::to_string(k) + " has taken " +
                          std::to_string(opt.step_counts()[k]) + " updates, the run " + std::to_string(step) +
                          " (the device keeps one step count)");
    for (const auto& s : checked_slots(opt, "load_optimizer")) {
      if (s.size == 0) continue;
      const std::size_t off = dev_[static_cast<std::size_t>(s.index)].offset;
      HYPLORA_CUDA_CHECK(cudaMemcpy(m_.data() + off, opt.exp_avg_arena().data() + s.state, s.size * sizeof(T), cudaMemcpyHostToDevice));
      HYPLORA_CUDA_CHECK(cudaMemcpy(v_.data() + off, opt.exp_avg_sq_arena().data() + s.state, s.size * sizeof(T), cudaMemcpyHostToDevice));
    }
    step_ = step;
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
  using Var = typename cuda::Graph<T>::Var;
  using Kind = typename cuda::LinearParams<T>::Kind;
  // Where a projection's device twin comes from: the CPU layer (its dropout seed) and the indices
  // of its learned θ or k (k_at) and σ (s_at) in the gathered scalars, −1 when fixed.
  struct LinSource {
    const nn::AdaptedLinear<T>* al;  // into model_, which is never resized
    int k_at, s_at;
  };

  // GPT::build's graph on the device: the model's parameter handles resolved to views of the
  // arena (gradient views absent for frozen ones), every op forwarded to the device tape.
  struct Graph {
    using Var = typename cuda::Graph<T>::Var;
    DeviceGPT& m;
    Index N;  // B·T tokens of the batch

    Var embed(ad::Parameter wte, ad::Parameter wpe) {
      return m.graph_.embedding(m.val(wte), m.grad(wte), m.ids_.data(), m.val(wpe), m.grad(wpe), m.pos_.data(), N);
    }
    Var norm(Var x, ad::Parameter gamma, ad::Parameter beta) {  // TapeGraph::norm's choice; beta invalid for RMS
      if (m.model_.config().rms_norm) return m.graph_.rms_norm(x, m.val(gamma), m.grad(gamma));
      return m.graph_.layer_norm(x, m.val(gamma), m.grad(gamma), m.val(beta), m.grad(beta));
    }
    Var proj(Var x, const nn::AdaptedLinear<T>& p) { return m.graph_.linear(x, m.linear_of(p)); }
    Var attention(Var q, Var k, Var v, Index B, Index Tn, Index H) { return m.graph_.attention(q, k, v, B, Tn, H); }
    Var add(Var a, Var b) { return m.graph_.add(a, b); }
    Var gelu(Var x) { return m.graph_.gelu(x); }
    Var head(Var x, ad::Parameter wte) { return m.graph_.matmul_nt(x, m.val(wte), m.grad(wte)); }
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
    copy_from_host(store);
  }

  /// opt's slots, checked to be exactly this model's trainable parameters with the same sizes.
  const std::vector<optim::detail::ParamSlot>& checked_slots(const optim::AdamW<T>& opt, const char* what) const {
    std::size_t trainable = 0;
    for (const Slot& d : dev_) trainable += d.trainable ? 1 : 0;
    const auto& slots = opt.slots();
    if (slots.size() != trainable || opt.config().amsgrad)
      throw value_error(std::string("DeviceGPT::") + what + ": the optimizer has " + std::to_string(slots.size()) +
                        " parameter slots" + (opt.config().amsgrad ? " and amsgrad" : "") + ", the model " +
                        std::to_string(trainable) + " trainable parameters (no amsgrad)");
    for (const auto& s : slots) {
      const bool ok = s.index >= 0 && static_cast<std::size_t>(s.index) < dev_.size() &&
                      dev_[static_cast<std::size_t>(s.index)].trainable && dev_[static_cast<std::size_t>(s.index)].size == s.size;
      if (!ok)
        throw value_error(std::string("DeviceGPT::") + what + ": optimizer slot of parameter " + std::to_string(s.index) +
                          " (" + std::to_string(s.size) + " values) is not a trainable parameter of that size here");
    }
    return slots;
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

  /// The device twin of a projection; registers its learned scalars (lora_k, lora_norm_scale) in
  /// src and scalar_at_. Fixed scalars take the config's values as AdaptedLinear uses them.
  cuda::LinearParams<T> make_linear(const nn::AdaptedLinear<T>& al, LinSource& src) {
    const std::string nm = al.base().name();
    const nn::AdapterConfig& c = al.config();
    if (al.merged()) throw value_error("DeviceGPT: '" + nm + "' is merged; merged adapters are not supported on cuda yet");
    cuda::LinearParams<T> p;
    p.W = val(al.base().weight());
    p.dW = grad(al.base().weight());
    p.b = val(al.base().bias());
    p.db = grad(al.base().bias());
    if (c.kind == nn::AdapterKind::none || c.kind == nn::AdapterKind::full) return p;  // no adapter, no dropout
    p.A = val(al.lora_A());
    p.dA = grad(al.lora_A());
    p.B = val(al.lora_B());
    p.dB = grad(al.lora_B());
    p.gamma = static_cast<T>(c.scaling());
    p.dropout = static_cast<T>(c.dropout);  // the seed is set per step (prepare_linears)
    const ad::Parameter k = al.lora_k(), s = al.lora_norm_scale();
    if (k.valid()) src.k_at = learned_scalar(k);
    if (s.valid()) src.s_at = learned_scalar(s);
    switch (c.kind) {
      case nn::AdapterKind::lora: p.kind = Kind::lora; break;
      case nn::AdapterKind::dora:
        p.kind = Kind::dora;
        p.m = val(al.lora_magnitude());
        p.dm = grad(al.lora_magnitude());
        break;
      case nn::AdapterKind::hyplora:  // R = √K; learned: √(softplus(θ) + 1e-6), θ's gradient through R
        p.kind = Kind::hyplora;
        p.R = static_cast<T>(std::sqrt(c.K));  // as AdaptedLinear::radius: a constant √K
        p.dtheta = grad(k);
        p.sigma = static_cast<T>(c.feature_scale);
        p.dsigma = grad(s);
        p.sig_out = c.scale_out_by_sigma;
        break;
      case nn::AdapterKind::hyplora_official:  // θ and s themselves
        p.kind = Kind::hyplora_official;
        p.theta = static_cast<T>(nn::detail::curvature_to_theta(c.K));  // AdaptedLinear::raw_curvature
        p.dtheta = grad(k);
        p.sigma = static_cast<T>(c.feature_scale);
        p.dsigma = grad(s);
        break;
      case nn::AdapterKind::hyplora_stereographic:
        p.kind = Kind::hyplora_stereographic;
        p.R = static_cast<T>(std::sqrt(c.K));
        p.dtheta = grad(k);
        break;
      case nn::AdapterKind::hyplora_official_simplified:  // the raw k itself
        p.kind = Kind::hyplora_official_simplified;
        p.k = static_cast<T>(c.K);
        p.dk = grad(k);
        break;
      default:
        throw value_error("DeviceGPT: '" + nm + "': adapter kind " + nn::to_string(c.kind) + " is not supported on cuda yet");
    }
    return p;
  }

  /// Registers a learned (1, 1) scalar parameter for the per-step gather; returns its index.
  int learned_scalar(ad::Parameter q) {
    const Slot& sl = dev_.at(static_cast<std::size_t>(q.index));
    if (sl.size != 1) throw value_error("DeviceGPT: a learned adapter scalar has " + std::to_string(sl.size) + " values, not 1");
    scalar_at_.push_back(static_cast<std::int64_t>(sl.offset));
    return static_cast<int>(scalar_at_.size()) - 1;
  }

  /// Before a step's build: this step's dropout seeds (the Trainer's step seed is step_) and the
  /// learned scalars' current values (one gather and one copy to the host, only when there are any).
  void prepare_linears() {
    if (!scalar_at_.empty()) {
      const std::int64_t n = static_cast<std::int64_t>(scalar_at_.size());
      HYPLORA_LAUNCH(1, 128, 0, ctx_.stream, detail::gather_scalars_kernel<T>)(
          values_.data(), scalar_at_dev_.data(), n, scalar_dev_.data());
      HYPLORA_CUDA_CHECK_LAUNCH();
      HYPLORA_CUDA_CHECK(cudaMemcpyAsync(scalar_host_.data(), scalar_dev_.data(), scalar_host_.size() * sizeof(T),
                                         cudaMemcpyDeviceToHost, ctx_.stream));
      HYPLORA_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    }
    for (std::size_t i = 0; i < lins_.size(); ++i) {
      cuda::LinearParams<T>& p = lins_[i];
      const LinSource& src = lin_src_[i];
      p.dropout_seed = src.al->dropout_seed(static_cast<std::uint64_t>(step_));
      if (src.k_at >= 0) {
        const T v = scalar_host_[static_cast<std::size_t>(src.k_at)];
        if (p.kind == Kind::hyplora_official) p.theta = v;
        else if (p.kind == Kind::hyplora_official_simplified) p.k = v;
        else p.set_radius_from_theta(v);  // exact, stereographic: AdaptedLinear::radius
      }
      if (src.s_at >= 0) p.sigma = scalar_host_[static_cast<std::size_t>(src.s_at)];
    }
  }

  /// The device twin of a projection of the model (registered by the constructor).
  const cuda::LinearParams<T>& linear_of(const nn::AdaptedLinear<T>& al) const {
    const int w = al.base().weight().index;
    const int k = w >= 0 && static_cast<std::size_t>(w) < lin_of_.size() ? lin_of_[static_cast<std::size_t>(w)] : -1;
    if (k < 0) throw value_error("DeviceGPT: projection '" + al.base().name() + "' is not one of the model's");
    return lins_[static_cast<std::size_t>(k)];
  }

  // ---- one step ----------------------------------------------------------------------------------
  void upload_batch(const std::vector<std::int64_t>& ids, const std::vector<std::int64_t>& targets, Index B, Index Tn) {
    const GPTConfig& mcfg = model_.config();
    const Index V = mcfg.vocab;
    if (B < 1 || Tn < 1 || Tn > mcfg.block_size || static_cast<Index>(ids.size()) != B * Tn ||
        targets.size() != ids.size())
      throw shape_error("DeviceGPT: ids has " + std::to_string(ids.size()) + " and targets " +
                        std::to_string(targets.size()) + " tokens for B = " + std::to_string(B) + ", T = " +
                        std::to_string(Tn) + " (need B·T, 1 <= T <= block_size " + std::to_string(mcfg.block_size) + ")");
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
  }

  cuda::Context ctx_;
  GPT<T> model_;  // a copy: only build() and the parameter handles are used, never a CPU value
  TrainConfig cfg_;
  optim::AdamConfig adam_;
  optim::WarmupCosineLR sched_;
  std::int64_t step_ = 0;

  std::vector<Slot> dev_;  // by store index
  std::size_t n_train_ = 0;
  cuda::DeviceTensor<T> values_, grads_, m_, v_;  // values: trainable (packed) then frozen; the rest: trainable
  std::vector<cuda::LinearParams<T>> lins_;       // every projection of every block (views into the arena)
  std::vector<int> lin_of_;                       // store index of a projection's weight → lins_ index, else -1
  std::vector<LinSource> lin_src_;                // by lins_ index
  std::vector<std::int64_t> scalar_at_;           // arena offsets of the learned adapter scalars
  cuda::DeviceTensor<std::int64_t> scalar_at_dev_;
  cuda::DeviceTensor<T> scalar_dev_;              // gathered each step, then copied to scalar_host_
  std::vector<T> scalar_host_;

  cuda::DeviceTensor<std::int64_t> ids_, targets_, pos_;
  std::vector<std::int64_t> pos_host_;
  Index pos_B_ = -1, pos_T_ = -1;
  cuda::Graph<T> graph_;  // rebuilt each step, its nodes' tensors reused
  cuda::ClipGradSaved<T> clip_;
};

}  // namespace hyplora::examples
