// hyplora/optim/adamw.hpp — Adam and AdamW (decoupled weight decay), with bias correction and
// optional AMSGrad; PyTorch's torch.optim.Adam / AdamW semantics (docs/math.md Eq. (203)–(207)).
//
// First and second moments live in two contiguous arenas over the trainable slots, sized once;
// step() is a flat loop and allocates nothing. The moments and per-slot step counts are exposed
// so a checkpoint can save and restore them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "hyplora/autodiff/parameters.hpp"
#include "hyplora/core/config.hpp"
#include "hyplora/optim/detail/param_slots.hpp"

namespace hyplora::optim {

struct AdamConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  /// true: AdamW, x ← x(1 − lr·λ) (Eq. (203)); false: Adam's L2 term g ← g + λx (Eq. (204)).
  bool decoupled_weight_decay = true;
  /// Divide by the running maximum of v instead of v (PyTorch's AMSGrad, Eq. (207)).
  bool amsgrad = false;
};

/// Validates an Adam configuration; throws value_error naming the bad field.
inline void check_config(const AdamConfig& c, const char* opt = "AdamW") {
  detail::check_nonneg(opt, "lr", c.lr);
  detail::check_beta(opt, "beta1", c.beta1);
  detail::check_beta(opt, "beta2", c.beta2);
  detail::check_nonneg(opt, "weight_decay", c.weight_decay);
  if (!(c.eps > 0.0) || !std::isfinite(c.eps))
    throw value_error(std::string(opt) + ": eps must be finite and > 0, got " + std::to_string(c.eps));
}

namespace detail {

/// Adam updates from this many scalars on run on all OpenMP threads (below, fork/join costs more).
inline constexpr std::size_t kAdamParallelMin = std::size_t(1) << 16;

/// The per-step scalars of Eq. (205)–(206) for step t ≥ 1, computed in double.
struct AdamCoefs {
  double step_size;  // lr / (1 − β1^t)
  double inv_sqrt_bc2;  // 1 / √(1 − β2^t)
};

inline AdamCoefs adam_coefs(const AdamConfig& c, std::int64_t t) {
  const double bc1 = 1.0 - std::pow(c.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(c.beta2, static_cast<double>(t));
  return AdamCoefs{c.lr / bc1, 1.0 / std::sqrt(bc2)};
}

/// One step's scalars in the parameter type, and the element update of Eq. (203)–(207) written
/// once for every caller: the vectorised CPU loop (Eigen arrays), the scalar AMSGrad loop and
/// the CUDA kernel (cuda/kernels/adamw.cuh) instantiate the same HYPLORA_HD members on their
/// value type V (a scalar or an Eigen array expression).
template <class T>
struct AdamStep {
  T b1, b2, one_b1, one_b2, eps, wd, decay, step, ibc2;
  bool decoupled;  // AdamW: x ← x(1 − lr·λ) before the update (Eq. (203))
  bool l2;         // Adam: g ← g + λx (Eq. (204))

  static AdamStep make(const AdamConfig& c, std::int64_t t) {
    const AdamCoefs k = adam_coefs(c, t);
    return AdamStep{T(c.beta1), T(c.beta2), T(1.0 - c.beta1), T(1.0 - c.beta2), T(c.eps), T(c.weight_decay),
                    T(1.0 - c.lr * c.weight_decay), T(k.step_size), T(k.inv_sqrt_bc2),
                    c.weight_decay != 0.0 && c.decoupled_weight_decay, c.weight_decay != 0.0 && !c.decoupled_weight_decay};
  }
  HYPLORA_HD_GENERIC
  HYPLORA_HD_GENERIC
  template <class V, class W>
  HYPLORA_HD_INLINE auto l2_grad(const V& g, const W& x) const { return g + wd * x; }
  HYPLORA_HD_GENERIC
  HYPLORA_HD_GENERIC
  template <class V, class W>
  HYPLORA_HD_INLINE auto first_moment(const V& m, const W& g) const { return b1 * m + one_b1 * g; }
  HYPLORA_HD_GENERIC
  HYPLORA_HD_GENERIC
  template <class V, class W>
  HYPLORA_HD_INLINE auto second_moment(const V& v, const W& g) const { return b2 * v + one_b2 * g * g; }
  /// x − step·m/(√v̂·(1/√bc2) + eps), v̂ = v (or its running max for AMSGrad).
  HYPLORA_HD_GENERIC
  HYPLORA_HD_GENERIC
  template <class X, class M, class V>
  HYPLORA_HD_INLINE auto updated(const X& x, const M& m, const V& vhat) const {
    using std::sqrt;
    return x - step * m / (sqrt(vhat) * ibc2 + eps);
  }
};

/// One Adam(W) update of n scalars at step t ≥ 1. vmax is used only with AMSGrad.
template <class T>
inline void adam_update(T* x, const T* g, T* m, T* v, T* vmax, std::size_t n, const AdamConfig& c,
                        std::int64_t t) {
  const AdamStep<T> k = AdamStep<T>::make(c, t);
  if (!c.amsgrad) {
    // The same arithmetic, in order, as the loop below, on Eigen packets over chunks that stay in
    // L1 (the scalar loop does not vectorise: sqrt may set errno, and the arrays may alias).
    // Chunks are independent, so they run on OpenMP threads for large n with identical results.
    using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
    constexpr std::size_t kChunk = 1024;
    const std::ptrdiff_t chunks = static_cast<std::ptrdiff_t>((n + kChunk - 1) / kChunk);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= kAdamParallelMin)
#endif
    for (std::ptrdiff_t ch = 0; ch < chunks; ++ch) {
      const std::size_t b = static_cast<std::size_t>(ch) * kChunk;
      const Eigen::Index len = static_cast<Eigen::Index>(std::min(kChunk, n - b));
      Eigen::Map<Arr> X(x + b, len), M(m + b, len), V(v + b, len);
      const Eigen::Map<const Arr> G(g + b, len);
      if (k.l2) {
        M = k.first_moment(M, k.l2_grad(G, X));
        V = k.second_moment(V, k.l2_grad(G, X));
      } else {
        if (k.decoupled) X *= k.decay;
        M = k.first_moment(M, G);
        V = k.second_moment(V, G);
      }
      X = k.updated(X, M, V);
    }
    return;
  }
  for (std::size_t i = 0; i < n; ++i) {
    T gi = g[i];
    if (k.l2) gi = k.l2_grad(gi, x[i]);
    if (k.decoupled) x[i] *= k.decay;
    m[i] = k.first_moment(m[i], gi);
    v[i] = k.second_moment(v[i], gi);
    if (v[i] > vmax[i]) vmax[i] = v[i];  // AMSGrad (Eq. (207))
    x[i] = k.updated(x[i], m[i], vmax[i]);
  }
}

}  // namespace detail

