// hyplora/autodiff/parameters.hpp — every parameter's value and gradient in one contiguous arena.
//
// Parameters live outside any tape: an optimizer step is one flat loop over `values()` and
// `grads()`, a host<->device copy is one memcpy, and a checkpoint is one write (STYLE.md, "The
// tape"). Gradients accumulate across backward calls until zero_grad().
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "hyplora/autodiff/tensor.hpp"
#include "hyplora/core/errors.hpp"

namespace hyplora::ad {

/// A light handle to one parameter of a ParameterStore (an index; stays valid as the store grows).
struct Parameter {
  int index = -1;
  bool valid() const { return index >= 0; }
};

struct ParameterInfo {
  std::string name;
  Index rows = 0;
  Index cols = 0;
  std::size_t offset = 0;  // into values() / grads()
  bool trainable = true;
  std::size_t size() const { return static_cast<std::size_t>(rows * cols); }
};

template <class T>
class ParameterStore {
 public:
  /// Registers a parameter, zero-initialised. Adding parameters moves the arena: views taken
  /// earlier (and tapes holding parameter nodes) must be rebuilt; add everything first.
  Parameter add(const std::string& name, Index rows, Index cols, bool trainable = true) {
    if (rows < 0 || cols < 0) throw value_error("parameter '" + name + "' has negative shape " + shape_str(rows, cols));
    for (const auto& p : info_)
      if (p.name == name) throw value_error("parameter '" + name + "' is already registered");
    ParameterInfo info{name, rows, cols, values_.size(), trainable};
    values_.resize(values_.size() + info.size(), T(0));
    grads_.resize(values_.size(), T(0));
    info_.push_back(info);
    return Parameter{static_cast<int>(info_.size() - 1)};
  }

  /// Registers a parameter initialised from a matrix.
  template <class Derived>
  Parameter add(const std::string& name, const Eigen::MatrixBase<Derived>& init, bool trainable = true) {
    Parameter p = add(name, init.rows(), init.cols(), trainable);
    value(p) = init.template cast<T>();
    return p;
  }

  TensorView<T> value(Parameter p) { const auto& i = at(p); return TensorView<T>(values_.data() + i.offset, i.rows, i.cols); }
  ConstTensorView<T> value(Parameter p) const { const auto& i = at(p); return ConstTensorView<T>(values_.data() + i.offset, i.rows, i.cols); }
  TensorView<T> grad(Parameter p) { const auto& i = at(p); return TensorView<T>(grads_.data() + i.offset, i.rows, i.cols); }
  ConstTensorView<T> grad(Parameter p) const { const auto& i = at(p); return ConstTensorView<T>(grads_.data() + i.offset, i.rows, i.cols); }

  const ParameterInfo& info(Parameter p) const { return at(p); }
  bool trainable(Parameter p) const { return at(p).trainable; }
  void set_trainable(Parameter p, bool on) { info_.at(static_cast<std::size_t>(p.index)).trainable = on; }

  /// Looks a parameter up by name; throws value_error when absent.
  Parameter find(const std::string& name) const {
    for (std::size_t k = 0; k < info_.size(); ++k)
      if (info_[k].name == name) return Parameter{static_cast<int>(k)};
    throw value_error("no parameter named '" + name + "'");
  }

  int count() const { return static_cast<int>(info_.size()); }
  Parameter at_index(int k) const { return Parameter{k}; }
  const std::vector<ParameterInfo>& infos() const { return info_; }

  /// Number of scalars in trainable parameters.
  std::size_t trainable_size() const {
    std::size_t n = 0;
    for (const auto& i : info_) n += i.trainable ? i.size() : 0;
    return n;
  }

  void zero_grad() { std::fill(grads_.begin(), grads_.end(), T(0)); }

  std::vector<T>& values() { return values_; }
  const std::vector<T>& values() const { return values_; }
  std::vector<T>& grads() { return grads_; }
  const std::vector<T>& grads() const { return grads_; }

 private:
  const ParameterInfo& at(Parameter p) const {
    if (p.index < 0 || static_cast<std::size_t>(p.index) >= info_.size())
      throw value_error("invalid parameter handle " + std::to_string(p.index));
    return info_[static_cast<std::size_t>(p.index)];
  }

  std::vector<T> values_;
  std::vector<T> grads_;
  std::vector<ParameterInfo> info_;
};

}  // namespace hyplora::ad
