// tests/support/tape_bytes.hpp — bytes a tape's nodes hold, for memory tests of fused ops.
#pragma once

#include <hyplora/autodiff/tape.hpp>

namespace hyplora::testing {

/// Bytes the tape's nodes hold (values, gradients, saved tensors): what an op's design decides,
/// independent of the BLAS's own transient work buffers (OpenBLAS mallocs some when it threads).
template <class T>
long long tape_bytes(const ad::Tape<T>& t) {
  long long k = 0;
  for (int i = 0; i < t.size(); ++i) {
    const auto& n = t.node(i);
    k += n.own_value.size() + n.own_grad.size();
    for (const auto& sv : n.saved) k += sv.size();
  }
  return k * static_cast<long long>(sizeof(T));
}

}  // namespace hyplora::testing
