// hyplora/io/wordnet.hpp — a reader for the WordNet 3.0 database files (format: `man 5 wndb`).
//
// Reads data.{noun,verb,adj,adv} and index.{noun,verb,adj,adv} from a directory (Debian's
// `wordnet-base` installs them in /usr/share/wordnet) or from in-memory text. The noun hypernym
// graph ('@' hypernym and '@i' instance-hypernym pointers) and its transitive closure are the
// hierarchies that hyperbolic embeddings are evaluated on (Nickel & Kiela 2017: the mammal
// closure, 1,180 nodes and 6,540 edges; the noun closure, 82,115 nodes and 743,241 edges).
//
// The parser is also a fuzz target: every malformed line throws hyplora::io_error naming the
// file and line; tokens are read through a bounds-checked cursor and numbers through
// std::from_chars with range checks, so no input can index out of range or overflow. Graph walks
// are iterative with visited marks, so a malformed hypernym cycle cannot recurse or loop forever.
#pragma once

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "hyplora/core/errors.hpp"

namespace hyplora {
namespace wordnet {

/// The four syntactic categories; satellite adjectives ('s') belong to `adj`.
enum class Pos : std::uint8_t { noun = 0, verb = 1, adj = 2, adv = 3 };

inline constexpr std::array<Pos, 4> all_pos{Pos::noun, Pos::verb, Pos::adj, Pos::adv};

/// 'n', 'v', 'a', 'r' — the letter index files and pointers use.
inline constexpr char pos_letter(Pos p) {
  constexpr char letters[4] = {'n', 'v', 'a', 'r'};
  return letters[static_cast<std::size_t>(p)];
}

/// "noun", "verb", "adj", "adv" — the suffix of data.<pos> and index.<pos>.
inline constexpr const char* pos_file_suffix(Pos p) {
  constexpr const char* names[4] = {"noun", "verb", "adj", "adv"};
  return names[static_cast<std::size_t>(p)];
}

/// The Pos of a letter 'n', 'v', 'a', 's' (satellite) or 'r'; nullopt for anything else.
inline std::optional<Pos> pos_from_letter(char c) {
  switch (c) {
    case 'n': return Pos::noun;
    case 'v': return Pos::verb;
    case 'a':
    case 's': return Pos::adj;
    case 'r': return Pos::adv;
    default: return std::nullopt;
  }
}

/// Position of a synset in Database::synsets().
using SynsetId = std::uint32_t;
inline constexpr SynsetId no_synset = std::numeric_limits<SynsetId>::max();

/// One word of a synset: `lemma` as the lexicographer entered it (case kept, '_' for spaces),
/// `marker` the adjective syntactic marker without parentheses ("p", "a", "ip") or empty.
struct Word {
  std::string lemma;
  std::string marker;
  std::uint8_t lex_id = 0;
};

/// `symbol target_offset pos source/target`. Word numbers are 1-based; 0/0 = semantic pointer.
struct Pointer {
  std::string symbol;
  std::uint32_t target_offset = 0;
  Pos target_pos = Pos::noun;
  std::uint8_t source_word = 0;
  std::uint8_t target_word = 0;
  SynsetId target = no_synset;  ///< resolved by Database; no_synset if the target is missing
  bool semantic() const { return source_word == 0 && target_word == 0; }
};

/// A generic verb frame `+ f_num w_num` (data.verb only); w_num 0 = all words.
struct Frame {
  std::uint8_t f_num = 0;
  std::uint8_t w_num = 0;
};

struct Synset {
  std::uint32_t offset = 0;       ///< byte offset in data.<pos>
  std::uint8_t lex_filenum = 0;   ///< lexicographer file, see lexnames(5WN)
  char ss_type = 'n';             ///< 'n', 'v', 'a', 's' or 'r'
  Pos pos = Pos::noun;
  std::vector<Word> words;
  std::vector<Pointer> pointers;
  std::vector<Frame> frames;
  std::string gloss;                  ///< the whole text after '|'
  std::string definition;             ///< the gloss before its first quoted example
  std::vector<std::string> examples;  ///< the quoted example sentences, quotes removed
  std::string name;                   ///< "mammal.n.01"; set by Database
  std::size_t line = 0;               ///< 1-based line in data.<pos>
};

/// One line of index.<pos>: the synsets of `lemma` in sense-number order.
struct IndexEntry {
  std::string lemma;
  Pos pos = Pos::noun;
  std::vector<std::string> pointer_symbols;
  std::uint32_t tagsense_cnt = 0;
  std::vector<std::uint32_t> offsets;
  std::size_t line = 0;
};

namespace detail {

/// "wordnet: <file>:<line>: <what>" as an io_error.
[[noreturn]] inline void fail(std::string_view file, std::size_t line, const std::string& what) {
  std::ostringstream s;
  s << "wordnet: " << file << ':' << line << ": " << what;
  throw io_error(s.str());
}

/// A bounds-checked walk over the space-separated tokens of one line.
class Cursor {
 public:
  Cursor(std::string_view text, std::string_view file, std::size_t line)
      : text_(text), file_(file), line_(line) {}

