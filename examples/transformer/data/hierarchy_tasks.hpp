// examples/transformer/data/hierarchy_tasks.hpp — question/answer pairs from the WordNet noun
// hypernym graph ('@' and '@i'), restricted to one subtree (default: the mammal closure of
// Nickel & Kiela, 1,180 synsets).
//
//   kind-of:  "a beagle is a kind of"   -> " hound"   (the unique direct hypernym)
//   yes/no:   "is a beagle a mammal?"   -> " yes"     (an ancestor in the subtree)
//             "is a beagle a feline?"   -> " no"      (a non-ancestor at a similar depth)
//
// Every positive yes/no item is paired with one negative, so the classes are balanced exactly.
// The split is by subject synset: no test subject appears as a subject in train (objects and
// answers may, which is the point: the model must place a new word in a known hierarchy).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common.hpp"
#include "hyplora/io/wordnet.hpp"

namespace hyplora {
namespace examples {

struct HierarchyOptions {
  std::string root = "mammal.n.01";
  std::vector<std::string> exclude = {"tusker.n.01", "female_mammal.n.01"};
  std::size_t max_lemma_chars = 16;     ///< subjects and objects with longer lemmas are skipped
  std::size_t yes_no_per_subject = 2;   ///< yes/no pairs (one " yes" + one " no") per subject
  std::size_t max_subjects = 0;         ///< 0 = every usable synset of the subtree
  double test_fraction = 0.2;           ///< share of subjects held out, in [0, 1]
  std::uint64_t seed = 0;
};

enum class HierarchyKind : std::uint8_t { kind_of, yes, no };

/// What an Example asks: `object` is the hypernym (kind_of) or the candidate class (yes/no).
struct HierarchyItem {
  wordnet::SynsetId subject = wordnet::no_synset;
  wordnet::SynsetId object = wordnet::no_synset;
  HierarchyKind kind = HierarchyKind::kind_of;
};

/// `split.train[i]` asks `train_items[i]`; likewise for test.
struct HierarchyTasks {
  TaskSplit split;
  std::vector<HierarchyItem> train_items, test_items;
};

/// The lemma a question uses for a synset: the name's lemma with '_' -> ' ' ("sperm whale").
inline std::string hierarchy_lemma(const wordnet::Synset& s) {
  const std::size_t dot = s.name.rfind('.');  // drop ".n.01"
  const std::size_t dot2 = dot == std::string::npos || dot == 0 ? dot : s.name.rfind('.', dot - 1);
  std::string l = s.name.substr(0, dot2 == std::string::npos ? s.name.size() : dot2);
  std::replace(l.begin(), l.end(), '_', ' ');
  return l;
}

/// "a" or "an" by the first letter (a spelling rule, good enough for generated questions).
inline std::string with_article(const std::string& noun) {
  const char c = noun.empty() ? 'x' : noun[0];
  const bool vowel = c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
  return (vowel ? "an " : "a ") + noun;
}

inline HierarchyTasks make_hierarchy_tasks(const wordnet::Database& db,
                                           const HierarchyOptions& opt = {}) {
  using wordnet::SynsetId;
  if (!(opt.test_fraction >= 0.0 && opt.test_fraction <= 1.0)) {
    throw value_error("make_hierarchy_tasks: test_fraction must be in [0, 1], got " +
                      std::to_string(opt.test_fraction));
  }
  const std::vector<SynsetId> nodes = db.closure_of(opt.root, opt.exclude);
  const SynsetId root = db.id(opt.root);
  std::unordered_set<SynsetId> in_tree(nodes.begin(), nodes.end());

  // A lemma is usable if it is short, plain text, and names one synset of the subtree only
  // (otherwise "is a X a Y?" would be ambiguous).
  std::unordered_map<std::string, std::size_t> lemma_uses;
  for (SynsetId s : nodes) ++lemma_uses[hierarchy_lemma(db[s])];
  const auto usable = [&](SynsetId s) {
    const std::string l = hierarchy_lemma(db[s]);
    if (l.empty() || l.size() > opt.max_lemma_chars || lemma_uses[l] != 1) return false;
    return std::all_of(l.begin(), l.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || c == ' ' || c == '-' || c == '\'';
    });
  };

