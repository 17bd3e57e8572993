// Tests for include/hyplora/io/adapter_file.hpp: PEFT fixture, round trips, and load errors.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <hyplora/io/adapter_file.hpp>
#include <random>
#include <string>
#include <vector>

namespace io_test_adapter_file {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace io = hyplora::io;
namespace fs = std::filesystem;
using hyplora::MatrixR;

namespace {

const fs::path peft_dir = fs::path(HYPLORA_SOURCE_DIR) / "tests" / "io" / "data" / "peft_adapter";

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("hyplora_io_adapter_" + std::to_string(rd()) + "_" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

MatrixR<float> random_matrix(hyplora::Index r, hyplora::Index c, std::mt19937& rng) {
  std::normal_distribution<float> g(0.0f, 0.5f);
  MatrixR<float> m(r, c);
  for (hyplora::Index i = 0; i < m.size(); ++i) m.data()[i] = g(rng);
  return m;
}

io::Adapter random_adapter(int r) {
  std::mt19937 rng(11);
  io::Adapter a;
  a.config.variant = "hyplora";
  a.config.r = r;
  a.config.lora_alpha = 16;
  a.config.target_modules = {"q_proj", "v_proj"};
  a.config.use_rslora = true;
  a.config.lora_dropout = 0.1;
  a.config.base_model_name_or_path = "some/model";
  a.config.extra["task_type"] = "CAUSAL_LM";
  io::AdapterModule q{random_matrix(r, 8, rng), random_matrix(6, r, rng), 1.3133f, 2.5f};
  io::AdapterModule v{random_matrix(r, 8, rng), random_matrix(8, r, rng), std::nullopt, std::nullopt};
  a.modules.emplace("model.layers.0.self_attn.q_proj", q);
  a.modules.emplace("model.layers.0.self_attn.v_proj", v);
  return a;
}

/// An adapter directory with the given tensors and a config with rank r.
void write_dir(const fs::path& dir, const io::SafetensorsWriter& w, int r) {
  io::AdapterConfig c;
  c.r = r;
  c.lora_alpha = 8;
  io::Adapter empty;
  empty.config = c;
  io::save_adapter(dir, empty);  // writes the config (and an empty weights file)
  w.save(dir / io::adapter_weights_name);
}

template <class E>
std::string error_of(const fs::path& dir) {
  try {
    (void)io::load_adapter(dir);
  } catch (const E& e) {
    return e.what();
  }
  return "<no error of the expected type>";
}

}  // namespace

TEST_CASE("loads an adapter written in PEFT's layout by the reference Python package") {
  const io::Adapter a = io::load_adapter(peft_dir);
  CHECK(a.config.peft_type == "LORA");
  CHECK(a.config.r == 4);
  CHECK(a.config.lora_alpha == 8.0);
  CHECK(a.config.lora_dropout == doctest::Approx(0.05));
  CHECK(a.config.target_modules == std::vector<std::string>{"q_proj", "v_proj"});
  CHECK_FALSE(a.config.use_rslora);
  CHECK(a.config.base_model_name_or_path == "tiny-llama");
  CHECK(a.config.extra.at("task_type") == "CAUSAL_LM");  // unknown keys are kept
  REQUIRE(a.modules.size() == 2);
  for (const auto* name : {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"}) {
    CAPTURE(name);
    const io::AdapterModule& m = a.modules.at(name);
    const double off = std::string(name).find("v_proj") != std::string::npos ? 0.5 : 0.0;
    REQUIRE(m.A.rows() == 4);
    REQUIRE(m.A.cols() == 6);
    REQUIRE(m.B.rows() == 5);
    REQUIRE(m.B.cols() == 4);
    for (int i = 0; i < 4; ++i) {
      for (int j = 0; j < 6; ++j) CHECK(m.A(i, j) == static_cast<float>((i * 6 + j) * 0.01 - 0.1 + off));
    }
    for (int i = 0; i < 5; ++i) {
      for (int j = 0; j < 4; ++j) CHECK(m.B(i, j) == static_cast<float>((i * 4 + j) * 0.02 - 0.2));
    }
  }
  const auto& q = a.modules.at("model.layers.0.self_attn.q_proj");
  const auto& v = a.modules.at("model.layers.0.self_attn.v_proj");
  REQUIRE(q.k.has_value());  // stored with shape [1]
  CHECK(*q.k == 1.0f);
  CHECK_FALSE(q.norm_scale.has_value());
  CHECK_FALSE(v.k.has_value());
  REQUIRE(v.norm_scale.has_value());  // stored with shape []
  CHECK(*v.norm_scale == static_cast<float>(2.449489742783178));
}

TEST_CASE("adapter_from reads from memory exactly what load_adapter reads from the directory") {
  const io::Adapter disk = io::load_adapter(peft_dir);
  const io::SafetensorsFile f = io::SafetensorsFile::load(peft_dir / io::adapter_weights_name);
  const io::Adapter mem = io::adapter_from(disk.config, f);
  CHECK(mem.config.r == disk.config.r);
  CHECK(mem.config.target_modules == disk.config.target_modules);
  REQUIRE(mem.modules.size() == disk.modules.size());
  for (const auto& kv : disk.modules) {
    const std::string& name = kv.first;  // not a structured binding: CAPTURE's lambda needs it
    const io::AdapterModule& m = kv.second;
    CAPTURE(name);
    REQUIRE(mem.modules.count(name) == 1);
    const io::AdapterModule& x = mem.modules.at(name);
    CHECK(x.A == m.A);
    CHECK(x.B == m.B);
    CHECK(x.k == m.k);
    CHECK(x.norm_scale == m.norm_scale);
  }
  // The same checks, with the caller's source name in the message; the config's rank is used.
  io::AdapterConfig c = disk.config;
  c.r = 3;
  try {
    (void)io::adapter_from(c, f, "weights-in-memory");
    FAIL("a rank-4 adapter loaded under r = 3");
  } catch (const hyplora::shape_error& e) {
    CHECK(std::string(e.what()).find("(4, 6)") != std::string::npos);
    CHECK(std::string(e.what()).find("(3, 6)") != std::string::npos);
  }
  io::SafetensorsWriter w;
  w.add("m.lora_A.weight", MatrixR<float>::Ones(4, 5));
  const io::SafetensorsFile half(w.bytes(), "half");
  CHECK_THROWS_WITH_AS(io::adapter_from(disk.config, half, "weights-in-memory"),
                       doctest::Contains("weights-in-memory: module 'm' has lora_A but no lora_B"),
                       hyplora::io_error);
}

TEST_CASE("save_adapter / load_adapter round trip, exact in F32 and stable on re-save") {
  TempDir d;
  const io::Adapter a = random_adapter(4);
  io::save_adapter(d.path / "ad", a);
  CHECK(fs::exists(d.path / "ad" / io::adapter_config_name));
  const auto f = io::SafetensorsFile::load(d.path / "ad" / io::adapter_weights_name);
  CHECK(f.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
  CHECK(f.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_k"));
  CHECK(f.metadata().at("format") == "pt");

  const io::Adapter b = io::load_adapter(d.path / "ad");
  CHECK(b.config.variant == "hyplora");
  CHECK(b.config.r == 4);
  CHECK(b.config.lora_alpha == 16.0);
  CHECK(b.config.use_rslora);
  CHECK(b.config.lora_dropout == 0.1);
  CHECK(b.config.target_modules == a.config.target_modules);
  CHECK(b.config.base_model_name_or_path == "some/model");
  CHECK(b.config.extra == a.config.extra);
  REQUIRE(b.modules.size() == a.modules.size());
  for (const auto& kv : a.modules) {  // not a structured binding: CAPTURE's lambda needs a variable
    const std::string& name = kv.first;
    const io::AdapterModule& m = kv.second;
    CAPTURE(name);
    const auto& n = b.modules.at(name);
    CHECK(n.A == m.A);
    CHECK(n.B == m.B);
    CHECK(n.k == m.k);
    CHECK(n.norm_scale == m.norm_scale);
  }
  // Saving what was loaded reproduces both files byte for byte.
  io::save_adapter(d.path / "again", b);
  for (const char* file : {io::adapter_config_name, io::adapter_weights_name}) {
    CHECK(io::read_file(d.path / "ad" / file) == io::read_file(d.path / "again" / file));
  }
  // And the PEFT fixture survives load -> save -> load.
  io::save_adapter(d.path / "peft", io::load_adapter(peft_dir));
  const io::Adapter p = io::load_adapter(d.path / "peft");
  CHECK(p.config.extra == io::load_adapter(peft_dir).config.extra);
  CHECK(p.modules.at("model.layers.0.self_attn.v_proj").A ==
        io::load_adapter(peft_dir).modules.at("model.layers.0.self_attn.v_proj").A);
}

TEST_CASE("adapters stored as BF16 load within BF16 rounding") {
  TempDir d;
  const io::Adapter a = random_adapter(2);
  io::save_adapter(d.path, a, io::Dtype::BF16);
  CHECK(io::SafetensorsFile::load(d.path / io::adapter_weights_name)
            .info("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight")
            .dtype == io::Dtype::BF16);
  const io::Adapter b = io::load_adapter(d.path);
  for (const auto& [name, m] : a.modules) {
    const auto& n = b.modules.at(name);
    for (hyplora::Index i = 0; i < m.A.size(); ++i) {
      CHECK(std::fabs(n.A.data()[i] - m.A.data()[i]) <= std::ldexp(std::fabs(m.A.data()[i]), -8));
    }
  }
}

TEST_CASE("keys without the base_model.model. prefix load too") {
  TempDir d;
  io::SafetensorsWriter w;
  w.add("layer.q.lora_A.weight", MatrixR<float>::Ones(3, 5));
  w.add("layer.q.lora_B.weight", MatrixR<float>::Ones(2, 3));
  w.add("layer.q.lora_k", MatrixR<float>::Constant(1, 1, 0.5f), io::Dtype::F32, std::vector<std::int64_t>{});
  write_dir(d.path, w, 3);
  const io::Adapter a = io::load_adapter(d.path);
  REQUIRE(a.modules.count("layer.q") == 1);
  CHECK(a.modules.at("layer.q").A.cols() == 5);
  CHECK(*a.modules.at("layer.q").k == 0.5f);
}

TEST_CASE("load errors: ranks, unknown keys, missing halves, dtypes, scalars, configs") {
  TempDir d;
  const std::string pre = "base_model.model.m";
  {
    io::SafetensorsWriter w;  // A has rank 3, config says 4
    w.add(pre + ".lora_A.weight", MatrixR<float>::Ones(3, 5));
    w.add(pre + ".lora_B.weight", MatrixR<float>::Ones(2, 3));
    write_dir(d.path, w, 4);
    const std::string m = error_of<hyplora::shape_error>(d.path);
    CHECK(m.find("(3, 5)") != std::string::npos);
    CHECK(m.find("(4, 5)") != std::string::npos);
  }
  {
    io::SafetensorsWriter w;  // B's rank disagrees with A's
    w.add(pre + ".lora_A.weight", MatrixR<float>::Ones(3, 5));
    w.add(pre + ".lora_B.weight", MatrixR<float>::Ones(2, 4));
    write_dir(d.path, w, 3);
    const std::string m = error_of<hyplora::shape_error>(d.path);
    CHECK(m.find("(2, 4)") != std::string::npos);
    CHECK(m.find("(3, 5)") != std::string::npos);
  }
  {
    io::SafetensorsWriter w;
    w.add(pre + ".lora_A.weight", MatrixR<float>::Ones(3, 5));
    write_dir(d.path, w, 3);
    CHECK(error_of<hyplora::io_error>(d.path).find("lora_A but no lora_B") != std::string::npos);
  }
  {
    io::SafetensorsWriter w;
    w.add(pre + ".lora_B.weight", MatrixR<float>::Ones(2, 3));
    write_dir(d.path, w, 3);
    CHECK(error_of<hyplora::io_error>(d.path).find("lora_B but no lora_A") != std::string::npos);
  }
  {
    io::SafetensorsWriter w;
    w.add(pre + ".lora_A.weight", MatrixR<float>::Ones(3, 5));
    w.add(pre + ".lora_B.weight", MatrixR<float>::Ones(2, 3));
    w.add(pre + ".lora_E.weight", MatrixR<float>::Ones(1, 3));
    write_dir(d.path, w, 3);
    CHECK(error_of<hyplora::io_error>(d.path).find("'" + pre + ".lora_E.weight'") != std::string::npos);
  }
  {
    io::SafetensorsWriter w;  // the same tensor with and without the prefix
    w.add(pre + ".lora_A.weight", MatrixR<float>::Ones(3, 5));
    w.add("m.lora_A.weight", MatrixR<float>::Ones(3, 5));
    w.add(pre + ".lora_B.weight", MatrixR<float>::Ones(2, 3));
    write_dir(d.path, w, 3);
    CHECK(error_of<hyplora::io_error>(d.path).find("name the same tensor") != std::string::npos);
  }
  {
    io::SafetensorsWriter w;
    w.add(pre + ".lora_A.weight", MatrixR<float>::Ones(3, 5));
    w.add_raw(pre + ".lora_B.weight", io::Dtype::I32, {2, 3}, std::vector<std::uint8_t>(24));
    write_dir(d.path, w, 3);
    CHECK(error_of<hyplora::io_error>(d.path).find("dtype I32") != std::string::npos);
  }
  {
    io::SafetensorsWriter w;
    w.add(pre + ".lora_A.weight", MatrixR<float>::Ones(3, 5));
    w.add(pre + ".lora_B.weight", MatrixR<float>::Ones(2, 3));
    w.add(pre + ".lora_k", MatrixR<float>::Ones(1, 2));
    write_dir(d.path, w, 3);
    CHECK(error_of<hyplora::shape_error>(d.path).find("scalar") != std::string::npos);
  }
  {
    io::SafetensorsWriter w;
    w.add(pre + ".lora_A.weight", MatrixR<float>::Ones(1, 15), io::Dtype::F32, std::vector<std::int64_t>{15});
    w.add(pre + ".lora_B.weight", MatrixR<float>::Ones(2, 3));
    write_dir(d.path, w, 3);
    CHECK(error_of<hyplora::shape_error>(d.path).find("must be 2-D") != std::string::npos);
  }
  // Config problems.
  io::SafetensorsWriter ok;
  ok.add(pre + ".lora_A.weight", MatrixR<float>::Ones(3, 5));
  ok.add(pre + ".lora_B.weight", MatrixR<float>::Ones(2, 3));
  write_dir(d.path, ok, 3);
  REQUIRE_NOTHROW((void)io::load_adapter(d.path));
  const fs::path cfg = d.path / io::adapter_config_name;
  for (const char* text : {"{\"r\": 3", "[]", "{\"lora_alpha\": 8}", "{\"r\": 0, \"lora_alpha\": 8}",
                           "{\"r\": 3.5, \"lora_alpha\": 8}", "{\"r\": 3}",
                           "{\"r\": 3, \"lora_alpha\": 8, \"target_modules\": [1]}",
                           "{\"r\": 3, \"lora_alpha\": 8, \"use_rslora\": \"yes\"}"}) {
    CAPTURE(text);
    io::write_file_atomic(cfg, std::string_view(text));
    CHECK(error_of<hyplora::io_error>(d.path).find(cfg.string()) != std::string::npos);
  }
  fs::remove(cfg);
  CHECK(error_of<hyplora::io_error>(d.path).find("adapter_config.json") != std::string::npos);
  CHECK(error_of<hyplora::io_error>(d.path / "nowhere").find("nowhere") != std::string::npos);
}

TEST_CASE("save_adapter rejects inconsistent adapters before writing anything") {
  TempDir d;
  io::Adapter a = random_adapter(4);
  a.modules.begin()->second.B = MatrixR<float>::Ones(6, 3);
  CHECK_THROWS_AS(io::save_adapter(d.path / "x", a), hyplora::shape_error);
  CHECK_FALSE(fs::exists(d.path / "x"));
  a = random_adapter(4);
  a.config.r = 5;
  CHECK_THROWS_AS(io::save_adapter(d.path / "x", a), hyplora::shape_error);
  a.config.r = 0;
  CHECK_THROWS_AS(io::save_adapter(d.path / "x", a), hyplora::value_error);
  CHECK_FALSE(fs::exists(d.path / "x"));
}

}  // namespace io_test_adapter_file