  bool at_end() {
    skip_spaces();
    return pos_ >= text_.size();
  }

  /// The next token; throws io_error naming `what` if the line has ended.
  std::string_view token(const char* what) {
    skip_spaces();
    if (pos_ >= text_.size()) fail(std::string("line ended where ") + what + " was expected");
    const std::size_t begin = pos_;
    while (pos_ < text_.size() && text_[pos_] != ' ') ++pos_;
    return text_.substr(begin, pos_ - begin);
  }

  /// The next token as an unsigned integer in [lo, hi], written in `base`.
  std::uint32_t number(const char* what, int base, std::uint32_t lo, std::uint32_t hi) {
    const std::string_view t = token(what);
    std::uint64_t v = 0;
    const char* first = t.data();
    const char* last = t.data() + t.size();
    const auto r = std::from_chars(first, last, v, base);
    if (r.ec != std::errc() || r.ptr != last || v < lo || v > hi) {
      std::ostringstream s;
      s << "bad " << what << " '" << t << "' (expected " << (base == 16 ? "hex" : "decimal")
        << " in [" << lo << ", " << hi << "])";
      fail(s.str());
    }
    return static_cast<std::uint32_t>(v);
  }

  /// Everything after the current position, without leading spaces.
  std::string_view rest() {
    skip_spaces();
    return text_.substr(std::min(pos_, text_.size()));
  }

  [[noreturn]] void fail(const std::string& what) const { detail::fail(file_, line_, what); }

 private:
  void skip_spaces() {
    while (pos_ < text_.size() && text_[pos_] == ' ') ++pos_;
  }

