// poincare_embeddings — WordNet reconstruction (Nickel & Kiela 2017) in the Poincaré ball or
// the Lorentz model, RSGD or Riemannian Adam. See docs/embeddings.md.
//   poincare_embeddings [--root mammal.n.01] [--model poincare|lorentz|both]
//       [--optim rsgd|radam] [--dim 10] [--epochs 50] [--burnin 10] [--lr 0.1 (radam: 0.02)] [--neg 50]
//       [--threads 0] [--seed 0] [--eval-nodes 0] [--eval-every 0] [--max-edges 0]
//       [--eval-directed 0] [--cpu-budget 0 (s of process CPU; 0: none)] [--lr-decay 0] [--beta1 0.9] [--both-directions 0 (radam: 1)] [--negatives-from related|ancestors]
//       [--degree-negatives 0] [--hard-negatives 0] [--hard-slots 8] [--hard-margin 0] [--hard-share 0]
//       [--hard-filter 0] [--pin-roots 0]
//       [--burnin-div 10] [--lr-decay-power 1]
//       [--ball-eps 1e-5] [--diagnose 0]
//       [--svg mammals.svg] [--wordnet /usr/share/wordnet]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "eval.hpp"
#include "svg.hpp"
#include "trainer.hpp"
#include "wordnet_graph.hpp"
#include "hyplora/core/numerics.hpp"

namespace emb = hyplora::examples::emb;
using hyplora::Index;

namespace {

struct Args {
  std::string root = "mammal.n.01", model = "both", optim = "rsgd", svg, wordnet = hyplora::wordnet::Database::default_dir;
  emb::TrainOptions opt;
  Index eval_nodes = 0;
  int eval_every = 0;
  bool eval_directed = false;  ///< also the directed relation at every --eval-every point
  double cpu_budget = 0.0;  ///< stop training after the epoch that passes this much process CPU time (s)
  std::int64_t max_edges = 0;
  bool diagnose = false;  ///< print where the directed ranking fails (leaves vs inner nodes, who intrudes)
};

constexpr double kRadamLr = 0.02;

Args parse(int argc, char** argv) {
  Args a;
  bool lr_given = false, both_given = false;
  a.opt.optimizer = emb::Optimizer::rsgd;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      std::puts("see the header of examples/poincare_embeddings/main.cpp and docs/embeddings.md");
      std::exit(0);
    }
    if (i + 1 >= argc) throw hyplora::value_error("missing value after " + k);
    const std::string v = argv[++i];
    if (k == "--root") a.root = v;
    else if (k == "--model") a.model = v;
    else if (k == "--optim") a.optim = v;
    else if (k == "--dim") a.opt.dim = std::stol(v);
    else if (k == "--epochs") a.opt.epochs = std::stoi(v);
    else if (k == "--burnin") a.opt.burnin = std::stoi(v);
    else if (k == "--lr") a.opt.lr = std::stod(v), lr_given = true;
    else if (k == "--neg") a.opt.negatives = std::stoi(v);
    else if (k == "--degree-negatives") a.opt.degree_negatives = std::stod(v);
    else if (k == "--hard-negatives") a.opt.hard_negatives = std::stod(v);
    else if (k == "--hard-slots") a.opt.hard_slots = std::stoi(v);
    else if (k == "--hard-margin") a.opt.hard_margin = std::stod(v);
    else if (k == "--hard-share") a.opt.hard_share = std::stod(v);
    else if (k == "--hard-filter") a.opt.hard_filter = v != "0";
    else if (k == "--lr-decay-power") a.opt.lr_decay_power = std::stod(v);
    else if (k == "--burnin-div") a.opt.burnin_div = std::stod(v);
    else if (k == "--pin-roots") a.opt.pin_roots = v != "0";
    else if (k == "--ball-eps") a.opt.ball_eps = std::stod(v);
    else if (k == "--lr-decay") a.opt.lr_decay = v != "0";
    else if (k == "--beta1") a.opt.beta1 = std::stod(v);
    else if (k == "--both-directions") a.opt.both_directions = v != "0", both_given = true;
    else if (k == "--negatives-from") {
      if (v != "ancestors" && v != "related")
        throw hyplora::value_error("--negatives-from must be ancestors or related, got " + v);
      a.opt.directed_negatives = v == "ancestors";
    }
    else if (k == "--threads") a.opt.threads = std::stoi(v);
    else if (k == "--seed") a.opt.seed = std::stoull(v);
    else if (k == "--eval-nodes") a.eval_nodes = std::stol(v);
    else if (k == "--eval-every") a.eval_every = std::stoi(v);
    else if (k == "--max-edges") a.max_edges = std::stoll(v);
    else if (k == "--cpu-budget") a.cpu_budget = std::stod(v);
    else if (k == "--eval-directed") a.eval_directed = v != "0";
    else if (k == "--diagnose") a.diagnose = v != "0";
    else if (k == "--svg") a.svg = v;
    else if (k == "--wordnet") a.wordnet = v;
    else throw hyplora::value_error("unknown option " + k);
  }
  if (a.optim == "rsgd") a.opt.optimizer = emb::Optimizer::rsgd;
  else if (a.optim == "radam") {
    // Riemannian Adam's defaults (docs/embeddings.md): a smaller rate, both directions (E4').
    a.opt.optimizer = emb::Optimizer::radam;
    if (!lr_given) a.opt.lr = kRadamLr;
    if (!both_given) a.opt.both_directions = true;
  }
  else throw hyplora::value_error("--optim must be rsgd or radam, got " + a.optim);
  if (a.model != "poincare" && a.model != "lorentz" && a.model != "both")
    throw hyplora::value_error("--model must be poincare, lorentz or both, got " + a.model);
  return a;
}

