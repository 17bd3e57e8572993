// examples/transformer/train.hpp — batches, one training step, and greedy-decoding evaluation.
//
// Data order is counter-based: the batch of step s is a pure function of (seed, s), so resuming
// at step s reproduces the uninterrupted run without saving a generator's internal state (the
// checkpoint stores seed and step, which is the whole RNG state).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "data/common.hpp"
#include "hyplora/optim/adamw.hpp"
#include "hyplora/optim/clip_grad.hpp"
#include "hyplora/optim/lr_schedule.hpp"
#include "model.hpp"

namespace hyplora::examples {

inline constexpr std::int64_t kEndOfAnswer = '\n';  // documents and answers end with a newline

/// A 64-bit hash of (seed, a, b): the counter-based stream every batch draws from.
inline std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0) {
  return nn::SplitMix64(nn::SplitMix64(seed ^ (a * 0xD1B54A32D192ED03ull)).next() ^ (b * 0x9E3779B97F4A7C15ull)).next();
}

/// Language-model batch: B windows of T+1 bytes of `text` at offsets drawn from (seed, step).
/// ids and targets: B·T (targets are ids shifted by one).
inline void lm_batch(const std::string& text, Index B, Index Tn, std::uint64_t seed, std::int64_t step,
                     std::vector<std::int64_t>& ids, std::vector<std::int64_t>& targets) {
  if (static_cast<Index>(text.size()) < Tn + 1)
    throw value_error("lm_batch: the text has " + std::to_string(text.size()) + " bytes, fewer than T + 1 = " +
                      std::to_string(Tn + 1));
  ids.resize(static_cast<std::size_t>(B * Tn));
  targets.resize(ids.size());
  nn::SplitMix64 g(stream_seed(seed, static_cast<std::uint64_t>(step)));
  const std::uint64_t span = text.size() - static_cast<std::size_t>(Tn);
  for (Index b = 0; b < B; ++b) {
    const std::size_t off = static_cast<std::size_t>(g.next() % span);
    for (Index t = 0; t < Tn; ++t) {
      const std::size_t k = static_cast<std::size_t>(b * Tn + t);
      ids[k] = static_cast<unsigned char>(text[off + static_cast<std::size_t>(t)]);
      targets[k] = static_cast<unsigned char>(text[off + static_cast<std::size_t>(t) + 1]);
    }
  }
}

/// The token sequence of a prompt/answer pair: prompt, answer, '\n'; the prompt is cut from the
/// left so the whole sequence fits `max_len`. Returns the prompt's kept length.
inline std::size_t qa_sequence(const Example& e, std::size_t max_len, std::vector<std::int64_t>& seq) {
  seq.clear();
  const std::size_t tail = e.answer.size() + 1;
  if (tail + 1 > max_len)
    throw value_error("qa_sequence: answer '" + e.answer + "' does not fit a sequence of " + std::to_string(max_len));
  const std::size_t keep = std::min(e.prompt.size(), max_len - tail);
  for (std::size_t i = e.prompt.size() - keep; i < e.prompt.size(); ++i) seq.push_back(static_cast<unsigned char>(e.prompt[i]));
  for (char c : e.answer) seq.push_back(static_cast<unsigned char>(c));
  seq.push_back(kEndOfAnswer);
  return keep;
}

/// The fixed T a task trains at: the longest prompt + answer + '\n' of both splits, capped.
inline Index qa_seq_len(const TaskSplit& s, Index cap) {
  std::size_t m = 2;
  for (const auto* v : {&s.train, &s.test})
    for (const Example& e : *v) m = std::max(m, e.prompt.size() + e.answer.size() + 1);
  return std::min(static_cast<Index>(m) - 1, cap);  // inputs are the sequence minus its last byte
}

