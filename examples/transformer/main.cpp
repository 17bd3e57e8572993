// hyplora-finetune — pretrain a small byte-level GPT on WordNet glosses, then fine-tune it with
// LoRA, HypLoRA, DoRA or full fine-tuning on a hierarchy or arithmetic task, and compare.
//
//   hyplora-finetune pretrain                       # cached under --data-dir
//   hyplora-finetune finetune --adapter hyplora --task hierarchy
//   hyplora-finetune eval --run <run dir>
//   hyplora-finetune compare [--seeds 3]            # pretrain once, fine-tune each adapter, table
//   hyplora-finetune generate --prompt "a beagle is a kind of"
//   hyplora-finetune bench-step                     # JSON step timings (benchmarks/compare/torch_gpt.py)
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "checkpoint.hpp"
#include "data/arithmetic_tasks.hpp"
#include "data/hierarchy_tasks.hpp"
#include "data/text_corpus.hpp"
#include "hyplora/io/adapter_file.hpp"
#include "model.hpp"
#include "report.hpp"
#include "train.hpp"
#ifdef HYPLORA_FINETUNE_CUDA
#include "gpt_cuda.hpp"  // --device cuda: the GPU step (gpt_cuda.cu)
#endif

#ifdef HYPLORA_USE_BLAS
// OpenBLAS's own API (not in cblas.h): bench-step reports the GEMM thread count it really uses.
extern "C" int openblas_get_num_threads(void);
extern "C" char* openblas_get_config(void);
#endif

namespace fs = std::filesystem;
namespace ex = hyplora::examples;
namespace ad = hyplora::ad;
namespace nn = hyplora::nn;
using hyplora::Index;
using Clock = std::chrono::steady_clock;

namespace {

// ---- settings -----------------------------------------------------------------------------
struct Settings {
  std::string data_dir = "./hyplora-data";
  std::string wordnet_dir = hyplora::wordnet::Database::default_dir;
  std::string device = "cpu";
  ex::GPTConfig model;
  ex::TrainConfig pre;   // pretraining
  ex::TrainConfig ft;    // fine-tuning (adapters)
  double full_lr = 3e-4; // fine-tuning with kind == full (all weights move: a smaller rate)
  int rank = 8;
  double alpha = 16.0;
  double hyp_K = 1.0;
  bool hyp_sigma_sqrt_din = true;  // σ = √D_in (the official init), σ_out = σ
  std::string targets = "q,k,v,o,fc1,fc2";
  std::size_t eval_items = 200;
  int save_every = 100;
  bool resume = false;
  bool quiet = false;
};

Settings defaults() {
  Settings s;
  s.pre.steps = 600;
  s.pre.batch = 8;
  s.pre.seq_len = 128;  // = block_size: every position the fine-tuning prompts use is pretrained
  s.pre.lr = 2e-3;
  s.pre.min_lr = 2e-4;
  s.pre.warmup = 30;
  s.pre.weight_decay = 0.0;
  s.ft.steps = 150;
  s.ft.batch = 16;
  s.ft.lr = 2e-3;
  s.ft.min_lr = 2e-4;
  s.ft.warmup = 10;
  return s;
}

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ','))
    if (!x.empty()) out.push_back(x);
  return out;
}

/// cuda_ok: the subcommand trains, so it has a GPU path (pretrain, finetune, compare, bench-step,
/// loss-check), used when built with CUDA. eval and generate are forward passes on the CPU.
void check_device(const Settings& s, bool cuda_ok = false) {
  if (s.device == "cpu") return;
#ifdef HYPLORA_FINETUNE_CUDA
  if (s.device == "cuda" && cuda_ok) return;
  if (s.device == "cuda")
    throw hyplora::value_error("--device cuda: eval and generate run on the CPU (training subcommands take cuda); "
                               "drop --device cuda");
#else
  (void)cuda_ok;
  if (s.device == "cuda")
    throw hyplora::value_error("--device cuda: this hyplora-finetune was built without CUDA (configure where nvcc and the CUDA "
                               "toolkit are found; HYPLORA_ENABLE_CUDA); use --device cpu");
#endif
  throw hyplora::value_error("--device must be cpu or cuda, got '" + s.device + "'");
}

std::string model_tag(const Settings& s) {
  std::ostringstream t;
  t << "gpt-C" << s.model.width << "-L" << s.model.layers << "-H" << s.model.heads << "-T" << s.model.block_size
    << (s.model.rms_norm ? "-rms" : "-ln") << "-s" << s.model.seed << "-steps" << s.pre.steps << "-B" << s.pre.batch
    << "-t" << s.pre.seq_len;
  return t.str();
}
fs::path pretrained_path(const Settings& s) { return fs::path(s.data_dir) / "checkpoints" / (model_tag(s) + ".safetensors"); }

