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
#if __has_include(<nlohmann/json.hpp>)
#endif

// optim

// io (needs nlohmann-json)
#include "hyplora/io/wordnet.hpp"  // needs only the standard library
#if __has_include(<nlohmann/json.hpp>)
#include "hyplora/io/adapter_file.hpp"
#include "hyplora/io/atomic_file.hpp"
#include "hyplora/io/safetensors.hpp"
#endif

// analysis
#include "hyplora/analysis/delta_hyperbolicity.hpp"
#include "hyplora/analysis/frequency_norm.hpp"
#include "hyplora/analysis/power_law.hpp"
