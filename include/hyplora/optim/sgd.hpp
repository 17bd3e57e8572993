// hyplora/optim/sgd.hpp — stochastic gradient descent with momentum, dampening, Nesterov and
// coupled weight decay, PyTorch's torch.optim.SGD semantics (docs/math.md Eq. (200)–(202)).
//
// The step is one flat loop over the trainable parameters' slices of the store's arena; the
// momentum buffers live in one contiguous arena sized when the optimizer is built, so step()
// allocates nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "hyplora/autodiff/parameters.hpp"
#include "hyplora/optim/detail/param_slots.hpp"

namespace hyplora::optim {

struct SGDConfig {
  double lr = 1e-3;
  double momentum = 0.0;      // μ
  double dampening = 0.0;     // τ
  bool nesterov = false;      // needs μ > 0 and τ = 0 (as PyTorch)
  double weight_decay = 0.0;  // λ, added to the gradient (coupled, Eq. (200))
};

/// Validates an SGD configuration; throws value_error naming the bad field.
inline void check_config(const SGDConfig& c, const char* opt = "SGD") {
  detail::check_nonneg(opt, "lr", c.lr);
  detail::check_nonneg(opt, "momentum", c.momentum);
  detail::check_nonneg(opt, "weight_decay", c.weight_decay);
  if (!(c.dampening >= 0.0 && c.dampening <= 1.0))
    throw value_error(std::string(opt) + ": dampening must lie in [0, 1], got " + std::to_string(c.dampening));
  if (c.nesterov && (c.momentum <= 0.0 || c.dampening != 0.0))
    throw value_error(std::string(opt) + ": Nesterov momentum needs momentum > 0 and dampening = 0, got momentum " +
                      std::to_string(c.momentum) + ", dampening " + std::to_string(c.dampening));
}

namespace detail {

/// One SGD update of n scalars (Eq. (200)–(202)); b is the momentum buffer (unused if μ = 0),
/// `first` says b holds nothing yet (PyTorch: b₁ = d₁, undamped).
template <class T>
inline void sgd_update(T* x, const T* g, T* b, std::size_t n, const SGDConfig& c, bool first) {
  const T lr = T(c.lr), mu = T(c.momentum), wd = T(c.weight_decay);
  const T keep = T(1.0 - c.dampening);
  for (std::size_t i = 0; i < n; ++i) {
    T d = g[i];
    if (c.weight_decay != 0.0) d += wd * x[i];
    if (c.momentum != 0.0) {
      b[i] = first ? d : mu * b[i] + keep * d;
      d = c.nesterov ? d + mu * b[i] : b[i];
    }
    x[i] -= lr * d;
  }
}

}  // namespace detail

template <class T>
class SGD {
 public:
  /// Takes the parameters trainable now; the store must outlive the optimizer.
  SGD(ad::ParameterStore<T>& store, const SGDConfig& cfg) : store_(&store), cfg_(cfg) {
    check_config(cfg_);
    slots_ = detail::trainable_slots(store);
    if (cfg_.momentum != 0.0) buf_.assign(detail::slots_size(slots_), T(0));
    steps_.assign(slots_.size(), 0);
  }

  /// One update of every parameter that had a slot and is still trainable. Allocates nothing.
  void step() {
    T* values = store_->values().data();
    const T* grads = store_->grads().data();
    for (std::size_t k = 0; k < slots_.size(); ++k) {
      const auto& s = slots_[k];
      if (!store_->trainable(ad::Parameter{s.index})) continue;
      T* b = buf_.empty() ? nullptr : buf_.data() + s.state;
      detail::sgd_update(values + s.offset, grads + s.offset, b, s.size, cfg_, steps_[k] == 0);
      ++steps_[k];
    }
  }

  void zero_grad() { store_->zero_grad(); }

  double lr() const { return cfg_.lr; }
  /// Sets the learning rate (for schedules); throws value_error on a negative or non-finite lr.
  void set_lr(double lr) { detail::check_nonneg("SGD", "lr", lr); cfg_.lr = lr; }
  const SGDConfig& config() const { return cfg_; }

  // ---- state, for checkpoints -----------------------------------------------------------------
  /// The momentum buffers of all slots, packed in slot order (empty when momentum = 0).
  std::vector<T>& momentum_arena() { return buf_; }
  const std::vector<T>& momentum_arena() const { return buf_; }
  /// Updates taken per slot (0 means the momentum buffer is not initialised yet).
  std::vector<std::int64_t>& step_counts() { return steps_; }
  const std::vector<std::int64_t>& step_counts() const { return steps_; }
  const std::vector<detail::ParamSlot>& slots() const { return slots_; }

  /// Momentum buffer of one parameter, shaped like it; throws value_error if it has none.
  ad::TensorView<T> momentum_buffer(ad::Parameter p) {
    const auto* s = detail::find_slot(slots_, p.index);
    if (s == nullptr || buf_.empty())
      throw value_error("SGD: parameter " + std::to_string(p.index) + " has no momentum buffer");
    return ad::TensorView<T>(buf_.data() + s->state, s->rows, s->cols);
  }

 private:
  ad::ParameterStore<T>* store_;
  SGDConfig cfg_;
  std::vector<detail::ParamSlot> slots_;
  std::vector<T> buf_;
  std::vector<std::int64_t> steps_;
};

}  // namespace hyplora::optim
