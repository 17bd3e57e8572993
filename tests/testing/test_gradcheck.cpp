// Tests for include/hyplora/testing/gradcheck.hpp: it passes a correct backward and catches a
// wrong one. The ops here are defined locally so this test depends on the tape alone.
#include <doctest/doctest.h>

#include <hyplora/testing/gradcheck.hpp>

namespace testing_test_gradcheck {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace {
using hyplora::MatrixR;
using hyplora::ad::Tape;
using hyplora::ad::Var;

// out = a ⊙ a ⊙ b, with a correct or a deliberately wrong backward.
template <bool Correct>
void cube_backward(Tape<double>& t, int id) {
  auto& n = t.node(id);
  const int a = n.parents[0], b = n.parents[1];
  MatrixR<double> g = t.grad_acc(id);
  MatrixR<double> av = t.value(a), bv = t.value(b);
  if (t.needs_grad(a)) t.grad_acc(a).array() += g.array() * (Correct ? 2.0 : 2.1) * av.array() * bv.array();
  if (t.needs_grad(b)) t.grad_acc(b).array() += g.array() * av.array().square();
}

template <bool Correct>
Var<double> cube(Var<double> a, Var<double> b) {
  Tape<double>& t = *a.tape;
  const int id = t.push("cube", a.rows(), a.cols(), &cube_backward<Correct>, {a.id, b.id});
  t.value(id).array() = t.value(a.id).array().square() * t.value(b.id).array();
  return Var<double>{&t, id};
}
}  // namespace

TEST_CASE("gradcheck accepts a correct backward and reports a wrong one") {
  MatrixR<double> a = MatrixR<double>::Random(3, 4), b = MatrixR<double>::Random(3, 4);
  auto good = hyplora::testing::gradcheck(
      [](Tape<double>&, const std::vector<Var<double>>& v) { return cube<true>(v[0], v[1]); }, {a, b});
  CHECK_MESSAGE(good.ok, good.report);
  CHECK(good.worst < 1e-8);
  auto bad = hyplora::testing::gradcheck(
      [](Tape<double>&, const std::vector<Var<double>>& v) { return cube<false>(v[0], v[1]); }, {a, b});
  CHECK_FALSE(bad.ok);
  CHECK(bad.max_error[0] > 1e-3);
  CHECK(bad.max_error[1] < 1e-8);
}

TEST_CASE("gradcheck can skip inputs") {
  MatrixR<double> a = MatrixR<double>::Random(2, 2), b = MatrixR<double>::Random(2, 2);
  hyplora::testing::GradcheckOptions opt;
  opt.check = {false, true};
  auto r = hyplora::testing::gradcheck(
      [](Tape<double>&, const std::vector<Var<double>>& v) { return cube<false>(v[0], v[1]); }, {a, b}, opt);
  CHECK(r.ok);  // the wrong gradient is a's, which is not checked
}

}  // namespace testing_test_gradcheck
