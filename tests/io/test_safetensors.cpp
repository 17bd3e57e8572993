// Tests for include/hyplora/io/safetensors.hpp and io/detail/half.hpp: F16/BF16 rounding,
// fixtures written by the reference Python package (tests/io/make_fixtures.py), round trips, and
// every class of malformed file.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <hyplora/io/safetensors.hpp>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace io_test_safetensors {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace io = hyplora::io;
namespace fs = std::filesystem;
using hyplora::MatrixR;

namespace {

const fs::path data_dir = fs::path(HYPLORA_SOURCE_DIR) / "tests" / "io" / "data";

// The doubles make_fixtures.py rounds to float32 and then (with torch) to F16 / BF16.
const std::vector<double> half_inputs = {1.0 / 3.0, -65504.0, 65520.0, 6e-8,
                                         1e-8,      0.1,      -0.0,    2049.0,
                                         1.00048828125, 3.0e38, std::numeric_limits<double>::infinity(),
                                         std::numeric_limits<double>::quiet_NaN()};

bool is_nan16(std::uint16_t h, bool bf) {
  const std::uint16_t exp_mask = bf ? 0x7f80 : 0x7c00;
  return (h & exp_mask) == exp_mask && (h & ~exp_mask & 0x7fff) != 0;
}

double widen(std::uint16_t h, bool bf) {
  return bf ? io::detail::bf16_bits_to_double(h) : io::detail::f16_bits_to_double(h);
}

template <class T>
std::uint16_t narrow(T x, bool bf) {
  return bf ? io::detail::to_bf16_bits(x) : io::detail::to_f16_bits(x);
}

/// Checks that q = narrow(x) is the nearest representable value to x, ties to even, and that
/// overflow happens exactly past max + ulp/2.
template <class T>
void check_nearest_even(T x, bool bf) {
  const std::uint16_t q = narrow(x, bf);
  const std::uint16_t inf = bf ? 0x7f80 : 0x7c00;
  const std::uint16_t mag = q & 0x7fff;
  CAPTURE(x);
  CAPTURE(q);
  REQUIRE_FALSE(is_nan16(q, bf));
  CHECK(((q & 0x8000) != 0) == std::signbit(x));
  const double a = std::fabs(static_cast<double>(x));
  const double maxv = widen(inf - 1, bf);
  const double threshold = maxv + (maxv - widen(inf - 2, bf)) / 2;  // ties go to Inf (odd max)
  if (mag == inf) {
    CHECK(a >= threshold);
    return;
  }
  CHECK(a < threshold);
  const double d = std::fabs(a - widen(mag, bf));
  if (mag > 0) {
    const double dl = std::fabs(a - widen(mag - 1, bf));
    CHECK(d <= dl);
    if (d == dl) CHECK((mag & 1) == 0);
  }
  if (mag + 1 < inf) {
    const double du = std::fabs(a - widen(mag + 1, bf));
    CHECK(d <= du);
    if (d == du) CHECK((mag & 1) == 0);
  }
}

std::vector<std::uint8_t> make_file(const std::string& header, const std::vector<std::uint8_t>& data) {
  // Sized once and filled in place (growing an 8-byte vector trips a GCC 12 -Warray-bounds
  // false positive).
  std::vector<std::uint8_t> out(8 + header.size() + data.size());
  io::detail::store_le(header.size(), 8, out.data());
  std::copy(header.begin(), header.end(), out.begin() + 8);
  std::copy(data.begin(), data.end(), out.begin() + 8 + static_cast<std::ptrdiff_t>(header.size()));
  return out;
}

void check_io_error(const std::vector<std::uint8_t>& bytes, const std::string& reason_part) {
  try {
    io::SafetensorsFile f(bytes);
    FAIL("parsed a malformed file: " << reason_part);
  } catch (const hyplora::io_error& e) {
    CHECK_MESSAGE(std::string(e.what()).find(reason_part) != std::string::npos, e.what());
  }
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

}  // namespace

TEST_CASE("F16 and BF16: every 16-bit pattern survives widen -> narrow (from float and double)") {
  for (bool bf : {false, true}) {
    CAPTURE(bf);
    int mismatches = 0;
    for (std::uint32_t h = 0; h <= 0xffff; ++h) {
      const auto b = static_cast<std::uint16_t>(h);
      const double v = widen(b, bf);
      if (is_nan16(b, bf)) {
        if (!std::isnan(v) || !is_nan16(narrow(static_cast<float>(v), bf), bf) ||
            !is_nan16(narrow(v, bf), bf)) {
          ++mismatches;
        }
        continue;
      }
      // Every F16/BF16 is exactly a float.
      if (static_cast<double>(static_cast<float>(v)) != v) ++mismatches;
      if (narrow(static_cast<float>(v), bf) != b || narrow(v, bf) != b) ++mismatches;
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("F16 and BF16 narrowing rounds to nearest even, with overflow and subnormals") {
  std::mt19937_64 rng(42);
  for (bool bf : {false, true}) {
    CAPTURE(bf);
    // Random float bit patterns (all finite ones: normals, subnormals, huge values).
    for (int i = 0; i < 200'000; ++i) {
      const auto bits = static_cast<std::uint32_t>(rng());
      float x;
      std::memcpy(&x, &bits, 4);
      if (!std::isfinite(x)) continue;
      check_nearest_even(x, bf);
    }
    // Log-uniform doubles over the format's range, and exact ties between neighbours.
    std::uniform_real_distribution<double> e(bf ? -140.0 : -27.0, bf ? 130.0 : 17.0);
    for (int i = 0; i < 50'000; ++i) {
      const double x = std::exp2(e(rng)) * (rng() & 1 ? -1.0 : 1.0);
      check_nearest_even(x, bf);
    }
    for (std::uint16_t m = 1; m < 2000; m += 7) {
      const double tie = (widen(m, bf) + widen(static_cast<std::uint16_t>(m + 1), bf)) / 2;
      const std::uint16_t q = narrow(tie, bf);
      CHECK(q == ((m & 1) == 0 ? m : m + 1));
      CHECK(narrow(static_cast<float>(tie), bf) == q);  // ties are floats, so float agrees
    }
  }
  // double -> F16 rounds once: 1 + 2^-11 + 2^-40 is above the tie between 1 and 1 + 2^-10, but
  // rounding it to float first would land exactly on the tie and then go to even (1.0).
  const double x = 1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40);
  CHECK(io::detail::to_f16_bits(x) == 0x3c01);
  CHECK(io::detail::to_f16_bits(static_cast<float>(x)) == 0x3c00);
  // Named values.
  CHECK(io::detail::to_f16_bits(65504.0f) == 0x7bff);
  CHECK(io::detail::to_f16_bits(65519.99f) == 0x7bff);
  CHECK(io::detail::to_f16_bits(65520.0f) == 0x7c00);
  CHECK(io::detail::to_f16_bits(-std::numeric_limits<float>::infinity()) == 0xfc00);
  CHECK(io::detail::to_f16_bits(std::ldexp(1.0f, -24)) == 0x0001);  // smallest subnormal
  CHECK(io::detail::to_f16_bits(std::ldexp(1.0f, -25)) == 0x0000);  // tie with 0 -> even
  CHECK(io::detail::to_f16_bits(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(io::detail::to_f16_bits(-0.0f) == 0x8000);
  CHECK(io::detail::to_bf16_bits(std::numeric_limits<float>::denorm_min()) == 0x0000);
  CHECK(is_nan16(io::detail::to_f16_bits(std::numeric_limits<float>::quiet_NaN()), false));
  // A signalling NaN whose payload lies only in the dropped bits must not become Inf.
  std::uint32_t snan_bits = 0x7f800001u;
  float snan;
  std::memcpy(&snan, &snan_bits, 4);
  CHECK(is_nan16(io::detail::to_f16_bits(snan), false));
  CHECK(is_nan16(io::detail::to_bf16_bits(snan), true));
}

TEST_CASE("reads a file written by the reference Python package: values, dtypes, metadata") {
  const auto f = io::SafetensorsFile::load(data_dir / "mixed.safetensors");
  CHECK(f.names() == std::vector<std::string>{"bf16_mat", "f16_mat", "f32_mat", "f64_vec", "i64_ids"});
  CHECK(f.metadata().size() == 2);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("note") == "hyplora fixture");

  CHECK(f.info("f32_mat").dtype == io::Dtype::F32);
  CHECK(f.info("f32_mat").shape == std::vector<std::int64_t>{2, 3});
  const MatrixR<double> m = f.matrix<double>("f32_mat");
  REQUIRE(m.rows() == 2);
  REQUIRE(m.cols() == 3);
  for (int i = 0; i < 6; ++i) CHECK(m(i / 3, i % 3) == i * 0.25 - 0.5);

  const MatrixR<double> v = f.matrix<double>("f64_vec");  // 1-D -> one row
  REQUIRE(v.rows() == 1);
  REQUIRE(v.cols() == 3);
  CHECK(v(0, 0) == 1.0 / 3.0);
  CHECK(v(0, 1) == -2.5);
  CHECK(v(0, 2) == 1e-300);

  for (bool bf : {false, true}) {
    const std::string name = bf ? "bf16_mat" : "f16_mat";
    CAPTURE(name);
    CHECK(f.info(name).dtype == (bf ? io::Dtype::BF16 : io::Dtype::F16));
    const auto [p, n] = f.raw(name);
    REQUIRE(n == 2 * half_inputs.size());
    const MatrixR<float> h = f.matrix<float>(name);
    REQUIRE(h.size() == static_cast<hyplora::Index>(half_inputs.size()));
    for (std::size_t i = 0; i < half_inputs.size(); ++i) {
      CAPTURE(i);
      const auto stored = static_cast<std::uint16_t>(p[2 * i] | (p[2 * i + 1] << 8));
      const float x = static_cast<float>(half_inputs[i]);
      const float got = h.data()[i];
      if (std::isnan(x)) {
        CHECK(std::isnan(got));
        continue;
      }
      CHECK(narrow(x, bf) == stored);  // torch's rounding and ours agree bit for bit
      CHECK(got == static_cast<float>(widen(stored, bf)));
    }
  }

  CHECK(f.info("i64_ids").dtype == io::Dtype::I64);
  const auto [ip, in] = f.raw("i64_ids");
  REQUIRE(in == 24);
  for (int i = 0; i < 3; ++i) {
    CHECK(static_cast<std::int64_t>(io::detail::load_le(ip + 8 * i, 8)) == (i == 1 ? -2 : i + 1));
  }
  CHECK_THROWS_AS((void)f.matrix<float>("i64_ids"), hyplora::io_error);
  CHECK_THROWS_AS((void)f.info("absent"), hyplora::io_error);
}

TEST_CASE("the writer reproduces the reference implementation's bytes") {
  const auto ref = io::read_file(data_dir / "same_dtype.safetensors");
  io::SafetensorsWriter w;
  MatrixR<float> alpha(2, 2);
  alpha << 1.5f, -2.0f, 0.125f, 3.0f;
  Eigen::VectorXf beta(3);  // column vector stored as 1-D
  beta << 0.1f, 0.2f, 0.3f;
  w.add("gamma", MatrixR<float>::Constant(1, 1, 7.0f), io::Dtype::F32, std::vector<std::int64_t>{});
  w.add("beta", beta, io::Dtype::F32, std::vector<std::int64_t>{3});
  w.add("alpha", alpha);
  w.set_metadata("format", "pt");
  CHECK(w.bytes() == ref);
  const auto f = io::SafetensorsFile(ref);
  CHECK(f.info("gamma").shape.empty());
  CHECK(f.matrix<float>("gamma")(0, 0) == 7.0f);
}

TEST_CASE("round trips: F32/F64 bit-exact, F16/BF16 to their rounding, shapes kept") {
  std::mt19937 rng(3);
  std::normal_distribution<double> g(0.0, 10.0);
  MatrixR<double> md(5, 7);
  for (hyplora::Index i = 0; i < md.size(); ++i) md.data()[i] = g(rng);
  md(0, 0) = std::numeric_limits<double>::denorm_min();
  md(0, 1) = -0.0;
  const MatrixR<float> mf = md.cast<float>();
  Eigen::MatrixXd col_major = md.transpose();  // a column-major expression, written row-major

  io::SafetensorsWriter w;
  w.add("d64", md, io::Dtype::F64).add("f32", mf, io::Dtype::F32).add("d_as_f32", md, io::Dtype::F32);
  w.add("f16", md, io::Dtype::F16).add("bf16", mf, io::Dtype::BF16);
  w.add("colmajor", col_major, io::Dtype::F64);
  w.add("empty", MatrixR<float>(0, 3), io::Dtype::F32);
  MatrixR<double> exact(2, 3);  // small dyadic values, representable in every dtype
  exact << 0.5, -3.0, 0.0, 1024.0, -0.125, 7.0;
  for (io::Dtype d : {io::Dtype::F16, io::Dtype::BF16}) {
    w.add(std::string("exact_") + io::dtype_name(d), exact, d);
  }
  w.set_metadata("k", "v").set_metadata("format", "pt");
  const auto bytes = w.bytes();
  CHECK(io::detail::load_le(bytes.data(), 8) % 8 == 0);  // header padded to 8 bytes

  const io::SafetensorsFile f(bytes);
  CHECK(f.size() == 9);
  CHECK(f.metadata().at("k") == "v");
  const MatrixR<double> d64 = f.matrix<double>("d64");
  CHECK(std::memcmp(d64.data(), md.data(), sizeof(double) * md.size()) == 0);
  CHECK(std::signbit(d64(0, 1)));
  const MatrixR<float> f32 = f.matrix<float>("f32");
  CHECK(std::memcmp(f32.data(), mf.data(), sizeof(float) * mf.size()) == 0);
  CHECK(f.matrix<float>("d_as_f32") == mf);
  CHECK(f.matrix<double>("colmajor") == col_major);
  CHECK(f.info("empty").shape == std::vector<std::int64_t>{0, 3});
  CHECK(f.matrix<float>("empty").rows() == 0);

  const MatrixR<double> h = f.matrix<double>("f16");
  const MatrixR<double> b = f.matrix<double>("bf16");
  for (hyplora::Index i = 1; i < md.size(); ++i) {  // skip the subnormal, which flushes to 0
    const double x = md.data()[i];
    CHECK(std::fabs(h.data()[i] - x) <= std::ldexp(std::fabs(x), -11));  // half an F16 ulp
    CHECK(std::fabs(b.data()[i] - static_cast<double>(mf.data()[i])) <=
          std::ldexp(std::fabs(static_cast<double>(mf.data()[i])), -8));  // half a BF16 ulp
  }
  CHECK(h(0, 0) == 0.0);
  CHECK(f.matrix<double>("exact_F16") == exact);
  CHECK(f.matrix<double>("exact_BF16") == exact);

  // Writing what we read gives the same bytes.
  io::SafetensorsWriter w2;
  for (const auto& n : f.names()) {
    const auto [p, len] = f.raw(n);
    w2.add_raw(n, f.info(n).dtype, f.info(n).shape, std::vector<std::uint8_t>(p, p + len));
  }
  w2.set_metadata("k", "v").set_metadata("format", "pt");
  CHECK(w2.bytes() == bytes);
}

TEST_CASE("save() writes atomically to disk and load() reads it") {
  const fs::path p = fs::temp_directory_path() / ("hyplora_st_" + std::to_string(std::random_device{}()) + ".safetensors");
  io::SafetensorsWriter w;
  w.add("x", MatrixR<float>::Constant(3, 2, 1.25f));
  w.save(p);
  CHECK(io::read_file(p) == w.bytes());
  CHECK(io::SafetensorsFile::load(p).matrix<float>("x") == MatrixR<float>::Constant(3, 2, 1.25f));
  fs::remove(p);
  try {
    (void)io::SafetensorsFile::load(p);
    FAIL("no throw");
  } catch (const hyplora::io_error& e) {
    CHECK(std::string(e.what()).find(p.filename().string()) != std::string::npos);
  }
}

TEST_CASE("writer and matrix() misuse: shape_error / value_error") {
  io::SafetensorsWriter w;
  const MatrixR<float> m = MatrixR<float>::Ones(2, 3);
  CHECK_THROWS_AS(w.add("a", m, io::Dtype::F32, std::vector<std::int64_t>{5}), hyplora::shape_error);
  CHECK_THROWS_AS(w.add("a", m, io::Dtype::I32), hyplora::value_error);
  CHECK_THROWS_AS(w.add("__metadata__", m), hyplora::value_error);
  w.add("a", m);
  CHECK_THROWS_AS(w.add("a", m), hyplora::value_error);
  CHECK_THROWS_AS(w.add_raw("r", io::Dtype::I64, {2}, std::vector<std::uint8_t>(15)), hyplora::shape_error);
  w.add("t3", m, io::Dtype::F32, std::vector<std::int64_t>{1, 2, 3});
  const io::SafetensorsFile f(w.bytes());
  try {
    (void)f.matrix<float>("t3");
    FAIL("no throw");
  } catch (const hyplora::shape_error& e) {
    CHECK(std::string(e.what()).find("[1, 2, 3]") != std::string::npos);
  }
}

TEST_CASE("valid edge cases parse: empty header, padding, zero-size tensors") {
  CHECK(io::SafetensorsFile(make_file("{}", {})).size() == 0);
  CHECK(io::SafetensorsFile(make_file("{}      ", {})).size() == 0);
  const io::SafetensorsFile z(make_file("{" + entry("z", "F32", "[0,4]", "[0,0]") + "," +
                                        entry("b", "U8", "[2]", "[0,2]") + "}", {1, 2}));
  CHECK(z.size() == 2);
  CHECK(z.info("z").numel() == 0);
}

TEST_CASE("every class of malformed file throws io_error with its reason") {
  const std::vector<std::uint8_t> d8(8, 0), d12(12, 0);
  for (std::size_t n = 0; n < 8; ++n) check_io_error(std::vector<std::uint8_t>(n, 0), "shorter than");
  {
    auto b = make_file("{}", {});
    io::detail::store_le(3, 8, b.data());  // header length beyond the file
    check_io_error(b, "larger than");
    io::detail::store_le(200'000'000, 8, b.data());
    check_io_error(b, "exceeds the limit");
    io::detail::store_le(~std::uint64_t{0}, 8, b.data());
    check_io_error(b, "exceeds the limit");
  }
  check_io_error(make_file("{\"a\":", {}), "not valid JSON");
  check_io_error(make_file("{\"a\":1,}", {}), "not valid JSON");
  check_io_error(make_file("{\"x\":\"\xff\xfe\"}", {}), "not valid JSON");  // invalid UTF-8
  check_io_error(make_file("[1,2]", {}), "not a JSON object");
  check_io_error(make_file("3", {}), "not a JSON object");
  check_io_error(make_file("{\"a\":[]}", {}), "not an object");
  check_io_error(make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", d8), "lacks");
  check_io_error(make_file("{\"a\":{\"dtype\":5,\"shape\":[2],\"data_offsets\":[0,8]}}", d8),
                 "dtype is not a string");
  check_io_error(make_file("{" + entry("a", "F128", "[2]", "[0,8]") + "}", d8), "unknown dtype");
  check_io_error(make_file("{" + entry("a", "F32", "\"2\"", "[0,8]") + "}", d8), "shape is not an array");
  check_io_error(make_file("{" + entry("a", "F32", "[-2]", "[0,8]") + "}", d8), "non-negative integers");
  check_io_error(make_file("{" + entry("a", "F32", "[2.0]", "[0,8]") + "}", d8), "non-negative integers");
  check_io_error(make_file("{" + entry("a", "F32", "[1e30]", "[0,8]") + "}", d8), "non-negative integers");
  check_io_error(make_file("{" + entry("a", "F32", "[4294967296,4294967296,16]", "[0,0]") + "}", {}),
                 "too many elements");
  check_io_error(make_file("{" + entry("a", "F64", "[2305843009213693952]", "[0,0]") + "}", {}),
                 "needs");  // numel fits, numel * 8 overflows
  check_io_error(make_file("{" + entry("a", "F32", "[2]", "[0]") + "}", d8), "pair of non-negative");
  check_io_error(make_file("{" + entry("a", "F32", "[2]", "[\"0\",8]") + "}", d8), "pair of non-negative");
  check_io_error(make_file("{" + entry("a", "F32", "[2]", "[0,-8]") + "}", d8), "pair of non-negative");
  check_io_error(make_file("{" + entry("a", "F32", "[0]", "[8,4]") + "}", d8), "begin > end");
  check_io_error(make_file("{" + entry("a", "F32", "[2]", "[0,16]") + "}", d8), "beyond");
  check_io_error(make_file("{" + entry("a", "F32", "[3]", "[0,8]") + "}", d8), "needs");
  check_io_error(make_file("{" + entry("a", "F32", "[2]", "[0,8]") + "," +
                           entry("b", "F32", "[1]", "[4,8]") + "}", d8),
                 "overlaps");
  check_io_error(make_file("{" + entry("a", "F32", "[2]", "[0,8]") + "," +
                           entry("b", "F32", "[2]", "[4,12]") + "}", d12),
                 "overlaps");
  check_io_error(make_file("{" + entry("a", "F32", "[1]", "[0,4]") + "," +
                           entry("b", "F32", "[1]", "[8,12]") + "}", d12),
                 "hole");
  check_io_error(make_file("{" + entry("a", "F32", "[1]", "[4,8]") + "}", d8), "hole");
  check_io_error(make_file("{" + entry("a", "F32", "[1]", "[0,4]") + "}", d8), "cover");
  check_io_error(make_file("{" + entry("a", "F32", "[1]", "[0,4]") + "," +
                           entry("a", "F32", "[1]", "[4,8]") + "}", d8),
                 "duplicate key 'a'");
  check_io_error(make_file("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],"
                           "\"data_offsets\":[0,8]}}", d8),
                 "duplicate key 'dtype'");
  check_io_error(make_file("{\"__metadata__\":{\"k\":1}}", {}), "not a string");
  check_io_error(make_file("{\"__metadata__\":[]}", {}), "__metadata__ is not an object");
}

TEST_CASE("truncations and byte flips of a valid file never crash") {
  const auto good = io::read_file(data_dir / "mixed.safetensors");
  REQUIRE_NOTHROW(io::SafetensorsFile{good});
  // Every proper prefix is malformed (the tensors must tile the whole buffer).
  int prefix_errors = 0;
  for (std::size_t n = 0; n < good.size(); ++n) {
    try {
      io::SafetensorsFile f(std::vector<std::uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)));
    } catch (const hyplora::io_error&) {
      ++prefix_errors;
    }
  }
  CHECK(prefix_errors == static_cast<int>(good.size()));
  // Flipping any header byte either still parses (and then reads every tensor within bounds) or
  // is an io_error; nothing else escapes.
  const std::size_t header_end = 8 + io::detail::load_le(good.data(), 8);
  int parsed = 0, rejected = 0;
  for (std::size_t i = 0; i < header_end; ++i) {
    for (std::uint8_t x : {std::uint8_t{0x01}, std::uint8_t{0x20}, std::uint8_t{0x80}}) {
      auto b = good;
      b[i] ^= x;
      try {
        const io::SafetensorsFile f(std::move(b));
        for (const auto& n : f.names()) {
          if (io::is_convertible_float(f.info(n).dtype) && f.info(n).shape.size() <= 2) {
            CHECK(f.matrix<double>(n).size() == f.info(n).numel());
          }
        }
        ++parsed;
      } catch (const hyplora::io_error&) {
        ++rejected;
      }
    }
  }
  CHECK(rejected > 0);
  CHECK(parsed + rejected == static_cast<int>(3 * header_end));
}

}  // namespace io_test_safetensors
