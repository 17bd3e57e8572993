// Bad input: each misuse throws hyplora's typed exception (value_error, shape_error, io_error)
// with a message that names the problem: the offending value, both shapes, the key, the dtype.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>

#include <hyplora/autodiff/ops_lora.hpp>
#include <hyplora/autodiff/tape.hpp>
#include <hyplora/io/adapter_file.hpp>
#include <hyplora/io/safetensors.hpp>
#include <hyplora/manifold/lorentz.hpp>
#include <hyplora/manifold/poincare_ball.hpp>
#include <hyplora/nn/adapted_linear.hpp>

namespace stress_test_bad_input {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace fs = std::filesystem;
namespace ad = hyplora::ad;
namespace io = hyplora::io;
namespace nn = hyplora::nn;
using doctest::Contains;
using hyplora::MatrixR;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

nn::AdapterConfig cfg(nn::AdapterKind k, int r = 2) {
  nn::AdapterConfig c;
  c.kind = k;
  c.r = r;
  return c;
}

// A layer (D_in 5, D_out 6) with the given config attached in a fresh store.
struct Layer {
  ad::ParameterStore<double> store;
  nn::AdaptedLinear<double> layer{store, "blk.q", 5, 6, true};
  Layer() { layer.base().init_kaiming_uniform(store, 1); }
};

fs::path adapter_dir(const std::string& name, io::SafetensorsWriter& w) {
  const fs::path d = fs::temp_directory_path() / ("hyplora_bad_input_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  w.save(d / io::adapter_weights_name);
  io::write_file_atomic(d / io::adapter_config_name, std::string("{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4}"));
  return d;
}

}  // namespace

TEST_CASE("rank: r = 0 and r > min(D_in, D_out) name the rank and the bound") {
  for (auto k : {nn::AdapterKind::lora, nn::AdapterKind::dora, nn::AdapterKind::hyplora}) {
    CAPTURE(nn::to_string(k));
    Layer a;
    CHECK_THROWS_WITH_AS(a.layer.attach(a.store, cfg(k, 0)), Contains("rank r must be >= 1, got 0"), hyplora::value_error);
    Layer b;
    CHECK_THROWS_WITH_AS(b.layer.attach(b.store, cfg(k, 6)), Contains("rank r = 6 exceeds min(D_in, D_out) = 5"),
                         hyplora::value_error);
    Layer c;
    CHECK_THROWS_WITH_AS(c.layer.attach(c.store, cfg(k, -3)), Contains("got -3"), hyplora::value_error);
  }
}

TEST_CASE("curvature: K <= 0 or non-finite is refused everywhere, naming the value") {
  for (double K : {0.0, -1.0, kNaN, std::numeric_limits<double>::infinity()}) {
    CAPTURE(K);
    CHECK_THROWS_WITH_AS(hyplora::Lorentz<double>{K}, Contains("curvature K must be finite and > 0"), hyplora::value_error);
    CHECK_THROWS_WITH_AS(hyplora::PoincareBall<double>{K}, Contains("curvature K must be finite and > 0"),
                         hyplora::value_error);
    CHECK_THROWS_WITH_AS(hyplora::Lorentz<float>{static_cast<float>(K)}, Contains("curvature K"), hyplora::value_error);
    for (auto k : {nn::AdapterKind::hyplora, nn::AdapterKind::hyplora_official, nn::AdapterKind::hyplora_stereographic,
                   nn::AdapterKind::hyplora_official_simplified}) {
      Layer a;
      nn::AdapterConfig c = cfg(k);
      c.K = K;
      CHECK_THROWS_WITH_AS(a.layer.attach(a.store, c), Contains("curvature K must be finite and > 0"), hyplora::value_error);
    }
  }
  CHECK_THROWS_WITH_AS(hyplora::Lorentz<double>{-2.5}, Contains("-2.5"), hyplora::value_error);
}

TEST_CASE("NaN in parameters: base weights, alpha, sigma and loaded adapter factors") {
  {
    Layer a;
    a.store.value(a.layer.base().weight())(2, 3) = kNaN;
    CHECK_THROWS_WITH_AS(a.layer.attach(a.store, cfg(nn::AdapterKind::lora)), Contains("base weight has a non-finite entry"),
                         hyplora::value_error);
  }
  {
    Layer a;
    nn::AdapterConfig c = cfg(nn::AdapterKind::lora);
    c.alpha = kNaN;
    CHECK_THROWS_WITH_AS(a.layer.attach(a.store, c), Contains("alpha must be finite"), hyplora::value_error);
  }
  {
    Layer a;
    nn::AdapterConfig c = cfg(nn::AdapterKind::hyplora);
    c.feature_scale = kNaN;
    CHECK_THROWS_WITH_AS(a.layer.attach(a.store, c), Contains("feature_scale sigma must be finite and > 0"),
                         hyplora::value_error);
  }
  {
    Layer a;
    a.layer.attach(a.store, cfg(nn::AdapterKind::lora));
    io::AdapterModule m;
    m.A = MatrixR<float>::Zero(2, 5);
    m.B = MatrixR<float>::Zero(6, 2);
    m.B(4, 1) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH_AS(a.layer.load_adapter_module(a.store, m), Contains("lora_B has a non-finite entry"),
                         hyplora::value_error);
    CHECK_THROWS_WITH_AS(a.layer.load_adapter_module(a.store, m), Contains("(4, 1)"), hyplora::value_error);
  }
}

TEST_CASE("NaN in inputs: anomaly detection names the op that saw it") {
  Layer a;
  a.layer.attach(a.store, cfg(nn::AdapterKind::hyplora));
  ad::Tape<double> tape;
  ad::DetectAnomalyGuard<double> guard(tape);
  MatrixR<double> x = MatrixR<double>::Ones(3, 5);
  x(1, 2) = kNaN;
  CHECK_THROWS_WITH_AS(
      {
        auto xv = tape.constant(x);
        auto z = a.layer.forward(tape, a.store, xv, false);
        tape.backward(z, MatrixR<double>::Ones(3, 6));
      },
      Contains("non-finite value produced by op"), hyplora::value_error);
}

TEST_CASE("mismatched shapes name both shapes") {
  Layer a;
  a.layer.attach(a.store, cfg(nn::AdapterKind::hyplora));
  ad::Tape<double> tape;
  const auto x = tape.constant(MatrixR<double>::Ones(3, 7));
  CHECK_THROWS_WITH_AS(a.layer.forward(tape, a.store, x, false), Contains("(3, 7)"), hyplora::shape_error);
  CHECK_THROWS_WITH_AS(a.layer.forward(tape, a.store, x, false), Contains("(6, 5)"), hyplora::shape_error);
  // A module whose factors do not fit the layer.
  io::AdapterModule m;
  m.A = MatrixR<float>::Zero(3, 5);
  m.B = MatrixR<float>::Zero(6, 3);
  CHECK_THROWS_WITH_AS(a.layer.load_adapter_module(a.store, m), Contains("(2, 5)"), hyplora::shape_error);
  CHECK_THROWS_WITH_AS(a.layer.load_adapter_module(a.store, m), Contains("(3, 5)"), hyplora::shape_error);
  // Manifold ops on batches of different shapes.
  const hyplora::Lorentz<double> L(1.0);
  const MatrixR<double> X = L.origin(4, 3), Y = L.origin(5, 3);
  CHECK_THROWS_WITH_AS((void)L.dist(X, Y), Contains("(4, 4)"), hyplora::shape_error);
  CHECK_THROWS_WITH_AS((void)L.dist(X, Y), Contains("(5, 4)"), hyplora::shape_error);
  // The tape: a backward seed of the wrong shape.
  const auto z = tape.leaf(MatrixR<double>::Ones(2, 2));
  CHECK_THROWS_WITH_AS(tape.backward(z, MatrixR<double>::Ones(3, 2)), Contains("(3, 2)"), hyplora::shape_error);
}

TEST_CASE("adapter files: unknown keys and wrong dtypes name the key and the dtype") {
  {
    io::SafetensorsWriter w;
    w.add("base_model.model.q.lora_A.weight", MatrixR<float>::Zero(2, 5));
    w.add("base_model.model.q.lora_B.weight", MatrixR<float>::Zero(6, 2));
    w.add("base_model.model.q.lora_C.weight", MatrixR<float>::Zero(1, 1));
    const fs::path d = adapter_dir("unknown", w);
    CHECK_THROWS_WITH_AS(io::load_adapter(d), Contains("unknown adapter key 'base_model.model.q.lora_C.weight'"),
                         hyplora::io_error);
    fs::remove_all(d);
  }
  {
    io::SafetensorsWriter w;
    w.add("base_model.model.q.lora_A.weight", MatrixR<float>::Zero(2, 5));
    w.add_raw("base_model.model.q.lora_B.weight", io::Dtype::I32, {6, 2}, std::vector<std::uint8_t>(48, 0));
    const fs::path d = adapter_dir("dtype", w);
    CHECK_THROWS_WITH_AS(io::load_adapter(d), Contains("has dtype I32"), hyplora::io_error);
    fs::remove_all(d);
  }
  {
    // matrix<T>() of an integer tensor, and a header naming a dtype that does not exist.
    io::SafetensorsWriter w;
    w.add_raw("ids", io::Dtype::I64, {2}, std::vector<std::uint8_t>(16, 0));
    const io::SafetensorsFile f(w.bytes());
    CHECK_THROWS_WITH_AS((void)f.matrix<float>("ids"), Contains("dtype I64"), hyplora::io_error);
    std::string h = "{\"t\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    std::vector<std::uint8_t> bytes(8);
    bytes[0] = static_cast<std::uint8_t>(h.size());
    bytes.insert(bytes.end(), h.begin(), h.end());
    bytes.resize(bytes.size() + 4, 0);
    CHECK_THROWS_WITH_AS(io::SafetensorsFile{bytes}, Contains("unknown dtype 'F17'"), hyplora::io_error);
  }
  {
    // A config whose rank is not a positive integer.
    io::SafetensorsWriter w;
    w.add("q.lora_A.weight", MatrixR<float>::Zero(2, 5));
    w.add("q.lora_B.weight", MatrixR<float>::Zero(6, 2));
    const fs::path d = adapter_dir("rank", w);
    io::write_file_atomic(d / io::adapter_config_name, std::string("{\"r\": 0, \"lora_alpha\": 4}"));
    CHECK_THROWS_WITH_AS(io::load_adapter(d), Contains("r must be a positive integer, got 0"), hyplora::io_error);
    fs::remove_all(d);
  }
}

}  // namespace stress_test_bad_input
