// benchmarks/compare/adapters_dump.cpp — one float64 forward + backward of every adapter kind
// through nn::AdaptedLinear<double>, written to ONE safetensors file (F64) for the PyTorch
// autograd cross-check in torch_adapters.py (--check).
//
//   adapters_dump [out.safetensors]     (default: adapters_dump.safetensors)
//
// Every case uses the same seeded x (N, D_in), frozen W0 (D_out, D_in) and b (1, D_out), a
// non-zero B (D_out, R) and the upstream gradient G = ∂L/∂z (N, D_out); the curvature and the
// feature scale are learned wherever the kind has them, so their gradients are checked too.
// Tensors are named "<case>.<what>": inputs x, G, W0, b, A, B, m (DoRA), k (the raw curvature
// parameter: θ with K = softplus(θ) + 1e-6, or official_simplified's k), sigma (feature scale);
// the output z; and gradients "<case>.grad.<param>" (x always; W0, b for the plain layer; A, B,
// m, k, sigma for the adapters). __metadata__ holds "cases" (comma-separated) and, per case, a
// JSON string with the kind and its AdapterConfig (r, alpha, rslora, gamma, K, flags).
#include <cmath>
#include <cstdint>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <hyplora/io/safetensors.hpp>
#include <hyplora/nn/adapted_linear.hpp>