// Draws a 2-D embedding in the unit disk: every node a dot, closure edges to direct-ish parents
// faint, labels for nodes with at most two ancestors in the closure (the top levels).
void draw_disk(const emb::Embedding<double>& e, const emb::Graph& g, const std::string& path) {
  const double S = 800, C = S / 2, rad = S / 2 - 20, R = std::sqrt(e.K);
  emb::Svg s(S, S);
  s.circle(C, C, rad, "none", "#000", 1.5);
  std::vector<std::size_t> n_anc(static_cast<std::size_t>(g.n), 0);
  for (const auto& ed : g.edges) ++n_anc[static_cast<std::size_t>(ed.first)];
  const auto pos = [&](Index i) {
    const std::vector<double> y = e.ball_point(i);
    return std::pair<double, double>{C + rad * y[0] / R, C - rad * y[1] / R};
  };
  for (Index i = 0; i < g.n; ++i) {
    const auto p = pos(i);
    const bool top = n_anc[static_cast<std::size_t>(i)] <= 2;
    s.circle(p.first, p.second, top ? 3.0 : 1.5, top ? "#d62728" : "#1f77b4", "none", 0);
  }
  for (Index i = 0; i < g.n; ++i) {
    if (n_anc[static_cast<std::size_t>(i)] > 2) continue;
    const auto p = pos(i);
    std::string name = g.names.empty() ? std::to_string(i) : g.names[static_cast<std::size_t>(i)];
    s.text(p.first + 4, p.second - 3, name.substr(0, name.find('.')), 9);
  }
  s.save(path);
}

