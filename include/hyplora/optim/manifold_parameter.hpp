// hyplora/optim/manifold_parameter.hpp — marks a parameter whose rows are points of a manifold,
// and the per-row operations a Riemannian optimizer needs from that manifold (docs/math.md
// Eq. (212)–(214)).
//
//   RiemannianAdam<double> opt(store, cfg);
//   opt.add_manifold(emb, Lorentz<double>(K));        // each row of `emb` is a point of H^{d,K}
//   opt.add_manifold(ManifoldParameter<PoincareBall<double>>{w, PoincareBall<double>(K)});
//
// An optimizer keeps one type-erased ManifoldRows<T> per manifold parameter (made once, when it
// is added), so one optimizer handles a mixed set of Lorentz, Poincaré and plain parameters.
// The row functions are the allocation-free ones of manifold/detail/*_rows.hpp, so a step
// allocates nothing. A user manifold plugs in by deriving from ManifoldRows<T>.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hyplora/autodiff/parameters.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/core/types.hpp"
#include "hyplora/manifold/lorentz.hpp"
#include "hyplora/manifold/poincare_ball.hpp"
#include "hyplora/optim/detail/param_slots.hpp"

namespace hyplora::optim {

/// A parameter whose every row is a point of the manifold M (Lorentz<T> or PoincareBall<T>).
/// The tape computes its ambient (Euclidean) gradient; optimizers convert it with egrad2rgrad.
template <class M>
struct ManifoldParameter {
  ad::Parameter param;
  M manifold;
};

/// What a Riemannian optimizer needs from a manifold, per row of n = cols stored values (the
/// ambient coordinates: d+1 for Lorentz, d for the ball). No method allocates or throws.
/// Aliasing: `out` may equal the vector argument (egrad, u, v) but not the point x, except in
/// projx where out may equal x.
template <class T>
class ManifoldRows {
 public:
  virtual ~ManifoldRows() = default;
  virtual const char* name() const = 0;
  /// Smallest row length the manifold accepts.
  virtual Index min_cols() const = 0;
  /// Riemannian gradient from the Euclidean one (Eq. (212)).
  virtual void egrad2rgrad(const T* x, const T* egrad, T* out, Index n) const = 0;
  /// ‖u‖²_x, the squared Riemannian norm of a tangent vector (Eq. (213)).
  virtual T sqnorm(const T* x, const T* u, Index n) const = 0;
  virtual void expmap(const T* x, const T* u, T* out, Index n) const = 0;
  /// First-order retraction (Eq. (214)).
  virtual void retr(const T* x, const T* u, T* out, Index n) const = 0;
  /// Parallel transport of v from T_x to T_y.
  virtual void transp(const T* x, const T* y, const T* v, T* out, Index n) const = 0;
  virtual void projx(const T* x, T* out, Index n) const = 0;
  virtual void proju(const T* x, const T* u, T* out, Index n) const = 0;
  /// Empty when x is a point of the manifold, else the reason (for setup checks and tests).
  virtual std::string check_point(const T* x, Index n) const = 0;
};

/// H^{d,K} rows: n = d + 1 values, time coordinate first (Eq. (1)).
template <class T>
class LorentzRows final : public ManifoldRows<T> {
 public:
  explicit LorentzRows(const Lorentz<T>& m) : m_(m), R_(m.R()) {}
  const char* name() const override { return "Lorentz"; }
  Index min_cols() const override { return 2; }
  void egrad2rgrad(const T* x, const T* g, T* out, Index n) const override {
    lorentz_rows::egrad2rgrad(x, g, out, n - 1, R_);
  }
  T sqnorm(const T*, const T* u, Index n) const override {
    const T s = lorentz_rows::norm(u, n - 1);  // ⟨u,u⟩_L clamped at 0 (Eq. (13))
    return s * s;
  }
  void expmap(const T* x, const T* u, T* out, Index n) const override { lorentz_rows::expmap(x, u, out, n - 1, R_); }
  void retr(const T* x, const T* u, T* out, Index n) const override { lorentz_rows::retr(x, u, out, n - 1, R_); }
  void transp(const T* x, const T* y, const T* v, T* out, Index n) const override {
    lorentz_rows::transp(x, y, v, out, n - 1, R_);
  }
  void projx(const T* x, T* out, Index n) const override { lorentz_rows::projx(x, out, n - 1, R_); }
  void proju(const T* x, const T* u, T* out, Index n) const override { lorentz_rows::proju(x, u, out, n - 1, R_); }
  std::string check_point(const T* x, Index n) const override {
    const auto c = m_.check_point(Eigen::Map<const VectorX<T>>(x, n));
    return c.ok ? std::string() : c.reason;
  }