namespace {

using hyplora::Index;
using M = hyplora::MatrixR<double>;
namespace ad = hyplora::ad;
namespace io = hyplora::io;
namespace nn = hyplora::nn;

constexpr Index kN = 7, kDin = 12, kDout = 10;
constexpr int kRank = 3;

struct Case {
  std::string name;
  nn::AdapterConfig cfg;  // kind none: the plain (trainable) base layer
  double g_scale = 1.0;   // G = g_scale·G_common
  bool saturate = false;  // official: push the last token past the sinh clamp (ρ > 12, Eq. (176))
};

std::vector<Case> cases() {
  auto make = [](nn::AdapterKind kind, double K, bool learn_k, double sigma, bool learn_sigma) {
    nn::AdapterConfig c;
    c.kind = kind;
    c.r = kRank;
    c.alpha = 5.0;  // γ = 5/3: a scale that is not 1 or 2
    c.K = K;
    c.learn_curvature = learn_k;
    c.feature_scale = sigma;
    c.learn_feature_scale = learn_sigma;
    c.seed = 11;
    return c;
  };
  using K = nn::AdapterKind;
  const double softplus1 = std::log1p(std::exp(1.0)) + 1e-6;  // the published initial K (θ = 1)
  std::vector<Case> out = {
      {"linear", make(K::none, 1.0, false, 1.0, false)},
      {"lora", make(K::lora, 1.0, false, 1.0, false)},
      {"dora", make(K::dora, 1.0, false, 1.0, false)},
      {"hyplora", make(K::hyplora, 1.7, true, 1.3, true)},
      {"hyplora_sigma_out", make(K::hyplora, 1.7, true, 1.3, true)},
      // G scaled so |∂L/∂θ| stays below the hook's clip (0.01), else the check only sees ±0.01 ...
      {"hyplora_official", make(K::hyplora_official, softplus1, true, std::sqrt(double(kDin)), true), 0.004},
      // ... and a case where the hook clips, with one token past the sinh clamp.
      {"hyplora_official_clipped", make(K::hyplora_official, softplus1, true, std::sqrt(double(kDin)), true), 1.0, true},
      {"hyplora_stereographic", make(K::hyplora_stereographic, 0.8, true, 1.0, false)},
      {"hyplora_official_simplified", make(K::hyplora_official_simplified, 0.5, true, 1.0, false)},
  };
  for (Case& c : out) {
    if (c.name == "hyplora_sigma_out") c.cfg.scale_out_by_sigma = true;
    if (c.name == "hyplora_stereographic") c.cfg.rslora = true;  // γ = α/√r
  }
  return out;
}

/// N rows, each a seeded direction times a norm from `norms` (so the official branch sees all
/// three θ' regions and every kind sees small and large tokens).
M seeded_rows(Index n, Index d, const std::vector<double>& norms, std::uint64_t seed) {
  M x(n, d);
  nn::uniform_(x, -1.0, 1.0, seed);
  for (Index i = 0; i < n; ++i) x.row(i) *= norms[static_cast<std::size_t>(i) % norms.size()] / x.row(i).norm();
  return x;
}

/// The official branch's θ' = √(|y|² + 1/K)/R has three regions (Eq. (178)): < 1 (constant g),
/// [1, 1.01) (the √(2e) fallback) and ≥ 1.01 (arcosh). The seeded norms give the first and the
/// last; this rescales token 4 so that θ' = 1.005, and with `saturate` token N−1 to ρ = 15 > 12.
/// Along a fixed direction x̂, |y| = R·sinh(ρ)·|B A x̂| with ρ = |x|/(sR), so the norm is solved for.
void place_official_tokens(M& X, const ad::ParameterStore<double>& store, const nn::AdaptedLinear<double>& layer,
                           bool saturate) {
  const double K = layer.curvature(store), R = std::sqrt(K);
  const double s = store.value(layer.lora_norm_scale())(0, 0);
  const M BA = M(store.value(layer.lora_B())) * M(store.value(layer.lora_A()));
  const Index i = 4;
  const double y_target = std::sqrt(1.005 * 1.005 * K - 1.0 / K);
  const double gain = (BA * X.row(i).transpose()).norm() / X.row(i).norm();  // |B A x̂|
  X.row(i) *= s * R * std::asinh(y_target / (R * gain)) / X.row(i).norm();
  if (saturate) X.row(kN - 1) *= 15.0 * s * R / X.row(kN - 1).norm();
}

void dump_case(io::SafetensorsWriter& w, nlohmann::json& meta, const Case& c, M X, M G) {
  ad::ParameterStore<double> store;
  nn::AdaptedLinear<double> layer(store, c.name, kDin, kDout, /*bias=*/true);
  layer.base().init_kaiming_uniform(store, 7);
  nn::uniform_(store.value(layer.base().bias()), -0.3, 0.3, 8);
  const bool adapter = nn::has_low_rank(c.cfg.kind);
  if (adapter) {
    layer.attach(store, c.cfg);
    // A trained-looking, non-zero B (B = 0 would hide most of the adapter's gradients).
    nn::uniform_(store.value(layer.lora_B()), -0.9, 0.9, 9);
    if (c.cfg.kind == nn::AdapterKind::dora) nn::uniform_(store.value(layer.lora_magnitude()), 0.5, 1.5, 10);
  }
  if (c.cfg.kind == nn::AdapterKind::hyplora_official) place_official_tokens(X, store, layer, c.saturate);
  G *= c.g_scale;
  store.zero_grad();
  ad::Tape<double> tape;
  const ad::Var<double> x = tape.leaf(X);
  const ad::Var<double> z = layer.forward(tape, store, x, /*training=*/false);
  tape.backward(z, G);

  const std::string p = c.name + ".";
  auto put = [&](const std::string& what, const auto& m) { w.add(p + what, m, io::Dtype::F64); };
  put("x", X);
  put("G", G);
  put("W0", M(store.value(layer.base().weight())));
  put("b", M(store.value(layer.base().bias())));
  put("z", M(z.value()));
  put("grad.x", M(x.grad()));
  nlohmann::json j = {{"kind", nn::to_string(c.cfg.kind)}};
  if (!adapter) {
    put("grad.W0", M(store.grad(layer.base().weight())));
    put("grad.b", M(store.grad(layer.base().bias())));
  } else {
    put("A", M(store.value(layer.lora_A())));
    put("B", M(store.value(layer.lora_B())));
    put("grad.A", M(store.grad(layer.lora_A())));
    put("grad.B", M(store.grad(layer.lora_B())));
    if (layer.lora_magnitude().valid()) {
      put("m", M(store.value(layer.lora_magnitude())));
      put("grad.m", M(store.grad(layer.lora_magnitude())));
    }
    if (layer.lora_k().valid()) {
      put("k", M(store.value(layer.lora_k())));
      put("grad.k", M(store.grad(layer.lora_k())));
    }
    if (layer.lora_norm_scale().valid()) {
      put("sigma", M(store.value(layer.lora_norm_scale())));
      put("grad.sigma", M(store.grad(layer.lora_norm_scale())));
    }
    const nn::AdapterConfig& k = c.cfg;
    j.update({{"r", k.r}, {"alpha", k.alpha}, {"rslora", k.rslora}, {"gamma", k.scaling()}, {"K", k.K},
              {"learn_curvature", k.learn_curvature}, {"feature_scale", k.feature_scale},
              {"learn_feature_scale", k.learn_feature_scale}, {"scale_out_by_sigma", k.scale_out_by_sigma}});
  }
  meta[c.name] = j.dump();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string path = argc > 1 ? argv[1] : "adapters_dump.safetensors";
    // Token norms from 0.05 to 6: small (near-LoRA) to large (deep in the nonlinear regime).
    const M X = seeded_rows(kN, kDin, {0.05, 0.4, 1.0, 2.0, 3.0, 4.5, 6.0}, 1);
    M G(kN, kDout);
    nn::uniform_(G, -1.0, 1.0, 2);
    io::SafetensorsWriter w;
    nlohmann::json meta = nlohmann::json::object();
    std::string names;
    for (const Case& c : cases()) {
      dump_case(w, meta, c, X, G);
      names += (names.empty() ? "" : ",") + c.name;
    }
    w.set_metadata("cases", names);
    w.set_metadata("shape", "N=" + std::to_string(kN) + ",D_in=" + std::to_string(kDin) +
                                ",D_out=" + std::to_string(kDout) + ",r=" + std::to_string(kRank));
    for (const auto& [k, v] : meta.items()) w.set_metadata(k, v.get<std::string>());
    w.save(path);
    std::cout << "adapters_dump: wrote " << path << " (" << names << ")\n";
  } catch (const std::exception& e) {
    std::cerr << "adapters_dump: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