/// Fine-tuning batch: B examples in the order of a per-epoch shuffle drawn from (seed, epoch).
/// Loss only on the answer tokens (and the closing '\n'): other targets are -1. Padding is '\n'
/// after the sequence; causal attention never lets a real token see it.
inline void qa_batch(const std::vector<Example>& data, Index B, Index Tn, std::uint64_t seed, std::int64_t step,
                     std::vector<std::int64_t>& ids, std::vector<std::int64_t>& targets) {
  if (data.empty()) throw value_error("qa_batch: no training examples");
  ids.assign(static_cast<std::size_t>(B * Tn), kEndOfAnswer);
  targets.assign(ids.size(), -1);
  std::vector<std::int64_t> seq;
  const std::uint64_t n = data.size();
  std::uint64_t epoch = ~0ull;
  std::vector<std::size_t> perm(n);
  for (Index b = 0; b < B; ++b) {
    const std::uint64_t k = static_cast<std::uint64_t>(step) * static_cast<std::uint64_t>(B) + static_cast<std::uint64_t>(b);
    if (k / n != epoch) {  // Fisher–Yates with a counter-based generator
      epoch = k / n;
      for (std::size_t i = 0; i < n; ++i) perm[i] = i;
      nn::SplitMix64 g(stream_seed(seed, 0x5EEDull, epoch));
      for (std::size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[static_cast<std::size_t>(g.next() % i)]);
    }
    const Example& e = data[perm[static_cast<std::size_t>(k % n)]];
    const std::size_t plen = qa_sequence(e, static_cast<std::size_t>(Tn) + 1, seq);
    for (std::size_t t = 0; t + 1 < seq.size(); ++t) {
      const std::size_t i = static_cast<std::size_t>(b * Tn) + t;
      ids[i] = seq[t];
      if (t + 1 >= plen) targets[i] = seq[t + 1];
    }
  }
}

struct TrainConfig {
  int steps = 300;
  int batch = 16;          // B
  int seq_len = 64;        // T (pretraining; fine-tuning uses the task's qa_seq_len)
  double lr = 1e-3;
  double min_lr = 1e-4;    // cosine floor
  int warmup = 20;
  double weight_decay = 0.0;
  double clip = 1.0;       // global gradient-norm clip (inf: none)
  std::uint64_t seed = 0;  // data order (and adapter dropout)
};

/// Model + optimizer + schedule; step() is one forward, backward, clip and AdamW update. The
/// tape is reused, so a step of repeated shapes allocates nothing after the first.
template <class T>
class Trainer {
 public:
  Trainer(GPT<T>& model, ad::ParameterStore<T>& store, const TrainConfig& cfg, const optim::AdamConfig& adam)
      : model_(model), store_(store), cfg_(cfg), opt_(store, adam),
        sched_(cfg.lr, cfg.min_lr, std::min<std::int64_t>(cfg.warmup, cfg.steps), std::max(1, cfg.steps)) {}

  static optim::AdamConfig adam_config(const TrainConfig& c) {
    optim::AdamConfig a;
    a.lr = c.lr;
    a.beta2 = 0.95;  // the usual GPT choice for short runs
    a.weight_decay = c.weight_decay;
    return a;
  }
  Trainer(GPT<T>& model, ad::ParameterStore<T>& store, const TrainConfig& cfg)
      : Trainer(model, store, cfg, adam_config(cfg)) {}

  /// One update on (ids, targets) of B sequences of T tokens; returns the loss before the update.
  double step(const std::vector<std::int64_t>& ids, const std::vector<std::int64_t>& targets, Index B, Index Tn) {
    tape_.clear();
    opt_.zero_grad();
    const ad::Var<T> loss = model_.loss(tape_, store_, ids, targets, B, Tn, true, static_cast<std::uint64_t>(step_));
    tape_.backward(loss);
    if (std::isfinite(cfg_.clip)) optim::clip_grad_norm(store_, cfg_.clip);
    opt_.set_lr(sched_.lr(step_));
    opt_.step();
    ++step_;
    return static_cast<double>(loss.item());
  }

  /// Mean loss over `batches` fixed batches without updating (evaluation mode).
  template <class MakeBatch>
  double eval_loss(int batches, Index B, Index Tn, MakeBatch&& make) {
    double s = 0;
    ad::NoGradGuard<T> g(tape_);
    for (int k = 0; k < batches; ++k) {
      make(k, ids_, targets_);
      tape_.clear();
      s += static_cast<double>(model_.loss(tape_, store_, ids_, targets_, B, Tn, false).item());
    }
    return batches > 0 ? s / batches : 0.0;
  }

