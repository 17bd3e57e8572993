// examples/transformer/data/arithmetic_tasks.hpp — multi-step word problems from templates.
//
//   "Tom has 3 apples. He buys 4 more and gives away 2. How many apples does he have now?" -> " 5"
//
// 2–3 operations on small integers; subtractions never exceed what is there, so every running
// total and every answer is a non-negative integer. Prompts are unique, and train/test are
// disjoint by prompt text.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "common.hpp"

namespace hyplora {
namespace examples {

struct ArithmeticOptions {
  std::size_t train = 2000;
  std::size_t test = 200;
  int max_start = 20;    ///< the starting amount is in [1, max_start]
  int max_operand = 9;   ///< each operand is in [1, max_operand]
  std::uint64_t seed = 0;
};

namespace detail {

struct Person {
  const char* name;
  const char* pronoun;  // "He" / "She"
};

inline constexpr Person arithmetic_people[] = {
    {"Tom", "He"}, {"Anna", "She"}, {"Ben", "He"},  {"Lucy", "She"}, {"Sam", "He"},
    {"Mia", "She"}, {"Leo", "He"},  {"Emma", "She"}, {"Max", "He"},  {"Zoe", "She"}};

inline constexpr const char* arithmetic_items[] = {"apples",  "marbles", "stickers", "books",
                                                   "coins",   "pencils", "cookies",  "shells",
                                                   "stamps",  "cards"};

}  // namespace detail

/// One problem: the prompt and its answer, from the given draws.
inline Example make_arithmetic_problem(Rng& rng, const ArithmeticOptions& opt) {
  const detail::Person& who = detail::arithmetic_people[rng.below(
      sizeof(detail::arithmetic_people) / sizeof(detail::arithmetic_people[0]))];
  const char* item = detail::arithmetic_items[rng.below(
      sizeof(detail::arithmetic_items) / sizeof(detail::arithmetic_items[0]))];
  long total = rng.between(1, opt.max_start);
  std::string text = std::string(who.name) + " has " + std::to_string(total) + " " + item + ". " +
                     who.pronoun + " ";
  const int n_ops = rng.between(2, 3);
  for (int k = 0; k < n_ops; ++k) {
    if (k > 0) text += (k == n_ops - 1) ? " and " : ", ";
    // 0-2 add, 3-5 subtract, 6 multiply-add; subtract only if there is something to take.
    int kind = rng.between(0, 6);
    if (kind >= 3 && kind <= 5 && total == 0) kind = 0;
    if (kind <= 2) {
      const int n = rng.between(1, opt.max_operand);
      static constexpr const char* verbs[] = {"buys %", "finds %", "gets % from a friend"};
      std::string phrase = verbs[kind];
      phrase.replace(phrase.find('%'), 1, std::to_string(n) + " more");
      text += phrase;
      total += n;
    } else if (kind <= 5) {
      const int n = rng.between(1, static_cast<int>(std::min<long>(total, opt.max_operand)));
      static constexpr const char* verbs[] = {"gives away ", "loses ", "sells "};
      text += verbs[kind - 3] + std::to_string(n);
      total -= n;
    } else {
      const int bags = rng.between(2, 4);
      const int each = rng.between(1, opt.max_operand);
      text += "buys " + std::to_string(bags) + " bags with " + std::to_string(each) + " " + item +
              " each";
      total += static_cast<long>(bags) * each;
    }
  }
  const std::string pron_lower = who.pronoun[0] == 'H' ? "he" : "she";
  text += std::string(". How many ") + item + " does " + pron_lower + " have now?";
  return {text, " " + std::to_string(total)};
}

/// `opt.train` + `opt.test` distinct problems. Throws value_error if the templates cannot give
/// that many distinct prompts with these ranges.
inline TaskSplit make_arithmetic_tasks(const ArithmeticOptions& opt = {}) {
  if (opt.max_start < 1 || opt.max_operand < 1) {
    throw value_error("make_arithmetic_tasks: max_start and max_operand must be >= 1, got " +
                      std::to_string(opt.max_start) + " and " + std::to_string(opt.max_operand));
  }
  Rng rng(opt.seed);
  const std::size_t want = opt.train + opt.test;
  std::vector<Example> all;
  std::unordered_set<std::string> seen;
  // Give up after this many draws in a row without a new prompt: the ranges are exhausted.
  constexpr std::size_t max_misses = 20000;
  for (std::size_t misses = 0; all.size() < want;) {
    if (misses > max_misses) {
      throw value_error("make_arithmetic_tasks: only " + std::to_string(all.size()) +
                        " distinct problems found, " + std::to_string(want) + " requested");
    }
    Example e = make_arithmetic_problem(rng, opt);
    if (seen.insert(e.prompt).second) {
      all.push_back(std::move(e));
      misses = 0;
    } else {
      ++misses;
    }
  }
  TaskSplit split;
  split.test.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(opt.test));
  split.train.assign(all.begin() + static_cast<std::ptrdiff_t>(opt.test), all.end());
  return split;
}

}  // namespace examples
}  // namespace hyplora