// Where the directed ranking (Relation::directed) fails: directed AP of leaves and of inner
// nodes, and who the intruders are (non-ancestors closer than u's farthest ancestor): u's own
// descendants, hubs (degree >= 1000, the top of the hierarchy), or other nodes.
void diagnose_directed(const emb::Graph& g, const emb::Embedding<double>& e, const std::vector<emb::node_t>& nodes) {
  double ap_sum[2] = {0, 0};
  std::int64_t n_u[2] = {0, 0}, intr_desc = 0, intr_hub = 0, intr_other = 0;
  for (emb::node_t u : nodes) {
    const auto& anc = g.out[static_cast<std::size_t>(u)];
    const auto& rel = g.adj[static_cast<std::size_t>(u)];
    if (anc.empty()) continue;
    std::vector<double> pos;
    for (emb::node_t v : anc) pos.push_back(e.dist(u, v));
    std::sort(pos.begin(), pos.end());
    std::vector<std::int64_t> closer(pos.size() + 1, 0);
    for (emb::node_t w = 0; w < g.n; ++w) {
      if (w == u || std::binary_search(anc.begin(), anc.end(), w)) continue;
      const double dw = e.dist(u, w);
      const auto it = std::upper_bound(pos.begin(), pos.end(), dw);
      ++closer[static_cast<std::size_t>(it - pos.begin())];
      if (dw < pos.back()) {
        if (std::binary_search(rel.begin(), rel.end(), w)) ++intr_desc;
        else if (g.degree(w) >= 1000) ++intr_hub;
        else ++intr_other;
      }
    }
    double ap = 0.0;
    std::int64_t acc = 0;
    for (std::size_t i = 0; i < pos.size(); ++i) {
      acc += closer[i];
      ap += static_cast<double>(i + 1) / static_cast<double>(i + 1 + static_cast<std::size_t>(acc));
    }
    const int inner = rel.size() > anc.size() ? 1 : 0;
    ap_sum[inner] += ap / static_cast<double>(pos.size());
    ++n_u[inner];
  }
  std::fprintf(stderr, "diagnose: directed AP leaves %.4f (%lld), inner nodes %.4f (%lld); intruders per node: "
               "descendants %.2f, hubs %.2f, others %.2f\n", ap_sum[0] / std::max<std::int64_t>(1, n_u[0]),
               static_cast<long long>(n_u[0]), ap_sum[1] / std::max<std::int64_t>(1, n_u[1]), static_cast<long long>(n_u[1]),
               static_cast<double>(intr_desc) / static_cast<double>(std::max<std::int64_t>(1, n_u[0] + n_u[1])),
               static_cast<double>(intr_hub) / static_cast<double>(std::max<std::int64_t>(1, n_u[0] + n_u[1])),
               static_cast<double>(intr_other) / static_cast<double>(std::max<std::int64_t>(1, n_u[0] + n_u[1])));
}

}  // namespace

