// hyplora/io/safetensors.hpp — read and write the safetensors format.
//
// Layout: u64 little-endian N, then N bytes of JSON header
//   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"<key>": "<value>", ...}}   (metadata optional, string values only)
// then the data buffer; offsets are relative to its start, data is little-endian, row-major.
//
// The reader validates as strictly as the reference implementation (every problem is an
// io_error with the reason): header length within the file and <= 100 MB; the header is a JSON
// object without duplicate keys; each entry has a known dtype, a shape of non-negative integers
// whose product does not overflow, and data_offsets [begin <= end] with end - begin =
// numel * dtype size; the tensors tile the data buffer exactly (no overlap, no hole, no tail).
// The writer lays tensors out contiguously in name order, keys sorted, and pads the header with
// spaces to a multiple of 8 bytes (as the reference implementation does).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "hyplora/core/errors.hpp"
#include "hyplora/core/types.hpp"
#include "hyplora/io/atomic_file.hpp"
#include "hyplora/io/detail/half.hpp"

namespace hyplora::io {

/// Element types of the format. matrix() converts the floating ones (F64, F32, F16, BF16); the
/// others are validated and available as raw bytes.
enum class Dtype { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64 };

inline const char* dtype_name(Dtype d) {
  switch (d) {
    case Dtype::BOOL: return "BOOL";
    case Dtype::U8: return "U8";
    case Dtype::I8: return "I8";
    case Dtype::F8_E5M2: return "F8_E5M2";
    case Dtype::F8_E4M3: return "F8_E4M3";
    case Dtype::I16: return "I16";
    case Dtype::U16: return "U16";
    case Dtype::F16: return "F16";
    case Dtype::BF16: return "BF16";
    case Dtype::I32: return "I32";
    case Dtype::U32: return "U32";
    case Dtype::F32: return "F32";
    case Dtype::I64: return "I64";
    case Dtype::U64: return "U64";
    case Dtype::F64: return "F64";
  }
  return "?";
}

inline std::optional<Dtype> dtype_from_name(std::string_view s) {
  for (Dtype d : {Dtype::BOOL, Dtype::U8, Dtype::I8, Dtype::F8_E5M2, Dtype::F8_E4M3, Dtype::I16,
                  Dtype::U16, Dtype::F16, Dtype::BF16, Dtype::I32, Dtype::U32, Dtype::F32,
                  Dtype::I64, Dtype::U64, Dtype::F64}) {
    if (s == dtype_name(d)) return d;
  }
  return std::nullopt;
}

/// Bytes per element.
inline std::size_t dtype_size(Dtype d) {
  switch (d) {
    case Dtype::BOOL:
    case Dtype::U8:
    case Dtype::I8:
    case Dtype::F8_E5M2:
    case Dtype::F8_E4M3: return 1;
    case Dtype::I16:
    case Dtype::U16:
    case Dtype::F16:
    case Dtype::BF16: return 2;
    case Dtype::I32:
    case Dtype::U32:
    case Dtype::F32: return 4;
    case Dtype::I64:
    case Dtype::U64:
    case Dtype::F64: return 8;
  }
  return 0;
}

/// True for the dtypes matrix() converts and the writer stores from floating matrices.
inline bool is_convertible_float(Dtype d) {
  return d == Dtype::F64 || d == Dtype::F32 || d == Dtype::F16 || d == Dtype::BF16;
}

/// One header entry. begin/end are byte offsets into the data buffer.
struct TensorInfo {
  Dtype dtype = Dtype::F32;
  std::vector<std::int64_t> shape;
  std::size_t begin = 0, end = 0;

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (std::int64_t s : shape) n *= s;  // validated not to overflow on load
    return n;
  }
};