  std::string_view text_;
  std::string_view file_;
  std::size_t line_;
  std::size_t pos_ = 0;
};

/// Calls f(line_text, line_number) for each record line: strips '\r', skips the license header
/// (lines starting with two spaces) and empty lines.
template <class F>
void for_each_record(std::string_view text, F&& f) {
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty() || (line.size() >= 2 && line[0] == ' ' && line[1] == ' ')) continue;
    f(line, line_no);
  }
}

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace detail

/// A gloss split into its definition and its quoted example sentences.
struct Gloss {
  std::string definition;
  std::vector<std::string> examples;
};

/// Splits `a small dog; "she has a beagle"; "..."`: the definition is the text before the first
/// '"' without trailing "; ", the examples are the quoted spans (an unclosed quote runs to the
/// end). Text between or after quoted spans (an attribution like "- Shakespeare") is dropped.
inline Gloss split_gloss(std::string_view gloss) {
  Gloss g;
  const std::size_t q = gloss.find('"');
  std::string_view def = gloss.substr(0, q == std::string_view::npos ? gloss.size() : q);
  def = detail::trim(def);
  while (!def.empty() && (def.back() == ';' || def.back() == ' ')) def.remove_suffix(1);
  g.definition = std::string(def);
  std::size_t pos = q;
  while (pos != std::string_view::npos && pos < gloss.size()) {
    const std::size_t close = gloss.find('"', pos + 1);
    const std::size_t end = close == std::string_view::npos ? gloss.size() : close;
    const std::string_view ex = detail::trim(gloss.substr(pos + 1, end - pos - 1));
    if (!ex.empty()) g.examples.emplace_back(ex);
    if (close == std::string_view::npos) break;
    pos = gloss.find('"', close + 1);
  }
  return g;
}

/// Parses the text of data.<pos>. `file` names the source in error messages.
/// Throws io_error "<file>:<line>: ..." on the first malformed line.
inline std::vector<Synset> parse_data(std::string_view text, Pos pos, std::string_view file) {
  std::vector<Synset> out;
  std::unordered_map<std::uint32_t, std::size_t> seen;  // offset -> line, to reject duplicates
  detail::for_each_record(text, [&](std::string_view line, std::size_t line_no) {
    detail::Cursor c(line, file, line_no);
    Synset s;
    s.line = line_no;
    s.pos = pos;
    s.offset = c.number("synset_offset", 10, 0, 99999999);
    s.lex_filenum = static_cast<std::uint8_t>(c.number("lex_filenum", 10, 0, 99));
    const std::string_view type = c.token("ss_type");
    const std::optional<Pos> tp = type.size() == 1 ? pos_from_letter(type[0]) : std::nullopt;
    if (!tp || *tp != pos) {
      c.fail("ss_type '" + std::string(type) + "' does not belong in data." +
             pos_file_suffix(pos));
    }
    s.ss_type = type[0];
    const std::uint32_t w_cnt = c.number("w_cnt", 16, 1, 255);
    s.words.reserve(w_cnt);
    for (std::uint32_t i = 0; i < w_cnt; ++i) {
      Word w;
      std::string_view lemma = c.token("word");
      // Adjectives may carry a syntactic marker: "galore(ip)".
      if (lemma.size() > 2 && lemma.back() == ')') {
        const std::size_t open = lemma.rfind('(');
        if (open != std::string_view::npos && open > 0) {
          w.marker = std::string(lemma.substr(open + 1, lemma.size() - open - 2));
          lemma = lemma.substr(0, open);
        }
      }
      w.lemma = std::string(lemma);
      w.lex_id = static_cast<std::uint8_t>(c.number("lex_id", 16, 0, 15));
      s.words.push_back(std::move(w));
    }
    const std::uint32_t p_cnt = c.number("p_cnt", 10, 0, 999);
    s.pointers.reserve(p_cnt);
    for (std::uint32_t i = 0; i < p_cnt; ++i) {
      Pointer p;
      const std::string_view sym = c.token("pointer_symbol");
      if (sym == "|") c.fail("pointer count exceeds the pointers on the line");
      p.symbol = std::string(sym);
      p.target_offset = c.number("pointer synset_offset", 10, 0, 99999999);
      const std::string_view tpos = c.token("pointer pos");
      const std::optional<Pos> pp = tpos.size() == 1 ? pos_from_letter(tpos[0]) : std::nullopt;
      if (!pp) c.fail("bad pointer pos '" + std::string(tpos) + "'");
      p.target_pos = *pp;
      const std::string_view st = c.token("source/target");
      std::uint32_t src = 0, tgt = 0;
      if (st.size() != 4 ||
          std::from_chars(st.data(), st.data() + 2, src, 16).ptr != st.data() + 2 ||
          std::from_chars(st.data() + 2, st.data() + 4, tgt, 16).ptr != st.data() + 4) {
        c.fail("bad source/target '" + std::string(st) + "' (expected 4 hex digits)");
      }
      if (src > w_cnt) {
        c.fail("pointer source word " + std::to_string(src) + " > w_cnt " +
               std::to_string(w_cnt));
      }
      p.source_word = static_cast<std::uint8_t>(src);
      p.target_word = static_cast<std::uint8_t>(tgt);
      s.pointers.push_back(std::move(p));
    }
    if (pos == Pos::verb) {
      const std::uint32_t f_cnt = c.number("f_cnt", 10, 0, 99);
      for (std::uint32_t i = 0; i < f_cnt; ++i) {
        if (c.token("'+'") != "+") c.fail("verb frame does not start with '+'");
        Frame f;
        f.f_num = static_cast<std::uint8_t>(c.number("f_num", 10, 0, 99));
        f.w_num = static_cast<std::uint8_t>(c.number("w_num", 16, 0, 255));
        if (f.w_num > w_cnt) c.fail("verb frame word number > w_cnt");
        s.frames.push_back(f);
      }
    }
    const std::string_view bar = c.token("'|'");
    if (bar != "|") c.fail("expected '|' before the gloss, got '" + std::string(bar) + "'");
    s.gloss = std::string(detail::trim(c.rest()));
    Gloss g = split_gloss(s.gloss);
    s.definition = std::move(g.definition);
    s.examples = std::move(g.examples);
    const auto [it, fresh] = seen.emplace(s.offset, line_no);
    if (!fresh) {
      c.fail("duplicate synset_offset " + std::to_string(s.offset) + " (first on line " +
             std::to_string(it->second) + ")");
    }
    out.push_back(std::move(s));
  });
  return out;
}

/// Parses the text of index.<pos>. Throws io_error "<file>:<line>: ..." on a malformed line.
inline std::vector<IndexEntry> parse_index(std::string_view text, Pos pos, std::string_view file) {
  std::vector<IndexEntry> out;
  detail::for_each_record(text, [&](std::string_view line, std::size_t line_no) {
    detail::Cursor c(line, file, line_no);
    IndexEntry e;
    e.line = line_no;
    e.pos = pos;
    e.lemma = std::string(c.token("lemma"));
    const std::string_view p = c.token("pos");
    if (p.size() != 1 || p[0] != pos_letter(pos)) {
      c.fail("pos '" + std::string(p) + "' does not belong in index." + pos_file_suffix(pos));
    }
    const std::uint32_t synset_cnt = c.number("synset_cnt", 10, 1, 9999);
    const std::uint32_t p_cnt = c.number("p_cnt", 10, 0, 99);
    for (std::uint32_t i = 0; i < p_cnt; ++i) e.pointer_symbols.emplace_back(c.token("ptr_symbol"));
    const std::uint32_t sense_cnt = c.number("sense_cnt", 10, 1, 9999);
    if (sense_cnt != synset_cnt) {
      c.fail("sense_cnt " + std::to_string(sense_cnt) + " != synset_cnt " +
             std::to_string(synset_cnt));
    }
    e.tagsense_cnt = c.number("tagsense_cnt", 10, 0, synset_cnt);
    e.offsets.reserve(synset_cnt);
    for (std::uint32_t i = 0; i < synset_cnt; ++i) {
      e.offsets.push_back(c.number("synset_offset", 10, 0, 99999999));
    }
    if (!c.at_end()) c.fail("trailing text '" + std::string(c.rest()) + "'");
    out.push_back(std::move(e));
  });
  return out;
}

/// The WordNet database: all synsets of the four parts of speech, with resolved pointers,
/// NLTK-style names and the noun hypernym graph.
class Database {
 public:
  static constexpr const char* default_dir = "/usr/share/wordnet";

