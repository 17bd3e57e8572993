// Tests for hyplora/io/wordnet.hpp: counts and closures of WordNet 3.0, gloss parsing, and
// malformed in-memory input.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>

#include "hyplora/io/wordnet.hpp"

namespace io_test_wordnet {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace wn = hyplora::wordnet;

namespace {

bool have_wordnet() {
  return std::filesystem::exists(std::string(wn::Database::default_dir) + "/data.noun");
}

// Parsed once and shared by every test case (parsing all four files takes about a second).
const wn::Database& database() {
  static const std::unique_ptr<wn::Database> db = std::make_unique<wn::Database>();
  return *db;
}

bool contains(const std::vector<wn::SynsetId>& v, wn::SynsetId x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// A two-synset noun file whose offsets are the real byte offsets, plus an index for it.
const char* const kNounData =
    "  1 license header line\n"
    "  2 another one\n"
    "00000100 03 n 01 Entity 0 001 ~ 00000200 n 0000 | that which exists; \"an entity\"\n"
    "00000200 05 n 02 dog 0 domestic_dog 1 001 @ 00000100 n 0000 | a member of the genus "
    "Canis; \"the dog barked all night\"; \"a dog's life\"\n";
const char* const kNounIndex =
    "  1 license\n"
    "dog n 1 1 @ 1 1 00000200\n"
    "domestic_dog n 1 1 @ 1 0 00000200\n"
    "entity n 1 1 ~ 1 0 00000100\n";

wn::Database::Texts noun_texts(std::string_view data, std::string_view index = kNounIndex) {
  wn::Database::Texts t;
  t.data[0] = data;
  t.index[0] = index;
  return t;
}

// The io_error message of parsing `data` as data.noun, or "" if it parsed.
std::string noun_error(const std::string& data) {
  try {
    (void)wn::Database::from_text(noun_texts(data));
  } catch (const hyplora::io_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("split_gloss separates the definition from quoted examples") {
  const wn::Gloss g = wn::split_gloss("a small dog; kept as a pet; \"she has a beagle\"; \"woof\"");
  CHECK(g.definition == "a small dog; kept as a pet");
  REQUIRE(g.examples.size() == 2);
  CHECK(g.examples[0] == "she has a beagle");
  CHECK(g.examples[1] == "woof");
  const wn::Gloss only = wn::split_gloss("no examples here");
  CHECK(only.definition == "no examples here");
  CHECK(only.examples.empty());
  const wn::Gloss open = wn::split_gloss("def; \"unclosed example");
  CHECK(open.definition == "def");
  REQUIRE(open.examples.size() == 1);
  CHECK(open.examples[0] == "unclosed example");
  CHECK(wn::split_gloss("").definition.empty());
}

TEST_CASE("in-memory database: parsing, names, pointers, hypernym graph") {
  const wn::Database db = wn::Database::from_text(noun_texts(kNounData));
  REQUIRE(db.size() == 2);
  CHECK(db.count(wn::Pos::noun) == 2);
  CHECK(db.count(wn::Pos::verb) == 0);
  const wn::Synset& dog = db.synset("dog.n.01");
  CHECK(dog.offset == 200);
  CHECK(dog.lex_filenum == 5);
  CHECK(dog.ss_type == 'n');
  REQUIRE(dog.words.size() == 2);
  CHECK(dog.words[1].lemma == "domestic_dog");
  CHECK(dog.words[1].lex_id == 1);
  REQUIRE(dog.pointers.size() == 1);
  CHECK(dog.pointers[0].symbol == "@");
  CHECK(dog.pointers[0].semantic());
  CHECK(dog.definition == "a member of the genus Canis");
  REQUIRE(dog.examples.size() == 2);
  CHECK(dog.examples[1] == "a dog's life");
  CHECK(dog.line == 4);
  // The first word is lowercased for the name: "Entity" -> entity.n.01.
  const wn::SynsetId e = db.id("entity.n.01");
  CHECK(db.hypernyms(db.id("dog.n.01")) == std::vector<wn::SynsetId>{e});
  CHECK(db.closure_of("entity.n.01").size() == 2);
  CHECK(db.closure_edges(db.closure_of("entity.n.01")).size() == 1);
  CHECK(db.depth(db.id("dog.n.01")) == 1);
  CHECK(db.unresolved_pointers() == 0);
  CHECK(db.lookup("Domestic_Dog", wn::Pos::noun) == std::vector<wn::SynsetId>{db.id("dog.n.01")});
  CHECK_FALSE(db.find("cat.n.01"));
  CHECK_THROWS_AS(db.id("cat.n.01"), hyplora::value_error);
  CHECK_THROWS_AS(db[7], hyplora::value_error);
}

TEST_CASE("synsets missing from the index get sense numbers after the listed ones") {
  const wn::Database db = wn::Database::from_text(noun_texts(kNounData, ""));
  CHECK(db.find("entity.n.01"));
  CHECK(db.find("dog.n.01"));
}

TEST_CASE("a hypernym cycle in malformed input terminates") {
  const std::string data =
      "00000001 03 n 01 a 0 001 @ 00000002 n 0000 | a\n"
      "00000002 03 n 01 b 0 001 @ 00000001 n 0000 | b\n";
  const wn::Database db = wn::Database::from_text(noun_texts(data, ""));
  const wn::SynsetId a = db.id("a.n.01");
  CHECK(db.ancestors(a) == std::vector<wn::SynsetId>{db.id("b.n.01")});
  CHECK(db.depth(a) == wn::no_synset);
  CHECK(db.closure_of("a.n.01").size() == 2);
}

TEST_CASE("malformed lines raise io_error naming the file and line") {
  const std::string good = "00000100 03 n 01 entity 0 000 | gloss\n";
  CHECK(noun_error(good).empty());
  struct Case {
    const char* line;
    const char* says;
  };
  const Case cases[] = {
      {"00000100", "lex_filenum"},                                 // truncated
      {"00000100 03", "ss_type"},                                  // truncated
      {"00000100 03 n 01 entity", "lex_id"},                       // truncated after a word
      {"00000100 03 n 01 entity 0 000", "'|'"},                    // no gloss separator
      {"0000x100 03 n 01 entity 0 000 | g", "synset_offset"},      // bad number
      {"-0000100 03 n 01 entity 0 000 | g", "synset_offset"},      // sign
      {"99999999999999999999 03 n 01 e 0 000 | g", "synset_offset"},  // overflow
      {"00000100 100 n 01 entity 0 000 | g", "lex_filenum"},       // out of range
      {"00000100 03 v 01 entity 0 000 | g", "ss_type"},            // verb in data.noun
      {"00000100 03 n 00 entity 0 000 | g", "w_cnt"},              // no words
      {"00000100 03 n zz entity 0 000 | g", "w_cnt"},              // not hex
      {"00000100 03 n 03 entity 0 000 | g", "'|'"},                // word count beyond the line
      {"00000100 03 n 01 entity 0 005 @ 00000100 n 0000 | g", "pointer"},  // pointers beyond
      {"00000100 03 n 01 entity 0 001 @ 00000100 q 0000 | g", "pointer pos"},
      {"00000100 03 n 01 entity 0 001 @ 00000100 n 00 | g", "source/target"},
      {"00000100 03 n 01 entity 0 001 @ 00000100 n 0x00 | g", "source/target"},
      {"00000100 03 n 01 entity 0 001 @ 00000100 n 0900 | g", "source word"},
      {"00000100 03 n 01 entity 0 1000 | g", "p_cnt"},
      {"00000100 03 n 01 entity 0 000 gloss without bar", "'|'"},
      {" 00000100 03 n 01 entity 0 000 | g", "synset_offset"},      // one leading space
  };
  for (const Case& c : cases) {
    const std::string line = c.line;
    CAPTURE(line);
    const std::string msg = noun_error(good + c.line + "\n");
    CHECK(msg.find("data.noun:2:") != std::string::npos);
    CHECK(msg.find(c.says) != std::string::npos);
  }
  // Duplicate offsets and duplicate names.
  CHECK(noun_error(good + good).find("duplicate synset_offset") != std::string::npos);
  // Index errors.
  const auto index_error = [](const std::string& index) -> std::string {
    try {
      (void)wn::Database::from_text(noun_texts("", index));
    } catch (const hyplora::io_error& e) {
      return e.what();
    }
    return "";
  };
  CHECK(index_error("dog n 1 0 1 0 00000200\n").empty());
  CHECK(index_error("dog n 2 0 2 0 00000200\n").find("index.noun:1:") != std::string::npos);
  CHECK(index_error("dog v 1 0 1 0 00000200\n").find("pos") != std::string::npos);
  CHECK(index_error("dog n 1 0 2 0 00000200\n").find("sense_cnt") != std::string::npos);
  CHECK(index_error("dog n 1 0 1 0 00000200 7\n").find("trailing") != std::string::npos);
  CHECK(index_error("dog n 1 3 @ 1 0 00000200\n").find("index.noun:1:") != std::string::npos);
  CHECK(index_error("dog n 1 0 1 0 00000200\ndog n 1 0 1 0 00000200\n").find("duplicate") !=
        std::string::npos);
  // Verb frames.
  wn::Database::Texts vt;
  const std::string verb_ok = "00000100 29 v 01 bark 0 000 01 + 02 00 | g\n";
  vt.data[1] = verb_ok;
  CHECK(wn::Database::from_text(vt).synset("bark.v.01").frames.size() == 1);
  const std::string verb_bad = "00000100 29 v 01 bark 0 000 02 + 02 00 | g\n";
  vt.data[1] = verb_bad;
  CHECK_THROWS_AS(wn::Database::from_text(vt), hyplora::io_error);
}

TEST_CASE("every prefix of a valid line is either valid or an io_error") {
  const std::string line =
      "00000200 05 n 02 dog 0 domestic_dog 1 001 @ 00000100 n 0000 | a member; \"ex\"";
  for (std::size_t n = 0; n <= line.size(); ++n) {
    CAPTURE(n);
    try {
      (void)wn::Database::from_text(noun_texts(line.substr(0, n), ""));
    } catch (const hyplora::io_error&) {
    }
  }
  CHECK(noun_error(line + "\n").empty());
}

TEST_CASE("a missing directory says which package to install") {
  try {
    wn::Database db("/nonexistent/wordnet/dir");
    FAIL("expected io_error");
  } catch (const hyplora::io_error& e) {
    CHECK(std::string(e.what()).find("install the Debian package wordnet-base") !=
          std::string::npos);
  }
}

TEST_CASE("WordNet 3.0 from /usr/share/wordnet") {
  if (!have_wordnet()) {
    MESSAGE("skipped: /usr/share/wordnet not found (apt-get install wordnet-base)");
    return;
  }
  const wn::Database& db = database();

  SUBCASE("synset counts per part of speech") {
    CHECK(db.count(wn::Pos::noun) == 82115);
    CHECK(db.count(wn::Pos::verb) == 13767);
    CHECK(db.count(wn::Pos::adj) == 18156);
    CHECK(db.count(wn::Pos::adv) == 3621);
    CHECK(db.size() == 82115 + 13767 + 18156 + 3621);
    CHECK(db.unresolved_pointers() == 0);
    const auto satellites = std::count_if(db.synsets().begin(), db.synsets().end(),
                                          [](const wn::Synset& s) { return s.ss_type == 's'; });
    CHECK(satellites == 10693);
  }

  SUBCASE("names follow the sense order of the index") {
    CHECK(db.synset("mammal.n.01").offset == 1861778);
    CHECK(db.synset("dog.n.01").offset == 2084071);
    CHECK(db.synset("dog.n.02").offset == 10114209);  // found through the index...
    CHECK(db.synset("dog.n.02").name == "frump.n.01");  // ...but named by its first word
    CHECK_FALSE(db.find("dog.n.08"));
    CHECK_FALSE(db.find("dog.x.01"));
    CHECK_FALSE(db.find("dog.n.0x"));
    CHECK(db.lookup("dog", wn::Pos::noun).size() == 7);
    CHECK(db.find("tusker.n.01"));
    CHECK(db.find("female_mammal.n.01"));
    CHECK(db.synset("galore.s.01").words[0].marker == "ip");
    CHECK(db.synset("run.v.01").pos == wn::Pos::verb);
    CHECK(db.synset("quickly.r.01").pos == wn::Pos::adv);
  }

  SUBCASE("glosses") {
    const wn::Synset& whale = db.synset("whale.n.02");
    CHECK(whale.definition ==
          "any of the larger cetacean mammals having a streamlined body and breathing through a "
          "blowhole on the head");
    CHECK(whale.examples.empty());
    const wn::Synset& dog = db.synset("dog.n.01");
    CHECK(dog.definition.rfind("a member of the genus Canis", 0) == 0);
    REQUIRE(dog.examples.size() == 1);
    CHECK(dog.examples[0] == "the dog barked all night");
    const wn::Synset& abounding = db.synset("abounding.s.01");
    CHECK(abounding.definition == "existing in abundance");
    CHECK(abounding.examples.size() >= 2);
    CHECK(abounding.examples[0] == "abounding confidence");
  }

  SUBCASE("hypernyms include instance hypernyms") {
    const wn::SynsetId dog = db.id("dog.n.01");
    CHECK(contains(db.hypernyms(dog), db.id("canine.n.02")));
    CHECK(contains(db.ancestors(dog), db.id("mammal.n.01")));
    CHECK(contains(db.ancestors(dog), db.id("entity.n.01")));
    // Instance hypernym ('@i'): mississippi.n.01 (the river) is an instance of river.n.01.
    CHECK(contains(db.hypernyms(db.id("mississippi.n.01")), db.id("river.n.01")));
    CHECK(db.depth(db.id("entity.n.01")) == 0);
    CHECK(db.hypernyms(db.id("run.v.01")).empty());
    for (wn::SynsetId h : db.hypernyms(dog)) CHECK(contains(db.hyponyms(h), dog));
  }

  SUBCASE("the mammal closure (Nickel & Kiela 2017)") {
    const std::vector<wn::SynsetId> all = db.closure_of("mammal.n.01");
    CHECK(all.size() == 1182);
    const std::vector<wn::SynsetId> mammals =
        db.closure_of("mammal.n.01", {"tusker.n.01", "female_mammal.n.01"});
    CHECK(mammals.size() == 1180);
    CHECK_FALSE(contains(mammals, db.id("tusker.n.01")));
    CHECK(contains(mammals, db.id("dog.n.01")));
    const wn::SynsetId m = db.id("mammal.n.01");
    for (wn::SynsetId s : mammals) {
      if (s != m) CHECK(contains(db.ancestors(s), m));
    }
    // 6,540 transitive (child, ancestor) edges with '@' and '@i', as Nickel & Kiela report.
    const auto edges = db.closure_edges(mammals);
    CHECK(edges.size() == 6540);
    for (const auto& [c, a] : edges) CHECK(c != a);
  }

  SUBCASE("the noun closure") {
    const std::vector<wn::SynsetId> nouns = db.closure_of("entity.n.01");
    CHECK(nouns.size() == 82115);
    // 743,241 transitive edges, no self loops (Nickel & Kiela report 743,241 too).
    CHECK(db.closure_edges(nouns).size() == 743241);
  }
}

}  // namespace io_test_wordnet