std::map<std::string, std::string> model_meta(const Settings& s) {
  return {{"model.width", std::to_string(s.model.width)}, {"model.layers", std::to_string(s.model.layers)},
          {"model.heads", std::to_string(s.model.heads)}, {"model.block_size", std::to_string(s.model.block_size)},
          {"model.rms_norm", s.model.rms_norm ? "1" : "0"}, {"model.seed", std::to_string(s.model.seed)}};
}

nn::AdapterConfig adapter_config(const Settings& s, nn::AdapterKind kind, std::uint64_t seed) {
  nn::AdapterConfig c;
  c.kind = kind;
  c.r = s.rank;
  c.alpha = s.alpha;
  c.seed = seed;
  if (nn::is_hyplora(kind)) {
    c.K = s.hyp_K;
    if (s.hyp_sigma_sqrt_din && kind == nn::AdapterKind::hyplora) {
      // One model-wide σ = √C (fc2's D_in is 4C; a per-layer σ would need per-layer configs).
      c.feature_scale = std::sqrt(static_cast<double>(s.model.width));
      c.scale_out_by_sigma = true;
    }
  }
  return c;
}

// ---- data ---------------------------------------------------------------------------------
/// Loaded once per process (the first caller's directory).
const hyplora::wordnet::Database& wordnet_db(const Settings& s) {
  static std::unique_ptr<hyplora::wordnet::Database> db;
  if (!db) db = std::make_unique<hyplora::wordnet::Database>(s.wordnet_dir);
  return *db;
}

ex::TextCorpus load_corpus(const Settings& s) { return ex::make_text_corpus(wordnet_db(s)); }

ex::TaskSplit load_task(const Settings& s, const std::string& task) {
  if (task == "arithmetic") return ex::cached_task(s.data_dir, "arithmetic", [] { return ex::make_arithmetic_tasks(); });
  if (task == "hierarchy")
    return ex::cached_task(s.data_dir, "hierarchy", [&] { return ex::make_hierarchy_tasks(wordnet_db(s)).split; });
  throw hyplora::value_error("--task must be hierarchy or arithmetic, got '" + task + "'");
}

// ---- training on cpu or cuda ---------------------------------------------------------------
/// Training on the device --device names: the CPU Trainer, or (built with CUDA) its GPU twin built
/// from the same model and store (gpt_cuda.hpp). The store and the CPU trainer's optimizer stay the
/// host copy of the state: sync() brings the GPU's values, AdamW state and step count back before
/// a checkpoint is written or the model is evaluated on the CPU.
class StepRunner {
 public:
  StepRunner(const Settings& s, ex::GPT<float>& g, ad::ParameterStore<float>& store, const ex::TrainConfig& tc)
      : cpu_(g, store, tc), store_(store) {
#ifdef HYPLORA_FINETUNE_CUDA
    if (s.device == "cuda") gpu_ = std::make_unique<ex::CudaTrainer>(g, store, tc);
#else
    (void)s;
#endif
  }
  double step(const std::vector<std::int64_t>& ids, const std::vector<std::int64_t>& tg, Index B, Index T) {
#ifdef HYPLORA_FINETUNE_CUDA
    if (gpu_) return gpu_->step(ids, tg, B, T);
#endif
    return cpu_.step(ids, tg, B, T);
  }
  std::int64_t step_index() const {
#ifdef HYPLORA_FINETUNE_CUDA
    if (gpu_) return gpu_->step_index();
#endif
    return cpu_.step_index();
  }
  /// Continues an interrupted run: weights, optimizer state and step from a checkpoint.
  ex::CheckpointState resume(const fs::path& ckpt) {
    ex::CheckpointState st = ex::load_checkpoint(ckpt, store_, &cpu_.optimizer());
    cpu_.set_step_index(st.step);
#ifdef HYPLORA_FINETUNE_CUDA
    if (gpu_) gpu_->copy_from_host(store_, cpu_.optimizer(), st.step);
#endif
    return st;
  }
  /// The host copy made current (a no-op on the CPU); then store() and optimizer() are the run's.
  void sync() {
#ifdef HYPLORA_FINETUNE_CUDA
    if (!gpu_) return;
    gpu_->copy_to_host(store_, &cpu_.optimizer());
    cpu_.set_step_index(gpu_->step_index());
#endif
  }
  /// Writes a checkpoint of the run (sync() first).
  void save(const fs::path& path, std::uint64_t seed, const std::map<std::string, std::string>& meta) {
    sync();
    ex::save_checkpoint(path, store_, &cpu_.optimizer(), ex::CheckpointState{cpu_.step_index(), seed, meta});
  }
  /// The CPU trainer (evaluation runs there; sync() first).
  ex::Trainer<float>& cpu() { return cpu_; }

 private:
  ex::Trainer<float> cpu_;
  ad::ParameterStore<float>& store_;
#ifdef HYPLORA_FINETUNE_CUDA
  std::unique_ptr<ex::CudaTrainer> gpu_;
#endif
};

