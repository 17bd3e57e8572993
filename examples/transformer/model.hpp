// examples/transformer/model.hpp — a minimal GPT built from the library's tape ops.
//
// Byte-level decoder (V = 256): learned token and position embeddings, pre-norm blocks
//   x ← x + o(attn(q(n1(x)), k(n1(x)), v(n1(x))))      causal multi-head, fused op
//   x ← x + fc2(gelu(fc1(n2(x))))                        MLP width 4C
// and a tied output head: logits = n_f(x)·Eᵀ (matmul with a transpose flag, no copy of E).
// Shapes: B sequences of T tokens, C width, H heads, V vocabulary, R adapter rank.
//
// Each of q, k, v, o, fc1, fc2 is an nn::AdaptedLinear, so any selection of them can carry an
// adapter (LoRA, DoRA, HypLoRA, …) while everything else stays frozen. Header-only and CLI-free:
// the tests include it directly.
//
// The wiring exists once, in GPT::build, a template over a graph G that supplies the ops: the
// CPU runs it on the autodiff tape (TapeGraph, via GPT::forward), the GPU on a device tape
// (cuda::Graph in hyplora/cuda/graph.cuh, via DeviceGPT in gpt_cuda.cuh) — issue #6's "one model
// definition": the device is where the graph's tensors live, not a second copy of the network.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "hyplora/autodiff/ops_attention.hpp"
#include "hyplora/autodiff/ops_elementwise.hpp"
#include "hyplora/autodiff/ops_matmul.hpp"
#include "hyplora/autodiff/ops_norm.hpp"
#include "hyplora/autodiff/ops_shape.hpp"
#include "hyplora/autodiff/ops_softmax.hpp"
#include "hyplora/autodiff/parameters.hpp"
#include "hyplora/autodiff/tape.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/nn/adapted_linear.hpp"
#include "hyplora/nn/adapter_config.hpp"
#include "hyplora/nn/init.hpp"

namespace hyplora::examples {

namespace detail {

// GELU (tanh approximation) over whole rows with Eigen's vectorised tanh. Profiling bench-step
// (callgrind, 1 thread) put ad::gelu's scalar std::tanh (tanhf → expm1f) at ~30% of a LoRA step;
// Eigen's packet tanh does 8 floats per instruction. The formula and derivative are ad::gelu's
// (ops_elementwise.hpp GeluF pieces, instantiated on Eigen arrays); in double Eigen falls back to
// std::tanh, so the test compares the two to rounding there. Chunks of rows run on OpenMP
// threads like the library's elementwise ops.
inline constexpr Index kGeluChunk = 8192;  // elements per parallel task

template <class T>
void gelu_rows_backward(ad::Tape<T>& t, int id) {
  auto& n = t.node(id);
  const int ia = n.parents[0];
  if (!t.needs_grad(ia)) return;
  const Index m = n.rows * n.cols;
  const T* g = t.grad_acc(id).data();
  const T* x = t.value(ia).data();
  auto out = t.grad_out(ia);  // fresh: assign, no zero-fill (Tape::grad_out)
  T* ga = out.view.data();
  const bool fresh = out.fresh;
  using ad::detail::GeluF;
  ad::detail::parallel_for((m + kGeluChunk - 1) / kGeluChunk, m, [&](Index c) {
    const Index b = c * kGeluChunk, len = std::min(kGeluChunk, m - b);
    // tanh once per element into a small stack tile (callgrind: evaluating it twice made this
    // backward ~7% of a full fine-tuning step).
    constexpr Index kTile = 256;
    Eigen::Array<T, kTile, 1> tile;
    for (Index s = 0; s < len; s += kTile) {
      const Index l = std::min(kTile, len - s);
      const auto X = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(x + b + s, l);
      const auto G = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(g + b + s, l);
      auto GA = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(ga + b + s, l);
      auto th = tile.head(l);
      th = GeluF::tanh_arg<T>(X).tanh();
      const auto d = G * GeluF::grad_from_tanh<T>(X, th);
      if (fresh) GA = d;
      else GA += d;
    }
  });
}

/// y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))) elementwise.  x, y: (N, D).
template <class T>
ad::Var<T> gelu_rows(ad::Var<T> a) {
  ad::Tape<T>& t = *a.tape;
  const int id = t.push("gelu_rows", a.rows(), a.cols(), &gelu_rows_backward<T>, {a.id});
  const Index m = a.rows() * a.cols();
  const T* x = t.value(a.id).data();
  T* y = t.value(id).data();
  using ad::detail::GeluF;
  ad::detail::parallel_for((m + kGeluChunk - 1) / kGeluChunk, m, [&](Index c) {
    const Index b = c * kGeluChunk, len = std::min(kGeluChunk, m - b);
    const auto X = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(x + b, len);
    Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(y + b, len) = GeluF::from_tanh<T>(X, GeluF::tanh_arg<T>(X).tanh());
  });
  return ad::Var<T>{&t, id};
}

}  // namespace detail

struct GPTConfig {
  int vocab = 256;       // V: bytes
  int block_size = 128;  // longest sequence T the position table covers
  int width = 128;       // C
  int layers = 4;
  int heads = 4;         // H; C % H == 0
  bool rms_norm = false; // RMS norm instead of layer norm
  std::uint64_t seed = 1234;