  /// In-memory sources, one data and one index text per Pos (indexed by Pos); empty = absent.
  struct Texts {
    std::array<std::string_view, 4> data{};
    std::array<std::string_view, 4> index{};
  };

  /// Loads data.<pos> and index.<pos> from `dir`. Throws io_error if a file is missing,
  /// unreadable or malformed.
  explicit Database(const std::string& dir = default_dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_regular_file(fs::path(dir) / "data.noun", ec)) {
      throw io_error("wordnet: no WordNet database at '" + dir +
                     "' (data.noun missing): install the Debian package wordnet-base");
    }
    std::array<std::string, 4> data, index;
    Texts t;
    for (Pos p : all_pos) {
      const std::size_t i = static_cast<std::size_t>(p);
      data[i] = read_file((fs::path(dir) / (std::string("data.") + pos_file_suffix(p))).string());
      index[i] = read_file((fs::path(dir) / (std::string("index.") + pos_file_suffix(p))).string());
      t.data[i] = data[i];
      t.index[i] = index[i];
    }
    build(t);
  }

  /// Parses in-memory texts (the fuzzing entry point). Throws io_error on malformed input.
  static Database from_text(const Texts& texts) {
    Database db(Empty{});
    db.build(texts);
    return db;
  }

  std::size_t size() const { return synsets_.size(); }
  std::size_t count(Pos p) const { return count_[static_cast<std::size_t>(p)]; }
  const std::vector<Synset>& synsets() const { return synsets_; }

