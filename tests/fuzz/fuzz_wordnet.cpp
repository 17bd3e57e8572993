// libFuzzer target: the WordNet reader (io/wordnet.hpp). The input is split at '\0' bytes into
// up to eight texts: data.noun, index.noun, data.verb, index.verb, data.adj, ... . Each text goes
// through parse_data / parse_index on its own, then all of them through Database::from_text, and
// the graph queries run on whatever parsed. Malformed input must throw io_error; the graph walks
// must terminate on cycles (libFuzzer's -timeout catches a hang).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "hyplora/core/errors.hpp"
#include "hyplora/io/wordnet.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace wn = hyplora::wordnet;
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  wn::Database::Texts t;
  std::size_t pos = 0;
  for (std::size_t k = 0; k < 8 && pos <= all.size(); ++k) {
    std::size_t end = all.find('\0', pos);
    if (end == std::string_view::npos) end = all.size();
    const std::string_view piece = all.substr(pos, end - pos);
    if (k % 2 == 0) {
      t.data[k / 2] = piece;
    } else {
      t.index[k / 2] = piece;
    }
    pos = end + 1;
  }
  for (wn::Pos p : wn::all_pos) {
    const std::size_t i = static_cast<std::size_t>(p);
    try {
      (void)wn::parse_data(t.data[i], p, "data.fuzz");
    } catch (const hyplora::io_error&) {
    }
    try {
      (void)wn::parse_index(t.index[i], p, "index.fuzz");
    } catch (const hyplora::io_error&) {
    }
  }
  try {
    const wn::Database db = wn::Database::from_text(t);
    std::vector<wn::SynsetId> nodes;
    for (wn::SynsetId id = 0; id < db.size(); ++id) {
      const wn::Synset& s = db[id];
      if (db.find(s.name) != id) std::abort();  // every assigned name finds its synset
      (void)db.ancestors(id);
      (void)db.descendants(id);
      (void)db.depth(id);
      for (const wn::Word& w : s.words) (void)db.lookup(w.lemma, s.pos);
      nodes.push_back(id);
    }
    (void)db.closure_edges(nodes);
    // Name lookups with senses past the end, and of a name that is not there.
    if (db.size() > 0) (void)db.find(db[0].words.front().lemma + ".n.99");
    try {
      (void)db.id("no_such_lemma.n.01");
    } catch (const hyplora::value_error&) {
    }
  } catch (const hyplora::io_error&) {
  }
  return 0;
}
