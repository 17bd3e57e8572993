// libFuzzer target: hyplora::io::load_adapter on a directory whose adapter_model.safetensors is
// the fuzz input and whose adapter_config.json is fixed and valid (r = 4, as the committed PEFT
// fixture). load_adapter only reads from a directory, so the input is written to a per-process
// directory (in /dev/shm when it exists, to keep the rate up). Every outcome must be either an
// Adapter whose shapes agree with r, or a typed exception (io_error, shape_error).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "hyplora/core/errors.hpp"
#include "hyplora/io/adapter_file.hpp"

namespace {

const std::filesystem::path& fuzz_dir() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path root =
        std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    std::filesystem::path d = root / ("hyplora_fuzz_adapter_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::FILE* c = std::fopen((d / hyplora::io::adapter_config_name).c_str(), "wb");
    if (c == nullptr) std::abort();
    const char cfg[] =
        "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": "
        "[\"q_proj\", \"v_proj\"], \"lora_dropout\": 0.05, \"use_rslora\": false}\n";
    std::fwrite(cfg, 1, sizeof(cfg) - 1, c);
    std::fclose(c);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(fuzz_dir(), ec);
    });
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace io = hyplora::io;
  const std::filesystem::path& dir = fuzz_dir();
  std::FILE* w = std::fopen((dir / io::adapter_weights_name).c_str(), "wb");
  if (w == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, w) != size) std::abort();
  std::fclose(w);
  try {
    const io::Adapter a = io::load_adapter(dir);
    if (a.config.r != 4) std::abort();
    for (const auto& [name, m] : a.modules) {
      if (m.A.rows() != 4 || m.B.cols() != 4) std::abort();
    }
  } catch (const hyplora::io_error&) {
  } catch (const hyplora::shape_error&) {
  }
  return 0;
}