namespace detail {

/// Headers larger than this are rejected before any allocation (the reference's limit).
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

inline std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::ostringstream s;
  s << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

inline std::uint64_t load_le(const std::uint8_t* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

inline void store_le(std::uint64_t v, std::size_t n, std::uint8_t* p) {
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

/// Element i of a floating tensor at p, as T.
template <class T>
inline T load_float(Dtype d, const std::uint8_t* p) {
  switch (d) {
    case Dtype::F64: {
      const std::uint64_t b = load_le(p, 8);
      double v;
      std::memcpy(&v, &b, 8);
      return static_cast<T>(v);
    }
    case Dtype::F32: {
      const std::uint32_t b = static_cast<std::uint32_t>(load_le(p, 4));
      float v;
      std::memcpy(&v, &b, 4);
      return static_cast<T>(v);
    }
    case Dtype::F16:
      return static_cast<T>(f16_bits_to_double(static_cast<std::uint16_t>(load_le(p, 2))));
    case Dtype::BF16:
      return static_cast<T>(bf16_bits_to_double(static_cast<std::uint16_t>(load_le(p, 2))));
    default: return T(0);  // callers check is_convertible_float first
  }
}

/// Encode x as dtype d (a convertible float) at p.
template <class T>
inline void store_float(Dtype d, T x, std::uint8_t* p) {
  switch (d) {
    case Dtype::F64: {
      const double v = static_cast<double>(x);
      std::uint64_t b;
      std::memcpy(&b, &v, 8);
      store_le(b, 8, p);
      return;
    }
    case Dtype::F32: {
      const float v = static_cast<float>(x);  // double -> float rounds to nearest even
      std::uint32_t b;
      std::memcpy(&b, &v, 4);
      store_le(b, 4, p);
      return;
    }
    case Dtype::F16: store_le(to_f16_bits(x), 2, p); return;
    case Dtype::BF16: store_le(to_bf16_bits(x), 2, p); return;
    default: return;
  }
}

/// Checked a * b for sizes; false on overflow.
inline bool mul_ok(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}

}  // namespace detail

/// A parsed safetensors file held in memory. Construction validates everything; accessors then
/// never read outside the buffer.
class SafetensorsFile {
 public:
  /// Parse `bytes`; `source` names it in error messages (a path, or "<memory>").
  explicit SafetensorsFile(std::vector<std::uint8_t> bytes, std::string source = "<memory>")
      : bytes_(std::move(bytes)), source_(std::move(source)) {
    parse();
  }

  /// Read and parse the file at `path`.
  static SafetensorsFile load(const std::filesystem::path& path) {
    return SafetensorsFile(read_file(path), path.string());
  }

  /// Tensor names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const auto& kv : tensors_) out.push_back(kv.first);
    return out;
  }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  std::size_t size() const { return tensors_.size(); }

  /// Header entry of `name`; io_error if absent.
  const TensorInfo& info(const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) fail("no tensor named '" + name + "'");
    return it->second;
  }

  /// The "__metadata__" map (empty if the file has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  /// The stored bytes of `name` (little-endian, row-major): pointer and length.
  std::pair<const std::uint8_t*, std::size_t> raw(const std::string& name) const {
    const TensorInfo& t = info(name);
    return {bytes_.data() + data_start_ + t.begin, t.end - t.begin};
  }

  /// `name` converted to T. Shapes: [] -> (1, 1), [n] -> (1, n), [r, c] -> (r, c); more
  /// dimensions throw shape_error. Non-floating dtypes throw io_error.
  template <class T>
  MatrixR<T> matrix(const std::string& name) const {
    static_assert(std::is_floating_point_v<T>, "matrix<T>: T must be a floating type");
    const TensorInfo& t = info(name);
    if (!is_convertible_float(t.dtype)) {
      fail("tensor '" + name + "' has dtype " + dtype_name(t.dtype) +
           "; matrix() converts F64, F32, F16 and BF16 only (use raw())");
    }
    Index rows = 1, cols = 1;
    if (t.shape.size() == 1) {
      cols = static_cast<Index>(t.shape[0]);
    } else if (t.shape.size() == 2) {
      rows = static_cast<Index>(t.shape[0]);
      cols = static_cast<Index>(t.shape[1]);
    } else if (!t.shape.empty()) {
      throw shape_error("tensor '" + name + "' in " + source_ + " has shape " +
                        detail::shape_string(t.shape) + "; matrix() takes 0-, 1- or 2-D tensors");
    }
    MatrixR<T> m(rows, cols);
    const std::size_t es = dtype_size(t.dtype);
    const std::uint8_t* p = bytes_.data() + data_start_ + t.begin;
    T* out = m.data();  // row-major: storage order is the file's order
    const Index n = rows * cols;
    for (Index i = 0; i < n; ++i) {
      out[i] = detail::load_float<T>(t.dtype, p + static_cast<std::size_t>(i) * es);
    }
    return m;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw io_error("safetensors " + source_ + ": " + why);
  }

