// hyplora/optim/detail/riemannian_base.hpp — what RiemannianSGD and RiemannianAdam share: the
// slots of the parameters trainable when the optimizer was built, their step counts, and which of
// them are manifold parameters (add_manifold). The update rules stay in the two optimizers.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "hyplora/autodiff/parameters.hpp"
#include "hyplora/optim/detail/param_slots.hpp"
#include "hyplora/optim/manifold_parameter.hpp"

namespace hyplora::optim::detail {

template <class T>
class RiemannianBase {
 public:
  /// Marks p's rows as points of m (Lorentz<T>, PoincareBall<T>); see ManifoldSet::add for errors.
  template <class M>
  void add_manifold(ad::Parameter p, const M& m) {
    add_manifold_rows(p, make_rows(m));
  }
  template <class M>
  void add_manifold(const ManifoldParameter<M>& mp) {
    add_manifold(mp.param, mp.manifold);
  }
  /// A user manifold (any ManifoldRows<T> implementation).
  void add_manifold_rows(ad::Parameter p, std::unique_ptr<ManifoldRows<T>> rows) {
    manifolds_.add(name_, *store_, slots_, steps_, p, std::move(rows));
  }

  void zero_grad() { store_->zero_grad(); }

  std::vector<std::int64_t>& step_counts() { return steps_; }
  const std::vector<std::int64_t>& step_counts() const { return steps_; }
  const std::vector<ParamSlot>& slots() const { return slots_; }

 protected:
  /// Takes the parameters trainable now; the store must outlive the optimizer. `name` prefixes
  /// error messages.
  RiemannianBase(const char* name, ad::ParameterStore<T>& store)
      : name_(name), store_(&store), slots_(trainable_slots(store)), steps_(slots_.size(), 0) {
    manifolds_.init(slots_.size());
  }

  const char* name_;
  ad::ParameterStore<T>* store_;
  std::vector<ParamSlot> slots_;
  std::vector<std::int64_t> steps_;
  ManifoldSet<T> manifolds_;
};

}  // namespace hyplora::optim::detail
