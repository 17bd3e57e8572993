// hyplora/nn/adapted_linear.hpp — a base Linear plus an optional adapter of any AdapterKind.
//
//   x: (N, D_in)  W0: (D_out, D_in)  b: (1, D_out)  A: (R, D_in)  B: (D_out, R)  z: (N, D_out)
//
//   lora                         z = x·W0ᵀ + b + γ·B·A·x_a                    (ops_lora.hpp)
//   dora                         z = x·W'ᵀ + b, W' = m ⊙ V/‖V‖_row             (dora.hpp)
//   hyplora (exact)              z = x·W0ᵀ + b + γσ_out·f_R⁻¹(B·A·f_R(x_a/σ))  (ops_hyplora.hpp, Eq. (152))
//   hyplora_official             the published forward, quirks included       (ops_hyplora_official.hpp)
//   hyplora_stereographic        z = x·W0ᵀ + b + γ·p(LLR(BA, p⁻¹(exp_0(x_a)))) (ops_hyplora_stereographic.hpp)
//   hyplora_official_simplified  the published `hyplora_simplified` forward   (ops_hyplora_official.hpp)
//
// x_a = dropout(x) while training (AdapterConfig::dropout), else x. γ = α/r or α/√r (rsLoRA).
//
// Curvature (K > 0, R = √K, docs/math.md Eq. (1)): fixed (R is a constant tape node), or learned
// through θ = "<name>.lora_k" with K = softplus(θ) + 1e-6 and R = √K composed from primitive ops
// (the official kind takes θ itself; official_simplified learns its raw k directly, as published).
// σ ("<name>.lora_norm_scale") and K are ONE degree of freedom: the exact layer depends on them
// only through K_eff = σ²K (and the output factor σ_out/σ), so learn one of them, not both.
// The stereographic and official_simplified kinds have no feature scale (σ must be 1).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "hyplora/autodiff/ops_dropout.hpp"
#include "hyplora/autodiff/ops_elementwise.hpp"
#include "hyplora/autodiff/ops_hyplora.hpp"
#include "hyplora/autodiff/ops_hyplora_official.hpp"
#include "hyplora/autodiff/ops_hyplora_stereographic.hpp"
#include "hyplora/autodiff/ops_linear.hpp"
#include "hyplora/autodiff/ops_lora.hpp"
#include "hyplora/autodiff/parameters.hpp"
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/io/adapter_file.hpp"
#include "hyplora/nn/adapter_config.hpp"
#include "hyplora/nn/dora.hpp"
#include "hyplora/nn/init.hpp"
#include "hyplora/nn/linear.hpp"

namespace hyplora::nn {

namespace detail {
/// K = softplus(θ) + floor, the published parameterisation (shared with ops_hyplora_official).
inline constexpr double curvature_floor = ad::OfficialHypLoRAConstants::k_eps;

/// θ with softplus(θ) + floor = K, stably: softplus⁻¹(y) = y + log(−expm1(−y)).
inline double curvature_to_theta(double K) {
  const double y = K - curvature_floor;
  return y + std::log(-std::expm1(-y));
}
inline double theta_to_curvature(double theta) {
  return (theta > 0 ? theta + std::log1p(std::exp(-theta)) : std::log1p(std::exp(theta))) + curvature_floor;
}

/// FNV-1a of a layer name: gives each layer its own dropout stream for the same step seed.
inline std::uint64_t name_hash(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

template <class M>
void check_finite(const std::string& what, const M& m) {
  for (Index i = 0; i < m.rows(); ++i)
    for (Index j = 0; j < m.cols(); ++j)
      if (!std::isfinite(static_cast<double>(m(i, j))))
        throw value_error(what + " has a non-finite entry " + std::to_string(static_cast<double>(m(i, j))) +
                          " at (" + std::to_string(i) + ", " + std::to_string(j) + ")");
}
}  // namespace detail

template <class T>
class AdaptedLinear {
 public:
  AdaptedLinear(ad::ParameterStore<T>& store, const std::string& name, Index in, Index out, bool bias = true)
      : base_(store, name, in, out, bias, /*trainable=*/true), stream_(detail::name_hash(name)) {}