  std::int64_t step_index() const { return step_; }
  void set_step_index(std::int64_t s) { step_ = s; }
  optim::AdamW<T>& optimizer() { return opt_; }
  const TrainConfig& config() const { return cfg_; }
  ad::Tape<T>& tape() { return tape_; }

 private:
  GPT<T>& model_;
  ad::ParameterStore<T>& store_;
  TrainConfig cfg_;
  optim::AdamW<T> opt_;
  optim::WarmupCosineLR sched_;
  ad::Tape<T> tape_;
  std::int64_t step_ = 0;
  std::vector<std::int64_t> ids_, targets_;
};

/// Greedy continuations of several prompts, batched: each decode step runs one forward over all
/// unfinished sequences right-padded to the longest, and reads each one's logits at its own last
/// position (causal attention makes the padding invisible). Stops at '\n' or max_new bytes.
template <class T>
std::vector<std::string> greedy_decode(GPT<T>& model, ad::ParameterStore<T>& store, const std::vector<std::string>& prompts,
                                       std::size_t max_new, ad::Tape<T>& tape) {
  const std::size_t cap = static_cast<std::size_t>(model.config().block_size);
  if (max_new + 1 > cap) throw value_error("greedy_decode: max_new must be below block_size");
  std::vector<std::vector<std::int64_t>> seq(prompts.size());
  std::vector<std::string> out(prompts.size());
  std::vector<char> done(prompts.size(), 0);
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const std::string& p = prompts[i];
    const std::size_t keep = std::min(p.size(), cap - max_new);
    for (std::size_t j = p.size() - keep; j < p.size(); ++j) seq[i].push_back(static_cast<unsigned char>(p[j]));
    if (seq[i].empty()) seq[i].push_back(kEndOfAnswer);
  }
  ad::NoGradGuard<T> guard(tape);
  std::vector<std::int64_t> ids;
  std::vector<std::size_t> live;
  for (std::size_t s = 0; s < max_new; ++s) {
    live.clear();
    std::size_t L = 1;
    for (std::size_t i = 0; i < seq.size(); ++i)
      if (!done[i]) { live.push_back(i); L = std::max(L, seq[i].size()); }
    if (live.empty()) break;
    ids.assign(live.size() * L, kEndOfAnswer);
    for (std::size_t r = 0; r < live.size(); ++r)
      std::copy(seq[live[r]].begin(), seq[live[r]].end(), ids.begin() + static_cast<std::ptrdiff_t>(r * L));
    tape.clear();
    const ad::Var<T> logits = model.forward(tape, store, ids, static_cast<Index>(live.size()), static_cast<Index>(L), false);
    const auto Z = logits.value();
    for (std::size_t r = 0; r < live.size(); ++r) {
      const std::size_t i = live[r];
      Index best = 0;
      Z.row(static_cast<Index>(r * L + seq[i].size() - 1)).maxCoeff(&best);
      if (best == kEndOfAnswer) { done[i] = 1; continue; }
      out[i].push_back(static_cast<char>(best));
      seq[i].push_back(best);
    }
  }
  return out;
}

struct EvalResult {
  std::size_t correct = 0, total = 0;
  double accuracy() const { return total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0; }
};

/// Exact-match accuracy of greedy answers on the first `max_items` examples (0 = all).
template <class T>
EvalResult exact_match(GPT<T>& model, ad::ParameterStore<T>& store, const std::vector<Example>& test,
                       std::size_t max_items = 0, std::size_t chunk = 64) {
  const std::size_t n = max_items ? std::min(max_items, test.size()) : test.size();
  std::size_t max_new = 1;
  for (std::size_t i = 0; i < n; ++i) max_new = std::max(max_new, test[i].answer.size() + 1);
  ad::Tape<T> tape;
  EvalResult r;
  std::vector<std::string> prompts;
  for (std::size_t b = 0; b < n; b += chunk) {
    prompts.clear();
    for (std::size_t i = b; i < std::min(n, b + chunk); ++i) prompts.push_back(test[i].prompt);
    const auto got = greedy_decode(model, store, prompts, max_new, tape);
    for (std::size_t i = 0; i < got.size(); ++i) r.correct += got[i] == test[b + i].answer ? 1 : 0;
  }
  r.total = n;
  return r;
}

}  // namespace hyplora::examples
