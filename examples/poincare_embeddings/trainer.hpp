// examples/poincare_embeddings/trainer.hpp — Poincaré / Lorentz embeddings of a closure graph
// (Nickel & Kiela 2017, 2018), trained row by row with the manifold row functions.
//
// Loss per directed edge (u, v), with negatives v'_1..v'_k (k = 50, v' ≠ u and not related to u;
// with directed_negatives, only not an ancestor of u, as in N&K's code):
//   L = d(u, v) + log Σ_{w ∈ {v} ∪ negatives} exp(−d(u, w))       (docs/embeddings.md Eq. (E4))
// Each edge's gradient is applied at once to the rows it touches (sparse per-row updates), RSGD
// or Riemannian Adam (docs/math.md §7). Edges are spread over OpenMP threads Hogwild-style:
// threads update shared rows without locks, as in N&K's and most public implementations; with
// one thread a run is deterministic for a given seed.
// Burn-in (N&K): the first `burnin` epochs use lr/10 and draw negatives ∝ degree^0.75; with
// degree_negatives = f a fraction f of them stays so afterwards (Eq. (E8), what lifts the nouns).
// Hard-negative cache (Eq. (E9)): after burn-in, a fraction `hard_negatives` of u's negatives is
// drawn from a small per-row memory of nodes that recently sat closer to u than a positive did.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "graph.hpp"
#include "progress.hpp"
#include "hyplora/analysis/detail/rng.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/core/types.hpp"
#include "hyplora/manifold/detail/lorentz_dist_vjp.hpp"
#include "hyplora/manifold/detail/lorentz_rows.hpp"
#include "hyplora/manifold/conversions.hpp"
#include "hyplora/manifold/detail/poincare_rows.hpp"

