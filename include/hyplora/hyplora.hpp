// hyplora/hyplora.hpp — the umbrella header: everything except the optional CUDA backend.
#pragma once

// core
#include "hyplora/core/config.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/core/types.hpp"

// manifold

// autodiff

// nn

// optim

// io (needs nlohmann-json)
#if __has_include(<nlohmann/json.hpp>)
#endif

// analysis
