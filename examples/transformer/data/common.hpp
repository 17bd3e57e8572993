// examples/transformer/data/common.hpp — what the fine-tuning task generators share: the
// Example/TaskSplit types, a fixed PRNG, and a TSV cache written with io::write_file_atomic.
//
// The PRNG is xoshiro256** seeded through splitmix64, and every draw below goes through
// Rng::below(), never a std:: distribution, so the generated data are the same bytes with every
// standard library and platform.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hyplora/core/errors.hpp"
#include "hyplora/io/atomic_file.hpp"

namespace hyplora {
namespace examples {

/// One prompt/answer pair. Answers start with a space (" hound", " 5") so that a byte-level
/// model continues the prompt exactly as the text would read.
struct Example {
  std::string prompt;
  std::string answer;
  bool operator==(const Example& o) const { return prompt == o.prompt && answer == o.answer; }
  bool operator!=(const Example& o) const { return !(*this == o); }
};

struct TaskSplit {
  std::vector<Example> train;
  std::vector<Example> test;
  bool operator==(const TaskSplit& o) const { return train == o.train && test == o.test; }
  bool operator!=(const TaskSplit& o) const { return !(*this == o); }
};

/// splitmix64: expands a 64-bit seed into well-mixed state words.
inline std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// xoshiro256** (Blackman & Vigna), seeded with splitmix64.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    for (std::uint64_t& w : s_) w = splitmix64(seed);
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [0, n) by rejection (no modulo bias); n must be > 0.
  std::uint64_t below(std::uint64_t n) {
    if (n == 0) throw value_error("Rng::below: n must be > 0, got 0");
    const std::uint64_t threshold = (0 - n) % n;  // 2^64 mod n
    for (;;) {
      const std::uint64_t r = next();
      if (r >= threshold) return r % n;
    }
  }

  /// Uniform integer in [lo, hi]; requires lo <= hi.
  int between(int lo, int hi) {
    if (lo > hi) {
      throw value_error("Rng::between: empty range [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "]");
    }
    return lo + static_cast<int>(below(static_cast<std::uint64_t>(hi - lo) + 1));
  }

  /// Fisher–Yates with below(), so the permutation does not depend on the standard library.
  template <class V>
  void shuffle(V& v) {
    for (std::size_t i = v.size(); i > 1; --i) {
      const std::size_t j = static_cast<std::size_t>(below(i));
      std::swap(v[i - 1], v[j]);
    }
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

namespace detail {

inline std::string tsv_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
  return out;
}

inline std::string tsv_unescape(std::string_view s, const std::string& where) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (++i == s.size()) throw io_error(where + ": dangling '\\' at the end of a field");
    switch (s[i]) {
      case '\\': out += '\\'; break;
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      default: throw io_error(where + ": unknown escape '\\" + std::string(1, s[i]) + "'");
    }
  }
  return out;
}

}  // namespace detail

inline constexpr const char* task_cache_header = "# hyplora task cache v1: split<TAB>prompt<TAB>answer";

/// The TSV text of a split: a header line, then "train|test \t prompt \t answer" per example,
/// with backslash, tab, newline and carriage return escaped as \\ \t \n \r.
inline std::string to_tsv(const TaskSplit& split) {
  std::string out = std::string(task_cache_header) + '\n';
  const auto put = [&](const char* name, const std::vector<Example>& v) {
    for (const Example& e : v) {
      out += name;
      out += '\t';
      out += detail::tsv_escape(e.prompt);
      out += '\t';
      out += detail::tsv_escape(e.answer);
      out += '\n';
    }
  };
  put("train", split.train);
  put("test", split.test);
  return out;
}

/// Parses to_tsv() output; throws io_error naming `source` and the line on malformed input.
inline TaskSplit from_tsv(std::string_view text, const std::string& source = "<tsv>") {
  TaskSplit split;
  std::size_t pos = 0, line_no = 0;
  bool header = false;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    const std::string where = source + ":" + std::to_string(line_no);
    if (!header) {
      if (line != task_cache_header) throw io_error(where + ": not a hyplora task cache");
      header = true;
      continue;
    }
    const std::size_t t1 = line.find('\t');
    const std::size_t t2 = t1 == std::string_view::npos ? t1 : line.find('\t', t1 + 1);
    if (t2 == std::string_view::npos || line.find('\t', t2 + 1) != std::string_view::npos) {
      throw io_error(where + ": expected 3 tab-separated fields");
    }
    const std::string_view which = line.substr(0, t1);
    Example e{detail::tsv_unescape(line.substr(t1 + 1, t2 - t1 - 1), where),
              detail::tsv_unescape(line.substr(t2 + 1), where)};
    if (which == "train") {
      split.train.push_back(std::move(e));
    } else if (which == "test") {
      split.test.push_back(std::move(e));
    } else {
      throw io_error(where + ": split must be 'train' or 'test', got '" + std::string(which) + "'");
    }
  }
  if (!header) throw io_error(source + ": empty file, not a hyplora task cache");
  return split;
}

/// Writes the cache atomically (io/atomic_file.hpp: temporary file + rename), creating folders.
inline void save_tsv(const std::filesystem::path& path, const TaskSplit& split) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  io::write_file_atomic(path, std::string_view(to_tsv(split)));
}

inline TaskSplit load_tsv(const std::filesystem::path& path) {
  const std::vector<std::uint8_t> bytes = io::read_file(path);
  return from_tsv(std::string(bytes.begin(), bytes.end()), path.string());
}

/// `data_dir/name.tsv` if it exists; otherwise `generate()`, saved there first. Delete the file
/// after changing a generator's options: the cache is keyed by name only.
template <class Generate>
TaskSplit cached_task(const std::filesystem::path& data_dir, const std::string& name,
                      Generate&& generate) {
  const std::filesystem::path path = data_dir / (name + ".tsv");
  if (std::filesystem::exists(path)) return load_tsv(path);
  TaskSplit split = generate();
  save_tsv(path, split);
  return split;
}

}  // namespace examples
}  // namespace hyplora