namespace hyplora {
namespace examples {
namespace emb {

enum class Model { poincare, lorentz };
enum class Optimizer { rsgd, radam };

inline const char* model_name(Model m) { return m == Model::poincare ? "poincare" : "lorentz"; }
inline const char* optimizer_name(Optimizer o) { return o == Optimizer::rsgd ? "rsgd" : "radam"; }

struct TrainOptions {
  Model model = Model::poincare;
  Optimizer optimizer = Optimizer::radam;
  Index dim = 10;             ///< manifold dimension d (Lorentz rows hold d+1 values)
  double K = 1.0;             ///< curvature −1/K (docs/math.md Eq. (1))
  double lr = 0.1;            ///< per edge (N&K: 0.3 on the mean of 10 edges, i.e. 0.03 per edge)
  int epochs = 50;            ///< including burn-in
  bool lr_decay = false;      ///< after burn-in, lr falls linearly to lr/(epochs − burnin), Eq. (E7)
  bool both_directions = false;  ///< train (ancestor, child) pairs too: better mean rank, lower MAP
  bool directed_negatives = false;  ///< negatives only avoid u's ancestors (N&K's code), not its
                                    ///< descendants too; ignored (symmetric) with both_directions
  int burnin = 10;            ///< epochs at lr/burnin_div with degree^0.75 negatives
  double burnin_div = 10.0;
  int negatives = 50;
  /// After burn-in, this fraction of the negatives is still drawn ∝ degree^0.75 (Eq. (E8)): the
  /// hubs near the origin are the non-ancestors every node must out-rank, and uniform draws
  /// almost never pick them on a large closure (docs/embeddings.md, "Nouns").
  double degree_negatives = 0.0;
  /// After burn-in, this fraction of the negatives is drawn from u's hard-negative cache
  /// (Eq. (E9)): the few non-ancestors that sit closer to u than one of its ancestors are what
  /// the directed MAP counts, and on 82k nodes a uniform or degree draw meets a given one about
  /// once in 200 epochs; the cache keeps drawing it until it has moved away. 0: off.
  double hard_negatives = 0.0;
  int hard_slots = 8;         ///< cache entries per row (Eq. (E9))
  /// A negative w of edge (u, v) enters u's cache when d(u, w) < d(u, v) + hard_margin (Eq. (E9)):
  /// > 0 also keeps the near-violators, before they cross v. 0: only strict violators (session
  /// 4). Organism probes: no gain (docs/embeddings.md, "session 5"), as for the next three.
  double hard_margin = 0.0;
  /// A cache draw for edge (u, v) reads the positive v's row instead of u's with this
  /// probability (Eq. (E9')): v's intruders (nodes near v but not above it) tend to intrude on
  /// u too, and u's own draws find its ≈ 200 intruders only one or two per epoch. 0: off.
  double hard_share = 0.0;
  /// A cached w is used for edge (u, v) only while it still beats v: d(u, w) < d(u, v) +
  /// hard_margin, else the usual draw (Eq. (E9'')). Why: a node's intruders sit inside its far
  /// (top) ancestors' distance, so for its near ancestors they carry no gradient; filtered, the
  /// cache serves the edges where it matters. One extra distance per cache draw.
  bool hard_filter = false;
  /// After burn-in the decayed rate is lr·(1 − j/J)^lr_decay_power (Eq. (E7)): > 1 spends more of
  /// the schedule at a small rate, the part of the decay where the noun MAP rose (run 4).
  double lr_decay_power = 1.0;
  /// Rows without ancestors (the root) stay where init_embedding put them, near the origin.
  bool pin_roots = false;
  /// Poincaré RSGD keeps rows at |x| <= (1 − ball_eps)R, i.e. within 2R·artanh(1 − ball_eps) of
  /// the origin (12.2 for 1e-5, 23.7 for 1e-10): the noun closure is deep enough to fill the
  /// default shell (docs/embeddings.md, "Nouns"); double resolves K − |x|² to 1e-16·K, so
  /// 1e-10 keeps 6 digits in the gaps of Eq. (76).
  double ball_eps = numerics<double>::ball_eps();
  double init_scale = 1e-3;   ///< coordinates start uniform in [−s, s] (N&K)
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
  std::uint64_t seed = 0;
  int threads = 0;            ///< 0: OpenMP default
};

struct EpochStats {
  int epoch = 0;
  double loss = 0.0;      ///< mean loss per edge
  double seconds = 0.0;
  double edges_per_s = 0.0;  ///< training pairs per second
  std::int64_t pairs = 0;    ///< training pairs processed (E, or 2E with both_directions)
};

/// The embedding: one point per row. Poincaré: X (N, d); Lorentz: X (N, d+1), time first.
/// Optimiser state: Adam's first moment M (same shape as X), scalar second moment V (N) and
/// per-row step counts (rows are updated sparsely, so bias corrections count each row's steps).
template <class T>
struct Embedding {
  Model model = Model::poincare;
  Index dim = 0;
  T K = T(1);
  MatrixR<T> X;
  MatrixR<T> M;
  std::vector<T> V;
  std::vector<std::int64_t> steps;
  /// Hard-negative cache (Eq. (E9)), (N, S) row-major, −1 = empty, and each row's next slot.
  /// Filled after burn-in when TrainOptions::hard_negatives > 0 (allocated on first use).
  std::vector<node_t> hard;
  std::vector<std::uint8_t> hard_next;
  int hard_slots = 0;