int main(int argc, char** argv) try {
  Args a = parse(argc, argv);
  std::fprintf(stderr, "loading WordNet from %s ...\n", a.wordnet.c_str());
  const hyplora::wordnet::Database db(a.wordnet);
  std::vector<std::string> exclude;
  if (a.root == "mammal.n.01") exclude = {"tusker.n.01", "female_mammal.n.01"};  // as N&K
  const emb::Graph g = emb::wordnet_closure(db, a.root, exclude);
  std::printf("closure of %s: %lld nodes, %zu edges\n", a.root.c_str(), static_cast<long long>(g.n), g.edges.size());
  std::vector<emb::node_t> eval_nodes;
  if (a.eval_nodes > 0 && a.eval_nodes < g.n) {  // a fixed random subset (for the noun closure)
    std::mt19937_64 rng(12345);
    std::vector<emb::node_t> all(static_cast<std::size_t>(g.n));
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<emb::node_t>(i);
    std::shuffle(all.begin(), all.end(), rng);
    eval_nodes.assign(all.begin(), all.begin() + a.eval_nodes);
  }
  std::vector<emb::Model> models;
  if (a.model != "lorentz") models.push_back(emb::Model::poincare);
  if (a.model != "poincare") models.push_back(emb::Model::lorentz);
  std::printf("\n| model    | optim | dim | epochs | MAP    | mean rank | MAP dir | rank dir  | s/epoch | edges/s   |\n"
              "|----------|-------|-----|--------|--------|-----------|--------|-----------|---------|-----------|\n");
  std::vector<std::string> rows;
  for (emb::Model m : models) {
    a.opt.model = m;
    emb::Embedding<double> e = emb::init_embedding<double>(g.n, a.opt);
    double secs = 0.0;
    const std::clock_t cpu0 = std::clock();  // CPU time too: the 2-core machine is shared
    std::int64_t edges_done = 0;
    int epochs_run = a.opt.epochs;
    const auto evaluate = [&](emb::Relation rel) {
      return emb::evaluate_reconstruction(g, [&](emb::node_t x, emb::node_t y) { return e.dist(x, y); },
                                          eval_nodes, rel);
    };
    for (int ep = 0; ep < a.opt.epochs; ++ep) {
      const std::string label = std::string(emb::model_name(m)) + " epoch " + std::to_string(ep + 1);
      const emb::EpochStats st = emb::train_epoch(e, g, a.opt, ep, a.max_edges, label.c_str());
      secs += st.seconds;
      edges_done += st.pairs;
      const double cpu_now = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
      const bool out_of_budget = a.cpu_budget > 0 && cpu_now >= a.cpu_budget;
      if (a.eval_every > 0 && ((ep + 1) % a.eval_every == 0 || out_of_budget)) {
        const emb::Reconstruction r = evaluate(emb::Relation::symmetric);
        std::fprintf(stderr, "%s epoch %d: loss %.4f, %.2f s, %.0f edges/s, MAP %.4f +- %.4f (%lld nodes), "
                     "mean rank %.2f; %.0f s wall, %.0f s CPU so far\n", emb::model_name(m), ep + 1, st.loss,
                     st.seconds, st.edges_per_s, r.map, r.map_se, static_cast<long long>(r.n_nodes),
                     r.mean_rank, secs, cpu_now);
        if (m == emb::Model::poincare) {  // how many rows sit on the projx clamp (|x| = (1 - ball_eps)R)
          Index clamped = 0;
          double rmax = 0.0;
          for (Index i = 0; i < g.n; ++i) {
            const double rn = e.X.row(i).norm() / std::sqrt(e.K);
            rmax = std::max(rmax, rn);
            if (rn > 1.0 - 2.0 * a.opt.ball_eps) ++clamped;
          }
          std::fprintf(stderr, "%s epoch %d: %lld of %lld rows on the boundary clamp, max |x|/R = 1 - %.3g\n",
                       emb::model_name(m), ep + 1, static_cast<long long>(clamped), static_cast<long long>(g.n), 1.0 - rmax);
        }
        if (a.eval_directed) {
          const emb::Reconstruction rd = evaluate(emb::Relation::directed);
          std::fprintf(stderr, "%s epoch %d: directed MAP %.4f +- %.4f (%lld nodes), mean rank %.2f\n",
                       emb::model_name(m), ep + 1, rd.map, rd.map_se, static_cast<long long>(rd.n_nodes), rd.mean_rank);
        }
      }
      if (out_of_budget) {
        std::fprintf(stderr, "%s: CPU budget of %.0f s reached after epoch %d\n", emb::model_name(m), a.cpu_budget, ep + 1);
        epochs_run = ep + 1;
        break;
      }
    }
    if (a.diagnose) diagnose_directed(g, e, eval_nodes);
    const double cpu = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
    std::fprintf(stderr, "%s: training %.1f s wall, %.1f s CPU (all threads, with --eval-every evaluations)\n",
                 emb::model_name(m), secs, cpu);
    const emb::Reconstruction r = evaluate(emb::Relation::symmetric);
    const emb::Reconstruction rd = evaluate(emb::Relation::directed);
    if (!eval_nodes.empty())
      std::fprintf(stderr, "%s: MAP on %lld sampled nodes %.4f +- %.4f (standard error)\n", emb::model_name(m),
                   static_cast<long long>(r.n_nodes), r.map, r.map_se);
    char line[256];
    std::snprintf(line, sizeof line, "| %-8s | %-5s | %3lld | %6d | %.4f | %9.2f | %.4f | %9.2f | %7.3f | %9.0f |",
                  emb::model_name(m), emb::optimizer_name(a.opt.optimizer), static_cast<long long>(a.opt.dim),
                  epochs_run, r.map, r.mean_rank, rd.map, rd.mean_rank, secs / epochs_run,
                  static_cast<double>(edges_done) / secs);
    std::printf("%s\n", line);
    std::fflush(stdout);
    if (!a.svg.empty() && a.opt.dim == 2) {
      const std::string path = models.size() > 1 ? std::string(emb::model_name(m)) + "_" + a.svg : a.svg;
      draw_disk(e, g, path);
      std::fprintf(stderr, "wrote %s\n", path.c_str());
    }
  }
  return 0;
} catch (const std::exception& ex) {
  std::fprintf(stderr, "poincare_embeddings: %s\n", ex.what());
  return 1;
}
