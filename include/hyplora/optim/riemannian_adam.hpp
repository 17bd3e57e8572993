// hyplora/optim/riemannian_adam.hpp — Riemannian Adam / AMSGrad (Bécigneul & Ganea 2019) with
// geoopt's bias correction, a scalar second moment per manifold point (row) and the first moment
// carried by parallel transport (docs/math.md Eq. (220)–(226)); plain parameters get exactly
// AdamW's update (adamw.hpp).
//
//   RiemannianAdam<double> opt(store, cfg);
//   opt.add_manifold(emb, PoincareBall<double>(K));
//   for (...) { ...backward...; opt.step(); opt.zero_grad(); }
//
// For a manifold row x with Euclidean gradient ∇ at step t:
//   g = egrad2rgrad(x, ∇ + λx)                       (weight decay coupled, as geoopt)
//   m = β1·m + (1 − β1)·g,  v = β2·v + (1 − β2)·‖g‖²_x     (v one scalar per row)
//   v̂ = AMSGrad ? max(v̂, v) : v
//   x' = Exp_x(−α/(1 − β1^t) · m / (√(v̂/(1 − β2^t)) + ε)),  m ← PT_{x→x'}(m)
// x' is re-projected (projx) after every step; every `stabilize` steps m is re-projected (proju).
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "hyplora/autodiff/parameters.hpp"
#include "hyplora/optim/adamw.hpp"
#include "hyplora/optim/detail/param_slots.hpp"
#include "hyplora/optim/detail/riemannian_base.hpp"
#include "hyplora/optim/manifold_parameter.hpp"

namespace hyplora::optim {

struct RiemannianAdamConfig : AdamConfig {
  /// true: x' = exp_x(u); false: the cheaper retraction (Eq. (214)). Both are then projected.
  bool use_expmap = true;
  /// Every this many steps re-project points and first moments (Eq. (226)); 0 = never.
  std::int64_t stabilize = 0;
};

template <class T>
class RiemannianAdam : public detail::RiemannianBase<T> {
  using Base = detail::RiemannianBase<T>;
  using Base::manifolds_;
  using Base::slots_;
  using Base::steps_;
  using Base::store_;

 public:
  /// Takes the parameters trainable now; the store must outlive the optimizer.
  RiemannianAdam(ad::ParameterStore<T>& store, const RiemannianAdamConfig& cfg) : Base("RiemannianAdam", store), cfg_(cfg) {
    check_config(static_cast<const AdamConfig&>(cfg_), "RiemannianAdam");
    if (cfg_.stabilize < 0)
      throw value_error("RiemannianAdam: stabilize must be >= 0, got " + std::to_string(cfg_.stabilize));
    const std::size_t n = detail::slots_size(slots_);
    m_.assign(n, T(0));
    v_.assign(n, T(0));
    if (cfg_.amsgrad) vmax_.assign(n, T(0));
  }

  /// One update of every parameter that had a slot and is still trainable. Allocates nothing.
  void step() {
    T* values = store_->values().data();
    const T* grads = store_->grads().data();
    for (std::size_t k = 0; k < slots_.size(); ++k) {
      const auto& s = slots_[k];
      if (!store_->trainable(ad::Parameter{s.index})) continue;
      T* vmax = vmax_.empty() ? nullptr : vmax_.data() + s.state;
      const std::int64_t t = ++steps_[k];
      if (const ManifoldRows<T>* M = manifolds_.at(k))
        manifold_update(*M, s, values + s.offset, grads + s.offset, m_.data() + s.state, v_.data() + s.state,
                        vmax, t);
      else
        detail::adam_update(values + s.offset, grads + s.offset, m_.data() + s.state, v_.data() + s.state, vmax,
                            s.size, cfg_, t);
    }
  }

  double lr() const { return cfg_.lr; }
  void set_lr(double lr) { detail::check_nonneg("RiemannianAdam", "lr", lr); cfg_.lr = lr; }
  const RiemannianAdamConfig& config() const { return cfg_; }

  // ---- state, for checkpoints: the same arenas as AdamW. For a manifold parameter of shape
  // (N, n) the second moments are the first N entries of its v (and v̂) region, one per row. ----
  std::vector<T>& exp_avg_arena() { return m_; }
  std::vector<T>& exp_avg_sq_arena() { return v_; }
  std::vector<T>& max_exp_avg_sq_arena() { return vmax_; }
  const std::vector<T>& exp_avg_arena() const { return m_; }
  const std::vector<T>& exp_avg_sq_arena() const { return v_; }
  const std::vector<T>& max_exp_avg_sq_arena() const { return vmax_; }

 private:
  // X, G, Mo: (rows, n) of one parameter; V, Vmax: one scalar per row. Eq. (220)–(226).
  void manifold_update(const ManifoldRows<T>& M, const detail::ParamSlot& s, T* X, const T* G, T* Mo, T* V,
                       T* Vmax, std::int64_t t) {
    using std::sqrt;
    const Index n = s.cols;
    const detail::AdamCoefs k = detail::adam_coefs(cfg_, t);  // Eq. (224)
    const T b1 = T(cfg_.beta1), b2 = T(cfg_.beta2), eps = T(cfg_.eps), wd = T(cfg_.weight_decay);
    const T one_b1 = T(1.0 - cfg_.beta1), one_b2 = T(1.0 - cfg_.beta2);
    const T step = T(k.step_size), ibc2 = T(k.inv_sqrt_bc2);
    const bool stabilize = cfg_.stabilize > 0 && t % cfg_.stabilize == 0;
    T* g = manifolds_.scratch(0);
    T* u = manifolds_.scratch(1);
    T* y = manifolds_.scratch(2);
    for (Index r = 0; r < s.rows; ++r) {
      T* x = X + r * n;
      const T* eg = G + r * n;
      T* m = Mo + r * n;
      for (Index i = 0; i < n; ++i) g[i] = eg[i] + wd * x[i];
      M.egrad2rgrad(x, g, g, n);  // Eq. (220)
      for (Index i = 0; i < n; ++i) m[i] = b1 * m[i] + one_b1 * g[i];  // Eq. (221)
      V[r] = b2 * V[r] + one_b2 * M.sqnorm(x, g, n);                     // Eq. (222)
      T vr = V[r];
      if (Vmax != nullptr) {  // Eq. (223)
        if (vr > Vmax[r]) Vmax[r] = vr;
        vr = Vmax[r];
      }
      const T a = -step / (sqrt(vr) * ibc2 + eps);
      for (Index i = 0; i < n; ++i) u[i] = a * m[i];
      if (cfg_.use_expmap)  // Eq. (225)
        M.expmap(x, u, y, n);
      else
        M.retr(x, u, y, n);
      M.projx(y, y, n);
      M.transp(x, y, m, m, n);
      for (Index i = 0; i < n; ++i) x[i] = y[i];
      if (stabilize) {  // Eq. (226)
        M.projx(x, x, n);
        M.proju(x, m, m, n);
      }
    }
  }

  RiemannianAdamConfig cfg_;
  std::vector<T> m_, v_, vmax_;
};

}  // namespace hyplora::optim
