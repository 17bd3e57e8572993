// Tests for include/hyplora/autodiff/tensor.hpp: Shape, views over storage, check_same_shape.
#include <doctest/doctest.h>

#include <string>

#include <hyplora/autodiff/tensor.hpp>

namespace autodiff_test_tensor {  // one per test file: files share translation units (tests/CMakeLists.txt)

using hyplora::ad::ConstTensorView;
using hyplora::ad::Shape;
using hyplora::ad::Tensor;
using hyplora::ad::TensorView;

TEST_CASE_TEMPLATE("Tensor is row-major and views alias its storage", T, float, double) {
  Tensor<T> m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  CHECK(m.data()[1] == T(2));  // row-major: (0, 1) follows (0, 0)
  CHECK(m.data()[3] == T(4));
  TensorView<T> v(m.data(), 3, 2);  // the same storage seen as (3, 2)
  CHECK(v(1, 0) == T(3));
  v(2, 1) = T(60);
  CHECK(m(1, 2) == T(60));
  ConstTensorView<T> c(m.data(), 2, 3);
  CHECK(c(1, 2) == T(60));
}

TEST_CASE("Shape equality and printing") {
  Shape a{2, 3}, b{2, 3}, c{3, 2};
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a.str() == "(2, 3)");
  CHECK(Shape{}.str() == "(0, 0)");
}

TEST_CASE("check_same_shape throws shape_error naming both shapes") {
  CHECK_NOTHROW(hyplora::ad::check_same_shape("op", Shape{4, 5}, Shape{4, 5}));
  try {
    hyplora::ad::check_same_shape("myop", Shape{4, 5}, Shape{5, 4});
    FAIL("expected shape_error");
  } catch (const hyplora::shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("myop") != std::string::npos);
    CHECK(msg.find("(4, 5)") != std::string::npos);
    CHECK(msg.find("(5, 4)") != std::string::npos);
  }
}

}  // namespace autodiff_test_tensor