  const Synset& operator[](SynsetId id) const {
    check_id(id);
    return synsets_[id];
  }

  /// The synset named like "mammal.n.01", or nullopt. As in NLTK, "lemma.p.NN" also finds the
  /// NN-th sense of any lemma: "dog.n.02" is the synset named "frump.n.01".
  std::optional<SynsetId> find(std::string_view name) const {
    const auto it = by_name_.find(std::string(name));
    if (it != by_name_.end()) return it->second;
    const std::size_t dot2 = name.rfind('.');
    if (dot2 == std::string_view::npos || dot2 < 2 || name[dot2 - 2] != '.') return std::nullopt;
    const std::optional<Pos> p = pos_from_letter(name[dot2 - 1]);
    std::uint32_t sense = 0;
    const char* last = name.data() + name.size();
    const auto r = std::from_chars(name.data() + dot2 + 1, last, sense, 10);
    if (!p || r.ec != std::errc() || r.ptr != last || sense == 0) return std::nullopt;
    const std::vector<SynsetId> senses = lookup(name.substr(0, dot2 - 2), *p);
    if (sense > senses.size()) return std::nullopt;
    const SynsetId s = senses[sense - 1];
    if (synsets_[s].ss_type != name[dot2 - 1] && name[dot2 - 1] != 'a') return std::nullopt;
    return s;
  }

  /// The synset named like "mammal.n.01"; throws value_error if there is none.
  SynsetId id(std::string_view name) const {
    const std::optional<SynsetId> i = find(name);
    if (!i) throw value_error("wordnet: no synset named '" + std::string(name) + "'");
    return *i;
  }

  const Synset& synset(std::string_view name) const { return synsets_[id(name)]; }

  /// The synset at byte `offset` of data.<pos>, or nullopt.
  std::optional<SynsetId> find(Pos p, std::uint32_t offset) const {
    const auto& m = by_offset_[static_cast<std::size_t>(p)];
    const auto it = m.find(offset);
    if (it == m.end()) return std::nullopt;
    return it->second;
  }

  /// The senses of `lemma` (lowercase, '_' for spaces) in sense-number order (index.<pos>).
  std::vector<SynsetId> lookup(std::string_view lemma, Pos p) const {
    std::vector<SynsetId> out;
    const auto& m = index_[static_cast<std::size_t>(p)];
    const auto it = m.find(detail::ascii_lower(lemma));
    if (it == m.end()) return out;
    for (std::uint32_t off : it->second) {
      if (const auto s = find(p, off)) out.push_back(*s);
    }
    return out;
  }

  /// Pointers whose target synset is not in the database (0 for the real WordNet 3.0).
  std::size_t unresolved_pointers() const { return unresolved_; }

  /// Direct hypernyms of a noun: targets of its '@' and '@i' pointers, in pointer order,
  /// without duplicates. Empty for other parts of speech.
  const std::vector<SynsetId>& hypernyms(SynsetId id) const {
    check_id(id);
    return up_[id];
  }

  /// Direct hyponyms of a noun: the reverse of hypernyms(), sorted by id.
  const std::vector<SynsetId>& hyponyms(SynsetId id) const {
    check_id(id);
    return down_[id];
  }

  /// Every synset reachable through hypernyms(), excluding `id` itself, sorted by id.
  std::vector<SynsetId> ancestors(SynsetId id) const {
    std::vector<SynsetId> out;
    Marks m;
    walk(id, up_, m, out);
    std::sort(out.begin(), out.end());
    return out;
  }