  Index stride() const { return model == Model::poincare ? dim : dim + 1; }
  Index size() const { return X.rows(); }
  T dist(Index i, Index j) const {
    if (model == Model::poincare) return poincare_rows::dist(X.row(i).data(), X.row(j).data(), dim, K);
    return lorentz_rows::dist(X.row(i).data(), X.row(j).data(), dim, std::sqrt(K));
  }
  /// Row i as a point of the Poincaré ball (d), for plots.
  std::vector<T> ball_point(Index i) const;
};

template <class T>
std::vector<T> Embedding<T>::ball_point(Index i) const {
  std::vector<T> y(static_cast<std::size_t>(dim));
  const T* x = X.row(i).data();
  if (model == Model::poincare) {
    for (Index c = 0; c < dim; ++c) y[static_cast<std::size_t>(c)] = x[c];
  } else {
    conversion_rows::to_poincare(x, y.data(), dim, K);
  }
  return y;
}

/// N points near the origin, uniform in [−init_scale, init_scale]^d (Lorentz: then lifted by π).
template <class T>
Embedding<T> init_embedding(Index n, const TrainOptions& opt) {
  if (opt.dim < 1 || n < 1) throw value_error("init_embedding: dim = " + std::to_string(opt.dim) +
                                              ", n = " + std::to_string(n));
  check_curvature(opt.K);
  if (!(opt.ball_eps >= 1e-12 && opt.ball_eps < 0.5))
    throw value_error("init_embedding: ball_eps = " + std::to_string(opt.ball_eps) + " outside [1e-12, 0.5)");
  Embedding<T> e;
  e.model = opt.model;
  e.dim = opt.dim;
  e.K = static_cast<T>(opt.K);
  e.X = MatrixR<T>::Zero(n, e.stride());
  e.M = MatrixR<T>::Zero(n, e.stride());
  e.V.assign(static_cast<std::size_t>(n), T(0));
  e.steps.assign(static_cast<std::size_t>(n), 0);
  std::mt19937_64 rng(analysis::detail::mix_seed(opt.seed, 0xE1));
  std::uniform_real_distribution<double> U(-opt.init_scale, opt.init_scale);
  const Index off = opt.model == Model::poincare ? 0 : 1;
  for (Index i = 0; i < n; ++i) {
    for (Index c = 0; c < opt.dim; ++c) e.X(i, c + off) = static_cast<T>(U(rng));
    if (opt.model == Model::lorentz) lorentz_rows::projx(e.X.row(i).data(), e.X.row(i).data(), opt.dim, std::sqrt(e.K));
  }
  return e;
}

namespace detail {

/// Scratch of one thread: candidates, their distances/weights, gradients.
template <class T>
struct Scratch {
  std::vector<node_t> cand;
  std::vector<T> d, gu, rg, tmp, tmp2;
  std::vector<poincare_rows::PairGaps<T>> pg;  ///< Poincaré: per-candidate norms of Eq. (76)
};

/// One Riemannian step on row x with Riemannian gradient rg (Eq. (80) / (27) already applied).
/// RSGD: Poincaré N&K retraction proj(x − lr·rg); Lorentz exp_x(−lr·rg).
/// Adam: docs/math.md §7 with geoopt's bias corrections and ε; m is transported by PT.
template <class T>
void apply_step(Embedding<T>& e, Index row, T* rg, T lr, const TrainOptions& opt, Scratch<T>& s) {
  const Index n = e.stride();
  const Index d = e.dim;
  T* x = e.X.row(row).data();
  const T R = std::sqrt(e.K);
  if (opt.optimizer == Optimizer::rsgd) {
    if (e.model == Model::poincare) {
      for (Index i = 0; i < n; ++i) x[i] -= lr * rg[i];
      // projx with the trainer's ε (TrainOptions::ball_eps) instead of numerics' 1e-5.
      const T r_max = (T(1) - static_cast<T>(opt.ball_eps)) * R;
      const T xn = poincare_rows::norm(x, d);
      if (xn > r_max)
        for (Index i = 0; i < n; ++i) x[i] *= r_max / xn;
    } else {
      for (Index i = 0; i < n; ++i) rg[i] *= -lr;
      lorentz_rows::expmap(x, rg, s.tmp.data(), d, R);
      for (Index i = 0; i < n; ++i) x[i] = s.tmp[static_cast<std::size_t>(i)];
    }
    return;
  }
  T* m = e.M.row(row).data();
  const auto r = static_cast<std::size_t>(row);
  const T b1 = static_cast<T>(opt.beta1), b2 = static_cast<T>(opt.beta2);
  T g2;
  if (e.model == Model::poincare) {
    const T l = poincare_rows::lambda(x, d, e.K);
    g2 = l * l * poincare_rows::sqnorm(rg, d);
  } else {
    g2 = lorentz_rows::inner(rg, rg, d);
    g2 = g2 > T(0) ? g2 : T(0);
  }
  const std::int64_t t = ++e.steps[r];
  e.V[r] = b2 * e.V[r] + (T(1) - b2) * g2;
  for (Index i = 0; i < n; ++i) m[i] = b1 * m[i] + (T(1) - b1) * rg[i];
  const T bc1 = T(1) - std::pow(b1, static_cast<T>(t));
  const T bc2 = T(1) - std::pow(b2, static_cast<T>(t));
  const T denom = std::sqrt(e.V[r] / bc2) + static_cast<T>(opt.adam_eps);
  const T f = -lr / (bc1 * denom);
  T* u = s.tmp2.data();
  for (Index i = 0; i < n; ++i) u[i] = f * m[i];
  T* xn = s.tmp.data();
  if (e.model == Model::poincare) {
    poincare_rows::expmap(x, u, xn, d, e.K);
    poincare_rows::transp(x, xn, m, u, d, e.K);
  } else {
    lorentz_rows::expmap(x, u, xn, d, R);
    lorentz_rows::transp(x, xn, m, u, d, R);
  }
  for (Index i = 0; i < n; ++i) {
    m[i] = u[i];
    x[i] = xn[i];
  }
}

/// Negative sampler of the burn-in, nodes ∝ degree^0.75 (Eq. (E7)): Walker's alias table, so
/// a draw is one uniform index and one uniform real (O(1), two table reads) instead of a binary
/// search over an N-entry CDF (17 dependent cache misses per draw on the noun closure).
struct AliasTable {
  /// Slot i: taken with probability `prob`, else `alias`; one 8-byte slot, so a draw reads one
  /// cache line (float is ample for sampling weights).
  struct Slot {
    float prob;
    node_t alias;
  };
  std::vector<Slot> slots;  ///< (N)

