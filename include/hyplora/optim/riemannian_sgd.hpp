// hyplora/optim/riemannian_sgd.hpp — Riemannian SGD with momentum carried by parallel transport
// (docs/math.md Eq. (215)–(219)); plain parameters get exactly SGD's update (sgd.hpp).
//
//   RiemannianSGD<double> opt(store, cfg);           // takes the trainable parameters
//   opt.add_manifold(emb, Lorentz<double>(K));       // rows of `emb` live on H^{d,K}
//   for (...) { ...backward...; opt.step(); opt.zero_grad(); }
//
// A manifold row x with Euclidean gradient ∇ (from the tape) is updated as
//   g = egrad2rgrad(x, ∇ + λx),  b = μ·b + (1 − τ)·g  (b = g on the first step),
//   x' = Exp_x(−η·(Nesterov ? g + μb : b)),  b ← PT_{x→x'}(b),
// with Exp the exponential map or the retraction, and x' re-projected (projx) after every step.
// Every `stabilize` steps the momentum is re-projected onto the tangent space (proju).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "hyplora/autodiff/parameters.hpp"
#include "hyplora/optim/detail/param_slots.hpp"
#include "hyplora/optim/detail/riemannian_base.hpp"
#include "hyplora/optim/manifold_parameter.hpp"
#include "hyplora/optim/sgd.hpp"

namespace hyplora::optim {

struct RiemannianSGDConfig : SGDConfig {
  /// true: x' = exp_x(u); false: the cheaper retraction (Eq. (214)). Both are then projected.
  bool use_expmap = true;
  /// Every this many steps re-project points and momenta (Eq. (219)); 0 = never.
  std::int64_t stabilize = 0;
};

template <class T>
class RiemannianSGD : public detail::RiemannianBase<T> {
  using Base = detail::RiemannianBase<T>;
  using Base::manifolds_;
  using Base::slots_;
  using Base::steps_;
  using Base::store_;

 public:
  /// Takes the parameters trainable now; the store must outlive the optimizer.
  RiemannianSGD(ad::ParameterStore<T>& store, const RiemannianSGDConfig& cfg) : Base("RiemannianSGD", store), cfg_(cfg) {
    check_config(static_cast<const SGDConfig&>(cfg_), "RiemannianSGD");
    if (cfg_.stabilize < 0)
      throw value_error("RiemannianSGD: stabilize must be >= 0, got " + std::to_string(cfg_.stabilize));
    if (cfg_.momentum != 0.0) buf_.assign(detail::slots_size(slots_), T(0));
  }

  /// One update of every parameter that had a slot and is still trainable. Allocates nothing.
  void step() {
    T* values = store_->values().data();
    const T* grads = store_->grads().data();
    for (std::size_t k = 0; k < slots_.size(); ++k) {
      const auto& s = slots_[k];
      if (!store_->trainable(ad::Parameter{s.index})) continue;
      T* b = buf_.empty() ? nullptr : buf_.data() + s.state;
      const bool first = steps_[k] == 0;
      const std::int64_t t = ++steps_[k];
      if (const ManifoldRows<T>* M = manifolds_.at(k))
        manifold_update(*M, s, values + s.offset, grads + s.offset, b, first, t);
      else
        detail::sgd_update(values + s.offset, grads + s.offset, b, s.size, cfg_, first);
    }
  }

  double lr() const { return cfg_.lr; }
  void set_lr(double lr) { detail::check_nonneg("RiemannianSGD", "lr", lr); cfg_.lr = lr; }
  const RiemannianSGDConfig& config() const { return cfg_; }

  // ---- state, for checkpoints (same layout as SGD) -----------------------------------------------
  std::vector<T>& momentum_arena() { return buf_; }
  const std::vector<T>& momentum_arena() const { return buf_; }

 private:
  // x, g, b: (rows, n) of one parameter; Eq. (215)–(219).
  void manifold_update(const ManifoldRows<T>& M, const detail::ParamSlot& s, T* X, const T* G, T* B, bool first,
                       std::int64_t t) {
    const Index n = s.cols;
    const T lr = T(cfg_.lr), mu = T(cfg_.momentum), wd = T(cfg_.weight_decay), keep = T(1.0 - cfg_.dampening);
    const bool momentum = cfg_.momentum != 0.0;
    const bool stabilize = cfg_.stabilize > 0 && t % cfg_.stabilize == 0;
    T* g = manifolds_.scratch(0);
    T* u = manifolds_.scratch(1);
    T* y = manifolds_.scratch(2);
    for (Index r = 0; r < s.rows; ++r) {
      T* x = X + r * n;
      const T* eg = G + r * n;
      T* b = momentum ? B + r * n : nullptr;
      for (Index i = 0; i < n; ++i) g[i] = eg[i] + wd * x[i];
      M.egrad2rgrad(x, g, g, n);  // Eq. (215)
      for (Index i = 0; i < n; ++i) {
        T d = g[i];
        if (momentum) {  // Eq. (216)
          b[i] = first ? d : mu * b[i] + keep * d;
          d = cfg_.nesterov ? d + mu * b[i] : b[i];
        }
        u[i] = -lr * d;
      }
      if (cfg_.use_expmap)  // Eq. (217)
        M.expmap(x, u, y, n);
      else
        M.retr(x, u, y, n);
      M.projx(y, y, n);
      if (momentum) M.transp(x, y, b, b, n);  // Eq. (218)
      for (Index i = 0; i < n; ++i) x[i] = y[i];
      if (stabilize) {  // Eq. (219)
        M.projx(x, x, n);
        if (momentum) M.proju(x, b, b, n);
      }
    }
  }

  RiemannianSGDConfig cfg_;
  std::vector<T> buf_;
};

}  // namespace hyplora::optim
