// hyplora/autodiff/tape.hpp — the reverse-mode tape: a flat, topologically ordered list of
// matrix-valued nodes, walked backwards in a loop.
//
// Design (docs/autodiff.md):
// - A node holds its value, a lazily allocated gradient, its parents and a backward function
//   pointer. Ops record their per-node context in the node itself (parents, `attrs`, `saved`
//   tensors, `ints`), so no closure is heap-allocated.
// - clear() keeps every node and buffer: a training loop that rebuilds the same graph each step
//   allocates nothing after the first step (the tape is its own arena).
// - Parameters are leaf nodes whose value and gradient live in a ParameterStore's arena;
//   their gradients accumulate across backward calls until zeroed.
// - Only nodes that need a gradient get one: a frozen weight or a constant input costs no
//   backward GEMM.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "hyplora/autodiff/parameters.hpp"
#include "hyplora/autodiff/tensor.hpp"
#include "hyplora/core/errors.hpp"

namespace hyplora::ad {

template <class T>
class Tape;

/// Computes the parents' gradient contributions of node `id` from the node's own gradient.
template <class T>
using BackwardFn = void (*)(Tape<T>& tape, int id);

template <class T>
struct Node {
  const char* name = "";
  Index rows = 0;
  Index cols = 0;
  Tensor<T> own_value;               // used unless ext_value is set
  Tensor<T> own_grad;                // used unless ext_grad is set
  T* ext_value = nullptr;            // a parameter's slot in the arena
  T* ext_grad = nullptr;
  bool needs_grad = false;           // some gradient flows into this node
  bool grad_live = false;            // the gradient buffer holds this pass's gradient
  BackwardFn<T> backward = nullptr;  // null for leaves
  std::vector<int> parents;
  std::array<double, 6> attrs{};     // scalar attributes (scales, eps, flags, seeds)
  std::vector<Tensor<T>> saved;      // tensors the backward needs (capacity reused)
  std::vector<std::int64_t> ints;    // integer attributes (targets, indices, shapes)

  T* value_ptr() { return ext_value ? ext_value : own_value.data(); }
  T* grad_ptr() { return ext_grad ? ext_grad : own_grad.data(); }
};

/// A light handle to a tape node.
template <class T>
struct Var {
  Tape<T>* tape = nullptr;
  int id = -1;

  Index rows() const { return tape->node(id).rows; }
  Index cols() const { return tape->node(id).cols; }
  Shape shape() const { return Shape{rows(), cols()}; }
  ConstTensorView<T> value() const { auto v = tape->value(id); return ConstTensorView<T>(v.data(), v.rows(), v.cols()); }
  /// The gradient of the last backward pass (zero if none reached this node).
  ConstTensorView<T> grad() const { return tape->grad_or_zero(id); }
  /// The value of a 1×1 node.
  T item() const {
    if (rows() != 1 || cols() != 1) throw shape_error("item(): expected a (1, 1) tensor, got " + shape().str());
    return value()(0, 0);
  }
  bool valid() const { return tape != nullptr && id >= 0; }
};

namespace detail {
/// A backward's contribution `e` to a gradient buffer from Tape::grad_out: assigned when the
/// buffer is fresh, added otherwise.
template <class Dst, class Expr>
void accumulate(bool fresh, Dst&& dst, const Expr& e) {
  if (fresh) dst = e;
  else dst += e;
}
}  // namespace detail

template <class T>
class Tape {
 public:
  Tape() = default;
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // ---- leaves ------------------------------------------------------------------------------
  /// A constant input: copied into the tape, receives no gradient.
  template <class Derived>
  Var<T> constant(const Eigen::MatrixBase<Derived>& m) {
    const int id = push("constant", m.rows(), m.cols(), nullptr, {});
    value(id) = m.template cast<T>();
    return Var<T>{this, id};
  }

  /// An input that receives a gradient (read it with Var::grad() after backward).
  template <class Derived>
  Var<T> leaf(const Eigen::MatrixBase<Derived>& m, bool requires_grad = true) {
    const int id = push("leaf", m.rows(), m.cols(), nullptr, {});
    value(id) = m.template cast<T>();
    nodes_[static_cast<std::size_t>(id)].needs_grad = requires_grad && !no_grad_;
    return Var<T>{this, id};
  }

  /// A parameter: value and gradient are views into the store's arena (no copy).
  Var<T> param(ParameterStore<T>& store, Parameter p) {
    const auto& info = store.info(p);
    const int id = push_node("param", info.rows, info.cols, /*own_value=*/false);
    Node<T>& n = nodes_[static_cast<std::size_t>(id)];
    n.ext_value = store.values().data() + info.offset;
    n.ext_grad = store.grads().data() + info.offset;
    n.needs_grad = info.trainable && !no_grad_;
    return Var<T>{this, id};
  }