  void validate() const {
    if (vocab < 1 || block_size < 1 || width < 1 || layers < 0 || heads < 1)
      throw value_error("GPTConfig: need vocab, block_size, width, heads >= 1 and layers >= 0; got V " +
                        std::to_string(vocab) + ", T " + std::to_string(block_size) + ", C " + std::to_string(width) +
                        ", layers " + std::to_string(layers) + ", H " + std::to_string(heads));
    if (width % heads != 0)
      throw value_error("GPTConfig: width C = " + std::to_string(width) + " is not divisible by heads H = " +
                        std::to_string(heads));
  }
};

/// The six adaptable projections of a block, by the names --targets uses.
inline const std::vector<std::string>& gpt_target_names() {
  static const std::vector<std::string> n{"q", "k", "v", "o", "fc1", "fc2"};
  return n;
}

/// GPT::build's graph on the CPU: each op records on the tape exactly the ad:: ops GPT::forward
/// always recorded, in the same order (so the CPU step, its timing and its bits do not depend on
/// the model being written once for two devices).
template <class T>
struct TapeGraph {
  using Var = ad::Var<T>;
  ad::Tape<T>& tape;
  ad::ParameterStore<T>& store;
  const std::vector<std::int64_t>& ids;  // B·T token ids
  const std::vector<std::int64_t>& pos;  // B·T positions i mod T
  bool rms_norm;
  bool training;            // adapter dropout on
  std::uint64_t step_seed;  // varies the dropout mask per step
  Var E;                    // the token table, read again by the tied head

  Var embed(ad::Parameter wte, ad::Parameter wpe) {
    E = tape.param(store, wte);
    return ad::add(ad::embedding(E, ids), ad::embedding(tape.param(store, wpe), pos));
  }
  Var norm(Var x, ad::Parameter gamma, ad::Parameter beta) {
    if (rms_norm) return ad::rms_norm(x, tape.param(store, gamma));
    return ad::layer_norm(x, tape.param(store, gamma), tape.param(store, beta));
  }
  Var proj(Var x, const nn::AdaptedLinear<T>& p) { return p.forward(tape, store, x, training, step_seed); }
  Var attention(Var q, Var k, Var v, Index B, Index Tn, Index H) { return ad::causal_self_attention(q, k, v, B, Tn, H); }
  Var add(Var a, Var b) { return ad::add(a, b); }
  Var gelu(Var x) { return detail::gelu_rows(x); }
  Var head(Var x, ad::Parameter /*wte: E, already on the tape*/) { return ad::matmul(x, E, false, true); }
};

template <class T>
class GPT {
 public:
  struct Norm {
    ad::Parameter gamma, beta;  // beta invalid for RMS norm
  };
  struct Block {
    Norm n1, n2;
    std::vector<nn::AdaptedLinear<T>> proj;  // q, k, v, o, fc1, fc2 (gpt_target_names order)
  };

