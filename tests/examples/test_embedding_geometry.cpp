// Tests for examples/embedding_geometry: the analysis on a small synthetic checkpoint (a
// safetensors file written here) and a synthetic text with known byte frequencies.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "../../examples/embedding_geometry/geometry.hpp"

namespace examples_test_embedding_geometry {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace geom = hyplora::examples::geom;
namespace analysis = hyplora::analysis;
using hyplora::Index;
using hyplora::MatrixR;

namespace {

// 30 letters with counts ⌊6000 / r^1.3⌋ (r = 1..30), shuffled into documents of 40 bytes
// separated by '\n' (so '\n' occurs too).
std::string synthetic_text() {
  std::string bytes;
  for (int r = 1; r <= 30; ++r) {
    const auto c = static_cast<std::size_t>(6000.0 / std::pow(static_cast<double>(r), 1.3));
    bytes.append(c, static_cast<char>('A' + r - 1 + (r > 26 ? 6 : 0)));  // skips [\]^_`
  }
  std::mt19937_64 rng(3);
  std::shuffle(bytes.begin(), bytes.end(), rng);
  std::string text;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    text += bytes[i];
    if (i % 40 == 39) text += '\n';
  }
  return text;
}

// Row v: a random unit direction times 1/log(2 + count_v) (frequent bytes nearer the origin).
MatrixR<double> norm_by_frequency(const std::vector<std::int64_t>& counts, Index C) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> N(0.0, 1.0);
  MatrixR<double> E(geom::byte_vocab, C);
  for (Index v = 0; v < E.rows(); ++v) {
    for (Index c = 0; c < C; ++c) E(v, c) = N(rng);
    E.row(v) *= 1.0 / (E.row(v).norm() * std::log(2.0 + static_cast<double>(counts[static_cast<std::size_t>(v)])));
  }
  return E;
}

}  // namespace

TEST_CASE("byte counts, frequency order and groups") {
  const std::string text = synthetic_text();
  const auto counts = geom::byte_counts(text);
  REQUIRE(counts.size() == 256);
  std::int64_t total = 0;
  for (auto c : counts) total += c;
  CHECK(total == static_cast<std::int64_t>(text.size()));
  CHECK(counts['A'] == 6000);
  const auto order = geom::by_frequency(counts);
  CHECK(order.size() == 31);  // 30 letters and '\n'
  for (std::size_t i = 1; i < order.size(); ++i)
    CHECK(counts[static_cast<std::size_t>(order[i - 1])] >= counts[static_cast<std::size_t>(order[i])]);
  const auto groups = geom::frequency_groups(counts, 8);
  REQUIRE(groups.size() == 3);
  std::set<std::int64_t> seen;
  for (const auto& g : groups) {
    CHECK(g.ids.size() == 8);
    for (auto id : g.ids) CHECK(seen.insert(id).second);  // disjoint
  }
  CHECK(groups[0].ids.front() == order.front());
  CHECK(groups[2].ids.back() == order.back());
  // Few distinct bytes: the groups shrink to stay disjoint; too few is an error.
  CHECK(geom::frequency_groups(geom::byte_counts("aaabbc"), 8)[0].ids.size() == 1);
  CHECK_THROWS_AS(geom::frequency_groups(geom::byte_counts("aab"), 8), hyplora::value_error);
  CHECK_THROWS_AS(geom::frequency_groups(counts, 0), hyplora::value_error);
}

TEST_CASE("documents become prompts; short ones are skipped") {
  const auto p = geom::document_prompts("abcdefgh\nab\n\nxyzxyzxyz", 10, 5);
  REQUIRE(p.size() == 2);
  CHECK(p[0].size() == 8);
  CHECK(p[0][0] == 'a');
  CHECK(p[1].size() == 9);
  CHECK(geom::document_prompts("abcdefgh\nabcdefgh\nabcdefgh", 2, 1).size() == 2);
}

TEST_CASE("spearman: monotone maps give +-1, ties average") {
  CHECK(geom::spearman({1, 2, 3, 4}, {10, 20, 30, 40}) == doctest::Approx(1.0));
  CHECK(geom::spearman({1, 2, 3, 4}, {4, 3, 2, 1}) == doctest::Approx(-1.0));
  CHECK(geom::spearman({1, 1, 1}, {1, 2, 3}) == 0.0);
  // x = (1, 2, 2, 3) ranks (1, 2.5, 2.5, 4) against y ranks (1, 2, 3, 4): ρ = 4.5/√(4.5·5).
  CHECK(geom::spearman({1, 2, 2, 3}, {1, 2, 3, 4}) == doctest::Approx(4.5 / std::sqrt(4.5 * 5.0)));
}

