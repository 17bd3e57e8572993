// Tests for include/hyplora/core/types.hpp.
#include <doctest/doctest.h>

#include <hyplora/core/types.hpp>

namespace core_test_types {  // one per test file: files share translation units (tests/CMakeLists.txt)

TEST_CASE("batches are row-major so each point is a contiguous row") {
  hyplora::MatrixR<double> m(3, 4);
  for (int i = 0; i < 12; ++i) m.data()[i] = i;
  CHECK(m(1, 0) == 4.0);
  CHECK(m.row(2).data() == m.data() + 8);
  CHECK(hyplora::MatrixR<float>::IsRowMajor);
}

}  // namespace core_test_types
