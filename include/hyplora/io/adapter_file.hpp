// hyplora/io/adapter_file.hpp — PEFT-style adapter directories: adapter_config.json beside
// adapter_model.safetensors.
//
// Tensor keys, per adapted module <m> (e.g. "model.layers.0.self_attn.q_proj"):
//   base_model.model.<m>.lora_A.weight    A: (R, D_in)
//   base_model.model.<m>.lora_B.weight    B: (D_out, R)
//   base_model.model.<m>.lora_k           raw curvature parameter, shape [1] or []   (optional)
//   base_model.model.<m>.lora_norm_scale  feature scale, shape [1] or []             (optional)
// as PEFT and the published HypLoRA code save them; keys without "base_model.model." load too.
// This header only moves matrices: it knows nothing of the nn layers.
#pragma once

#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hyplora/core/errors.hpp"
#include "hyplora/core/types.hpp"
#include "hyplora/io/atomic_file.hpp"
#include "hyplora/io/safetensors.hpp"

namespace hyplora::io {

/// The fields of adapter_config.json this library uses; every other key is kept in `extra` and
/// written back unchanged, so a PEFT config survives a load/save round trip.
struct AdapterConfig {
  std::string peft_type = "LORA";
  std::string variant;  // e.g. "hyplora"; written as "variant" when non-empty
  int r = 0;
  double lora_alpha = 0.0;
  std::vector<std::string> target_modules;
  bool use_rslora = false;
  double lora_dropout = 0.0;
  std::string base_model_name_or_path;
  nlohmann::json extra = nlohmann::json::object();
};

/// One adapted module. A: (R, D_in), B: (D_out, R).
struct AdapterModule {
  MatrixR<float> A, B;
  std::optional<float> k, norm_scale;
};

struct Adapter {
  AdapterConfig config;
  std::map<std::string, AdapterModule> modules;  // keyed by module path, without prefixes
};

inline constexpr const char* adapter_config_name = "adapter_config.json";
inline constexpr const char* adapter_weights_name = "adapter_model.safetensors";

namespace detail {

inline const std::string& peft_prefix() {
  static const std::string p = "base_model.model.";
  return p;
}

inline void check_module_shapes(const std::string& m, const AdapterModule& mod, int r) {
  if (mod.A.rows() != r) {
    throw_shape("adapter module '" + m + "': lora_A rows must equal config r", "lora_A",
                mod.A.rows(), mod.A.cols(), "(r, D_in)", r, mod.A.cols());
  }
  if (mod.B.cols() != mod.A.rows()) {
    throw_shape("adapter module '" + m + "': lora_B cols must equal lora_A rows", "lora_B",
                mod.B.rows(), mod.B.cols(), "lora_A", mod.A.rows(), mod.A.cols());
  }
}

inline nlohmann::json config_to_json(const AdapterConfig& c) {
  nlohmann::json j = c.extra.is_object() ? c.extra : nlohmann::json::object();
  j["peft_type"] = c.peft_type;
  if (!c.variant.empty()) j["variant"] = c.variant;
  j["r"] = c.r;
  // PEFT types lora_alpha as int: write integral values as integers.
  if (c.lora_alpha == std::floor(c.lora_alpha) && std::fabs(c.lora_alpha) < 9.0e15) {
    j["lora_alpha"] = static_cast<std::int64_t>(c.lora_alpha);
  } else {
    j["lora_alpha"] = c.lora_alpha;
  }
  j["target_modules"] = c.target_modules;
  j["use_rslora"] = c.use_rslora;
  j["lora_dropout"] = c.lora_dropout;
  j["base_model_name_or_path"] = c.base_model_name_or_path;
  return j;
}

inline AdapterConfig config_from_json(const nlohmann::json& j, const std::string& src) {
  auto bad = [&](const std::string& why) { return io_error(src + ": " + why); };
  if (!j.is_object()) throw bad("not a JSON object");
  AdapterConfig c;
  c.extra = j;
  auto take = [&](const char* key) -> const nlohmann::json* {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      c.extra.erase(key);
      return nullptr;
    }
    c.extra.erase(key);
    return &*it;
  };
  if (const auto* v = take("peft_type")) {
    if (!v->is_string()) throw bad("peft_type is not a string");
    c.peft_type = v->get<std::string>();
  }
  if (const auto* v = take("variant")) {
    if (!v->is_string()) throw bad("variant is not a string");
    c.variant = v->get<std::string>();
  }
  const auto* r = take("r");
  if (r == nullptr || !r->is_number_integer() || r->get<std::int64_t>() <= 0 ||
      r->get<std::int64_t>() > 1'000'000) {
    throw bad("r must be a positive integer, got " + (r ? r->dump() : std::string("nothing")));
  }
  c.r = r->get<int>();
  const auto* alpha = take("lora_alpha");
  if (alpha == nullptr || !alpha->is_number() || !std::isfinite(alpha->get<double>())) {
    throw bad("lora_alpha must be a finite number, got " +
              (alpha ? alpha->dump() : std::string("nothing")));
  }
  c.lora_alpha = alpha->get<double>();
  if (const auto* v = take("target_modules")) {
    if (v->is_string()) {
      c.target_modules.push_back(v->get<std::string>());  // PEFT also allows one regex string
    } else if (v->is_array()) {
      for (const auto& t : *v) {
        if (!t.is_string()) throw bad("target_modules has a non-string entry " + t.dump());
        c.target_modules.push_back(t.get<std::string>());
      }
    } else {
      throw bad("target_modules is neither a list nor a string");
    }
  }
  if (const auto* v = take("use_rslora")) {
    if (!v->is_boolean()) throw bad("use_rslora is not a boolean");
    c.use_rslora = v->get<bool>();
  }
  if (const auto* v = take("lora_dropout")) {
    if (!v->is_number()) throw bad("lora_dropout is not a number");
    c.lora_dropout = v->get<double>();
  }
  if (const auto* v = take("base_model_name_or_path")) {
    if (!v->is_string()) throw bad("base_model_name_or_path is not a string");
    c.base_model_name_or_path = v->get<std::string>();
  }
  return c;
}

/// A scalar stored as shape [] or [1].
inline float load_scalar(const SafetensorsFile& f, const std::string& key) {
  const TensorInfo& t = f.info(key);
  if (t.shape.size() > 1 || t.numel() != 1) {
    throw shape_error("adapter tensor '" + key + "' must be a scalar (shape [] or [1]), got " +
                      shape_string(t.shape));
  }
  return f.matrix<float>(key)(0, 0);
}

}  // namespace detail