TEST_CASE("analysis of a synthetic checkpoint") {
  const std::string text = synthetic_text();
  const auto counts = geom::byte_counts(text);
  const MatrixR<double> E0 = norm_by_frequency(counts, 8);

  // Round trip through a safetensors file, under the GPT example's tensor name.
  const auto path = std::filesystem::temp_directory_path() / "hyplora_test_embedding_geometry.safetensors";
  hyplora::io::SafetensorsWriter w;
  w.add(geom::default_tensor, E0, hyplora::io::Dtype::F64);
  w.add("model.wpe", MatrixR<double>::Zero(4, 8), hyplora::io::Dtype::F32);
  w.save(path);
  const auto f = hyplora::io::SafetensorsFile::load(path);
  const MatrixR<double> E = geom::load_embedding(f, geom::default_tensor);
  CHECK((E - E0).cwiseAbs().maxCoeff() == 0.0);
  try {
    (void)geom::load_embedding(f, "model.tok_emb");
    FAIL("expected io_error");
  } catch (const hyplora::io_error& ex) {
    const std::string m = ex.what();
    CHECK(m.find("model.tok_emb") != std::string::npos);
    CHECK(m.find("model.wpe") != std::string::npos);  // lists what is there
  }
  CHECK_THROWS_AS(geom::load_embedding(f, "model.wpe"), hyplora::shape_error);  // V = 4, not 256
  std::filesystem::remove(path);

  geom::Options opt;
  opt.prompts = 30;
  const geom::Report r = geom::analyse(E, text, opt);
  CHECK(r.vocab == 256);
  CHECK(r.width == 8);
  CHECK(r.distinct_bytes == 31);
  // The fit is the library's fit on the occurring counts (nothing else mixed in).
  std::vector<std::int64_t> occ;
  for (auto c : counts)
    if (c > 0) occ.push_back(c);
  const auto pl = analysis::fit_power_law(occ);
  CHECK(r.power_law.alpha == pl.alpha);
  CHECK(r.power_law.x_min == pl.x_min);
  CHECK(r.power_law.alpha > 1.0);
  // Norms fall strictly with frequency: ρ = −1 and the groups are ordered.
  CHECK(r.spearman == doctest::Approx(-1.0));
  REQUIRE(r.group_stats.size() == 3);
  CHECK(r.group_stats[0].norm_max < r.group_stats[1].norm_min);
  CHECK(r.group_stats[1].norm_max < r.group_stats[2].norm_min);
  CHECK(r.group_stats[0].freq_min > r.group_stats[1].freq_max);
  CHECK(r.group_stats[0].norm_mean == doctest::Approx(E.row('A').norm()).epsilon(1.0));  // same scale
  std::int64_t binned = 0;
  for (auto n : r.curve.n_tokens) binned += n;
  CHECK(binned == 31);  // only occurring bytes enter the curve
  // δ_rel: 30 prompts of 40 bytes, each within [0, 1].
  CHECK(r.n_prompts == 30);
  REQUIRE(r.delta.per_prompt.size() == 30);
  for (const auto& d : r.delta.per_prompt) {
    CHECK(d.relative >= 0.0);
    CHECK(d.relative <= 1.0);
  }
  CHECK(r.delta.mean_relative > 0.0);  // random directions in R^8 are not a tree

  // Plots: one dot per occurring byte.
  const std::string s1 = geom::rank_frequency_svg(r).str();
  const std::string s2 = geom::norm_frequency_svg(r).str();
  const auto dots = [](const std::string& s) {
    std::size_t n = 0;
    for (std::size_t p = s.find("<circle"); p != std::string::npos; p = s.find("<circle", p + 1)) ++n;
    return n;
  };
  CHECK(dots(s1) == 31);
  CHECK(dots(s2) == 31);
}

TEST_CASE("points on a line are 0-hyperbolic in every prompt") {
  MatrixR<double> E = MatrixR<double>::Zero(geom::byte_vocab, 4);
  for (Index v = 0; v < E.rows(); ++v) E(v, 0) = static_cast<double>(v) * 0.01;
  geom::Options opt;
  opt.prompts = 10;
  const geom::Report r = geom::analyse(E, synthetic_text(), opt);
  REQUIRE(r.n_prompts == 10);
  for (const auto& d : r.delta.per_prompt) CHECK(d.relative == 0.0);
  CHECK_THROWS_AS(geom::analyse(MatrixR<double>::Zero(255, 4), synthetic_text()), hyplora::shape_error);
  CHECK_THROWS_AS(geom::analyse(E, "ab"), hyplora::value_error);
}

}  // namespace examples_test_embedding_geometry
