// examples/transformer/gpt_cuda.cu — CudaTrainer (gpt_cuda.hpp) over DeviceGPT<float> (gpt_cuda.cuh).
#include "gpt_cuda.hpp"

#include <cuda_runtime.h>

#include "gpt_cuda.cuh"
#include "hyplora/cuda/caching_allocator.hpp"
#include "hyplora/cuda/context.hpp"
#include "hyplora/cuda/device.hpp"

namespace hyplora::examples {

struct CudaTrainer::Impl {
  // Destroyed in reverse: the model's tensors go back to the allocator before it frees them.
  cuda::CachingAllocator alloc;
  cuda::DeviceContext dc;
  DeviceGPT<float> gpt;
  Impl(GPT<float>& model, const ad::ParameterStore<float>& store, const TrainConfig& cfg)
      : dc(alloc), gpt(dc.context(), model, store, cfg) {}
};

CudaTrainer::CudaTrainer(GPT<float>& model, const ad::ParameterStore<float>& store, const TrainConfig& cfg) {
  if (!cuda::has_device()) throw value_error("--device cuda: no CUDA device is available");
  impl_ = std::make_unique<Impl>(model, store, cfg);
}
CudaTrainer::~CudaTrainer() = default;

double CudaTrainer::step(const std::vector<std::int64_t>& ids, const std::vector<std::int64_t>& targets, Index B, Index Tn) {
  return impl_->gpt.step(ids, targets, B, Tn);
}
void CudaTrainer::copy_to_host(ad::ParameterStore<float>& store, optim::AdamW<float>* opt) const {
  impl_->gpt.copy_to_host(store);
  if (opt) impl_->gpt.copy_optimizer_to_host(*opt);
}
void CudaTrainer::copy_from_host(const ad::ParameterStore<float>& store, const optim::AdamW<float>& opt, std::int64_t step) {
  impl_->gpt.load_optimizer(opt, step);  // checks opt and step before copying anything
  impl_->gpt.copy_from_host(store);
}
std::int64_t CudaTrainer::step_index() const { return impl_->gpt.step_index(); }
std::size_t CudaTrainer::malloc_calls() const { return impl_->alloc.stats().malloc_calls; }
double CudaTrainer::device_mib() const {
  const auto s = impl_->alloc.stats();
  return static_cast<double>(s.bytes_in_use + s.bytes_cached) / (1024.0 * 1024.0);
}

std::string cuda_device_name() {
  if (!cuda::has_device()) return "";
  int dev = 0;
  cudaDeviceProp p{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return "";
  }
  return p.name;
}

}  // namespace hyplora::examples
