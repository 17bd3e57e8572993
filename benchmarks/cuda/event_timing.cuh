// benchmarks/cuda/event_timing.cuh — what the CUDA benchmarks share: the median time of a step
// enqueued on one stream, measured with CUDA events (device time, no host clock).
#pragma once

#include <algorithm>
#include <vector>

#include <hyplora/cuda/context.hpp>
#include <hyplora/cuda/stream.hpp>

namespace hyplora::cuda::bench {

/// Median ms of `reps` runs of step() (which enqueues its work on dc's stream), after 3 warm-ups
/// (cuBLAS heuristics, the allocator's cache).
template <class F>
double median_ms(const DeviceContext& dc, int reps, F&& step) {
  Event start, stop;
  for (int i = 0; i < 3; ++i) step();
  dc.synchronize();
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    start.record(dc.stream());
    step();
    stop.record(dc.stream());
    ms.push_back(stop.elapsed_ms_since(start));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace hyplora::cuda::bench
