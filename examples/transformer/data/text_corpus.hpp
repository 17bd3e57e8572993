// examples/transformer/data/text_corpus.hpp — pretraining text from WordNet glosses.
//
// One document per synset, "lemma, other lemma: definition. "example" "example"", documents
// separated by '\n', in a seed-determined order. The train/validation split is by document
// (synset), so no gloss appears on both sides.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"
#include "hyplora/io/wordnet.hpp"

namespace hyplora {
namespace examples {

struct CorpusOptions {
  std::uint64_t seed = 0;
  double validation_fraction = 0.05;  ///< share of documents held out, in [0, 1]
  bool with_examples = true;          ///< append the quoted example sentences
  std::size_t max_documents = 0;      ///< 0 = every synset of the chosen parts of speech
  bool nouns = true, verbs = true, adjectives = true, adverbs = true;
};

struct TextCorpus {
  std::string train;       ///< documents separated by '\n'
  std::string validation;  ///< documents separated by '\n'
  std::size_t train_documents = 0;
  std::size_t validation_documents = 0;
};

/// The document of one synset, on one line: newlines and other control bytes become spaces.
inline std::string gloss_document(const wordnet::Synset& s, bool with_examples = true) {
  std::string doc;
  for (std::size_t i = 0; i < s.words.size(); ++i) {
    if (i) doc += ", ";
    for (char c : s.words[i].lemma) doc += (c == '_' ? ' ' : c);
  }
  doc += ": ";
  doc += s.definition;
  if (!s.definition.empty()) doc += '.';
  if (with_examples) {
    for (const std::string& ex : s.examples) {
      doc += " \"";
      doc += ex;
      doc += '"';
    }
  }
  for (char& c : doc) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return doc;
}

/// Builds the corpus from `db`: documents shuffled by `opt.seed`, the first
/// round(validation_fraction * n) of them held out for validation.
inline TextCorpus make_text_corpus(const wordnet::Database& db, const CorpusOptions& opt = {}) {
  if (!(opt.validation_fraction >= 0.0 && opt.validation_fraction <= 1.0)) {
    throw value_error("make_text_corpus: validation_fraction must be in [0, 1], got " +
                      std::to_string(opt.validation_fraction));
  }
  const bool keep[4] = {opt.nouns, opt.verbs, opt.adjectives, opt.adverbs};
  std::vector<wordnet::SynsetId> ids;
  for (wordnet::SynsetId i = 0; i < db.size(); ++i) {
    if (keep[static_cast<std::size_t>(db[i].pos)]) ids.push_back(i);
  }
  Rng rng(opt.seed);
  rng.shuffle(ids);
  if (opt.max_documents > 0 && ids.size() > opt.max_documents) ids.resize(opt.max_documents);
  const std::size_t n_val = static_cast<std::size_t>(
      opt.validation_fraction * static_cast<double>(ids.size()) + 0.5);
  TextCorpus c;
  for (std::size_t k = 0; k < ids.size(); ++k) {
    std::string& out = k < n_val ? c.validation : c.train;
    out += gloss_document(db[ids[k]], opt.with_examples);
    out += '\n';
  }
  c.validation_documents = n_val;
  c.train_documents = ids.size() - n_val;
  return c;
}

}  // namespace examples
}  // namespace hyplora
