// embedding_geometry — the paper's analysis of token-embedding geometry (HypLoRA §3) on the GPT
// example's byte embeddings: power law of byte frequencies, frequency vs embedding norm (table
// and binned curve), δ_rel per prompt, and two SVG plots. See docs/embeddings.md.
//   embedding_geometry --checkpoint hyplora-data/checkpoints/<tag>.safetensors
//       [--tensor model.wte] [--text FILE (default: the WordNet gloss corpus, train split)]
//       [--wordnet /usr/share/wordnet] [--prompts 200] [--top 8] [--bins 20] [--out-dir .]
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "../transformer/data/text_corpus.hpp"
#include "geometry.hpp"

namespace geom = hyplora::examples::geom;
namespace fs = std::filesystem;

namespace {

struct Args {
  std::string checkpoint, tensor = geom::default_tensor, text_file, out_dir = ".";
  std::string wordnet = hyplora::wordnet::Database::default_dir;
  geom::Options opt;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      std::puts("embedding_geometry --checkpoint PATH [--tensor model.wte] [--text FILE] [--wordnet DIR]\n"
                "    [--prompts 200] [--top 8] [--bins 20] [--out-dir .]\n"
                "Default text: the WordNet gloss corpus (train split) that hyplora-finetune pretrains on.");
      std::exit(0);
    }
    if (i + 1 >= argc) throw hyplora::value_error("missing value after " + k);
    const std::string v = argv[++i];
    if (k == "--checkpoint") a.checkpoint = v;
    else if (k == "--tensor") a.tensor = v;
    else if (k == "--text") a.text_file = v;
    else if (k == "--wordnet") a.wordnet = v;
    else if (k == "--prompts") a.opt.prompts = std::stoul(v);
    else if (k == "--top") a.opt.top = std::stol(v);
    else if (k == "--bins") a.opt.n_bins = std::stol(v);
    else if (k == "--out-dir") a.out_dir = v;
    else throw hyplora::value_error("unknown option " + k);
  }
  if (a.checkpoint.empty()) throw hyplora::value_error("--checkpoint PATH is required (see --help)");
  return a;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw hyplora::io_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) try {
  const Args a = parse(argc, argv);
  const auto file = hyplora::io::SafetensorsFile::load(a.checkpoint);
  const hyplora::MatrixR<double> E = geom::load_embedding(file, a.tensor);
  std::string text;
  if (!a.text_file.empty()) {
    text = read_file(a.text_file);
  } else {
    std::fprintf(stderr, "loading WordNet glosses from %s ...\n", a.wordnet.c_str());
    const hyplora::wordnet::Database db(a.wordnet);
    text = hyplora::examples::make_text_corpus(db).train;  // the pretraining text (same default split)
  }
  const geom::Report r = geom::analyse(E, text, a.opt);

  std::printf("embedding %s: (%lld, %lld); text: %lld bytes, %lld distinct\n", a.tensor.c_str(),
              static_cast<long long>(r.vocab), static_cast<long long>(r.width),
              static_cast<long long>(r.text_bytes), static_cast<long long>(r.distinct_bytes));
  std::printf("power law of byte frequencies (Eq. (242)-(247)): gamma = %.3f +- %.3f, x_min = %lld, KS = %.3f, "
              "tail n = %lld\n", r.power_law.alpha, r.power_law.sigma, static_cast<long long>(r.power_law.x_min),
              r.power_law.ks, static_cast<long long>(r.power_law.n_tail));
  std::printf("Spearman rank correlation of frequency and norm (occurring bytes): %+.3f\n\n", r.spearman);
  std::printf("| group | frequency mean [min ~ max] | norm mean [min ~ max] |\n|---|---|---|\n");
  for (const auto& g : r.group_stats)
    std::printf("| %s | %s | %s |\n", g.name.c_str(),
                hyplora::analysis::format_mean_range(g.freq_mean, g.freq_min, g.freq_max, 0).c_str(),
                hyplora::analysis::format_mean_range(g.norm_mean, g.norm_min, g.norm_max, 3).c_str());
  std::printf("\nbinned curve (Eq. (251)): norm bin -> mean frequency (tokens)\n");
  for (std::size_t b = 0; b < r.curve.mean_frequency.size(); ++b) {
    if (r.curve.n_tokens[b] == 0) continue;
    std::printf("  [%.3f, %.3f)  %12.1f  (%lld)\n", r.curve.edges[b], r.curve.edges[b + 1], r.curve.mean_frequency[b],
                static_cast<long long>(r.curve.n_tokens[b]));
  }
  std::printf("\ndelta_rel (base point, per prompt, Eq. (238)) over %zu documents: %.3f +- %.3f\n", r.n_prompts,
              r.delta.mean_relative, r.delta.std_relative);
  fs::create_directories(a.out_dir);
  const std::string p1 = (fs::path(a.out_dir) / "byte_rank_frequency.svg").string();
  const std::string p2 = (fs::path(a.out_dir) / "norm_vs_frequency.svg").string();
  geom::rank_frequency_svg(r).save(p1);
  geom::norm_frequency_svg(r).save(p2);
  std::printf("wrote %s, %s\n", p1.c_str(), p2.c_str());
  return 0;
} catch (const std::exception& ex) {
  std::fprintf(stderr, "embedding_geometry: %s\n", ex.what());
  return 1;
}
