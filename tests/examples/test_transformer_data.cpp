// Tests for the transformer example's data generators (examples/transformer/data/).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>

#include "../../examples/transformer/data/arithmetic_tasks.hpp"
#include "../../examples/transformer/data/common.hpp"
#include "../../examples/transformer/data/hierarchy_tasks.hpp"
#include "../../examples/transformer/data/text_corpus.hpp"

namespace examples_test_transformer_data {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace ex = hyplora::examples;
namespace wn = hyplora::wordnet;

namespace {

bool have_wordnet() {
  return std::filesystem::exists(std::string(wn::Database::default_dir) + "/data.noun");
}

const wn::Database& database() {
  static const std::unique_ptr<wn::Database> db = std::make_unique<wn::Database>();
  return *db;
}

// Recomputes a word problem's answer from its text alone.
long solve(const std::string& prompt) {
  static const std::regex whole(
      R"(^([A-Z][a-z]+) has (\d+) ([a-z]+)\. (He|She) (.*)\. How many ([a-z]+) does (he|she) have now\?$)");
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_match(prompt, m, whole), prompt);
  CHECK(m[3] == m[6]);
  long total = std::stol(m[2]);
  // Operations are separated by ", " and a final " and ".
  std::string ops = m[5];
  std::vector<std::string> parts;
  for (std::size_t pos = 0;;) {
    const std::size_t comma = ops.find(", ", pos);
    const std::size_t and_ = ops.find(" and ", pos);
    const std::size_t cut = std::min(comma, and_);
    parts.push_back(ops.substr(pos, cut - pos));
    if (cut == std::string::npos) break;
    pos = cut + (cut == comma ? 2 : 5);
  }
  CHECK(parts.size() >= 2);
  CHECK(parts.size() <= 3);
  static const std::regex add(R"(^(buys|finds|gets) (\d+) more( from a friend)?$)");
  static const std::regex sub(R"(^(gives away|loses|sells) (\d+)$)");
  static const std::regex mul(R"(^buys (\d+) bags with (\d+) ([a-z]+) each$)");
  for (const std::string& p : parts) {
    std::smatch o;
    if (std::regex_match(p, o, add)) {
      total += std::stol(o[2]);
    } else if (std::regex_match(p, o, sub)) {
      total -= std::stol(o[2]);
    } else if (std::regex_match(p, o, mul)) {
      total += std::stol(o[1]) * std::stol(o[2]);
    } else {
      FAIL("unparsed operation: " << p);
    }
    CHECK(total >= 0);
  }
  return total;
}

std::set<std::string> prompts(const std::vector<ex::Example>& v) {
  std::set<std::string> s;
  for (const auto& e : v) s.insert(e.prompt);
  return s;
}

}  // namespace

TEST_CASE("Rng is deterministic and below() stays in range") {
  ex::Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const std::uint64_t x = a.next();
    CHECK(x == b.next());
    differs = differs || x != c.next();
  }
  CHECK(differs);
  std::vector<int> hist(7, 0);
  for (int i = 0; i < 7000; ++i) {
    const std::uint64_t r = a.below(7);
    REQUIRE(r < 7);
    ++hist[static_cast<std::size_t>(r)];
  }
  for (int h : hist) CHECK(h > 800);  // expected 1000 each; 800 is > 6 sigma away
  CHECK_THROWS_AS(a.below(0), hyplora::value_error);
  CHECK_THROWS_AS(a.between(3, 2), hyplora::value_error);
}

TEST_CASE("arithmetic tasks: deterministic, disjoint, correct") {
  ex::ArithmeticOptions opt;
  opt.train = 500;
  opt.test = 100;
  opt.seed = 7;
  const ex::TaskSplit s = ex::make_arithmetic_tasks(opt);
  CHECK(s.train.size() == 500);
  CHECK(s.test.size() == 100);
  CHECK(s == ex::make_arithmetic_tasks(opt));
  opt.seed = 8;
  CHECK(s != ex::make_arithmetic_tasks(opt));

  const std::set<std::string> tr = prompts(s.train), te = prompts(s.test);
  CHECK(tr.size() == s.train.size());
  CHECK(te.size() == s.test.size());
  for (const std::string& p : te) CHECK(tr.count(p) == 0);

  for (const auto* v : {&s.train, &s.test}) {
    for (const ex::Example& e : *v) {
      CAPTURE(e.prompt);
      REQUIRE(e.answer.size() >= 2);
      CHECK(e.answer[0] == ' ');
      CHECK(e.answer == " " + std::to_string(solve(e.prompt)));
    }
  }
  ex::ArithmeticOptions bad;
  bad.max_operand = 0;
  CHECK_THROWS_AS(ex::make_arithmetic_tasks(bad), hyplora::value_error);
}