template <class T>
class AdamW {
 public:
  /// Takes the parameters trainable now; the store must outlive the optimizer.
  AdamW(ad::ParameterStore<T>& store, const AdamConfig& cfg) : store_(&store), cfg_(cfg) {
    check_config(cfg_);
    slots_ = detail::trainable_slots(store);
    const std::size_t n = detail::slots_size(slots_);
    m_.assign(n, T(0));
    v_.assign(n, T(0));
    if (cfg_.amsgrad) vmax_.assign(n, T(0));
    steps_.assign(slots_.size(), 0);
  }

  /// One update of every parameter that had a slot and is still trainable. Allocates nothing.
  void step() {
    T* values = store_->values().data();
    const T* grads = store_->grads().data();
    for (std::size_t k = 0; k < slots_.size(); ++k) {
      const auto& s = slots_[k];
      if (!store_->trainable(ad::Parameter{s.index})) continue;
      T* vmax = vmax_.empty() ? nullptr : vmax_.data() + s.state;
      detail::adam_update(values + s.offset, grads + s.offset, m_.data() + s.state, v_.data() + s.state, vmax,
                          s.size, cfg_, ++steps_[k]);
    }
  }

  void zero_grad() { store_->zero_grad(); }

  double lr() const { return cfg_.lr; }
  /// Sets the learning rate (for schedules); throws value_error on a negative or non-finite lr.
  void set_lr(double lr) { detail::check_nonneg("AdamW", "lr", lr); cfg_.lr = lr; }
  const AdamConfig& config() const { return cfg_; }

  // ---- state, for checkpoints: arenas packed in slot order --------------------------------------
  std::vector<T>& exp_avg_arena() { return m_; }
  std::vector<T>& exp_avg_sq_arena() { return v_; }
  std::vector<T>& max_exp_avg_sq_arena() { return vmax_; }  // empty unless amsgrad
  std::vector<std::int64_t>& step_counts() { return steps_; }
  const std::vector<T>& exp_avg_arena() const { return m_; }
  const std::vector<T>& exp_avg_sq_arena() const { return v_; }
  const std::vector<T>& max_exp_avg_sq_arena() const { return vmax_; }
  const std::vector<std::int64_t>& step_counts() const { return steps_; }
  const std::vector<detail::ParamSlot>& slots() const { return slots_; }

  /// m, v of one parameter, shaped like it; throw value_error if it has no slot.
  ad::TensorView<T> exp_avg(ad::Parameter p) { return view(m_, p, "exp_avg"); }
  ad::TensorView<T> exp_avg_sq(ad::Parameter p) { return view(v_, p, "exp_avg_sq"); }
  /// Updates taken by one parameter (PyTorch's state["step"]).
  std::int64_t step_count(ad::Parameter p) const { return steps_[slot_index(p)]; }
  void set_step_count(ad::Parameter p, std::int64_t t) {
    if (t < 0) throw value_error("AdamW: step count must be >= 0, got " + std::to_string(t));
    steps_[slot_index(p)] = t;
  }

 private:
  std::size_t slot_index(ad::Parameter p) const {
    for (std::size_t k = 0; k < slots_.size(); ++k)
      if (slots_[k].index == p.index) return k;
    throw value_error("AdamW: parameter " + std::to_string(p.index) + " has no optimizer state");
  }
  ad::TensorView<T> view(std::vector<T>& arena, ad::Parameter p, const char* what) {
    const auto& s = slots_[slot_index(p)];
    if (arena.empty()) throw value_error(std::string("AdamW: no ") + what + " state");
    return ad::TensorView<T>(arena.data() + s.state, s.rows, s.cols);
  }

  ad::ParameterStore<T>* store_;
  AdamConfig cfg_;
  std::vector<detail::ParamSlot> slots_;
  std::vector<T> m_, v_, vmax_;
  std::vector<std::int64_t> steps_;
};

/// Adam is AdamW with weight_decay = 0, or with decoupled_weight_decay = false for the L2 form.
template <class T>
using Adam = AdamW<T>;

}  // namespace hyplora::optim