// ---- pretraining --------------------------------------------------------------------------
fs::path pretrain(const Settings& s, bool force) {
  check_device(s, true);
  const fs::path out = pretrained_path(s);
  if (fs::exists(out) && !force) {
    std::cout << "pretrained checkpoint: " << out.string() << " (cached; --force to retrain)\n";
    return out;
  }
  const ex::TextCorpus corpus = load_corpus(s);
  std::cout << "pretraining " << model_tag(s) << " on WordNet glosses (" << corpus.train.size() / 1024
            << " KiB train, " << corpus.validation.size() / 1024 << " KiB validation)\n";
  ad::ParameterStore<float> store;
  ex::GPT<float> model(store, s.model);
  StepRunner tr(s, model, store, s.pre);
  const fs::path run_ckpt = fs::path(s.data_dir) / "checkpoints" / (model_tag(s) + ".run.safetensors");
  if (s.resume && fs::exists(run_ckpt)) {
    const auto st = tr.resume(run_ckpt);
    std::cout << "resumed at step " << st.step << " from " << run_ckpt.string() << "\n";
  }
  const Index B = s.pre.batch, T = s.pre.seq_len;
  ex::Curve curve{"pretrain", {}, {}};
  std::vector<std::int64_t> ids, tg;
  ex::ProgressBar bar("pretrain", s.pre.steps);
  const auto t0 = Clock::now();
  const std::int64_t first = tr.step_index();
  for (std::int64_t k = tr.step_index(); k < s.pre.steps; k = tr.step_index()) {
    ex::lm_batch(corpus.train, B, T, s.pre.seed, k, ids, tg);
    const double loss = tr.step(ids, tg, B, T);
    curve.steps.push_back(static_cast<double>(k));
    curve.loss.push_back(loss);
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    bar.update(static_cast<long>(k + 1), loss, static_cast<double>((k + 1 - first) * B * T) / sec);
    if (s.save_every > 0 && (k + 1) % s.save_every == 0 && k + 1 < s.pre.steps)
      tr.save(run_ckpt, s.pre.seed, model_meta(s));
  }
  const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
  tr.sync();
  const double val = tr.cpu().eval_loss(8, B, T, [&](int k, auto& i, auto& t) { ex::lm_batch(corpus.validation, B, T, 999, k, i, t); });
  std::printf("pretrained %d steps in %.1f s (%.0f tokens/s); final train loss %.4f, validation loss %.4f (%.3f bits/byte)\n",
              s.pre.steps, sec, static_cast<double>((s.pre.steps - first) * B * T) / sec,
              curve.loss.empty() ? NAN : curve.loss.back(), val, val / std::log(2.0));
  std::map<std::string, std::string> meta = model_meta(s);
  meta["kind"] = "pretrained";
  tr.save(out, s.pre.seed, meta);
  ex::write_csv(fs::path(s.data_dir) / "logs" / (model_tag(s) + ".pretrain.csv"), curve);
  std::error_code ec;
  fs::remove(run_ckpt, ec);
  std::cout << "pretrained checkpoint: " << out.string() << "\n";
  return out;
}

// ---- fine-tuning --------------------------------------------------------------------------
struct RunResult {
  std::string adapter, task;
  std::size_t trainable = 0;
  double final_loss = NAN;  // mean of the last 10 steps
  ex::EvalResult eval;
  double ms_per_step = 0, tokens_per_s = 0, peak_mib = -1;
  ex::Curve curve;
};

struct Model {
  ad::ParameterStore<float> store;
  std::unique_ptr<ex::GPT<float>> gpt;
};

/// Builds the model, loads the pretrained weights and attaches the adapter.
void build(Model& m, const Settings& s, nn::AdapterKind kind, std::uint64_t seed, const fs::path& pretrained) {
  m.gpt = std::make_unique<ex::GPT<float>>(m.store, s.model);
  ex::load_checkpoint(pretrained, m.store);
  nn::AdapterConfig c = adapter_config(s, kind, seed);
  m.gpt->attach(m.store, c, split_csv(s.targets));
}

fs::path run_dir(const Settings& s, const std::string& task, const std::string& adapter, std::uint64_t seed) {
  return fs::path(s.data_dir) / "runs" / (task + "-" + adapter + "-seed" + std::to_string(seed));
}