 private:
  Lorentz<T> m_;
  T R_;
};

/// P^{d,K} rows: n = d values (Eq. (2)).
template <class T>
class PoincareRows final : public ManifoldRows<T> {
 public:
  explicit PoincareRows(const PoincareBall<T>& m) : m_(m), K_(m.K()) {}
  const char* name() const override { return "PoincareBall"; }
  Index min_cols() const override { return 1; }
  void egrad2rgrad(const T* x, const T* g, T* out, Index n) const override {
    poincare_rows::egrad2rgrad(x, g, out, dim(n), K_);
  }
  T sqnorm(const T* x, const T* u, Index n) const override { return poincare_rows::inner(x, u, u, dim(n), K_); }
  void expmap(const T* x, const T* u, T* out, Index n) const override { poincare_rows::expmap(x, u, out, dim(n), K_); }
  /// proj(x + u), geoopt's retraction on the ball (Eq. (214)).
  void retr(const T* x, const T* u, T* out, Index n) const override {
    for (Index i = 0; i < n; ++i) out[i] = x[i] + u[i];
    poincare_rows::projx(out, out, dim(n), K_);
  }
  void transp(const T* x, const T* y, const T* v, T* out, Index n) const override {
    poincare_rows::transp(x, y, v, out, dim(n), K_);
  }
  void projx(const T* x, T* out, Index n) const override { poincare_rows::projx(x, out, dim(n), K_); }
  /// The tangent space is all of R^d.
  void proju(const T*, const T* u, T* out, Index n) const override {
    for (Index i = 0; i < n; ++i) out[i] = u[i];
  }
  std::string check_point(const T* x, Index n) const override {
    const auto c = m_.check_point(Eigen::Map<const VectorX<T>>(x, n));
    return c.ok ? std::string() : c.reason;
  }

 private:
  static int dim(Index n) { return static_cast<int>(n); }
  PoincareBall<T> m_;
  T K_;
};

/// The row operations of a manifold, made once when a parameter is added to an optimizer.
template <class T>
std::unique_ptr<ManifoldRows<T>> make_rows(const Lorentz<T>& m) {
  return std::make_unique<LorentzRows<T>>(m);
}
template <class T>
std::unique_ptr<ManifoldRows<T>> make_rows(const PoincareBall<T>& m) {
  return std::make_unique<PoincareRows<T>>(m);
}

/// Throws unless every row of p's value is a point of `rows` (value_error, naming the row and
/// the reason) and p's width suits the manifold (shape_error). Used when a parameter is added.
template <class T>
void check_manifold_parameter(const ad::ParameterStore<T>& store, ad::Parameter p, const ManifoldRows<T>& rows) {
  const auto& info = store.info(p);
  if (info.cols < rows.min_cols())
    throw_shape(std::string(rows.name()) + " parameter '" + info.name + "'", "value", info.rows, info.cols,
                "minimum", 1, rows.min_cols());
  const auto v = store.value(p);
  for (Index r = 0; r < info.rows; ++r) {
    const std::string why = rows.check_point(v.row(r).data(), info.cols);
    if (!why.empty())
      throw value_error(std::string(rows.name()) + " parameter '" + info.name + "': row " + std::to_string(r) +
                        " is not a point of the manifold: " + why);
  }
}

namespace detail {

/// Which of an optimizer's slots are manifold parameters, with their row operations and the
/// scratch rows a Riemannian update needs (sized when a parameter is added, never in a step).
template <class T>
class ManifoldSet {
 public:
  static constexpr int scratch_rows = 3;

  void init(std::size_t slots) { rows_.resize(slots); }

  /// Row operations of slot k, or nullptr for a plain (Euclidean) parameter.
  const ManifoldRows<T>* at(std::size_t k) const { return rows_[k].get(); }

  /// Scratch row i (0 <= i < scratch_rows) of at least the widest manifold parameter's length.
  T* scratch(int i) { return scratch_.data() + static_cast<std::size_t>(i) * width_; }

  /// Marks p as a manifold parameter. Throws value_error when p has no slot (it was frozen when
  /// the optimizer was built), is already marked, has been stepped (its state is Euclidean),
  /// or holds a row that is not a point; shape_error when it is too narrow for the manifold.
  void add(const char* opt, const ad::ParameterStore<T>& store, const std::vector<ParamSlot>& slots,
           const std::vector<std::int64_t>& steps, ad::Parameter p, std::unique_ptr<ManifoldRows<T>> rows) {
    const std::string name = store.info(p).name;
    std::size_t k = 0;
    while (k < slots.size() && slots[k].index != p.index) ++k;
    if (k == slots.size())
      throw value_error(std::string(opt) + ": parameter '" + name +
                        "' was not trainable when the optimizer was built, so it has no slot");
    if (rows_[k]) throw value_error(std::string(opt) + ": parameter '" + name + "' is already a manifold parameter");
    if (steps[k] != 0)
      throw value_error(std::string(opt) + ": parameter '" + name + "' has taken " + std::to_string(steps[k]) +
                        " Euclidean steps; add manifolds before the first step");
    check_manifold_parameter(store, p, *rows);
    rows_[k] = std::move(rows);
    const std::size_t w = static_cast<std::size_t>(slots[k].cols);
    if (w > width_) {
      width_ = w;
      scratch_.assign(scratch_rows * width_, T(0));
    }
  }

 private:
  std::vector<std::unique_ptr<ManifoldRows<T>>> rows_;
  std::vector<T> scratch_;
  std::size_t width_ = 0;
};

}  // namespace detail

}  // namespace hyplora::optim