  void parse() {
    using json = nlohmann::json;
    if (bytes_.size() < 8) {
      fail("file is " + std::to_string(bytes_.size()) + " bytes, shorter than the 8-byte header length");
    }
    const std::uint64_t n = detail::load_le(bytes_.data(), 8);
    if (n > detail::max_header_bytes) {
      fail("header length " + std::to_string(n) + " exceeds the limit of " +
           std::to_string(detail::max_header_bytes) + " bytes");
    }
    if (n > bytes_.size() - 8) {
      fail("header length " + std::to_string(n) + " is larger than the " +
           std::to_string(bytes_.size() - 8) + " bytes after the length field");
    }
    data_start_ = 8 + static_cast<std::size_t>(n);
    const std::size_t data_size = bytes_.size() - data_start_;
    const char* hb = reinterpret_cast<const char*>(bytes_.data() + 8);

    // Duplicate keys: nlohmann keeps the last one silently, so track keys per open object.
    std::vector<std::set<std::string>> open;
    std::string duplicate;
    const json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
      switch (ev) {
        case json::parse_event_t::object_start:
        case json::parse_event_t::array_start: open.emplace_back(); break;
        case json::parse_event_t::object_end:
        case json::parse_event_t::array_end:
          if (!open.empty()) open.pop_back();
          break;
        case json::parse_event_t::key:
          if (!open.empty() && parsed.is_string() &&
              !open.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
            duplicate = parsed.get<std::string>();
          }
          break;
        default: break;
      }
      return true;
    };
    json header;
    try {
      header = json::parse(hb, hb + n, cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
    } catch (const json::exception& e) {
      fail(std::string("header is not valid JSON: ") + e.what());
    }
    if (!duplicate.empty()) fail("duplicate key '" + duplicate + "' in header");
    if (!header.is_object()) fail("header is not a JSON object");

    std::vector<std::pair<std::size_t, std::size_t>> spans;  // (begin, end) for the tiling check
    std::vector<const std::string*> span_names;
    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& key = it.key();
      const json& v = it.value();
      if (key == "__metadata__") {
        if (!v.is_object()) fail("__metadata__ is not an object");
        for (auto m = v.begin(); m != v.end(); ++m) {
          if (!m.value().is_string()) fail("__metadata__ value of '" + m.key() + "' is not a string");
          metadata_[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      if (!v.is_object()) fail("entry '" + key + "' is not an object");
      const auto dt = v.find("dtype");
      const auto sh = v.find("shape");
      const auto off = v.find("data_offsets");
      if (dt == v.end() || sh == v.end() || off == v.end()) {
        fail("entry '" + key + "' lacks one of dtype, shape, data_offsets");
      }
      if (!dt->is_string()) fail("entry '" + key + "': dtype is not a string");
      const auto dtype = dtype_from_name(dt->get_ref<const std::string&>());
      if (!dtype) fail("entry '" + key + "': unknown dtype '" + dt->get<std::string>() + "'");
      if (!sh->is_array()) fail("entry '" + key + "': shape is not an array");
      TensorInfo t;
      t.dtype = *dtype;
      std::uint64_t numel = 1;
      for (const json& s : *sh) {
        // Non-negative integers parse as unsigned; negatives, fractions and too-large values
        // (which nlohmann stores as floats) do not.
        if (!s.is_number_unsigned()) {
          fail("entry '" + key + "': shape " + sh->dump() + " is not a list of non-negative integers");
        }
        const std::uint64_t d = s.get<std::uint64_t>();
        if (d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
            !detail::mul_ok(numel, d, numel) ||
            numel > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          fail("entry '" + key + "': shape " + sh->dump() + " has too many elements");
        }
        t.shape.push_back(static_cast<std::int64_t>(d));
      }
      if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
          !(*off)[1].is_number_unsigned()) {
        fail("entry '" + key + "': data_offsets " + off->dump() +
             " is not a pair of non-negative integers");
      }
      const std::uint64_t b = (*off)[0].get<std::uint64_t>(), e = (*off)[1].get<std::uint64_t>();
      if (b > e) fail("entry '" + key + "': data_offsets " + off->dump() + " has begin > end");
      if (e > data_size) {
        fail("entry '" + key + "': data_offsets " + off->dump() + " end beyond the " +
             std::to_string(data_size) + "-byte data buffer");
      }
      std::uint64_t nbytes = 0;
      if (!detail::mul_ok(numel, dtype_size(t.dtype), nbytes) || nbytes != e - b) {
        fail("entry '" + key + "': " + std::to_string(e - b) + " bytes in data_offsets " +
             off->dump() + " but shape " + sh->dump() + " of " + dtype_name(t.dtype) + " needs " +
             std::to_string(numel) + " x " + std::to_string(dtype_size(t.dtype)));
      }
      t.begin = static_cast<std::size_t>(b);
      t.end = static_cast<std::size_t>(e);
      auto ins = tensors_.emplace(key, std::move(t));
      spans.emplace_back(ins.first->second.begin, ins.first->second.end);
      span_names.push_back(&ins.first->first);
    }

    // The tensors must tile [0, data_size) exactly: sorted by (begin, end), each starts where the
    // previous one ended. This rejects overlaps, holes and trailing bytes.
    std::vector<std::size_t> order(spans.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return spans[a] < spans[b]; });
    std::size_t pos = 0;
    for (std::size_t i : order) {
      if (spans[i].first < pos) {
        fail("tensor '" + *span_names[i] + "' at bytes [" + std::to_string(spans[i].first) + ", " +
             std::to_string(spans[i].second) + ") overlaps the previous tensor ending at " +
             std::to_string(pos));
      }
      if (spans[i].first > pos) {
        fail("hole in the data buffer: bytes [" + std::to_string(pos) + ", " +
             std::to_string(spans[i].first) + ") belong to no tensor");
      }
      pos = spans[i].second;
    }
    if (pos != data_size) {
      fail("data buffer is " + std::to_string(data_size) + " bytes but the tensors cover " +
           std::to_string(pos));
    }
  }