  // Usable nodes by depth, for negatives at a similar depth (std::map: ordered, deterministic).
  std::map<std::uint32_t, std::vector<SynsetId>> by_depth;
  std::unordered_map<SynsetId, std::uint32_t> depth;
  for (SynsetId s : nodes) {
    depth[s] = db.depth(s);
    if (usable(s)) by_depth[depth[s]].push_back(s);
  }

  Rng rng(opt.seed);
  // Items per subject, generated in id order so the draws do not depend on hashing.
  std::vector<std::pair<SynsetId, std::vector<HierarchyItem>>> per_subject;
  for (SynsetId s : nodes) {
    if (s == root || !usable(s)) continue;
    std::vector<HierarchyItem> items;
    const std::vector<SynsetId>& hyper = db.hypernyms(s);
    if (hyper.size() == 1 && in_tree.count(hyper[0]) &&
        hierarchy_lemma(db[hyper[0]]).size() <= opt.max_lemma_chars) {
      items.push_back({s, hyper[0], HierarchyKind::kind_of});
    }
    std::vector<SynsetId> anc = db.ancestors(s);
    std::unordered_set<std::string> anc_lemmas{hierarchy_lemma(db[s])};
    for (SynsetId a : anc) anc_lemmas.insert(hierarchy_lemma(db[a]));
    std::vector<SynsetId> pos;
    for (SynsetId a : anc) {
      if (in_tree.count(a) && usable(a)) pos.push_back(a);
    }
    rng.shuffle(pos);
    std::size_t pairs = 0;
    for (SynsetId p : pos) {
      if (pairs == opt.yes_no_per_subject) break;
      // A negative: a usable subtree node, not an ancestor and not sharing an ancestor's lemma,
      // at the positive's depth, or the nearest depth that has one.
      SynsetId neg = wordnet::no_synset;
      const std::uint32_t d = depth[p];
      for (std::uint32_t delta = 0; delta < 64 && neg == wordnet::no_synset; ++delta) {
        for (int sign : {1, -1}) {
          if (delta == 0 && sign < 0) continue;
          const std::int64_t dd = static_cast<std::int64_t>(d) + sign * static_cast<std::int64_t>(delta);
          const auto it = dd < 0 ? by_depth.end() : by_depth.find(static_cast<std::uint32_t>(dd));
          if (it == by_depth.end()) continue;
          const std::vector<SynsetId>& cand = it->second;
          for (int attempt = 0; attempt < 16; ++attempt) {
            const SynsetId c = cand[static_cast<std::size_t>(rng.below(cand.size()))];
            if (c != s && !anc_lemmas.count(hierarchy_lemma(db[c]))) {
              neg = c;
              break;
            }
          }
          if (neg != wordnet::no_synset) break;
        }
      }
      if (neg == wordnet::no_synset) continue;
      items.push_back({s, p, HierarchyKind::yes});
      items.push_back({s, neg, HierarchyKind::no});
      ++pairs;
    }
    if (!items.empty()) per_subject.emplace_back(s, std::move(items));
  }

  rng.shuffle(per_subject);
  if (opt.max_subjects > 0 && per_subject.size() > opt.max_subjects) {
    per_subject.resize(opt.max_subjects);
  }
  const std::size_t n_test = static_cast<std::size_t>(
      opt.test_fraction * static_cast<double>(per_subject.size()) + 0.5);

  HierarchyTasks out;
  for (std::size_t k = 0; k < per_subject.size(); ++k) {
    std::vector<HierarchyItem>& dst = k < n_test ? out.test_items : out.train_items;
    dst.insert(dst.end(), per_subject[k].second.begin(), per_subject[k].second.end());
  }
  const auto render = [&](std::vector<HierarchyItem>& items, std::vector<Example>& ex) {
    rng.shuffle(items);
    for (const HierarchyItem& it : items) {
      const std::string subj = with_article(hierarchy_lemma(db[it.subject]));
      const std::string obj = hierarchy_lemma(db[it.object]);
      if (it.kind == HierarchyKind::kind_of) {
        ex.push_back({subj + " is a kind of", " " + obj});
      } else {
        ex.push_back({"is " + subj + " " + with_article(obj) + "?",
                      it.kind == HierarchyKind::yes ? " yes" : " no"});
      }
    }
  };
  render(out.train_items, out.split.train);
  render(out.test_items, out.split.test);
  return out;
}

}  // namespace examples
}  // namespace hyplora
