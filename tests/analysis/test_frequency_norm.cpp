// Tests for include/hyplora/analysis/frequency_norm.hpp (docs/math.md §8.3).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include <hyplora/analysis/frequency_norm.hpp>

namespace analysis_test_frequency_norm {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {

namespace an = hyplora::analysis;
using hyplora::Index;
using hyplora::MatrixR;

// Eight tokens whose embedding rows have exact norms: 3-4-5, 6-8-10, 5-12-13 triangles.
MatrixR<double> small_table() {
  MatrixR<double> E(8, 2);
  E << 3, 4,    // id 0: norm 5
      0, 1,     // id 1: norm 1
      6, 8,     // id 2: norm 10
      5, 12,    // id 3: norm 13
      0, 2,     // id 4: norm 2
      -3, -4,   // id 5: norm 5
      0, 3,     // id 6: norm 3
      0, 9;     // id 7: norm 9 (never occurs)
  return E;
}
const std::vector<std::int64_t> kCounts{40, 7, 1, 2, 30, 10, 5, 0};

}  // namespace

TEST_CASE("embedding_norms: row norms in double") {
  const auto n = an::embedding_norms(small_table());
  const std::vector<double> expect{5, 1, 10, 13, 2, 5, 3, 9};
  REQUIRE(n.size() == 8);
  for (Index v = 0; v < 8; ++v) CHECK(n(v) == expect[static_cast<std::size_t>(v)]);
  const MatrixR<float> Ef = small_table().cast<float>();
  CHECK(an::embedding_norms(Ef)(3) == 13.0);
}

TEST_CASE("group table: mean [min ~ max] of frequency and norm") {
  const auto norms = an::embedding_norms(small_table());
  const std::vector<an::token_group> groups{
      {"function words", {0, 4, 5}},  // counts 40, 30, 10; norms 5, 2, 5
      {"content", {2, 3, 7}},         // counts 1, 2, 0;    norms 10, 13, 9
      {"single", {6}}};
  const auto t = an::group_frequency_norm(kCounts, norms, groups);
  REQUIRE(t.size() == 3);
  CHECK(t[0].name == "function words");
  CHECK(t[0].n == 3);
  CHECK(t[0].freq_mean == doctest::Approx(80.0 / 3.0));
  CHECK(t[0].freq_min == 10.0);
  CHECK(t[0].freq_max == 40.0);
  CHECK(t[0].norm_mean == 4.0);
  CHECK(t[0].norm_min == 2.0);
  CHECK(t[0].norm_max == 5.0);
  CHECK(t[1].freq_mean == 1.0);
  CHECK(t[1].freq_min == 0.0);
  CHECK(t[1].freq_max == 2.0);
  CHECK(t[1].norm_mean == doctest::Approx(32.0 / 3.0));
  CHECK(t[1].norm_min == 9.0);
  CHECK(t[1].norm_max == 13.0);
  CHECK(t[2].freq_mean == 5.0);
  CHECK(t[2].norm_min == t[2].norm_max);
  // The paper's finding, in miniature: the frequent group has the smaller norms.
  CHECK(t[0].norm_mean < t[1].norm_mean);
  CHECK(an::format_mean_range(t[0].freq_mean, t[0].freq_min, t[0].freq_max) ==
        "26.67 [10.00 ~ 40.00]");
}

TEST_CASE("binned norm -> frequency curve") {
  const auto norms = an::embedding_norms(small_table());
  // Seen tokens (count > 0): norms {5, 1, 10, 13, 2, 5, 3}; range [1, 13]; 4 bins of width 3:
  // [1,4): ids 1, 4, 6 -> counts 7, 30, 5;  [4,7): ids 0, 5 -> 40, 10;  [7,10): none;
  // [10,13]: ids 2, 3 -> 1, 2 (10 sits on the edge and goes right; 13 closes the last bin).
  const auto c = an::norm_frequency_binned(kCounts, norms, 4);
  REQUIRE(c.edges.size() == 5);
  CHECK(c.edges.front() == 1.0);
  CHECK(c.edges[1] == 4.0);
  CHECK(c.edges[3] == 10.0);
  CHECK(c.edges.back() == 13.0);
  CHECK(c.n_tokens == std::vector<std::int64_t>{3, 2, 0, 2});
  CHECK(c.mean_frequency[0] == doctest::Approx(42.0 / 3.0));
  CHECK(c.mean_frequency[1] == 25.0);
  CHECK(std::isnan(c.mean_frequency[2]));
  CHECK(c.mean_frequency[3] == 1.5);

  // With unseen tokens the range and the counts change: id 7 (norm 9, count 0) joins [7,10).
  const auto u = an::norm_frequency_binned(kCounts, norms, 4, true);
  CHECK(u.n_tokens == std::vector<std::int64_t>{3, 2, 1, 2});
  CHECK(u.mean_frequency[2] == 0.0);

  // Every seen token lands in exactly one bin, for many bin counts.
  for (const Index nb : {Index(1), Index(3), Index(7), Index(100)}) {
    const auto k = an::norm_frequency_binned(kCounts, norms, nb);
    std::int64_t total = 0;
    for (const auto x : k.n_tokens) total += x;
    CHECK(total == 7);
  }

  // Zero-width range: numpy's [x − ½, x + ½].
  const std::vector<std::int64_t> ones{1, 2};
  hyplora::VectorX<double> same(2);
  same << 2.0, 2.0;
  const auto z = an::norm_frequency_binned(ones, same, 2);
  CHECK(z.edges.front() == 1.5);
  CHECK(z.edges.back() == 2.5);
  CHECK(z.n_tokens == std::vector<std::int64_t>{0, 2});
}

TEST_CASE("frequency/norm input errors") {
  const auto norms = an::embedding_norms(small_table());
  const std::vector<std::int64_t> short_counts{1, 2, 3};
  CHECK_THROWS_AS(an::group_frequency_norm(short_counts, norms, {{"g", {0}}}), hyplora::shape_error);
  CHECK_THROWS_AS(an::group_frequency_norm(kCounts, norms, {{"g", {0, 8}}}), hyplora::value_error);
  CHECK_THROWS_AS(an::group_frequency_norm(kCounts, norms, {{"g", {1, 1}}}), hyplora::value_error);
  CHECK_THROWS_AS(an::group_frequency_norm(kCounts, norms, {{"g", {}}}), hyplora::value_error);
  std::vector<std::int64_t> neg = kCounts;
  neg[2] = -1;
  CHECK_THROWS_AS(an::norm_frequency_binned(neg, norms), hyplora::value_error);
  CHECK_THROWS_AS(an::norm_frequency_binned(kCounts, norms, 0), hyplora::value_error);
  const std::vector<std::int64_t> zeros(8, 0);
  CHECK_THROWS_AS(an::norm_frequency_binned(zeros, norms), hyplora::value_error);
}

}  // namespace analysis_test_frequency_norm