RunResult finetune(const Settings& s, const std::string& task, nn::AdapterKind kind, std::uint64_t seed,
                   const fs::path& pretrained, const ex::TaskSplit& data) {
  check_device(s, true);
  RunResult r;
  r.adapter = nn::to_string(kind);
  r.task = task;
  ex::reset_peak_rss();
  Model m;
  build(m, s, kind, seed, pretrained);
  r.trainable = m.store.trainable_size();
  ex::TrainConfig tc = s.ft;
  tc.seed = seed;
  if (kind == nn::AdapterKind::full) tc.lr = s.full_lr, tc.min_lr = s.full_lr / 10;
  StepRunner tr(s, *m.gpt, m.store, tc);
  const fs::path dir = run_dir(s, task, r.adapter, seed);
  const fs::path ckpt = dir / "checkpoint.safetensors";
  std::map<std::string, std::string> meta = model_meta(s);
  meta["adapter"] = r.adapter;
  meta["task"] = task;
  meta["targets"] = s.targets;
  meta["r"] = std::to_string(s.rank);
  meta["alpha"] = std::to_string(s.alpha);
  meta["seed"] = std::to_string(seed);
  if (s.resume && fs::exists(ckpt)) {
    const auto st = tr.resume(ckpt);
    if (!s.quiet) std::cout << "resumed " << dir.string() << " at step " << st.step << "\n";
  }
  const Index B = tc.batch, T = ex::qa_seq_len(data, s.model.block_size);
  std::vector<std::int64_t> ids, tg;
  ex::ProgressBar bar(task + "/" + r.adapter, tc.steps);
  const std::int64_t first = tr.step_index();
  const auto t0 = Clock::now();
  for (std::int64_t k = first; k < tc.steps; k = tr.step_index()) {
    ex::qa_batch(data.train, B, T, seed, k, ids, tg);
    const double loss = tr.step(ids, tg, B, T);
    r.curve.steps.push_back(static_cast<double>(k));
    r.curve.loss.push_back(loss);
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    bar.update(static_cast<long>(k + 1), loss, static_cast<double>((k + 1 - first) * B * T) / sec);
    if (s.save_every > 0 && (k + 1) % s.save_every == 0 && k + 1 < tc.steps)
      tr.save(ckpt, seed, meta);
  }
  const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::int64_t done = tc.steps - first;
  r.ms_per_step = done > 0 ? 1000.0 * sec / static_cast<double>(done) : 0.0;
  r.tokens_per_s = done > 0 ? static_cast<double>(done * B * T) / sec : 0.0;
  r.peak_mib = ex::peak_rss_mib();
  const std::size_t tail = std::min<std::size_t>(10, r.curve.loss.size());
  if (tail) r.final_loss = std::accumulate(r.curve.loss.end() - static_cast<std::ptrdiff_t>(tail), r.curve.loss.end(), 0.0) / static_cast<double>(tail);
  r.curve.name = r.adapter;
  tr.save(ckpt, seed, meta);  // syncs the host copy: the adapter file and the evaluation below read it
  ex::write_csv(dir / "loss.csv", r.curve);
  if (kind != nn::AdapterKind::full && kind != nn::AdapterKind::dora) {
    hyplora::io::Adapter a;
    a.config.r = s.rank;
    a.config.lora_alpha = s.alpha;
    a.config.target_modules = split_csv(s.targets);
    a.config.variant = nn::is_hyplora(kind) ? r.adapter : "";
    a.config.base_model_name_or_path = pretrained.string();
    for (std::size_t l = 0; l < m.gpt->blocks().size(); ++l)
      for (const std::string& t : split_csv(s.targets))
        a.modules["h." + std::to_string(l) + "." + t] =
            m.gpt->blocks()[l].proj[ex::GPT<float>::target_index(t)].to_adapter_module(m.store);
    hyplora::io::save_adapter(dir / "adapter", a);
  }
  r.eval = ex::exact_match(*m.gpt, m.store, data.test, s.eval_items);
  return r;
}

// ---- output -------------------------------------------------------------------------------
std::string fmt(const char* f, double x) {
  char b[64];
  std::snprintf(b, sizeof b, f, x);
  return b;
}
std::string mean_std(const std::vector<double>& v, const char* f, double scale = 1.0) {
  double m = 0, q = 0;
  for (double x : v) m += x * scale;
  m /= static_cast<double>(v.size());
  for (double x : v) q += (x * scale - m) * (x * scale - m);
  std::string s = fmt(f, m);
  if (v.size() > 1) s += " ± " + fmt(f, std::sqrt(q / static_cast<double>(v.size() - 1)));
  return s;
}

void print_table(const std::string& task, const std::vector<std::vector<RunResult>>& by_adapter) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& runs : by_adapter) {
    std::vector<double> loss, acc, ms, tps, mem;
    for (const auto& r : runs) {
      loss.push_back(r.final_loss);
      acc.push_back(r.eval.accuracy());
      ms.push_back(r.ms_per_step);
      tps.push_back(r.tokens_per_s);
      mem.push_back(r.peak_mib);
    }
    const auto& r0 = runs.front();
    rows.push_back({r0.adapter, std::to_string(r0.trainable), mean_std(loss, "%.4f"),
                    mean_std(acc, "%.1f", 100.0) + "% of " + std::to_string(r0.eval.total), mean_std(ms, "%.1f"),
                    mean_std(tps, "%.0f"), mean_std(mem, "%.0f")});
  }
  std::cout << "\n== task: " << task << " ==\n"
            << ex::text_table({"adapter", "trainable", "train loss", "exact match (test)", "ms/step", "tokens/s",
                               "peak RSS MiB"},
                              rows);
}

