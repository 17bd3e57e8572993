// hyplora/nn/adapter_config.hpp — which adapter an AdaptedLinear carries, and its settings.
//
// Curvature convention (docs/math.md Eq. (1)): K > 0 is the squared radius, R = √K, sectional
// curvature −1/K. The HypLoRA feature scale σ and the curvature are one degree of freedom:
// σ·f_R(x/σ) = f_{σR}(x), so the exact layer with (σ, K) equals the one with (1, σ²K) up to the
// output factor σ_out/σ (MATH_NOTES §4.3, "homogeneity"): K_eff = σ²K. Learn one of them, not both.
#pragma once

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>

#include "hyplora/core/errors.hpp"
#include "hyplora/core/types.hpp"

namespace hyplora::nn {

/// none: the plain base layer; full: the base layer itself is trained (no adapter parameters);
/// lora: Hu et al. 2021; dora: Liu et al. 2024 (weight-decomposed LoRA);
/// hyplora: the exact layer γσ_out·f_R⁻¹(B A f_R(x/σ)) (ops_hyplora.hpp);
/// hyplora_official: the published code's forward, quirks included (MATH_NOTES §4.1–4.2);
/// hyplora_stereographic: p(LLR(BA, p⁻¹(x))) through the Poincaré ball (MATH_NOTES §3.3);
/// hyplora_official_simplified: the published `hyplora_simplified` forward (MATH_NOTES §3.3).
enum class AdapterKind {
  none,
  full,
  lora,
  dora,
  hyplora,
  hyplora_official,
  hyplora_stereographic,
  hyplora_official_simplified
};

inline std::string to_string(AdapterKind k) {
  switch (k) {
    case AdapterKind::none: return "none";
    case AdapterKind::full: return "full";
    case AdapterKind::lora: return "lora";
    case AdapterKind::dora: return "dora";
    case AdapterKind::hyplora: return "hyplora";
    case AdapterKind::hyplora_official: return "hyplora_official";
    case AdapterKind::hyplora_stereographic: return "hyplora_stereographic";
    case AdapterKind::hyplora_official_simplified: return "hyplora_official_simplified";
  }
  return "unknown";
}

/// The inverse of to_string; also accepts "hyplora_exact" and "-" for "_". value_error otherwise.
inline AdapterKind parse_adapter_kind(const std::string& s) {
  std::string k = s;
  for (char& c : k) c = (c == '-') ? '_' : c;
  if (k == "hyplora_exact") return AdapterKind::hyplora;
  for (AdapterKind v : {AdapterKind::none, AdapterKind::full, AdapterKind::lora, AdapterKind::dora,
                        AdapterKind::hyplora, AdapterKind::hyplora_official, AdapterKind::hyplora_stereographic,
                        AdapterKind::hyplora_official_simplified})
    if (k == to_string(v)) return v;
  throw value_error("unknown adapter kind '" + s +
                    "' (expected none, full, lora, dora, hyplora, hyplora_official, hyplora_stereographic or "
                    "hyplora_official_simplified)");
}

/// True for the kinds with trainable low-rank factors A (R, D_in) and B (D_out, R).
inline bool has_low_rank(AdapterKind k) { return k != AdapterKind::none && k != AdapterKind::full; }

/// True for the four HypLoRA variants (curvature and feature scale apply).
inline bool is_hyplora(AdapterKind k) {
  return k == AdapterKind::hyplora || k == AdapterKind::hyplora_official ||
         k == AdapterKind::hyplora_stereographic || k == AdapterKind::hyplora_official_simplified;
}

struct AdapterConfig {
  AdapterKind kind = AdapterKind::none;
  int r = 8;
  double alpha = 16.0;
  bool rslora = false;  // γ = α/r, or α/√r with rslora (Kalajdzievski 2023)
  double dropout = 0.0;  // on the adapter's input only
  double K = 1.0;  // hyplora*: fixed K, or the initial K of K = softplus(θ) + 1e-6 when learned
  bool learn_curvature = false;
  double feature_scale = 1.0;  // σ (official initial value: √D_in)
  bool learn_feature_scale = false;
  bool scale_out_by_sigma = false;  // σ_out = σ (reduces to LoRA as |x| → 0) or 1 (official)
  std::uint64_t seed = 0;  // A's Kaiming-uniform init

  /// γ, the adapter's output scale.
  double scaling() const { return rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r); }

  /// Throws value_error naming the offending field: r = 0 or r > min(D_in, D_out), non-finite
  /// α, dropout outside [0, 1), K <= 0 (or <= 1e-6 when learned: K = softplus(θ) + 1e-6 cannot
  /// reach it), σ <= 0.
  void validate(Index d_in, Index d_out) const {
    auto fail = [&](const std::string& what) {
      throw value_error("AdapterConfig (" + to_string(kind) + ", D_in " + std::to_string(d_in) + ", D_out " +
                        std::to_string(d_out) + "): " + what);
    };
    if (d_in <= 0 || d_out <= 0) fail("the layer has an empty shape " + shape_str(d_out, d_in));
    if (!has_low_rank(kind)) return;
    const Index rmax = d_in < d_out ? d_in : d_out;
    if (r <= 0) fail("rank r must be >= 1, got " + std::to_string(r));
    if (r > rmax) fail("rank r = " + std::to_string(r) + " exceeds min(D_in, D_out) = " + std::to_string(rmax));
    std::ostringstream v;
    if (!std::isfinite(alpha)) {
      v << "alpha must be finite, got " << alpha;
      fail(v.str());
    }
    if (!(dropout >= 0.0 && dropout < 1.0)) {
      v << "dropout must be in [0, 1), got " << dropout;
      fail(v.str());
    }
    if (!is_hyplora(kind)) return;
    if (!(K > 0.0) || !std::isfinite(K)) {
      v << "curvature K must be finite and > 0 (sectional curvature -1/K), got " << K;
      fail(v.str());
    }
    if (learn_curvature && !(K > 1e-6)) {
      v << "a learned curvature K = softplus(theta) + 1e-6 must start above 1e-6, got " << K;
      fail(v.str());
    }
    if (!(feature_scale > 0.0) || !std::isfinite(feature_scale)) {
      v << "feature_scale sigma must be finite and > 0, got " << feature_scale;
      fail(v.str());
    }
  }
};

}  // namespace hyplora::nn