  std::vector<std::uint8_t> bytes_;
  std::string source_;
  std::size_t data_start_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// Builds a safetensors file. Tensors are encoded when added; bytes()/save() lay them out in name
/// order with sorted keys.
class SafetensorsWriter {
 public:
  /// Add `m` stored as `dtype` (F64/F32/F16/BF16; narrowing rounds to nearest even). The stored
  /// shape is (rows, cols) unless `shape` is given, whose product must equal m.size() (e.g. {n}
  /// for a vector, {} for a scalar). Elements are written in row-major order.
  template <class Derived>
  SafetensorsWriter& add(const std::string& name, const Eigen::MatrixBase<Derived>& m,
                         Dtype dtype = Dtype::F32,
                         std::optional<std::vector<std::int64_t>> shape = std::nullopt) {
    using Scalar = typename Derived::Scalar;
    static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                  "SafetensorsWriter::add: float or double matrices");
    if (!is_convertible_float(dtype)) {
      throw value_error(std::string("SafetensorsWriter::add: cannot store a floating matrix as ") +
                        dtype_name(dtype) + " (use add_raw)");
    }
    std::vector<std::int64_t> s =
        shape ? *shape : std::vector<std::int64_t>{static_cast<std::int64_t>(m.rows()),
                                                   static_cast<std::int64_t>(m.cols())};
    std::int64_t numel = 1;
    for (std::int64_t d : s) {
      if (d < 0) throw shape_error("SafetensorsWriter::add: negative dimension in " + detail::shape_string(s));
      numel *= d;
    }
    if (numel != static_cast<std::int64_t>(m.size())) {
      throw shape_error("SafetensorsWriter::add '" + name + "': shape " + detail::shape_string(s) +
                        " vs matrix " + shape_str(m.rows(), m.cols()));
    }
    const std::size_t es = dtype_size(dtype);
    std::vector<std::uint8_t> data(static_cast<std::size_t>(m.size()) * es);
    std::size_t k = 0;
    for (Index i = 0; i < m.rows(); ++i) {
      for (Index j = 0; j < m.cols(); ++j, ++k) detail::store_float(dtype, m(i, j), data.data() + k * es);
    }
    return add_raw(name, dtype, std::move(s), std::move(data));
  }