// ---- bench-step, loss-check ----------------------------------------------------------------
/// "cpu", or the GPU's name.
std::string device_label(const Settings& s) {
#ifdef HYPLORA_FINETUNE_CUDA
  if (s.device == "cuda") return ex::cuda_device_name();
#endif
  return s.device;
}

/// loss-check's text: deterministic and learnable, so 20 steps move the loss (no data files).
std::string loss_check_text() {
  static const char* words[] = {"dog", "cat", "oak", "elm", "trout", "finch", "maple", "whale"};
  static const char* kinds[] = {"animal", "tree", "fish", "bird"};
  std::string t;
  for (int i = 0; t.size() < 200000; ++i) {
    const int w = (i * 5 + 3) % 8;
    t += std::string("a ") + words[w] + " is a kind of " + kinds[w % 4] + ".\n";
  }
  return t;
}

/// Current resident set size in MiB (VmRSS), or -1.
double current_rss_mib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  return -1.0;
}

/// Every setting a second implementation needs to run the identical step (torch_gpt.py).
std::string bench_config_json(const Settings& s, Index B, Index T) {
  const nn::AdapterConfig h = adapter_config(s, nn::AdapterKind::hyplora, 0);
  const hyplora::optim::AdamConfig a = ex::Trainer<float>::adam_config(s.ft);
  std::ostringstream o;
  o << "{\"vocab\": " << s.model.vocab << ", \"block_size\": " << s.model.block_size << ", \"C\": " << s.model.width
    << ", \"layers\": " << s.model.layers << ", \"heads\": " << s.model.heads
    << ", \"rms_norm\": " << (s.model.rms_norm ? "true" : "false") << ", \"B\": " << B << ", \"T\": " << T
    << ", \"rank\": " << s.rank << ", \"alpha\": " << fmt("%.17g", s.alpha) << ", \"targets\": [";
  const auto t = split_csv(s.targets);
  for (std::size_t i = 0; i < t.size(); ++i) o << (i ? ", " : "") << "\"" << t[i] << "\"";
  o << "], \"K\": " << fmt("%.17g", h.K) << ", \"sigma\": " << fmt("%.17g", h.feature_scale)
    << ", \"sigma_out\": " << fmt("%.17g", h.scale_out_by_sigma ? h.feature_scale : 1.0)
    << ", \"max_exp_arg\": " << fmt("%.17g", static_cast<double>(hyplora::numerics<float>::max_exp_arg()))
    << ", \"lr\": " << fmt("%.17g", a.lr) << ", \"beta1\": " << fmt("%.17g", a.beta1)
    << ", \"beta2\": " << fmt("%.17g", a.beta2) << ", \"eps\": " << fmt("%.17g", a.eps)
    << ", \"weight_decay\": " << fmt("%.17g", a.weight_decay) << ", \"clip\": "
    << (std::isfinite(s.ft.clip) ? fmt("%.17g", s.ft.clip) : std::string("Infinity")) << ", \"dtype\": \"float32\"}";
  return o.str();
}

/// Thread counts the step actually uses: OpenMP (row-wise ops, attention) and OpenBLAS (GEMMs).
std::string threads_json() {
  int omp = 1;
#ifdef _OPENMP
  omp = omp_get_max_threads();
#endif
  std::ostringstream o;
  o << "{\"omp\": " << omp;
#ifdef HYPLORA_USE_BLAS
  o << ", \"openblas\": " << openblas_get_num_threads() << ", \"blas\": \"" << openblas_get_config() << "\"";
#else
  o << ", \"blas\": \"eigen\"";
#endif
  o << "}";
  return o.str();
}

}  // namespace

