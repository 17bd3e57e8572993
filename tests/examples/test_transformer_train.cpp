// Tests for examples/transformer/train.hpp and checkpoint.hpp: batches, checkpoint round trip,
// resume == uninterrupted run (bitwise), greedy decoding.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "../../examples/transformer/checkpoint.hpp"
#include "../../examples/transformer/model.hpp"
#include "../../examples/transformer/report.hpp"
#include "../../examples/transformer/train.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace examples_test_transformer_train {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace ex = hyplora::examples;
namespace ad = hyplora::ad;
namespace nn = hyplora::nn;
namespace fs = std::filesystem;

namespace {

ex::GPTConfig tiny() {
  ex::GPTConfig c;
  c.block_size = 16;
  c.width = 16;
  c.layers = 2;
  c.heads = 2;
  return c;
}

fs::path tmp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("hyplora_test_transformer_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

const std::string kText = "a beagle is a kind of hound. a hound is a kind of dog. a dog is a kind of canine.\n";

std::vector<ex::Example> qa() {
  return {{"a beagle is a kind of", " hound"}, {"is a dog a mammal?", " yes"}, {"is a cat a bird?", " no"}};
}

}  // namespace

TEST_CASE("qa_batch: loss only on the answer and its newline; order depends on (seed, step) only") {
  std::vector<std::int64_t> ids, tg, ids2, tg2;
  ex::qa_batch(qa(), 3, 12, 4, 0, ids, tg);
  std::size_t counted = 0;
  for (auto t : tg) counted += t >= 0 ? 1 : 0;
  CHECK(counted == (6 + 1) + (4 + 1) + (3 + 1));  // one epoch: every answer once, plus '\n'
  ex::qa_batch(qa(), 3, 12, 4, 0, ids2, tg2);
  CHECK(ids == ids2);
  CHECK(tg == tg2);
  // Answers are the targets right after the prompt: " hound\n" appears somewhere as a target run.
  std::string answers;
  for (auto t : tg)
    if (t >= 0) answers.push_back(static_cast<char>(t));
  CHECK(answers.find(" hound\n") != std::string::npos);
  CHECK_THROWS_AS(ex::qa_batch({}, 1, 4, 0, 0, ids, tg), hyplora::value_error);
  CHECK_THROWS_AS(ex::lm_batch("abc", 1, 4, 0, 0, ids, tg), hyplora::value_error);
}

TEST_CASE("checkpoint: round trip is bitwise (float and double), shapes are checked") {
  const fs::path d = tmp_dir("roundtrip");
  ad::ParameterStore<float> a;
  ex::GPT<float> ma(a, tiny());
  ex::TrainConfig tc;
  tc.steps = 4;
  ex::Trainer<float> tr(ma, a, tc);
  std::vector<std::int64_t> ids, tg;
  for (int s = 0; s < 2; ++s) {
    ex::lm_batch(kText, 2, 8, 0, s, ids, tg);
    tr.step(ids, tg, 2, 8);
  }
  ex::save_checkpoint(d / "c.safetensors", a, &tr.optimizer(), ex::CheckpointState{2, 9, {{"note", "x"}}});
  auto cfg = tiny();
  cfg.seed = 99;  // different init, overwritten by the load
  ad::ParameterStore<float> b;
  ex::GPT<float> mb(b, cfg);
  ex::Trainer<float> tb(mb, b, tc);
  const auto st = ex::load_checkpoint(d / "c.safetensors", b, &tb.optimizer());
  CHECK(st.step == 2);
  CHECK(st.data_seed == 9);
  CHECK(st.meta.at("note") == "x");
  CHECK(a.values() == b.values());
  CHECK(tr.optimizer().exp_avg_arena() == tb.optimizer().exp_avg_arena());
  CHECK(tr.optimizer().exp_avg_sq_arena() == tb.optimizer().exp_avg_sq_arena());
  CHECK(tr.optimizer().step_counts() == tb.optimizer().step_counts());

  ad::ParameterStore<double> da, db;
  ex::GPT<double> mda(da, tiny());
  ex::save_checkpoint<double>(d / "d.safetensors", da, nullptr, {});
  auto c2 = tiny();
  c2.seed = 3;
  ex::GPT<double> mdb(db, c2);
  ex::load_checkpoint<double>(d / "d.safetensors", db);
  CHECK(da.values() == db.values());

  auto wide = tiny();
  wide.width = 32;
  ad::ParameterStore<float> w;
  ex::GPT<float> mw(w, wide);
  CHECK_THROWS_AS(ex::load_checkpoint(d / "c.safetensors", w), hyplora::shape_error);
  // Adapters are not in a pretrained checkpoint: missing is an error unless allowed.
  nn::AdapterConfig lc;
  lc.kind = nn::AdapterKind::lora;
  lc.r = 2;
  mb.attach(b, lc, {"q"});
  CHECK_THROWS_AS(ex::load_checkpoint(d / "c.safetensors", b), hyplora::io_error);
  CHECK_NOTHROW(ex::load_checkpoint(d / "c.safetensors", b, static_cast<hyplora::optim::AdamW<float>*>(nullptr), true));
  fs::remove_all(d);
}

TEST_CASE("resume: a run stopped and continued from its checkpoint equals the uninterrupted run bitwise") {
  for (auto kind : {nn::AdapterKind::none, nn::AdapterKind::hyplora}) {
    CAPTURE(nn::to_string(kind));
    const fs::path d = tmp_dir("resume");
    ex::TrainConfig tc;
    tc.steps = 6;
    tc.warmup = 2;
    tc.lr = 3e-3;
    tc.seed = 5;
    nn::AdapterConfig ac;
    ac.kind = kind;
    ac.r = 2;
    ac.feature_scale = 4.0;
    const auto make = [&](ad::ParameterStore<float>& s) {
      auto g = std::make_unique<ex::GPT<float>>(s, tiny());
      if (kind != nn::AdapterKind::none) g->attach(s, ac, {"q", "v", "fc2"});
      return g;
    };
    std::vector<std::int64_t> ids, tg;
    const auto run = [&](ex::Trainer<float>& tr, std::int64_t until, std::vector<double>& losses) {
      for (std::int64_t k = tr.step_index(); k < until; k = tr.step_index()) {
        ex::lm_batch(kText, 2, 8, tc.seed, k, ids, tg);
        losses.push_back(tr.step(ids, tg, 2, 8));
      }
    };
    ad::ParameterStore<float> s1;
    auto g1 = make(s1);
    ex::Trainer<float> t1(*g1, s1, tc);
    std::vector<double> full;
    run(t1, tc.steps, full);

    ad::ParameterStore<float> s2;
    auto g2 = make(s2);
    std::vector<double> part;
    {
      ex::Trainer<float> t2(*g2, s2, tc);
      run(t2, 3, part);
      ex::save_checkpoint(d / "run.safetensors", s2, &t2.optimizer(), ex::CheckpointState{t2.step_index(), tc.seed, {}});
    }
    ad::ParameterStore<float> s3;
    auto g3 = make(s3);
    ex::Trainer<float> t3(*g3, s3, tc);
    const auto st = ex::load_checkpoint(d / "run.safetensors", s3, &t3.optimizer());
    t3.set_step_index(st.step);
    run(t3, tc.steps, part);
    REQUIRE(part.size() == full.size());
    for (std::size_t i = 0; i < full.size(); ++i) CHECK(part[i] == full[i]);
    CHECK(s3.values() == s1.values());
    ad::ParameterStore<float> s0;  // the run moved the trainable parameters away from the init
    auto g0 = make(s0);
    CHECK(s0.values() != s1.values());
    fs::remove_all(d);
  }
}

#ifdef _OPENMP
TEST_CASE("training at GPT widths on two threads: the same seed gives identical losses and weights") {
  // B·T = 512 tokens of width 128: every row-wise op (embedding, layer norm, cross-entropy with
  // V·N = 131,072 logits) takes its parallel path (>= kParallelMinElems elements), and T = 64
  // spans two attention blocks. Two runs on two threads must agree bitwise.
  ex::GPTConfig c;
  c.block_size = 64;
  c.width = 128;
  c.layers = 1;
  c.heads = 4;
  static_assert(ad::detail::kAttentionBlock < 64, "T must span more than one attention block");
  REQUIRE(8 * 64 * c.width >= ad::detail::kParallelMinElems);
  ex::TrainConfig tc;
  tc.steps = 3;
  tc.warmup = 1;
  tc.lr = 3e-3;
  tc.seed = 9;
  const int prev = omp_get_max_threads();
  omp_set_num_threads(2);
  std::vector<double> losses[2];
  std::vector<float> params[2];
  for (int r = 0; r < 2; ++r) {
    ad::ParameterStore<float> s;
    ex::GPT<float> g(s, c);
    nn::AdapterConfig full;
    full.kind = nn::AdapterKind::full;  // every weight trainable: every backward runs
    g.attach(s, full, {});
    ex::Trainer<float> tr(g, s, tc);
    std::vector<std::int64_t> ids, tg;
    for (std::int64_t k = 0; k < tc.steps; ++k) {
      ex::lm_batch(kText + kText + kText, 8, 64, tc.seed, k, ids, tg);
      losses[r].push_back(tr.step(ids, tg, 8, 64));
    }
    params[r] = s.values();
  }
  omp_set_num_threads(prev);
  CHECK(losses[0] == losses[1]);
  CHECK(params[0] == params[1]);
  CHECK(losses[0].front() != losses[0].back());  // the steps did change the model
}
#endif

TEST_CASE("greedy_decode: batched decoding equals one-at-a-time; exact_match counts items") {
  ad::ParameterStore<float> s;
  ex::GPT<float> g(s, tiny());
  ad::Tape<float> tape;
  const std::vector<std::string> prompts{"a beagle", "is a dog a mammal", "x"};
  const auto batched = ex::greedy_decode(g, s, prompts, 5, tape);
  for (std::size_t i = 0; i < prompts.size(); ++i) CHECK(ex::greedy_decode(g, s, {prompts[i]}, 5, tape)[0] == batched[i]);
  const auto r = ex::exact_match(g, s, qa(), 2);
  CHECK(r.total == 2);
  CHECK(r.correct <= 2);
  CHECK_THROWS_AS(ex::greedy_decode(g, s, prompts, 16, tape), hyplora::value_error);
}

TEST_CASE("report: SVG has one polyline per curve and a legend; table aligns") {
  ex::Curve a{"lora", {0, 1, 2}, {3, 2, 1}}, b{"hyplora", {0, 1, 2}, {3, 2.5, 0.5}};
  const std::string svg = ex::svg_plot({a, b}, "t");
  std::size_t n = 0;
  for (std::size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1)) ++n;
  CHECK(n == 2);
  CHECK(svg.find(">hyplora</text>") != std::string::npos);
  const std::string t = ex::text_table({"a", "bb"}, {{"xyz", "1"}});
  CHECK(t == "a    bb\n-------\nxyz   1\n");
}

}  // namespace examples_test_transformer_train