  Linear<T>& base() { return base_; }
  const Linear<T>& base() const { return base_; }
  const AdapterConfig& config() const { return cfg_; }
  bool merged() const { return merged_; }

  /// Validates `cfg` for this layer and registers the adapter's parameters:
  ///   "<name>.lora_A" (R, D_in) Kaiming-uniform(a = √5) from cfg.seed, "<name>.lora_B" (D_out, R) zeros,
  ///   "<name>.lora_k" (1, 1) when the curvature is learned, "<name>.lora_norm_scale" (1, 1) when σ
  ///   is learned, "<name>.lora_magnitude" (1, D_out) = ‖W0‖_row for DoRA;
  /// and freezes the base weight and bias (kind == full leaves them trainable and adds nothing).
  /// Throws value_error for an invalid config, a second attach, or a non-finite base parameter.
  void attach(ad::ParameterStore<T>& store, const AdapterConfig& cfg) {
    const std::string& nm = base_.name();
    if (attached_) throw value_error("AdaptedLinear '" + nm + "': an adapter (" + to_string(cfg_.kind) + ") is already attached");
    cfg.validate(base_.in_features(), base_.out_features());
    if ((cfg.kind == AdapterKind::hyplora_stereographic || cfg.kind == AdapterKind::hyplora_official_simplified) &&
        (cfg.feature_scale != 1.0 || cfg.learn_feature_scale))
      throw value_error("AdaptedLinear '" + nm + "': " + to_string(cfg.kind) +
                        " has no feature scale (sigma must be 1 and fixed); scale the curvature instead (K_eff = sigma^2 K)");
    detail::check_finite("AdaptedLinear '" + nm + "': base weight", store.value(base_.weight()));
    if (base_.bias().valid()) detail::check_finite("AdaptedLinear '" + nm + "': base bias", store.value(base_.bias()));
    const bool low_rank = has_low_rank(cfg.kind);
    store.set_trainable(base_.weight(), !low_rank);
    if (base_.bias().valid()) store.set_trainable(base_.bias(), !low_rank);
    if (low_rank) {
      A_ = store.add(nm + ".lora_A", cfg.r, base_.in_features());
      B_ = store.add(nm + ".lora_B", base_.out_features(), cfg.r);
      kaiming_uniform_(store.value(A_), cfg.seed);
      if (cfg.kind == AdapterKind::dora) {
        m_ = store.add(nm + ".lora_magnitude", 1, base_.out_features());
        store.value(m_).row(0) = store.value(base_.weight()).rowwise().norm().transpose();
      }
      if (is_hyplora(cfg.kind) && cfg.learn_curvature) {
        k_ = store.add(nm + ".lora_k", 1, 1);
        store.value(k_)(0, 0) = static_cast<T>(raw_curvature(cfg));
      }
      if (is_hyplora(cfg.kind) && cfg.learn_feature_scale) {
        s_ = store.add(nm + ".lora_norm_scale", 1, 1);
        store.value(s_)(0, 0) = static_cast<T>(cfg.feature_scale);
      }
    }
    cfg_ = cfg;
    attached_ = true;
  }

  /// z = adapted layer(x). x: (N, D_in) → (N, D_out). training = false disables dropout;
  /// step_seed varies the dropout mask per step (each layer also mixes in its own name).
  ad::Var<T> forward(ad::Tape<T>& tape, ad::ParameterStore<T>& store, ad::Var<T> x, bool training = true,
                     std::uint64_t step_seed = 0) const {
    if (merged_ || !has_low_rank(cfg_.kind)) return base_.forward(tape, store, x);
    const ad::Var<T> xa = adapter_input(x, training, step_seed);
    const ad::Var<T> W = tape.param(store, base_.weight());
    const ad::Var<T> b = base_.bias().valid() ? tape.param(store, base_.bias()) : ad::Var<T>{};
    const ad::Var<T> A = tape.param(store, A_), B = tape.param(store, B_);
    const T gamma = static_cast<T>(cfg_.scaling());
    switch (cfg_.kind) {
      case AdapterKind::lora: return ad::lora_linear(x, W, xa, A, B, gamma, b);
      case AdapterKind::dora: return dora_linear(x, W, xa, A, B, tape.param(store, m_), gamma, b);
      case AdapterKind::hyplora:
        return ad::hyplora_linear(x, W, xa, A, B, radius(tape, store), sigma(tape, store),
                                  ad::HypLoRANodeOptions{cfg_.scaling(), cfg_.scale_out_by_sigma}, b);
      case AdapterKind::hyplora_official:
        return ad::hyplora_official_linear(x, W, xa, A, B, raw_k(tape, store), sigma(tape, store), cfg_.scaling(), b);
      case AdapterKind::hyplora_stereographic:
        return ad::hyplora_stereographic_linear(x, W, xa, A, B, radius(tape, store), cfg_.scaling(), b);
      case AdapterKind::hyplora_official_simplified:
        return ad::hyplora_official_simplified_linear(x, W, xa, A, B, raw_k(tape, store), cfg_.scaling(), b);
      default: break;
    }
    return base_.forward(tape, store, x);
  }