int main(int argc, char** argv) {
  Settings s = defaults();
  CLI::App app{"hyplora-finetune: pretrain a byte-level GPT on WordNet glosses, then compare LoRA, HypLoRA, DoRA "
               "and full fine-tuning"};
  app.require_subcommand(1);
  const auto common = [&](CLI::App* c) {
    c->add_option("--data-dir", s.data_dir, "where data caches, checkpoints, logs and plots go")->capture_default_str();
    c->add_option("--wordnet-dir", s.wordnet_dir, "WordNet 3.0 database (data.noun, ...; Debian: wordnet-base)")
        ->capture_default_str();
    c->add_option("--device", s.device, "cpu, or cuda (training subcommands; a CUDA build)")->capture_default_str();
    c->add_option("--width", s.model.width, "model width C")->capture_default_str();
    c->add_option("--layers", s.model.layers, "transformer blocks")->capture_default_str();
    c->add_option("--heads", s.model.heads, "attention heads H")->capture_default_str();
    c->add_option("--block-size", s.model.block_size, "longest sequence T")->capture_default_str();
    c->add_flag("--rms-norm", s.model.rms_norm, "RMS norm instead of layer norm");
    c->add_option("--model-seed", s.model.seed, "weight init seed")->capture_default_str();
    c->add_option("--pretrain-steps", s.pre.steps, "pretraining steps")->capture_default_str();
    c->add_option("--pretrain-batch", s.pre.batch, "pretraining batch B")->capture_default_str();
    c->add_option("--pretrain-seq", s.pre.seq_len, "pretraining sequence length T")->capture_default_str();
    c->add_option("--pretrain-lr", s.pre.lr, "pretraining peak learning rate")->capture_default_str();
    c->add_flag("--resume", s.resume, "continue an interrupted run from its checkpoint");
    c->add_option("--save-every", s.save_every, "checkpoint every N steps (0: only at the end)")->capture_default_str();
  };
  const auto ft_opts = [&](CLI::App* c) {
    c->add_option("--steps", s.ft.steps, "fine-tuning steps")->capture_default_str();
    c->add_option("--batch", s.ft.batch, "fine-tuning batch B")->capture_default_str();
    c->add_option("--lr", s.ft.lr, "adapter peak learning rate")->capture_default_str();
    c->add_option("--full-lr", s.full_lr, "peak learning rate for --adapter full")->capture_default_str();
    c->add_option("-r,--rank", s.rank, "adapter rank R")->capture_default_str();
    c->add_option("--alpha", s.alpha, "adapter alpha (gamma = alpha/R), the same for every adapter")->capture_default_str();
    c->add_option("--curvature", s.hyp_K, "HypLoRA K > 0 (sectional curvature -1/K)")->capture_default_str();
    c->add_option("--targets", s.targets, "projections that carry adapters")->capture_default_str();
    c->add_option("--eval-items", s.eval_items, "held-out items to evaluate (0: all)")->capture_default_str();
  };

  bool force = false;
  auto* pre = app.add_subcommand("pretrain", "pretrain on WordNet glosses (cached)");
  common(pre);
  pre->add_flag("--force", force, "retrain even when the checkpoint exists");

  std::string adapter = "hyplora", task = "hierarchy";
  std::uint64_t seed = 0;
  auto* ft = app.add_subcommand("finetune", "fine-tune the pretrained model on one task");
  common(ft);
  ft_opts(ft);
  ft->add_option("--adapter", adapter, "lora, hyplora, dora or full")->capture_default_str();
  ft->add_option("--task", task, "hierarchy or arithmetic")->capture_default_str();
  ft->add_option("--seed", seed, "adapter init and data order seed")->capture_default_str();

  auto* ev = app.add_subcommand("eval", "held-out exact match of a fine-tuned run");
  common(ev);
  ft_opts(ev);
  ev->add_option("--adapter", adapter)->capture_default_str();
  ev->add_option("--task", task)->capture_default_str();
  ev->add_option("--seed", seed)->capture_default_str();

  std::string adapters = "lora,hyplora", tasks = "hierarchy,arithmetic";
  int seeds = 1;
  auto* cmp = app.add_subcommand("compare", "pretrain once, fine-tune each adapter identically, print a table");
  common(cmp);
  ft_opts(cmp);
  cmp->add_option("--adapters", adapters, "comma-separated adapter kinds")->capture_default_str();
  cmp->add_option("--tasks", tasks, "comma-separated tasks")->capture_default_str();
  cmp->add_option("--seeds", seeds, "seeds per adapter (mean ± std)")->capture_default_str();

  std::string prompt, ckpt_path;
  std::size_t max_new = 40;
  auto* gen = app.add_subcommand("generate", "greedy continuation of a prompt");
  common(gen);
  gen->add_option("--prompt", prompt, "text to continue")->required();
  gen->add_option("--max-new", max_new, "bytes to generate at most (stops at a newline)")->capture_default_str();

  int bench_iters = 10, bench_warmup = 3;
  std::string bench_modes = "full,lora,hyplora";
  bool bench_print_config = false;
  auto* bench = app.add_subcommand("bench-step", "time one training step (full, lora, hyplora); prints JSON");
  common(bench);
  ft_opts(bench);
  bench->add_option("--iters", bench_iters, "timed steps per kind")->capture_default_str();
  bench->add_option("--warmup", bench_warmup, "untimed steps per kind first (the first allocates the tape)")->capture_default_str();
  bench->add_option("--modes", bench_modes, "comma-separated: full, lora, hyplora")->capture_default_str();
  bench->add_flag("--print-config", bench_print_config,
                  "print the model, shapes, adapter and optimizer settings as JSON and exit (torch_gpt.py reads it)");

  int lc_steps = 20;
  std::string lc_adapter = "lora";
  auto* lchk = app.add_subcommand("loss-check", "print the loss of each training step on a fixed synthetic text "
                                                "(compare --device cpu with --device cuda)");
  common(lchk);
  lchk->add_option("--steps", lc_steps, "training steps (the schedule's length too)")->capture_default_str();
  lchk->add_option("--adapter", lc_adapter,
                   "full, or an adapter kind (lora, dora, hyplora, hyplora_official, hyplora_stereographic, "
                   "hyplora_official_simplified)")
      ->capture_default_str();
  lchk->add_option("--batch", s.ft.batch, "batch B (T is --pretrain-seq, as in bench-step)")->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  try {
    check_device(s, *pre || *ft || *cmp || *bench || *lchk);
    if (*pre) {
      pretrain(s, force);
    } else if (*ft) {
      const auto kind = nn::parse_adapter_kind(adapter);
      const fs::path p = pretrain(s, false);
      const auto data = load_task(s, task);
      const RunResult r = finetune(s, task, kind, seed, p, data);
      print_table(task, {{r}});
      std::cout << "run saved under " << run_dir(s, task, r.adapter, seed).string() << "\n";
    } else if (*ev) {
      const auto kind = nn::parse_adapter_kind(adapter);
      const fs::path dir = run_dir(s, task, nn::to_string(kind), seed);
      Model m;
      build(m, s, kind, seed, pretrained_path(s));
      ex::load_checkpoint(dir / "checkpoint.safetensors", m.store);
      const auto data = load_task(s, task);
      const auto e = ex::exact_match(*m.gpt, m.store, data.test, s.eval_items);
      std::printf("%s / %s: exact match %.1f%% (%zu of %zu held-out items)\n", task.c_str(), adapter.c_str(),
                  100.0 * e.accuracy(), e.correct, e.total);
    } else if (*cmp) {
      const fs::path p = pretrain(s, false);
      std::printf("\nsettings: rank %d, alpha %.3g (gamma = alpha/r = %.3g, the same for every adapter), targets %s, "
                  "%d steps, batch %d, lr %.3g (full: %.3g), identical data order and seeds; HypLoRA: exact layer, K = %.3g, "
                  "sigma = sigma_out = sqrt(C); peak RSS = VmHWM, reset before each run\n",
                  s.rank, s.alpha, s.alpha / s.rank, s.targets.c_str(), s.ft.steps, s.ft.batch, s.ft.lr, s.full_lr,
                  s.hyp_K);
      std::vector<ex::Curve> curves;
      for (const std::string& t : split_csv(tasks)) {
        const auto data = load_task(s, t);
        std::vector<std::vector<RunResult>> by;
        for (const std::string& a : split_csv(adapters)) {
          const auto kind = nn::parse_adapter_kind(a);
          by.emplace_back();
          for (int k = 0; k < seeds; ++k) {
            by.back().push_back(finetune(s, t, kind, static_cast<std::uint64_t>(k), p, data));
            const auto& r = by.back().back();
            std::fprintf(stderr, "  %s/%s seed %d: loss %.4f, exact match %zu/%zu, %.1f ms/step\n", t.c_str(),
                         r.adapter.c_str(), k, r.final_loss, r.eval.correct, r.eval.total, r.ms_per_step);
          }
          ex::Curve c = by.back().front().curve;
          c.name = t + "/" + c.name;
          curves.push_back(c);
        }
        print_table(t, by);
      }
      const fs::path svg = fs::path(s.data_dir) / "runs" / "loss_curves.svg";
      fs::create_directories(svg.parent_path());
      hyplora::io::write_file_atomic(svg, std::string_view(ex::svg_plot(curves, "fine-tuning loss (seed 0)")));
      std::cout << "\nper-run CSV logs: " << (fs::path(s.data_dir) / "runs").string() << "/<task>-<adapter>-seed<k>/loss.csv\n"
                << "loss plot: " << svg.string() << "\n";
    } else if (*gen) {
      Model m;
      m.gpt = std::make_unique<ex::GPT<float>>(m.store, s.model);
      ex::load_checkpoint(pretrain(s, false), m.store);
      ad::Tape<float> tape;
      const auto out = ex::greedy_decode(*m.gpt, m.store, {prompt}, std::min<std::size_t>(max_new, static_cast<std::size_t>(s.model.block_size) - 1), tape);
      std::cout << prompt << out[0] << "\n";
    } else if (*bench) {
      // One JSON line. Each kind gets its own model, tape and optimizer; peak RSS (VmHWM) is reset
      // before each, so "peak_rss_mib" is that kind's peak (run one kind per process where
      // clear_refs is unsupported: "peak_reset" says which).
      const Index B = s.ft.batch, T = s.pre.seq_len;
      const std::string config = bench_config_json(s, B, T);
      if (bench_print_config) {
        std::printf("%s\n", config.c_str());
        return 0;
      }
      if (bench_iters < 1 || bench_warmup < 0)
        throw hyplora::value_error("bench-step: need --iters >= 1 and --warmup >= 0, got " + std::to_string(bench_iters) +
                                   " and " + std::to_string(bench_warmup));
      const std::vector<std::string> kinds = split_csv(bench_modes);
      for (const std::string& k : kinds)
        if (k != "full" && k != "lora" && k != "hyplora")
          throw hyplora::value_error("bench-step: --modes takes full, lora, hyplora; got '" + k + "'");
      std::vector<std::int64_t> ids, tg;
      const std::string text(static_cast<std::size_t>(T) * 64, 'x');
      const double base_rss = current_rss_mib();
      std::ostringstream modes_json, medians_json;
      bool peak_reset = true;
      for (std::size_t k = 0; k < kinds.size(); ++k) {
        peak_reset = ex::reset_peak_rss() && peak_reset;
        ad::ParameterStore<float> store;
        ex::GPT<float> g(store, s.model);
        g.attach(store, adapter_config(s, nn::parse_adapter_kind(kinds[k]), 0), split_csv(s.targets));
        StepRunner tr(s, g, store, s.ft);
        double loss0 = NAN;
        for (int w = 0; w < bench_warmup; ++w) {
          ex::lm_batch(text, B, T, 0, w, ids, tg);
          const double l = tr.step(ids, tg, B, T);
          if (w == 0) loss0 = l;
        }
        std::vector<double> ms(static_cast<std::size_t>(bench_iters));
        for (int w = 0; w < bench_iters; ++w) {
          ex::lm_batch(text, B, T, 0, w, ids, tg);
          const auto t0 = Clock::now();
          const double l = tr.step(ids, tg, B, T);
          ms[static_cast<std::size_t>(w)] = 1000.0 * std::chrono::duration<double>(Clock::now() - t0).count();
          if (w == 0 && bench_warmup == 0) loss0 = l;
        }
        std::vector<double> sorted = ms;
        std::sort(sorted.begin(), sorted.end());
        const std::size_t n = sorted.size();
        const double med = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
        modes_json << (k ? ", " : "") << "\"" << kinds[k] << "\": {\"ms\": [";
        for (std::size_t i = 0; i < n; ++i) modes_json << (i ? ", " : "") << fmt("%.3f", ms[i]);
        modes_json << "], \"median_ms\": " << fmt("%.3f", med)
                   << ", \"tokens_per_s\": " << fmt("%.1f", 1000.0 * static_cast<double>(B * T) / med)
                   << ", \"peak_rss_mib\": " << fmt("%.1f", ex::peak_rss_mib()) << ", \"loss0\": " << fmt("%.6f", loss0)
                   << ", \"trainable\": " << store.trainable_size() << "}";
        medians_json << (k ? ", " : "") << "\"" << kinds[k] << "\": " << fmt("%.3f", med);
      }
      std::printf("{\"config\": %s, \"device\": \"%s\", \"threads\": %s, \"base_rss_mib\": %.1f, \"peak_reset\": %s, "
                  "\"modes\": {%s}, \"steps_ms\": {%s}}\n",
                  config.c_str(), device_label(s).c_str(), threads_json().c_str(), base_rss, peak_reset ? "true" : "false",
                  modes_json.str().c_str(), medians_json.str().c_str());
    } else if (*lchk) {
      // One "step loss" line per step: run with --device cpu and --device cuda and compare (issue #6 (b)).
      if (lc_steps < 1) throw hyplora::value_error("loss-check: need --steps >= 1, got " + std::to_string(lc_steps));
      const auto kind = nn::parse_adapter_kind(lc_adapter);
      ex::TrainConfig tc = s.ft;
      tc.steps = lc_steps;
      if (kind == nn::AdapterKind::full) tc.lr = s.full_lr, tc.min_lr = s.full_lr / 10;
      const Index B = tc.batch, T = s.pre.seq_len;
      ad::ParameterStore<float> store;
      ex::GPT<float> g(store, s.model);
      g.attach(store, adapter_config(s, kind, 0), split_csv(s.targets));
      StepRunner tr(s, g, store, tc);
      const std::string text = loss_check_text();
      std::vector<std::int64_t> ids, tg;
      std::printf("# loss-check: device %s, adapter %s, B %ld, T %ld, C %d, layers %d, heads %d, lr %g\n",
                  device_label(s).c_str(), nn::to_string(kind).c_str(), static_cast<long>(B), static_cast<long>(T),
                  s.model.width, s.model.layers, s.model.heads, tc.lr);
      for (int k = 0; k < lc_steps; ++k) {
        ex::lm_batch(text, B, T, tc.seed, k, ids, tg);
        std::printf("%d %.7f\n", k, tr.step(ids, tg, B, T));
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "hyplora-finetune: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
