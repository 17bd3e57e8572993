// hyplora/core/errors.hpp — the typed exceptions every layer throws.
#pragma once

#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace hyplora {

/// Base of every exception hyplora throws.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Operands whose shapes do not fit; the message names both shapes.
class shape_error : public error {
 public:
  using error::error;
};

/// An invalid value: curvature K <= 0 or non-finite, NaN input, rank 0, ...
class value_error : public error {
 public:
  using error::error;
};

/// A file that cannot be read or written, or whose contents are malformed.
class io_error : public error {
 public:
  using error::error;
};

/// "(rows, cols)" — the one way shapes are printed in messages.
inline std::string shape_str(std::int64_t rows, std::int64_t cols) {
  std::ostringstream s;
  s << '(' << rows << ", " << cols << ')';
  return s.str();
}

/// Throws shape_error "<what>: <a_name> (r, c) vs <b_name> (r, c)".
inline void throw_shape(const std::string& what, const std::string& a_name, std::int64_t ar,
                        std::int64_t ac, const std::string& b_name, std::int64_t br,
                        std::int64_t bc) {
  throw shape_error(what + ": " + a_name + " " + shape_str(ar, ac) + " vs " + b_name + " " +
                    shape_str(br, bc));
}

/// Curvature convention (docs/math.md Eq. (1)): K > 0 and finite; sectional curvature -1/K.
template <class T>
inline void check_curvature(const T& K) {
  const double k = static_cast<double>(K);
  if (!(k > 0.0) || !std::isfinite(k)) {
    std::ostringstream s;
    s << "curvature K must be finite and > 0 (sectional curvature -1/K), got " << k;
    throw value_error(s.str());
  }
}

}  // namespace hyplora