TEST_CASE("TSV cache round trip, escaping, atomic write") {
  ex::TaskSplit s;
  s.train = {{"tab\there", " a\\b"}, {"new\nline\r", ""}};
  s.test = {{"plain", " 5"}};
  CHECK(ex::from_tsv(ex::to_tsv(s)) == s);

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / "hyplora_test_transformer_data";
  std::filesystem::remove_all(dir);
  int calls = 0;
  const auto gen = [&] {
    ++calls;
    return s;
  };
  CHECK(ex::cached_task(dir / "sub", "toy", gen) == s);
  CHECK(ex::cached_task(dir / "sub", "toy", gen) == s);
  CHECK(calls == 1);  // the second call read the file
  std::size_t files = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir / "sub")) {
    CHECK(f.path().filename() == "toy.tsv");  // no temporary left behind
    ++files;
  }
  CHECK(files == 1);

  CHECK_THROWS_AS(ex::from_tsv("not a cache\n"), hyplora::io_error);
  CHECK_THROWS_AS(ex::from_tsv(""), hyplora::io_error);
  const std::string h = std::string(ex::task_cache_header) + "\n";
  CHECK_THROWS_AS(ex::from_tsv(h + "train\tonly two\n"), hyplora::io_error);
  CHECK_THROWS_AS(ex::from_tsv(h + "valid\ta\tb\n"), hyplora::io_error);
  CHECK_THROWS_AS(ex::from_tsv(h + "train\ta\\q\tb\n"), hyplora::io_error);
  CHECK_THROWS_AS(ex::from_tsv(h + "train\ta\tb\\\n"), hyplora::io_error);
  CHECK_THROWS_AS(ex::load_tsv(dir / "missing.tsv"), hyplora::io_error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("WordNet-based generators") {
  if (!have_wordnet()) {
    MESSAGE("skipped: /usr/share/wordnet not found (apt-get install wordnet-base)");
    return;
  }
  const wn::Database& db = database();

  SUBCASE("text corpus") {
    ex::CorpusOptions opt;
    opt.seed = 1;
    const ex::TextCorpus c = ex::make_text_corpus(db, opt);
    CHECK(c.train_documents + c.validation_documents == db.size());
    CHECK(c.validation_documents == static_cast<std::size_t>(0.05 * db.size() + 0.5));
    CHECK(std::count(c.train.begin(), c.train.end(), '\n') ==
          static_cast<std::ptrdiff_t>(c.train_documents));
    CHECK(std::count(c.validation.begin(), c.validation.end(), '\n') ==
          static_cast<std::ptrdiff_t>(c.validation_documents));
    const std::string dog = ex::gloss_document(db.synset("dog.n.01"));
    CHECK(dog.rfind("dog, domestic dog, Canis familiaris: a member of the genus Canis", 0) == 0);
    CHECK(dog.find("\"the dog barked all night\"") != std::string::npos);
    // Each document lands on exactly one side.
    CHECK((c.train.find(dog + "\n") != std::string::npos) !=
          (c.validation.find(dog + "\n") != std::string::npos));
    ex::CorpusOptions small = opt;
    small.max_documents = 2000;
    small.adjectives = small.adverbs = small.verbs = false;
    const ex::TextCorpus a = ex::make_text_corpus(db, small);
    CHECK(a.train == ex::make_text_corpus(db, small).train);
    small.seed = 2;
    CHECK(a.train != ex::make_text_corpus(db, small).train);
    CHECK(a.train_documents + a.validation_documents == 2000);
    CHECK_THROWS_AS(ex::make_text_corpus(db, ex::CorpusOptions{0, 1.5}), hyplora::value_error);
  }

  SUBCASE("hierarchy tasks") {
    ex::HierarchyOptions opt;
    opt.seed = 3;
    const ex::HierarchyTasks t = ex::make_hierarchy_tasks(db, opt);
    REQUIRE(t.split.train.size() == t.train_items.size());
    REQUIRE(t.split.test.size() == t.test_items.size());
    CHECK(t.split.train.size() > 1000);
    CHECK(t.split.test.size() > 200);
    CHECK(t.split == ex::make_hierarchy_tasks(db, opt).split);
    ex::HierarchyOptions other = opt;
    other.seed = 4;
    CHECK(t.split != ex::make_hierarchy_tasks(db, other).split);

    std::set<wn::SynsetId> train_subjects, test_subjects;
    for (const auto& it : t.train_items) train_subjects.insert(it.subject);
    for (const auto& it : t.test_items) test_subjects.insert(it.subject);
    for (wn::SynsetId s : test_subjects) CHECK(train_subjects.count(s) == 0);

    const std::vector<wn::SynsetId> tree = db.closure_of(opt.root, opt.exclude);
    std::size_t yes = 0, no = 0, kind = 0;
    std::map<wn::SynsetId, std::vector<std::uint32_t>> yes_depths, no_depths;
    const auto check_items = [&](const std::vector<ex::HierarchyItem>& items,
                                 const std::vector<ex::Example>& exs) {
      for (std::size_t i = 0; i < items.size(); ++i) {
        const ex::HierarchyItem& it = items[i];
        const ex::Example& e = exs[i];
        CAPTURE(e.prompt);
        CHECK(std::binary_search(tree.begin(), tree.end(), it.subject));
        CHECK(std::binary_search(tree.begin(), tree.end(), it.object));
        const std::string subj = ex::hierarchy_lemma(db[it.subject]);
        CHECK(e.prompt.find(subj) != std::string::npos);
        const std::vector<wn::SynsetId> anc = db.ancestors(it.subject);
        const bool is_anc = std::binary_search(anc.begin(), anc.end(), it.object);
        if (it.kind == ex::HierarchyKind::kind_of) {
          ++kind;
          CHECK(e.prompt == ex::with_article(subj) + " is a kind of");
          const auto& h = db.hypernyms(it.subject);
          CHECK(std::find(h.begin(), h.end(), it.object) != h.end());
          CHECK(e.answer == " " + ex::hierarchy_lemma(db[it.object]));
          CHECK(e.answer.find('_') == std::string::npos);
        } else {
          CHECK(e.answer == (is_anc ? " yes" : " no"));
          (it.kind == ex::HierarchyKind::yes ? yes : no) += 1;
          CHECK(is_anc == (it.kind == ex::HierarchyKind::yes));
          auto& depths = it.kind == ex::HierarchyKind::yes ? yes_depths : no_depths;
          depths[it.subject].push_back(db.depth(it.object));
        }
      }
    };
    check_items(t.train_items, t.split.train);
    check_items(t.test_items, t.split.test);
    CHECK(kind > 300);
    // Per subject: as many " no" as " yes", each negative within one level of a positive's depth.
    CHECK(yes_depths.size() == no_depths.size());
    for (const auto& [subject, nd] : no_depths) {
      const std::vector<std::uint32_t>& yd = yes_depths[subject];
      CHECK(yd.size() == nd.size());
      for (std::uint32_t d : nd) {
        CHECK(std::any_of(yd.begin(), yd.end(), [d](std::uint32_t y) {
          return (d > y ? d - y : y - d) <= 1;
        }));
      }
    }
    REQUIRE(yes + no > 0);
    const double balance = static_cast<double>(yes) / static_cast<double>(yes + no);
    CHECK(balance == doctest::Approx(0.5).epsilon(0.05));
    CHECK(db.synset("beagle.n.01").name == "beagle.n.01");
    // The direct hypernym of beagle is hound.
    CHECK(ex::hierarchy_lemma(db[db.hypernyms(db.id("beagle.n.01"))[0]]) == "hound");

    ex::HierarchyOptions few = opt;
    few.max_subjects = 50;
    const ex::HierarchyTasks f = ex::make_hierarchy_tasks(db, few);
    std::set<wn::SynsetId> subjects;
    for (const auto& it : f.train_items) subjects.insert(it.subject);
    for (const auto& it : f.test_items) subjects.insert(it.subject);
    CHECK(subjects.size() == 50);
  }
}

}  // namespace examples_test_transformer_data