  /// The adapter's branch alone, without the frozen base map x·W0ᵀ + b (x: (N, D_in) → (N, D_out)),
  /// with forward()'s backward minus the base's: LoRA γ·(x_a·Aᵀ)·Bᵀ (composed from two linear
  /// nodes, the fused node's GEMMs); the exact, official, official_simplified and stereographic
  /// kinds their `*_branch` nodes (the fused nodes without the base map). DoRA: s ⊙ γ·(x_a·Aᵀ)·Bᵀ with
  /// s = m/‖W0 + γBA‖_row; its (s − 1) ⊙ x·W0ᵀ term needs the frozen GEMM and is left out. For
  /// timing the adapter apart from the frozen GEMM (benchmarks/bench_adapters.cpp, Branch/...).
  /// Throws value_error without an adapter (none, full, merged).
  ad::Var<T> forward_branch(ad::Tape<T>& tape, ad::ParameterStore<T>& store, ad::Var<T> x, bool training = true,
                            std::uint64_t step_seed = 0) const {
    if (merged_ || !has_low_rank(cfg_.kind))
      throw value_error("AdaptedLinear '" + base_.name() + "': forward_branch() needs an unmerged adapter, kind is " +
                        to_string(cfg_.kind) + (merged_ ? " (merged)" : ""));
    const ad::Var<T> xa = adapter_input(x, training, step_seed);
    const ad::Var<T> A = tape.param(store, A_), B = tape.param(store, B_);
    const T gamma = static_cast<T>(cfg_.scaling());
    switch (cfg_.kind) {
      case AdapterKind::lora: return ad::linear(ad::mul_scalar(ad::linear(xa, A), gamma), B);
      case AdapterKind::dora:
        return ad::mul(ad::linear(ad::mul_scalar(ad::linear(xa, A), gamma), B),
                       dora_scale(tape.param(store, base_.weight()), A, B, tape.param(store, m_), gamma));
      case AdapterKind::hyplora:
        return ad::hyplora_branch(xa, A, B, radius(tape, store), sigma(tape, store),
                                  ad::HypLoRANodeOptions{cfg_.scaling(), cfg_.scale_out_by_sigma});
      case AdapterKind::hyplora_official:
        return ad::hyplora_official_branch(xa, A, B, raw_k(tape, store), sigma(tape, store), cfg_.scaling());
      case AdapterKind::hyplora_stereographic:
        return ad::hyplora_stereographic_branch(xa, A, B, radius(tape, store), cfg_.scaling());
      case AdapterKind::hyplora_official_simplified:
        return ad::hyplora_official_simplified_branch(xa, A, B, raw_k(tape, store), cfg_.scaling());
      default: break;
    }
    throw value_error("AdaptedLinear '" + base_.name() + "': forward_branch() has no branch for " + to_string(cfg_.kind));
  }