  // ---- op recording (used by the ops in ops_*.hpp) --------------------------------------------
  /// Appends a node of shape rows×cols with the given parents; the op then writes value(id).
  /// The node needs a gradient when any parent does (and grad mode is on and it has a backward).
  int push(const char* name, Index rows, Index cols, BackwardFn<T> backward,
           std::initializer_list<int> parents) {
    const int id = push_node(name, rows, cols);
    Node<T>& n = nodes_[static_cast<std::size_t>(id)];
    bool any = false;
    for (int p : parents) {
      check_id(p);
      n.parents.push_back(p);
      any = any || nodes_[static_cast<std::size_t>(p)].needs_grad;
    }
    n.backward = backward;
    n.needs_grad = any && backward != nullptr && !no_grad_;
    return id;
  }

  /// Adds a parent after push() (for ops with a variable number of inputs, e.g. concat).
  void add_parent(int id, int parent) {
    check_id(parent);
    Node<T>& n = node(id);
    n.parents.push_back(parent);
    n.needs_grad = n.needs_grad || (nodes_[static_cast<std::size_t>(parent)].needs_grad && n.backward && !no_grad_);
  }

  Node<T>& node(int id) { check_id(id); return nodes_[static_cast<std::size_t>(id)]; }
  const Node<T>& node(int id) const { check_id(id); return nodes_[static_cast<std::size_t>(id)]; }

  TensorView<T> value(int id) {
    Node<T>& n = node(id);
    return TensorView<T>(n.value_ptr(), n.rows, n.cols);
  }
  bool needs_grad(int id) const { return node(id).needs_grad; }

  /// The gradient buffer of `id` for accumulation (`+=`): zeroed on first touch in a backward
  /// pass (a parameter's arena slot is never zeroed: gradients accumulate across passes).
  TensorView<T> grad_acc(int id) {
    Node<T>& n = node(id);
    if (!n.grad_live) {
      if (!n.ext_grad) {
        n.own_grad.resize(n.rows, n.cols);
        n.own_grad.setZero();
      }
      n.grad_live = true;
    }
    return TensorView<T>(n.grad_ptr(), n.rows, n.cols);
  }

  /// The gradient buffer of `id` for a backward that writes EVERY element of it. `fresh` is true
  /// when the buffer holds no gradient yet in this pass: the caller then assigns its
  /// contribution (`=`, a GEMM with beta = 0) instead of zero-filling and adding, which saves a
  /// pass over the buffer per node. Otherwise (a second contribution, or a parameter's arena slot,
  /// which accumulates across passes and is never fresh) it adds, as with grad_acc.
  struct GradOut {
    TensorView<T> view;
    bool fresh;
  };
  GradOut grad_out(int id) {
    Node<T>& n = node(id);
    const bool fresh = !n.grad_live && !n.ext_grad;
    if (fresh) n.own_grad.resize(n.rows, n.cols);  // no reallocation when the shape repeats
    n.grad_live = true;
    return GradOut{TensorView<T>(n.grad_ptr(), n.rows, n.cols), fresh};
  }

  /// The gradient of `id` from the last backward pass, or zeros when none reached it.
  ConstTensorView<T> grad_or_zero(int id) {
    Node<T>& n = node(id);
    if (!n.grad_live && !n.ext_grad) {
      n.own_grad.setZero(n.rows, n.cols);
    }
    return ConstTensorView<T>(n.grad_ptr(), n.rows, n.cols);
  }

  // ---- backward ----------------------------------------------------------------------------
  /// Reverse pass from a 1×1 loss (seed 1).
  void backward(Var<T> loss) {
    if (loss.rows() != 1 || loss.cols() != 1)
      throw shape_error("backward(): the loss must be (1, 1), got " + loss.shape().str() +
                        "; pass a seed gradient for non-scalar outputs");
    // Fixed-size seed: a dynamic 1×1 would heap-allocate on every backward call.
    const Eigen::Matrix<T, 1, 1> seed = Eigen::Matrix<T, 1, 1>::Constant(T(1));
    backward(loss, seed);
  }

