// hyplora/optim/detail/param_slots.hpp — where each trainable parameter lives in the store's
// arena and in an optimizer's own state arena.
//
// Optimizers take their parameter set when they are built (as PyTorch's do): the trainable
// parameters at that moment get a slot, and state (moments) is packed densely over those slots
// only, so a frozen base model costs no optimizer memory. A parameter frozen later is skipped
// at step time; one made trainable later is not seen (build the optimizer after freezing).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "hyplora/autodiff/parameters.hpp"
#include "hyplora/core/errors.hpp"

namespace hyplora::optim::detail {

struct ParamSlot {
  int index = -1;           // ParameterStore index
  std::size_t offset = 0;   // into store.values() / store.grads()
  std::size_t state = 0;    // into the optimizer's state arena
  std::size_t size = 0;
  Index rows = 0;
  Index cols = 0;
};

/// One slot per parameter that is trainable now, state offsets packed densely.
template <class T>
std::vector<ParamSlot> trainable_slots(const ad::ParameterStore<T>& store) {
  std::vector<ParamSlot> slots;
  std::size_t state = 0;
  for (int k = 0; k < store.count(); ++k) {
    const auto& info = store.info(store.at_index(k));
    if (!info.trainable) continue;
    slots.push_back(ParamSlot{k, info.offset, state, info.size(), info.rows, info.cols});
    state += info.size();
  }
  return slots;
}

/// Total state size of a slot list.
inline std::size_t slots_size(const std::vector<ParamSlot>& slots) {
  return slots.empty() ? 0 : slots.back().state + slots.back().size;
}

/// The slot of parameter `index`, or nullptr when it had none (frozen when the optimizer was built).
inline const ParamSlot* find_slot(const std::vector<ParamSlot>& slots, int index) {
  for (const auto& s : slots)
    if (s.index == index) return &s;
  return nullptr;
}

/// A learning rate, decay or momentum must be finite and >= 0; a beta must lie in [0, 1).
inline void check_nonneg(const char* opt, const char* what, double v) {
  if (!(v >= 0.0) || !std::isfinite(v))
    throw value_error(std::string(opt) + ": " + what + " must be finite and >= 0, got " + std::to_string(v));
}
inline void check_beta(const char* opt, const char* what, double v) {
  if (!(v >= 0.0 && v < 1.0))
    throw value_error(std::string(opt) + ": " + what + " must lie in [0, 1), got " + std::to_string(v));
}

}  // namespace hyplora::optim::detail