  /// Registers every parameter in `store` and initialises them deterministically from cfg.seed:
  /// embeddings N(0, 0.02²)-like uniform, projections like torch.nn.Linear, residual outputs
  /// (o, fc2) scaled by 1/√(2·layers) as in GPT-2, norms γ = 1, β = 0.
  GPT(ad::ParameterStore<T>& store, const GPTConfig& cfg) : cfg_(cfg) {
    cfg_.validate();
    const Index C = cfg_.width;
    wte_ = store.add("wte", cfg_.vocab, C);
    wpe_ = store.add("wpe", cfg_.block_size, C);
    // uniform(±a) has std a/√3: a = 0.02·√3 gives GPT-2's std 0.02.
    const double a = 0.02 * std::sqrt(3.0);
    nn::uniform_(store.value(wte_), -a, a, mix(1));
    nn::uniform_(store.value(wpe_), -a, a, mix(2));
    blocks_.resize(static_cast<std::size_t>(cfg_.layers));
    const double resid = 1.0 / std::sqrt(2.0 * std::max(1, cfg_.layers));
    for (int l = 0; l < cfg_.layers; ++l) {
      Block& b = blocks_[static_cast<std::size_t>(l)];
      const std::string p = "h." + std::to_string(l) + ".";
      b.n1 = add_norm(store, p + "ln_1");
      b.n2 = add_norm(store, p + "ln_2");
      const Index ins[6] = {C, C, C, C, C, 4 * C}, outs[6] = {C, C, C, C, 4 * C, C};
      b.proj.reserve(6);
      for (int j = 0; j < 6; ++j) {
        b.proj.emplace_back(store, p + gpt_target_names()[static_cast<std::size_t>(j)], ins[j], outs[j]);
        auto& lin = b.proj.back().base();
        lin.init_kaiming_uniform(store, mix(100 + static_cast<std::uint64_t>(l) * 16 + static_cast<std::uint64_t>(j)));
        if (j == 3 || j == 5) store.value(lin.weight()) *= static_cast<T>(resid);
      }
    }
    ln_f_ = add_norm(store, "ln_f");
  }

  const GPTConfig& config() const { return cfg_; }
  std::vector<Block>& blocks() { return blocks_; }
  const std::vector<Block>& blocks() const { return blocks_; }

  /// Freezes every parameter, then attaches `cfg` to the named projections of every block (each
  /// layer's adapter gets its own seed). kind == full instead makes everything trainable.
  void attach(ad::ParameterStore<T>& store, const nn::AdapterConfig& cfg, const std::vector<std::string>& targets) {
    for (const std::string& t : targets) target_index(t);  // validate first
    const bool full = cfg.kind == nn::AdapterKind::full;
    for (int k = 0; k < store.count(); ++k) store.set_trainable(store.at_index(k), full);
    if (full || cfg.kind == nn::AdapterKind::none) return;
    std::uint64_t n = 0;
    for (Block& b : blocks_)
      for (const std::string& t : targets) {
        nn::AdapterConfig c = cfg;
        c.seed = cfg.seed * 1000003ull + (n++);
        b.proj[target_index(t)].attach(store, c);
      }
  }

  /// Index of a projection name in gpt_target_names(); value_error otherwise.
  static std::size_t target_index(const std::string& name) {
    const auto& n = gpt_target_names();
    for (std::size_t i = 0; i < n.size(); ++i)
      if (n[i] == name) return i;
    throw value_error("unknown adapter target '" + name + "' (expected q, k, v, o, fc1 or fc2)");
  }

