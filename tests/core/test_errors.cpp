// Tests for include/hyplora/core/errors.hpp.
#include <doctest/doctest.h>

#include <hyplora/core/errors.hpp>
#include <limits>
#include <string>

namespace core_test_errors {  // one per test file: files share translation units (tests/CMakeLists.txt)

TEST_CASE("check_curvature rejects K <= 0 and non-finite K with the value in the message") {
  CHECK_NOTHROW(hyplora::check_curvature(1.0));
  CHECK_NOTHROW(hyplora::check_curvature(1e-3f));
  for (double k : {0.0, -1.0, std::numeric_limits<double>::infinity(),
                   std::numeric_limits<double>::quiet_NaN()}) {
    CAPTURE(k);
    CHECK_THROWS_AS(hyplora::check_curvature(k), hyplora::value_error);
  }
  try {
    hyplora::check_curvature(-2.5);
    FAIL("no throw");
  } catch (const hyplora::value_error& e) {
    CHECK(std::string(e.what()).find("-2.5") != std::string::npos);
  }
}

TEST_CASE("shape errors name both shapes and derive from hyplora::error") {
  try {
    hyplora::throw_shape("matmul", "a", 2, 3, "b", 4, 5);
    FAIL("no throw");
  } catch (const hyplora::error& e) {
    const std::string m = e.what();
    CHECK(m.find("(2, 3)") != std::string::npos);
    CHECK(m.find("(4, 5)") != std::string::npos);
    CHECK(dynamic_cast<const hyplora::shape_error*>(&e) != nullptr);
  }
}

}  // namespace core_test_errors