  /// Reverse pass from `out` with the given seed gradient ∂L/∂out.
  template <class Derived>
  void backward(Var<T> out, const Eigen::MatrixBase<Derived>& seed) {
    check_id(out.id);
    if (seed.rows() != out.rows() || seed.cols() != out.cols())
      throw_shape("backward seed", "output", out.rows(), out.cols(), "seed", seed.rows(), seed.cols());
    if (anomaly_) check_value_finite(n_ - 1);
    for (int i = 0; i < n_; ++i) {
      Node<T>& n = nodes_[static_cast<std::size_t>(i)];
      n.grad_live = false;
    }
    if (!node(out.id).needs_grad) return;
    Node<T>& on = node(out.id);
    if (on.ext_grad) {
      grad_acc(out.id) += seed.template cast<T>();  // a parameter's slot accumulates
    } else {
      on.own_grad = seed.template cast<T>();  // fresh buffer: one copy, no zeroing pass first
      on.grad_live = true;
    }
    for (int i = out.id; i >= 0; --i) {
      Node<T>& n = nodes_[static_cast<std::size_t>(i)];
      if (!n.grad_live || !n.backward || !n.needs_grad) continue;
      n.backward(*this, i);
      if (anomaly_) check_parent_grads_finite(i);
    }
  }

  // ---- modes -------------------------------------------------------------------------------
  bool grad_enabled() const { return !no_grad_; }
  void set_grad_enabled(bool on) { no_grad_ = !on; }
  bool anomaly_detection() const { return anomaly_; }
  void set_anomaly_detection(bool on) { anomaly_ = on; }

  /// Drops every node but keeps their buffers: rebuilding a graph of the same shapes allocates
  /// nothing.
  void clear() { n_ = 0; }
  int size() const { return n_; }

 private:
  int push_node(const char* name, Index rows, Index cols, bool own_value = true) {
    if (rows < 0 || cols < 0) throw shape_error(std::string(name) + ": negative shape " + shape_str(rows, cols));
    if (anomaly_ && n_ > 0) check_value_finite(n_ - 1);
    if (static_cast<std::size_t>(n_) == nodes_.size()) nodes_.emplace_back();
    Node<T>& n = nodes_[static_cast<std::size_t>(n_)];
    n.name = name;
    n.rows = rows;
    n.cols = cols;
    n.ext_value = nullptr;
    n.ext_grad = nullptr;
    if (own_value) n.own_value.resize(rows, cols);  // no reallocation when the shape repeats
    n.needs_grad = false;
    n.grad_live = false;
    n.backward = nullptr;
    n.parents.clear();
    n.attrs.fill(0.0);
    n.ints.clear();
    return n_++;
  }

  void check_id(int id) const {
    if (id < 0 || id >= n_) throw value_error("tape: node id " + std::to_string(id) + " is not on this tape (size " + std::to_string(n_) + ")");
  }

  static bool all_finite(const T* p, Index count) {
    for (Index k = 0; k < count; ++k)
      if (!std::isfinite(static_cast<double>(p[k]))) return false;
    return true;
  }

  void check_value_finite(int id) {
    if (id < 0) return;
    Node<T>& n = nodes_[static_cast<std::size_t>(id)];
    if (!all_finite(n.value_ptr(), n.rows * n.cols))
      throw value_error(std::string("detect_anomaly: non-finite value produced by op '") + n.name +
                        "' (node " + std::to_string(id) + ", shape " + shape_str(n.rows, n.cols) + ")");
  }

  void check_parent_grads_finite(int id) {
    Node<T>& n = nodes_[static_cast<std::size_t>(id)];
    for (int p : n.parents) {
      Node<T>& pn = nodes_[static_cast<std::size_t>(p)];
      if (pn.grad_live && !all_finite(pn.grad_ptr(), pn.rows * pn.cols))
        throw value_error(std::string("detect_anomaly: non-finite gradient produced by the backward of op '") +
                          n.name + "' (node " + std::to_string(id) + ", shape " + shape_str(n.rows, n.cols) +
                          ") for its input '" + pn.name + "' (node " + std::to_string(p) + ", shape " +
                          shape_str(pn.rows, pn.cols) + ")");
    }
  }

  std::vector<Node<T>> nodes_;
  int n_ = 0;
  bool no_grad_ = false;
  bool anomaly_ = false;
};

/// Scope in which ops record no gradient information (inference, evaluation).
template <class T>
class NoGradGuard {
 public:
  explicit NoGradGuard(Tape<T>& t) : t_(t), prev_(t.grad_enabled()) { t_.set_grad_enabled(false); }
  ~NoGradGuard() { t_.set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  Tape<T>& t_;
  bool prev_;
};

/// Scope in which the first op whose output or gradient is non-finite throws value_error naming
/// the op and its shape.
template <class T>
class DetectAnomalyGuard {
 public:
  explicit DetectAnomalyGuard(Tape<T>& t) : t_(t), prev_(t.anomaly_detection()) { t_.set_anomaly_detection(true); }
  ~DetectAnomalyGuard() { t_.set_anomaly_detection(prev_); }
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  Tape<T>& t_;
  bool prev_;
};

}  // namespace hyplora::ad