  /// The network, written once for every device: the logits (B·T, V) of B sequences of T tokens,
  /// built from graph g's ops. G supplies Var and
  ///   embed(wte, wpe)            token + position embeddings of the batch      → (N, C)
  ///   norm(x, gamma, beta)       layer norm (RMS norm when beta is invalid)     (N, C) → (N, C)
  ///   proj(x, p)                 the nn::AdaptedLinear p, with its adapter       (N, D_in) → (N, D_out)
  ///   attention(q, k, v, B, T, H) causal multi-head self-attention             (N, C) ×3 → (N, C)
  ///   add(a, b), gelu(x)         elementwise
  ///   head(x, wte)               tied output head x·Eᵀ                         (N, C) → (N, V)
  /// TapeGraph (below) records the ad:: ops on the CPU tape (GPT::forward); cuda::Graph
  /// (hyplora/cuda/graph.cuh) runs the device kernels and records their backward (DeviceGPT).
  template <class G>
  typename G::Var build(G& g, Index B, Index Tn) const {
    using V = typename G::Var;
    V x = g.embed(wte_, wpe_);  // (B·T, C)
    for (const Block& b : blocks_) {
      const V h = g.norm(x, b.n1.gamma, b.n1.beta);
      const V q = g.proj(h, b.proj[0]);
      const V k = g.proj(h, b.proj[1]);
      const V v = g.proj(h, b.proj[2]);
      const V att = g.attention(q, k, v, B, Tn, static_cast<Index>(cfg_.heads));
      x = g.add(x, g.proj(att, b.proj[3]));
      const V h2 = g.norm(x, b.n2.gamma, b.n2.beta);
      const V m = g.gelu(g.proj(h2, b.proj[4]));  // (B·T, 4C)
      x = g.add(x, g.proj(m, b.proj[5]));
    }
    x = g.norm(x, ln_f_.gamma, ln_f_.beta);
    return g.head(x, wte_);  // tied head: (B·T, C)·(V, C)ᵀ = (B·T, V)
  }

  /// Logits for B sequences of T tokens. ids: B·T bytes, row-major (sequence b at [b·T, b·T+T)).
  /// Returns (B·T, V). `training` enables adapter dropout, varied by `step_seed`.
  ad::Var<T> forward(ad::Tape<T>& tape, ad::ParameterStore<T>& store, const std::vector<std::int64_t>& ids,
                     Index B, Index Tn, bool training = true, std::uint64_t step_seed = 0) {
    if (B < 1 || Tn < 1 || Tn > cfg_.block_size || static_cast<Index>(ids.size()) != B * Tn)
      throw shape_error("GPT::forward: ids has " + std::to_string(ids.size()) + " tokens for B = " +
                        std::to_string(B) + ", T = " + std::to_string(Tn) + " (need B·T, 1 <= T <= block_size " +
                        std::to_string(cfg_.block_size) + ")");
    pos_.resize(ids.size());  // capacity kept: no allocation once shapes repeat
    for (std::size_t i = 0; i < ids.size(); ++i) pos_[i] = static_cast<std::int64_t>(i % static_cast<std::size_t>(Tn));
    TapeGraph<T> g{tape, store, ids, pos_, cfg_.rms_norm, training, step_seed, {}};
    return build(g, B, Tn);
  }

  /// Mean cross-entropy of the positions whose target is not -1. targets: B·T.
  ad::Var<T> loss(ad::Tape<T>& tape, ad::ParameterStore<T>& store, const std::vector<std::int64_t>& ids,
                  const std::vector<std::int64_t>& targets, Index B, Index Tn, bool training = true,
                  std::uint64_t step_seed = 0) {
    return ad::cross_entropy(forward(tape, store, ids, B, Tn, training, step_seed), targets, -1);
  }

 private:
  std::uint64_t mix(std::uint64_t k) const { return nn::SplitMix64(cfg_.seed * 0x9E3779B97F4A7C15ull + k).next(); }

  Norm add_norm(ad::ParameterStore<T>& store, const std::string& name) {
    Norm n;
    n.gamma = store.add(name + ".weight", 1, cfg_.width);
    store.value(n.gamma).setOnes();
    if (!cfg_.rms_norm) n.beta = store.add(name + ".bias", 1, cfg_.width);
    return n;
  }

  GPTConfig cfg_;
  ad::Parameter wte_, wpe_;
  std::vector<Block> blocks_;
  Norm ln_f_;
  std::vector<std::int64_t> pos_;
};

}  // namespace hyplora::examples