  /// Folds the adapter into W0 so forward() is the base layer alone: LoRA W0 += γBA, DoRA
  /// W0 = m ⊙ V/‖V‖_row (both exact to rounding). The HypLoRA kinds are nonlinear in x
  /// (f_R⁻¹(BA f_R(x)) is not x ↦ Mx for any matrix M), so no weight reproduces them: merge()
  /// throws value_error; use merge_linearized() and read the error it reports.
  void merge(ad::ParameterStore<T>& store) {
    require_unmerged("merge");
    if (is_hyplora(cfg_.kind))
      throw value_error("AdaptedLinear '" + base_.name() + "': merge() is impossible for " + to_string(cfg_.kind) +
                        ": the adapter is a nonlinear function of x, so no weight matrix reproduces it (the "
                        "published code's merge silently folds B*A*alpha/r as if it were LoRA). Call "
                        "merge_linearized(store, inputs), which folds the first-order term and reports the error");
    if (!has_low_rank(cfg_.kind)) return;
    auto W = store.value(base_.weight());
    const T gamma = static_cast<T>(cfg_.scaling());
    if (cfg_.kind == AdapterKind::dora) {
      dora_s_ = dora_merge_weight(W, store.value(A_), store.value(B_), store.value(m_), gamma);
    } else {
      W.noalias() += gamma * (store.value(B_) * store.value(A_));
    }
    fold_ = gamma;
    merged_ = true;
  }

  /// Undoes merge() / merge_linearized(): W0 −= c·BA (c the folded factor); DoRA W0 = W'/s − γBA.
  void unmerge(ad::ParameterStore<T>& store) {
    if (!merged_) throw value_error("AdaptedLinear '" + base_.name() + "': unmerge() without a merge");
    auto W = store.value(base_.weight());
    if (cfg_.kind == AdapterKind::dora) {
      for (Index i = 0; i < W.rows(); ++i) W.row(i) /= dora_s_(i);
    }
    W.noalias() -= fold_ * (store.value(B_) * store.value(A_));
    merged_ = false;
  }

  /// Folds the adapter's first-order term c·BA into W0 (c = γσ_out/σ for the exact kind, its
  /// small-|x| limit, Prop. 5.1; γ/σ official; γ stereographic; 2γ/(1+k) official_simplified)
  /// and returns max |z_adapted − z_merged| over `inputs` (N, D_in), both in evaluation mode.
  /// LoRA/DoRA merge exactly (the returned error is rounding). unmerge() undoes it.
  double merge_linearized(ad::ParameterStore<T>& store, const MatrixR<T>& inputs) {
    require_unmerged("merge_linearized");
    if (!has_low_rank(cfg_.kind)) return 0.0;
    ad::Tape<T> tape;
    ad::NoGradGuard<T> guard(tape);
    const MatrixR<T> before = forward(tape, store, tape.constant(inputs), false).value();
    if (!is_hyplora(cfg_.kind)) {
      merge(store);
    } else {
      const double sig = sigma_value(store), gamma = cfg_.scaling();
      double c = gamma;
      if (cfg_.kind == AdapterKind::hyplora) c = gamma * (cfg_.scale_out_by_sigma ? 1.0 : 1.0 / sig);
      if (cfg_.kind == AdapterKind::hyplora_official) c = gamma / sig;
      if (cfg_.kind == AdapterKind::hyplora_official_simplified) c = 2.0 * gamma / (1.0 + k_raw_value(store));
      fold_ = static_cast<T>(c);
      store.value(base_.weight()).noalias() += fold_ * (store.value(B_) * store.value(A_));
      merged_ = true;
    }
    tape.clear();
    const MatrixR<T> after = forward(tape, store, tape.constant(inputs), false).value();
    return inputs.rows() == 0 ? 0.0 : static_cast<double>((before - after).cwiseAbs().maxCoeff());
  }

  /// The adapter as io::AdapterModule (float): A, B, and for the HypLoRA kinds k (the raw
  /// parameter the published code saves: θ with K = softplus(θ) + 1e-6, or official_simplified's
  /// raw k) and norm_scale (σ; exact and official kinds). Fixed values are written too, so the
  /// file says which layer produced it. DoRA's magnitude has no slot in io::AdapterModule: value_error.
  io::AdapterModule to_adapter_module(const ad::ParameterStore<T>& store) const {
    const std::string& nm = base_.name();
    if (!has_low_rank(cfg_.kind))
      throw value_error("AdaptedLinear '" + nm + "': kind " + to_string(cfg_.kind) + " has no adapter to save");
    if (cfg_.kind == AdapterKind::dora)
      throw value_error("AdaptedLinear '" + nm + "': io::AdapterModule has no slot for DoRA's lora_magnitude; "
                        "save the magnitude with the base checkpoint");
    io::AdapterModule m;
    m.A = store.value(A_).template cast<float>();
    m.B = store.value(B_).template cast<float>();
    if (is_hyplora(cfg_.kind)) {
      m.k = static_cast<float>(k_.valid() ? static_cast<double>(store.value(k_)(0, 0)) : raw_curvature(cfg_));
      if (has_sigma(cfg_.kind)) m.norm_scale = static_cast<float>(sigma_value(store));
    }
    return m;
  }