  /// Add already-encoded little-endian bytes (any dtype, e.g. I64 token ids).
  SafetensorsWriter& add_raw(const std::string& name, Dtype dtype, std::vector<std::int64_t> shape,
                             std::vector<std::uint8_t> data) {
    if (name == "__metadata__") throw value_error("SafetensorsWriter: '__metadata__' is reserved");
    if (entries_.count(name) != 0) throw value_error("SafetensorsWriter: duplicate tensor '" + name + "'");
    std::uint64_t numel = 1;
    for (std::int64_t d : shape) {
      if (d < 0 || !detail::mul_ok(numel, static_cast<std::uint64_t>(d), numel)) {
        throw shape_error("SafetensorsWriter: invalid shape " + detail::shape_string(shape) +
                          " for '" + name + "'");
      }
    }
    std::uint64_t nbytes = 0;
    if (!detail::mul_ok(numel, dtype_size(dtype), nbytes) || nbytes != data.size()) {
      throw shape_error("SafetensorsWriter: '" + name + "' has " + std::to_string(data.size()) +
                        " bytes but shape " + detail::shape_string(shape) + " of " +
                        dtype_name(dtype) + " needs " + std::to_string(nbytes));
    }
    entries_.emplace(name, Entry{dtype, std::move(shape), std::move(data)});
    return *this;
  }

  SafetensorsWriter& set_metadata(const std::string& key, const std::string& value) {
    metadata_[key] = value;
    return *this;
  }

  /// The 8-byte length plus the space-padded header (a multiple of 8 bytes long in total).
  std::vector<std::uint8_t> header_bytes() const {
    // ordered_json keeps the reference's field order inside entries (dtype, shape,
    // data_offsets); the top-level keys are inserted in sorted order.
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    bool meta_done = metadata_.empty();
    std::size_t pos = 0;
    for (const auto& kv : entries_) {
      if (!meta_done && kv.first > std::string("__metadata__")) {
        h["__metadata__"] = metadata_;
        meta_done = true;
      }
      const Entry& e = kv.second;
      nlohmann::ordered_json t = nlohmann::ordered_json::object();
      t["dtype"] = dtype_name(e.dtype);
      t["shape"] = e.shape;
      t["data_offsets"] = {pos, pos + e.data.size()};
      pos += e.data.size();
      h[kv.first] = std::move(t);
    }
    if (!meta_done) h["__metadata__"] = metadata_;
    std::string s = h.dump();
    s.append((8 - s.size() % 8) % 8, ' ');
    std::vector<std::uint8_t> out(8 + s.size());
    detail::store_le(s.size(), 8, out.data());
    std::memcpy(out.data() + 8, s.data(), s.size());
    return out;
  }

  /// The whole file.
  std::vector<std::uint8_t> bytes() const {
    std::vector<std::uint8_t> out = header_bytes();
    for (const auto& kv : entries_) out.insert(out.end(), kv.second.data.begin(), kv.second.data.end());
    return out;
  }

  /// Write the file atomically (atomic_file.hpp), streaming the tensors without a second copy.
  void save(const std::filesystem::path& path) const {
    write_file_atomic(path, [&](FileSink& sink) {
      const std::vector<std::uint8_t> h = header_bytes();
      sink.write(h.data(), h.size());
      for (const auto& kv : entries_) sink.write(kv.second.data.data(), kv.second.data.size());
    });
  }

 private:
  struct Entry {
    Dtype dtype;
    std::vector<std::int64_t> shape;
    std::vector<std::uint8_t> data;
  };
  std::map<std::string, Entry> entries_;  // name order = data order = header order
  std::map<std::string, std::string> metadata_;
};

}  // namespace hyplora::io