/// Write `dir`/adapter_config.json and `dir`/adapter_model.safetensors (each atomically; the
/// directory is created if needed). Tensors are stored as `dtype` (F32 by default). Throws
/// shape_error if a module's A/B disagree with each other or with config.r.
inline void save_adapter(const std::filesystem::path& dir, const Adapter& adapter,
                         Dtype dtype = Dtype::F32) {
  if (adapter.config.r <= 0) {
    throw value_error("save_adapter: config.r must be positive, got " + std::to_string(adapter.config.r));
  }
  SafetensorsWriter w;
  w.set_metadata("format", "pt");  // what PEFT / transformers write
  for (const auto& [name, mod] : adapter.modules) {
    if (name.empty()) throw value_error("save_adapter: empty module name");
    detail::check_module_shapes(name, mod, adapter.config.r);
    const std::string base = detail::peft_prefix() + name;
    w.add(base + ".lora_A.weight", mod.A, dtype);
    w.add(base + ".lora_B.weight", mod.B, dtype);
    if (mod.k) w.add(base + ".lora_k", MatrixR<float>::Constant(1, 1, *mod.k), dtype, std::vector<std::int64_t>{1});
    if (mod.norm_scale) {
      w.add(base + ".lora_norm_scale", MatrixR<float>::Constant(1, 1, *mod.norm_scale), dtype,
            std::vector<std::int64_t>{1});
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw io_error("save_adapter: cannot create '" + dir.string() + "': " + ec.message());
  w.save(dir / adapter_weights_name);
  write_file_atomic(dir / adapter_config_name, detail::config_to_json(adapter.config).dump(2) + "\n");
}

/// The adapter held by an already parsed weights file `f` under an already read `config`:
/// load_adapter without the file system (`source` names the weights in messages). Same checks
/// and exceptions as load_adapter.
inline Adapter adapter_from(const AdapterConfig& config, const SafetensorsFile& f,
                            const std::string& source = "<memory>") {
  Adapter a;
  a.config = config;
  struct Parts {
    std::optional<std::string> A, B, k, s;  // the keys found
  };
  std::map<std::string, Parts> found;
  static const std::pair<const char*, int> suffixes[] = {
      {".lora_A.weight", 0}, {".lora_B.weight", 1}, {".lora_k", 2}, {".lora_norm_scale", 3}};
  for (const std::string& key : f.names()) {
    const TensorInfo& t = f.info(key);
    if (!is_convertible_float(t.dtype)) {
      throw io_error(source + ": tensor '" + key + "' has dtype " + dtype_name(t.dtype) +
                     "; adapters hold F32, F64, F16 or BF16");
    }
    std::string rest = key;
    if (rest.compare(0, detail::peft_prefix().size(), detail::peft_prefix()) == 0) {
      rest.erase(0, detail::peft_prefix().size());
    }
    int which = -1;
    std::string module;
    for (const auto& [suf, idx] : suffixes) {
      const std::size_t n = std::char_traits<char>::length(suf);
      if (rest.size() > n && rest.compare(rest.size() - n, n, suf) == 0) {
        which = idx;
        module = rest.substr(0, rest.size() - n);
        break;
      }
    }
    if (which < 0) {
      throw io_error(source + ": unknown adapter key '" + key +
                     "' (expected <module>.lora_A.weight, .lora_B.weight, .lora_k or .lora_norm_scale)");
    }
    Parts& p = found[module];
    std::optional<std::string>* slot[] = {&p.A, &p.B, &p.k, &p.s};
    if (*slot[which]) {
      throw io_error(source + ": keys '" + **slot[which] + "' and '" + key +
                     "' name the same tensor");
    }
    *slot[which] = key;
  }
  for (const auto& [module, p] : found) {
    if (!p.A || !p.B) {
      throw io_error(source + ": module '" + module + "' has " +
                     (p.A ? "lora_A but no lora_B" : p.B ? "lora_B but no lora_A"
                                                        : "no lora_A/lora_B"));
    }
    for (const std::string* key : {&*p.A, &*p.B}) {
      if (f.info(*key).shape.size() != 2) {
        throw shape_error(source + ": '" + *key + "' must be 2-D, got shape " +
                          detail::shape_string(f.info(*key).shape));
      }
    }
    AdapterModule m;
    m.A = f.matrix<float>(*p.A);
    m.B = f.matrix<float>(*p.B);
    if (p.k) m.k = detail::load_scalar(f, *p.k);
    if (p.s) m.norm_scale = detail::load_scalar(f, *p.s);
    detail::check_module_shapes(module, m, a.config.r);
    a.modules.emplace(module, std::move(m));
  }
  return a;
}

/// Read an adapter directory written by save_adapter or by PEFT. Throws io_error for missing or
/// malformed files, unknown key suffixes (naming the key), a lora_A without lora_B (or the
/// reverse), non-floating dtypes; shape_error when ranks disagree (naming both shapes).
inline Adapter load_adapter(const std::filesystem::path& dir) {
  const std::filesystem::path cfg_path = dir / adapter_config_name;
  const std::vector<std::uint8_t> cfg_bytes = read_file(cfg_path);
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(cfg_bytes.begin(), cfg_bytes.end());
  } catch (const nlohmann::json::exception& e) {
    throw io_error(cfg_path.string() + ": not valid JSON: " + e.what());
  }
  const AdapterConfig config = detail::config_from_json(cfg, cfg_path.string());
  const std::filesystem::path w_path = dir / adapter_weights_name;
  return adapter_from(config, SafetensorsFile::load(w_path), w_path.string());
}

}  // namespace hyplora::io