  /// Loads A, B (and k, norm_scale) from a module. shape_error names both shapes when A is not
  /// (R, D_in) or B not (D_out, R); value_error for non-finite values, for a k or norm_scale
  /// this kind has no use for, or for one that contradicts this layer's fixed K or σ.
  void load_adapter_module(ad::ParameterStore<T>& store, const io::AdapterModule& m) {
    const std::string op = "AdaptedLinear '" + base_.name() + "' load_adapter_module";
    require_unmerged("load_adapter_module");
    if (!has_low_rank(cfg_.kind) || cfg_.kind == AdapterKind::dora)
      throw value_error(op + ": this layer's kind " + to_string(cfg_.kind) + " cannot load a LoRA-style module");
    const auto& ia = store.info(A_);
    const auto& ib = store.info(B_);
    if (m.A.rows() != ia.rows || m.A.cols() != ia.cols) throw_shape(op, "layer lora_A", ia.rows, ia.cols, "file lora_A", m.A.rows(), m.A.cols());
    if (m.B.rows() != ib.rows || m.B.cols() != ib.cols) throw_shape(op, "layer lora_B", ib.rows, ib.cols, "file lora_B", m.B.rows(), m.B.cols());
    detail::check_finite(op + ": lora_A", m.A);
    detail::check_finite(op + ": lora_B", m.B);
    if (m.k && !std::isfinite(*m.k)) throw value_error(op + ": lora_k is not finite (" + std::to_string(*m.k) + ")");
    if (m.norm_scale && !(std::isfinite(*m.norm_scale) && *m.norm_scale > 0.0f))
      throw value_error(op + ": lora_norm_scale must be finite and > 0, got " + std::to_string(*m.norm_scale));
    if (!is_hyplora(cfg_.kind) && (m.k || m.norm_scale))
      throw value_error(op + ": the module carries lora_k / lora_norm_scale (a HypLoRA adapter) but the layer is " +
                        to_string(cfg_.kind));
    if (m.norm_scale && !has_sigma(cfg_.kind))
      throw value_error(op + ": the module carries lora_norm_scale but " + to_string(cfg_.kind) + " has no feature scale");
    // Fixed K or σ: the file must agree with the layer (to float rounding), else the outputs would differ.
    if (m.k && !k_.valid() && std::abs(static_cast<double>(*m.k) - static_cast<double>(static_cast<float>(raw_curvature(cfg_)))) > 0.0)
      throw value_error(op + ": the file's lora_k " + std::to_string(*m.k) + " contradicts this layer's fixed curvature K = " +
                        std::to_string(cfg_.K) + " (raw " + std::to_string(raw_curvature(cfg_)) + "); attach with learn_curvature");
    if (m.norm_scale && !s_.valid() && static_cast<double>(*m.norm_scale) != static_cast<double>(static_cast<float>(cfg_.feature_scale)))
      throw value_error(op + ": the file's lora_norm_scale " + std::to_string(*m.norm_scale) +
                        " contradicts this layer's fixed feature scale " + std::to_string(cfg_.feature_scale) +
                        "; attach with learn_feature_scale");
    store.value(A_) = m.A.template cast<T>();
    store.value(B_) = m.B.template cast<T>();
    if (m.k && k_.valid()) store.value(k_)(0, 0) = static_cast<T>(*m.k);
    if (m.norm_scale && s_.valid()) store.value(s_)(0, 0) = static_cast<T>(*m.norm_scale);
  }