  /// Every synset whose hypernym chain reaches `id`, excluding `id` itself, sorted by id.
  std::vector<SynsetId> descendants(SynsetId id) const {
    std::vector<SynsetId> out;
    Marks m;
    walk(id, down_, m, out);
    std::sort(out.begin(), out.end());
    return out;
  }

  /// The closure of a subtree: `root` and every noun whose hypernym or instance-hypernym chain
  /// reaches it, minus the synsets named in `exclude` (only those nodes, not their subtrees;
  /// Nickel & Kiela drop tusker.n.01 and female_mammal.n.01 from the mammal closure). Sorted.
  std::vector<SynsetId> closure_of(std::string_view root,
                                   const std::vector<std::string>& exclude = {}) const {
    const SynsetId r = id(root);
    std::vector<SynsetId> out = descendants(r);
    out.push_back(r);
    std::vector<SynsetId> drop;
    for (const std::string& e : exclude) drop.push_back(id(e));
    std::sort(drop.begin(), drop.end());
    out.erase(std::remove_if(out.begin(), out.end(),
                             [&](SynsetId s) {
                               return std::binary_search(drop.begin(), drop.end(), s);
                             }),
              out.end());
    std::sort(out.begin(), out.end());
    return out;
  }

  /// The transitive closure restricted to `nodes`: every (child, ancestor) pair with both in
  /// `nodes` and child != ancestor, where ancestry is taken in the full graph. Sorted.
  std::vector<std::pair<SynsetId, SynsetId>> closure_edges(const std::vector<SynsetId>& nodes) const {
    std::vector<char> in(synsets_.size(), 0);
    for (SynsetId n : nodes) {
      check_id(n);
      in[n] = 1;
    }
    std::vector<std::pair<SynsetId, SynsetId>> out;
    std::vector<SynsetId> anc;
    Marks m;
    for (SynsetId n : nodes) {
      if (!in[n]) continue;  // a duplicate in `nodes` was already handled
      in[n] = 2;
      anc.clear();
      walk(n, up_, m, anc);
      for (SynsetId a : anc) {
        if (in[a]) out.emplace_back(n, a);
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  /// Length of the shortest hypernym path from `id` to a noun with no hypernyms (0 for roots,
  /// 0 for non-nouns); no_synset if `id` only reaches a cycle (malformed data).
  std::uint32_t depth(SynsetId id) const {
    check_id(id);
    std::vector<SynsetId> frontier{id}, next;
    std::vector<char> seen(synsets_.size(), 0);
    seen[id] = 1;
    for (std::uint32_t d = 0; !frontier.empty(); ++d) {
      next.clear();
      for (SynsetId s : frontier) {
        if (up_[s].empty()) return d;
        for (SynsetId h : up_[s]) {
          if (!seen[h]) {
            seen[h] = 1;
            next.push_back(h);
          }
        }
      }
      frontier.swap(next);
    }
    return no_synset;
  }

 private:
  struct Empty {};
  explicit Database(Empty) {}

  static std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
      throw io_error("wordnet: cannot open '" + path +
                     "': install the Debian package wordnet-base");
    }
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (f.bad()) throw io_error("wordnet: error reading '" + path + "'");
    return s;
  }

  // Visit stamps for walk(): a walk bumps `stamp` instead of clearing `mark`, so the many walks
  // of closure_edges() cost only what they visit. Owned by the caller, so const stays
  // thread-safe.
  struct Marks {
    std::vector<std::uint32_t> mark;
    std::uint32_t stamp = 0;
    std::vector<SynsetId> stack;
  };

  void check_id(SynsetId id) const {
    if (id >= synsets_.size()) {
      throw value_error("wordnet: synset id " + std::to_string(id) + " out of range [0, " +
                        std::to_string(synsets_.size()) + ")");
    }
  }

  // Iterative DFS from `start` along `adj`, appending every reached node except `start`.
  void walk(SynsetId start, const std::vector<std::vector<SynsetId>>& adj, Marks& m,
            std::vector<SynsetId>& out) const {
    check_id(start);
    if (m.mark.size() != adj.size()) m.mark.assign(adj.size(), 0U);
    if (++m.stamp == 0) {  // wrapped: clear the marks once every 2^32 walks
      std::fill(m.mark.begin(), m.mark.end(), 0U);
      m.stamp = 1;
    }
    m.mark[start] = m.stamp;
    m.stack.assign(1, start);
    while (!m.stack.empty()) {
      const SynsetId s = m.stack.back();
      m.stack.pop_back();
      for (SynsetId t : adj[s]) {
        if (m.mark[t] != m.stamp) {
          m.mark[t] = m.stamp;
          out.push_back(t);
          m.stack.push_back(t);
        }
      }
    }
  }

  void build(const Texts& texts) {
    for (Pos p : all_pos) {
      const std::size_t i = static_cast<std::size_t>(p);
      const std::string data_name = std::string("data.") + pos_file_suffix(p);
      const std::string index_name = std::string("index.") + pos_file_suffix(p);
      std::vector<Synset> parsed = parse_data(texts.data[i], p, data_name);
      for (IndexEntry& e : parse_index(texts.index[i], p, index_name)) {
        const auto [it, fresh] = index_[i].emplace(e.lemma, std::move(e.offsets));
        if (!fresh) detail::fail(index_name, e.line, "duplicate lemma '" + e.lemma + "'");
      }
      count_[i] = parsed.size();
      // Sense numbers: the position of the synset in its first lemma's index line. Synsets
      // the index does not list (only in malformed or partial input) are numbered after it.
      std::unordered_map<std::string, std::uint32_t> unlisted;
      for (Synset& s : parsed) {
        if (synsets_.size() >= no_synset) detail::fail(data_name, s.line, "too many synsets");
        const SynsetId sid = static_cast<SynsetId>(synsets_.size());
        by_offset_[i].emplace(s.offset, sid);
        const std::string lemma = detail::ascii_lower(s.words.front().lemma);
        std::size_t sense = 0;
        const auto it = index_[i].find(lemma);
        if (it != index_[i].end()) {
          const auto& offs = it->second;
          const auto at = std::find(offs.begin(), offs.end(), s.offset);
          if (at != offs.end()) sense = static_cast<std::size_t>(at - offs.begin()) + 1;
        }
        if (sense == 0) {
          sense = (it == index_[i].end() ? 0 : it->second.size()) + (++unlisted[lemma]);
        }
        s.name = lemma + '.' + s.ss_type + '.' + (sense < 10 ? "0" : "") + std::to_string(sense);
        const auto [nit, fresh] = by_name_.emplace(s.name, sid);
        if (!fresh) {
          detail::fail(data_name, s.line,
                       "synset name '" + s.name + "' already used by the synset on line " +
                           std::to_string(synsets_[nit->second].line));
        }
        synsets_.push_back(std::move(s));
      }
    }
    // Resolve pointers and build the noun hypernym graph ('@' and '@i').
    up_.assign(synsets_.size(), {});
    down_.assign(synsets_.size(), {});
    for (SynsetId sid = 0; sid < synsets_.size(); ++sid) {
      Synset& s = synsets_[sid];
      for (Pointer& p : s.pointers) {
        const std::optional<SynsetId> t = find(p.target_pos, p.target_offset);
        if (!t) {
          ++unresolved_;
          continue;
        }
        p.target = *t;
        if (s.pos == Pos::noun && p.target_pos == Pos::noun && (p.symbol == "@" || p.symbol == "@i") &&
            *t != sid &&
            std::find(up_[sid].begin(), up_[sid].end(), *t) == up_[sid].end()) {
          up_[sid].push_back(*t);
          down_[*t].push_back(sid);
        }
      }
    }
  }

  std::vector<Synset> synsets_;
  std::array<std::size_t, 4> count_{};
  std::unordered_map<std::string, SynsetId> by_name_;
  std::array<std::unordered_map<std::uint32_t, SynsetId>, 4> by_offset_;
  std::array<std::unordered_map<std::string, std::vector<std::uint32_t>>, 4> index_;
  std::vector<std::vector<SynsetId>> up_, down_;
  std::size_t unresolved_ = 0;
};

}  // namespace wordnet
}  // namespace hyplora
