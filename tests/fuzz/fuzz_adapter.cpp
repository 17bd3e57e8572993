// libFuzzer target: the adapter loader (io/adapter_file.hpp) on an arbitrary
// adapter_model.safetensors under a fixed, valid adapter_config.json (r = 4, as the committed PEFT
// fixture). The input goes through io::adapter_from, the part of io::load_adapter after the two
// files are read: the config is parsed once, not per input, and no file is written or read per
// input (load_adapter's file reading is SafetensorsFile::load = read_file + the same parser,
// covered by tests/io). That raised the rate ~4x over the earlier harness, which wrote each
// input to /dev/shm and re-read both files (docs/hardening.md, Fuzzing).
// Every outcome must be either an Adapter whose shapes agree with r, or a typed exception
// (io_error, shape_error).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include <nlohmann/json.hpp>

#include "hyplora/core/errors.hpp"
#include "hyplora/io/adapter_file.hpp"
#include "hyplora/io/safetensors.hpp"

namespace {

const hyplora::io::AdapterConfig& fixed_config() {
  static const hyplora::io::AdapterConfig c = hyplora::io::detail::config_from_json(
      nlohmann::json::parse("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": "
                            "[\"q_proj\", \"v_proj\"], \"lora_dropout\": 0.05, \"use_rslora\": false}"),
      "<fuzz config>");
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace io = hyplora::io;
  try {
    const io::SafetensorsFile f(std::vector<std::uint8_t>(data, data + size), "<fuzz>");
    const io::Adapter a = io::adapter_from(fixed_config(), f, "<fuzz>");
    if (a.config.r != 4) std::abort();
    for (const auto& [name, m] : a.modules) {
      if (m.A.rows() != 4 || m.B.cols() != 4) std::abort();
    }
  } catch (const hyplora::io_error&) {
  } catch (const hyplora::shape_error&) {
  }
  return 0;
}