  explicit AliasTable(const std::vector<double>& w) : slots(w.size()) {
    const std::size_t n = w.size();
    double total = 0.0;
    for (double x : w) total += x;
    if (n == 0 || !(total > 0.0)) throw value_error("AliasTable: empty or zero weights (n = " + std::to_string(n) + ")");
    std::vector<double> prob(n);
    std::vector<std::size_t> small, large;
    for (std::size_t i = 0; i < n; ++i) {
      prob[i] = w[i] * static_cast<double>(n) / total;
      slots[i].alias = static_cast<node_t>(i);
      (prob[i] < 1.0 ? small : large).push_back(i);
    }
    while (!small.empty() && !large.empty()) {
      const std::size_t s = small.back(), l = large.back();
      small.pop_back();
      slots[s].alias = static_cast<node_t>(l);
      prob[l] -= 1.0 - prob[s];
      if (prob[l] < 1.0) {
        large.pop_back();
        small.push_back(l);
      }
    }
    for (std::size_t i : small) prob[i] = 1.0;  // rounding leftovers
    for (std::size_t i : large) prob[i] = 1.0;
    for (std::size_t i = 0; i < n; ++i) slots[i].prob = static_cast<float>(prob[i]);
  }
  node_t operator()(std::mt19937_64& rng) const {
    const auto i = static_cast<std::size_t>(analysis::detail::uniform_below(rng, slots.size()));
    return analysis::detail::uniform_open0(rng) <= static_cast<double>(slots[i].prob) ? static_cast<node_t>(i)
                                                                                      : slots[i].alias;
  }
};

/// Hint the cache to fetch row x (stride values): on the noun closure the 51 random rows of an
/// edge miss the caches, and fetching them all up front overlaps those misses.
template <class T>
inline void prefetch_row(const T* x, Index stride) {
#if defined(__GNUC__) || defined(__clang__)
  const char* p = reinterpret_cast<const char*>(x);
  const std::size_t bytes = static_cast<std::size_t>(stride) * sizeof(T);
  for (std::size_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 1, 3);
  __builtin_prefetch(p + bytes - 1, 1, 3);  // a row may straddle one more line
#else
  (void)x;
  (void)stride;
#endif
}

/// Relaxed atomic access to the hard-negative cache: with Hogwild threads two edges of the
/// same row may touch its slots at once (a stale or lost entry is harmless, a torn one is not).
inline node_t cache_load(const node_t* p) {
#if defined(__GNUC__) || defined(__clang__)
  return __atomic_load_n(p, __ATOMIC_RELAXED);
#else
  return *p;
#endif
}
inline void cache_store(node_t* p, node_t v) {
#if defined(__GNUC__) || defined(__clang__)
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
#else
  *p = v;
#endif
}

/// The hard-negative cache as train_edge sees it (Eq. (E9)): off when `slots` is null.
struct HardCache {
  node_t* slots = nullptr;        ///< (N, S)
  std::uint8_t* next = nullptr;   ///< (N) round-robin write position per row
  int S = 0;
  double frac = 0.0;              ///< fraction of the draws taken from the cache
  double margin = 0.0;            ///< insert when d(u, w) < d(u, v) + margin
  double share = 0.0;             ///< a cache draw reads the positive's row with this probability
  bool filter = false;            ///< use a cached w only while d(u, w) < d(u, v) + margin
};

/// Records w as a hard negative of u (a non-ancestor closer than a positive), unless present.
inline void cache_insert(const HardCache& h, node_t u, node_t w) {
  node_t* row = h.slots + static_cast<std::size_t>(u) * static_cast<std::size_t>(h.S);
  for (int i = 0; i < h.S; ++i)
    if (cache_load(row + i) == w) return;
  std::uint8_t* nx = h.next + u;
#if defined(__GNUC__) || defined(__clang__)
  const int pos = __atomic_load_n(nx, __ATOMIC_RELAXED) % h.S;
  __atomic_store_n(nx, static_cast<std::uint8_t>((pos + 1) % h.S), __ATOMIC_RELAXED);
#else
  const int pos = *nx % h.S;
  *nx = static_cast<std::uint8_t>((pos + 1) % h.S);
#endif
  cache_store(row + pos, w);
}

/// Loss and updates of one edge (u, v); returns the loss (Eq. (E4)).
/// Two passes over the candidates: distances (keeping the chord-form quantities of Eq. (76)
/// per pair), then gradients and row updates from those same quantities (Eq. (E1)), so the
/// Poincaré path forms each pair's norms once. Every gradient is taken at the rows as they
/// were when the edge started (u is updated last, as before).
/// `hard`: the cache of Eq. (E9), or slots == nullptr (off, and the RNG stream is unchanged).
template <class T, class Sampler>
T train_edge(Embedding<T>& e, const Graph& g, node_t u, node_t v, T lr, const TrainOptions& opt,
             Sampler&& sample, Scratch<T>& s, const HardCache& hard = {}, std::mt19937_64* rng = nullptr) {
  const Index n = e.stride();
  const Index d = e.dim;
  const T R = std::sqrt(e.K);
  const T K = e.K;
  s.cand.clear();
  s.cand.push_back(v);
  prefetch_row(e.X.row(v).data(), n);
  // Rejection sampling with a bounded number of tries: a node adjacent to almost everything
  // (the root) simply gets fewer negatives.
  const auto& rel = opt.directed_negatives && !opt.both_directions ? g.out[static_cast<std::size_t>(u)]
                                                                   : g.adj[static_cast<std::size_t>(u)];
  const node_t* hrow = hard.slots && rng ? hard.slots + static_cast<std::size_t>(u) * static_cast<std::size_t>(hard.S) : nullptr;
  const auto pair_dist = [&](node_t a, node_t b) {
    return e.model == Model::poincare ? poincare_rows::dist(e.X.row(a).data(), e.X.row(b).data(), d, K)
                                      : lorentz_rows::dist(e.X.row(a).data(), e.X.row(b).data(), d, R);
  };
  const T d_filter = hrow && hard.filter ? pair_dist(u, v) + static_cast<T>(hard.margin) : T(0);  // Eq. (E9'')
  for (int tries = 0; tries < 4 * opt.negatives && static_cast<int>(s.cand.size()) <= opt.negatives; ++tries) {
    node_t w = -1;
    if (hrow && rng && analysis::detail::uniform_open0(*rng) <= hard.frac) {  // Eq. (E9); empty slot: usual draw
      const node_t* row = hrow;
      if (hard.share > 0.0 && analysis::detail::uniform_open0(*rng) <= hard.share)  // Eq. (E9')
        row = hard.slots + static_cast<std::size_t>(v) * static_cast<std::size_t>(hard.S);
      w = cache_load(row + analysis::detail::uniform_below(*rng, static_cast<std::uint64_t>(hard.S)));
      if (w >= 0 && w != u && hard.filter && !(pair_dist(u, w) < d_filter)) w = -1;  // Eq. (E9'')
    }
    if (w < 0) w = sample();
    if (w == u) continue;
    if (!std::binary_search(rel.begin(), rel.end(), w)) {
      s.cand.push_back(w);
      prefetch_row(e.X.row(w).data(), n);
    }
  }
  const std::size_t k = s.cand.size();
  s.d.resize(k);
  s.pg.resize(k);
  const T* xu = e.X.row(u).data();
  T dmin = T(0);
  for (std::size_t j = 0; j < k; ++j) {
    const T* xc = e.X.row(s.cand[j]).data();
    if (e.model == Model::poincare) {
      s.pg[j] = poincare_rows::pair_gaps(xu, xc, d, R);
      s.d[j] = T(2) * R * std::asinh(R * std::sqrt(s.pg[j].dd) / std::sqrt(s.pg[j].gx * s.pg[j].gy));  // Eq. (76)
    } else {
      s.d[j] = lorentz_rows::dist(xu, xc, d, R);
    }
    dmin = j == 0 || s.d[j] < dmin ? s.d[j] : dmin;
  }
  const T d_pos = s.d[0];
  if (hrow)  // Eq. (E9): remember the negatives that beat the positive
    for (std::size_t j = 1; j < k; ++j)
      if (s.d[j] < d_pos + hard.margin) cache_insert(hard, u, s.cand[j]);
  T Z = T(0);
  for (std::size_t j = 0; j < k; ++j) {
    s.d[j] = std::exp(-(s.d[j] - dmin));
    Z += s.d[j];
  }
  const T loss = d_pos - dmin + std::log(Z);
  std::fill(s.gu.begin(), s.gu.end(), T(0));
  const T inv4K2 = T(1) / (T(4) * K * K);
  for (std::size_t j = 0; j < k; ++j) {
    const T gj = (j == 0 ? T(1) : T(0)) - s.d[j] / Z;  // ∂L/∂d_j
    const Index c = s.cand[j];
    T* xc = e.X.row(c).data();
    if (e.model == Model::poincare) {
      // Eq. (E1) from the stored pair quantities: ∂d/∂x = a[(x − y) + |x − y|²/(K − |x|²)·x].
      const poincare_rows::PairGaps<T>& p = s.pg[j];
      const T den = std::sqrt(p.dd) * std::sqrt(p.gx * p.gy + K * p.dd);
      const T a = den > T(0) ? gj * T(2) * K / den : T(0);
      const T ax = den > T(0) ? a * p.dd / p.gx : T(0);
      const T ay = den > T(0) ? a * p.dd / p.gy : T(0);
      const T f = p.gy * p.gy * inv4K2;  // 1/λ_y², Eq. (80)
      for (Index i = 0; i < d; ++i) {
        const T di = xu[i] - xc[i];
        s.gu[static_cast<std::size_t>(i)] += a * di + ax * xu[i];
        s.rg[static_cast<std::size_t>(i)] = f * (-a * di + ay * xc[i]);
      }
    } else {
      lorentz_rows::dist_rgrad(xu, xc, d, R, gj, s.tmp.data());
      for (Index i = 0; i < n; ++i) s.gu[static_cast<std::size_t>(i)] += s.tmp[static_cast<std::size_t>(i)];
      lorentz_rows::dist_rgrad(xc, xu, d, R, gj, s.rg.data());
    }
    if (!(opt.pin_roots && g.out[static_cast<std::size_t>(c)].empty())) apply_step(e, c, s.rg.data(), lr, opt, s);
  }
  if (e.model == Model::poincare) {
    poincare_rows::egrad2rgrad(xu, s.gu.data(), s.rg.data(), d, e.K);
  } else {
    for (Index i = 0; i < n; ++i) s.rg[static_cast<std::size_t>(i)] = s.gu[static_cast<std::size_t>(i)];
  }
  if (!(opt.pin_roots && g.out[static_cast<std::size_t>(u)].empty())) apply_step(e, u, s.rg.data(), lr, opt, s);
  return loss;
}

}  // namespace detail

/// The learning rate of epoch `epoch` (0-based), Eq. (E7): lr/burnin_div during burn-in, then
/// lr·(1 − j/J)^p for post-burn-in epoch j of J (p = lr_decay_power; with p = 1 the last epoch
/// runs at lr/J), or lr when lr_decay is off. Decay matters: at a constant rate the embeddings
/// keep drifting outwards once the loss is small and MAP falls again (docs/embeddings.md,
/// "What was wrong").
inline double epoch_lr(const TrainOptions& opt, int epoch) {
  if (epoch < opt.burnin) return opt.lr / opt.burnin_div;
  if (!opt.lr_decay) return opt.lr;
  if (!(opt.lr_decay_power > 0.0 && std::isfinite(opt.lr_decay_power)))
    throw value_error("epoch_lr: lr_decay_power = " + std::to_string(opt.lr_decay_power) + " not finite and > 0");
  const int J = std::max(1, opt.epochs - opt.burnin);
  const int j = std::min(epoch - opt.burnin, J - 1);
  const double f = 1.0 - static_cast<double>(j) / static_cast<double>(J);
  return opt.lr * (opt.lr_decay_power == 1.0 ? f : std::pow(f, opt.lr_decay_power));
}

/// Trains one epoch (0-based `epoch`; burn-in when epoch < opt.burnin) over `max_edges` edges
/// of a fresh shuffle (all when <= 0). `progress`: label for the stderr bar, or null.
template <class T>
EpochStats train_epoch(Embedding<T>& e, const Graph& g, const TrainOptions& opt, int epoch,
                       std::int64_t max_edges = 0, const char* progress = nullptr) {
  if (g.n != e.size())
    throw_shape("train_epoch", "graph nodes", g.n, 1, "embedding", e.X.rows(), e.X.cols());
  const auto t0 = std::chrono::steady_clock::now();
  const bool burn = epoch < opt.burnin;
  const T lr = static_cast<T>(epoch_lr(opt, epoch));
  // Training pairs: each closure edge (child, ancestor), and with `both_directions` also
  // (ancestor, child), so that every node also learns to rank its descendants (Eq. (E4')).
  const std::size_t n_dir = opt.both_directions ? 2 : 1;
  std::vector<std::int64_t> order(g.edges.size() * n_dir);
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
  std::mt19937_64 shuf(analysis::detail::mix_seed(opt.seed, 1000 + static_cast<std::uint64_t>(epoch)));
  for (std::size_t i = order.size(); i > 1; --i)
    std::swap(order[i - 1], order[analysis::detail::uniform_below(shuf, i)]);
  const std::int64_t n_edges = max_edges > 0 && max_edges < static_cast<std::int64_t>(order.size())
                                   ? max_edges : static_cast<std::int64_t>(order.size());
  // Negatives ∝ degree^0.75 (N&K's unigram-style sampler), by an alias table.
  std::unique_ptr<detail::AliasTable> degree_sampler;
  if (!(opt.degree_negatives >= 0.0 && opt.degree_negatives <= 1.0))
    throw value_error("train_epoch: degree_negatives = " + std::to_string(opt.degree_negatives) + " outside [0, 1]");
  const double deg_frac = burn ? 1.0 : opt.degree_negatives;
  if (deg_frac > 0.0) {
    std::vector<double> w(static_cast<std::size_t>(g.n));
    for (node_t u = 0; u < g.n; ++u) w[static_cast<std::size_t>(u)] = std::pow(static_cast<double>(g.degree(u)), 0.75);
    degree_sampler = std::make_unique<detail::AliasTable>(w);
  }
  if (!(opt.hard_negatives >= 0.0 && opt.hard_negatives <= 1.0) || opt.hard_slots < 1 || opt.hard_slots > 255 ||
      !(opt.hard_margin >= 0.0 && std::isfinite(opt.hard_margin)) || !(opt.hard_share >= 0.0 && opt.hard_share <= 1.0))
    throw value_error("train_epoch: hard_negatives = " + std::to_string(opt.hard_negatives) + " outside [0, 1], hard_slots = " +
                      std::to_string(opt.hard_slots) + " outside [1, 255] or hard_margin = " +
                      std::to_string(opt.hard_margin) + " not finite and >= 0 or hard_share = " +
                      std::to_string(opt.hard_share) + " outside [0, 1]");
  detail::HardCache hard;
  if (!burn && opt.hard_negatives > 0.0) {
    if (e.hard_slots != opt.hard_slots || e.hard.size() != static_cast<std::size_t>(g.n) * static_cast<std::size_t>(opt.hard_slots)) {
      e.hard_slots = opt.hard_slots;
      e.hard.assign(static_cast<std::size_t>(g.n) * static_cast<std::size_t>(opt.hard_slots), node_t(-1));
      e.hard_next.assign(static_cast<std::size_t>(g.n), 0);
    }
    hard = detail::HardCache{e.hard.data(), e.hard_next.data(), e.hard_slots, opt.hard_negatives, opt.hard_margin,
                             opt.hard_share, opt.hard_filter};
  }
  double loss_sum = 0.0;
  std::int64_t done = 0;
#if defined(_OPENMP)
  const int nthreads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
#pragma omp parallel num_threads(nthreads) reduction(+ : loss_sum)
#endif
  {
    int tid = 0;
#if defined(_OPENMP)
    tid = omp_get_thread_num();
#endif
    std::mt19937_64 rng(analysis::detail::mix_seed(opt.seed, (static_cast<std::uint64_t>(epoch) << 16) + static_cast<std::uint64_t>(tid)));
    detail::Scratch<T> s;
    const auto w = static_cast<std::size_t>(e.stride());
    s.gu.resize(w);
    s.rg.resize(w);
    s.tmp.resize(w);
    s.tmp2.resize(w);
    const auto un = static_cast<std::uint64_t>(g.n);
    // Eq. (E8): burn-in draws every negative ∝ degree^0.75; afterwards a fraction
    // `degree_negatives` of them (one extra uniform per draw only when that is in (0, 1)).
    auto sample = [&]() -> node_t {
      if (deg_frac >= 1.0 || (deg_frac > 0.0 && analysis::detail::uniform_open0(rng) <= deg_frac))
        return (*degree_sampler)(rng);
      return static_cast<node_t>(analysis::detail::uniform_below(rng, un));
    };
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
    for (std::int64_t i = 0; i < n_edges; ++i) {
      const auto item = static_cast<std::size_t>(order[static_cast<std::size_t>(i)]);
      const auto& ed = g.edges[item / n_dir];
      const bool flip = item % n_dir == 1;
      loss_sum += static_cast<double>(detail::train_edge(e, g, flip ? ed.second : ed.first,
                                                         flip ? ed.first : ed.second, lr, opt, sample, s, hard, &rng));
      if (progress && tid == 0 && (i & 4095) == 0) {
#if defined(_OPENMP)
        draw_progress(progress, i * omp_get_num_threads(), n_edges);
#else
        draw_progress(progress, i, n_edges);
#endif
      }
    }
  }
  done = n_edges;
  if (progress) draw_progress(progress, done, n_edges);
  EpochStats st;
  st.epoch = epoch;
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  st.pairs = n_edges;
  st.loss = loss_sum / static_cast<double>(n_edges > 0 ? n_edges : 1);
  st.edges_per_s = static_cast<double>(n_edges) / (st.seconds > 0 ? st.seconds : 1e-9);
  return st;
}

}  // namespace emb
}  // namespace examples
}  // namespace hyplora
