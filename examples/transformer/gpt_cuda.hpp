// examples/transformer/gpt_cuda.hpp — plain C++ entry points of the device GPT step
// (gpt_cuda.cuh, compiled by nvcc in gpt_cuda.cu), so main.cpp stays a g++ translation unit.
// Declared only when hyplora-finetune is built with CUDA (HYPLORA_FINETUNE_CUDA).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hyplora/optim/adamw.hpp"
#include "model.hpp"
#include "train.hpp"

namespace hyplora::examples {

/// Trainer's twin on the GPU: built from a CPU model and its store (the model's structure, weights
/// and adapter parameters copied once, so neither need outlive it), the same TrainConfig (AdamW,
/// schedule, clip); it runs the model's one definition, GPT::build, on the device. float only.
/// value_error for what the device path does not support yet (gpt_cuda.cuh).
class CudaTrainer {
 public:
  CudaTrainer(GPT<float>& model, const ad::ParameterStore<float>& store, const TrainConfig& cfg);
  ~CudaTrainer();
  CudaTrainer(const CudaTrainer&) = delete;
  CudaTrainer& operator=(const CudaTrainer&) = delete;

  /// One update; returns the loss before it (waits for the device, like Trainer::step).
  double step(const std::vector<std::int64_t>& ids, const std::vector<std::int64_t>& targets, Index B, Index Tn);
  /// Device values written back into a store laid out like the one given to the constructor; with
  /// `opt` (an AdamW over that store) the optimizer state too — what a checkpoint needs.
  void copy_to_host(ad::ParameterStore<float>& store, optim::AdamW<float>* opt = nullptr) const;
  /// Continues from host state (a loaded checkpoint): the store's values, opt's m and v, and the
  /// schedule at `step` (every parameter must have taken `step` updates; value_error otherwise).
  void copy_from_host(const ad::ParameterStore<float>& store, const optim::AdamW<float>& opt, std::int64_t step);
  /// Updates taken so far.
  std::int64_t step_index() const;
  /// cudaMalloc calls so far (the trainer's own caching allocator): flat after the first step.
  std::size_t malloc_calls() const;
  /// Device memory held (in use + cached), MiB.
  double device_mib() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// "NVIDIA H200" etc., or "" when no CUDA device can be used.
std::string cuda_device_name();

}  // namespace hyplora::examples
