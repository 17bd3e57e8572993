// Tests for include/hyplora/core/config.hpp.
#include <doctest/doctest.h>

#include <hyplora/core/config.hpp>

namespace core_test_config {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
template <class T>
HYPLORA_HD_INLINE T twice(T x) { return x + x; }
}  // namespace

TEST_CASE("version macros and HYPLORA_HD functions on the host") {
  CHECK(HYPLORA_VERSION_MAJOR == 0);
  CHECK(HYPLORA_VERSION_MINOR == 1);
  CHECK(twice(2.5) == 5.0);
}

}  // namespace core_test_config