  ad::Parameter lora_A() const { return A_; }
  ad::Parameter lora_B() const { return B_; }
  ad::Parameter lora_k() const { return k_; }  // valid() only when the curvature is learned
  ad::Parameter lora_norm_scale() const { return s_; }  // valid() only when σ is learned
  ad::Parameter lora_magnitude() const { return m_; }  // DoRA only

  /// The seed of this layer's adapter-dropout mask for forward(…, step_seed): the step seed, the
  /// layer's own stream (its name) and cfg.seed mixed, so a device twin can draw the same mask.
  std::uint64_t dropout_seed(std::uint64_t step_seed) const { return SplitMix64(step_seed ^ stream_ ^ cfg_.seed).next(); }

  /// The curvature K this layer uses now (learned or fixed).
  double curvature(const ad::ParameterStore<T>& store) const {
    if (cfg_.kind == AdapterKind::hyplora_official_simplified) return k_raw_value(store);
    return k_.valid() ? detail::theta_to_curvature(static_cast<double>(store.value(k_)(0, 0))) : cfg_.K;
  }

 private:
  static bool has_sigma(AdapterKind k) { return k == AdapterKind::hyplora || k == AdapterKind::hyplora_official; }

  /// The stored form of the curvature: raw k for official_simplified, else θ = softplus⁻¹(K − 1e-6).
  static double raw_curvature(const AdapterConfig& c) {
    return c.kind == AdapterKind::hyplora_official_simplified ? c.K : detail::curvature_to_theta(c.K);
  }

  /// x_a: dropout(x) while training with dropout > 0, else x itself; checks x: (N, D_in).
  ad::Var<T> adapter_input(ad::Var<T> x, bool training, std::uint64_t step_seed) const {
    if (x.cols() != base_.in_features())
      throw_shape("AdaptedLinear '" + base_.name() + "'", "x", x.rows(), x.cols(), "weight", base_.out_features(),
                  base_.in_features());
    if (training && cfg_.dropout > 0.0)
      return ad::dropout(x, static_cast<T>(cfg_.dropout), dropout_seed(step_seed));
    return x;
  }

  void require_unmerged(const char* what) const {
    if (merged_) throw value_error("AdaptedLinear '" + base_.name() + "': " + what + "() on a merged layer; unmerge() first");
  }

  double sigma_value(const ad::ParameterStore<T>& store) const {
    return s_.valid() ? static_cast<double>(store.value(s_)(0, 0)) : cfg_.feature_scale;
  }
  double k_raw_value(const ad::ParameterStore<T>& store) const {
    return k_.valid() ? static_cast<double>(store.value(k_)(0, 0)) : cfg_.K;
  }

  /// R = √K: a constant node, or √(softplus(θ) + 1e-6) from primitive ops.
  ad::Var<T> radius(ad::Tape<T>& tape, ad::ParameterStore<T>& store) const {
    if (!k_.valid()) return tape.constant(Eigen::Matrix<T, 1, 1>::Constant(static_cast<T>(std::sqrt(cfg_.K))));
    return ad::sqrt(ad::add_scalar(ad::softplus(tape.param(store, k_)), static_cast<T>(detail::curvature_floor)));
  }
  /// The raw curvature parameter (θ for official, k for official_simplified), as a node.
  ad::Var<T> raw_k(ad::Tape<T>& tape, ad::ParameterStore<T>& store) const {
    if (k_.valid()) return tape.param(store, k_);
    return tape.constant(Eigen::Matrix<T, 1, 1>::Constant(static_cast<T>(raw_curvature(cfg_))));
  }
  ad::Var<T> sigma(ad::Tape<T>& tape, ad::ParameterStore<T>& store) const {
    if (s_.valid()) return tape.param(store, s_);
    return tape.constant(Eigen::Matrix<T, 1, 1>::Constant(static_cast<T>(cfg_.feature_scale)));
  }

  Linear<T> base_;
  std::uint64_t stream_;
  AdapterConfig cfg_;
  bool attached_ = false;
  bool merged_ = false;
  ad::Parameter A_, B_, k_, s_, m_;
  T fold_ = T(0);
  RowVectorX<T> dora_s_;
};

}  // namespace hyplora::nn
