// hyplora/hyplora.hpp — the umbrella header: everything except the optional CUDA backend.
#pragma once

// core
#include "hyplora/core/config.hpp"
#include "hyplora/core/errors.hpp"
#include "hyplora/core/numerics.hpp"
#include "hyplora/core/types.hpp"

// manifold
#include "hyplora/manifold/detail/lorentz_rows.hpp"
#include "hyplora/manifold/lorentz.hpp"
#include "hyplora/manifold/poincare_ball.hpp"
#include "hyplora/manifold/conversions.hpp"

// autodiff
#include "hyplora/autodiff/ops_elementwise.hpp"
#include "hyplora/autodiff/ops_matmul.hpp"
#include "hyplora/autodiff/ops_reduce.hpp"
#include "hyplora/autodiff/ops_shape.hpp"
#include "hyplora/autodiff/ops_softmax.hpp"
#include "hyplora/autodiff/ops_norm.hpp"
#include "hyplora/autodiff/ops_dropout.hpp"
#include "hyplora/autodiff/ops_attention.hpp"
#include "hyplora/autodiff/ops_lorentz.hpp"
#include "hyplora/autodiff/ops_poincare.hpp"
#include "hyplora/autodiff/ops_hyplora_official.hpp"
#include "hyplora/autodiff/ops_hyplora_stereographic.hpp"
#include "hyplora/autodiff/ops_dora.hpp"

// nn
#include "hyplora/nn/adapter_config.hpp"
#include "hyplora/nn/init.hpp"
#include "hyplora/nn/linear.hpp"
#include "hyplora/nn/dora.hpp"
#if __has_include(<nlohmann/json.hpp>)
#include "hyplora/nn/adapted_linear.hpp"  // adapter-file interop needs io/ (nlohmann-json)
#endif

// optim
#include "hyplora/optim/adamw.hpp"
#include "hyplora/optim/clip_grad.hpp"
#include "hyplora/optim/lr_schedule.hpp"
#include "hyplora/optim/manifold_parameter.hpp"
#include "hyplora/optim/riemannian_adam.hpp"
#include "hyplora/optim/riemannian_sgd.hpp"
#include "hyplora/optim/sgd.hpp"

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
