// libFuzzer target: hyplora::io::SafetensorsFile parsed from arbitrary bytes, then every tensor
// read back. Built and run by scripts/fuzz.sh (not by CMake; no test_ prefix so tests/ does not
// glob it). Contract under test (io/safetensors.hpp): construction either throws io_error /
// shape_error or validates every offset, so the accessors below never read outside the buffer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "hyplora/core/errors.hpp"
#include "hyplora/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace io = hyplora::io;
  try {
    const io::SafetensorsFile f(std::vector<std::uint8_t>(data, data + size), "<fuzz>");
    for (const std::string& name : f.names()) {
      const io::TensorInfo& t = f.info(name);
      const auto raw = f.raw(name);
      // The span must lie inside the buffer (ASan checks the read below as well).
      if (raw.second != t.end - t.begin) std::abort();
      volatile std::uint8_t sink = 0;
      if (raw.second > 0) sink = static_cast<std::uint8_t>(raw.first[0] ^ raw.first[raw.second - 1]);
      (void)sink;
      if (!io::is_convertible_float(t.dtype) || t.shape.size() > 2) continue;
      try {
        const auto m = f.matrix<float>(name);
        if (m.size() != t.numel()) std::abort();
        const auto md = f.matrix<double>(name);
        if (md.size() != m.size()) std::abort();
      } catch (const hyplora::shape_error&) {
      }
    }
    (void)f.metadata();
  } catch (const hyplora::io_error&) {
  } catch (const hyplora::shape_error&) {
  }
  return 0;
}
