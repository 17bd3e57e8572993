# cmake/hyplora_cuda.cmake — the CUDA backend's test and benchmark targets.
#
# Included at the end of the top-level CMakeLists.txt when HYPLORA_HAS_CUDA is ON (that file has
# already run enable_language(CUDA) and find_package(CUDAToolkit)):
#   if(HYPLORA_HAS_CUDA)
#     include(cmake/hyplora_cuda.cmake)
#   endif()
# The library itself stays header-only: include/hyplora/cuda/ is used by consumers' own .cu
# files; nothing here changes the hyplora target.
#
# Architectures: "90-real;80-virtual" = SASS for sm_90 (H100/H200, no JIT at start-up) plus
# compute_80 PTX that the driver JIT-compiles on any other GPU of compute capability >= 8.0
# (A100, L4/Ada, Blackwell). Two device passes per TU; the 80 PTX keeps the binaries portable
# without compiling SASS for every generation. Override with -DHYPLORA_CUDA_ARCHITECTURES=...
if(NOT HYPLORA_HAS_CUDA)
  return()
endif()

set(HYPLORA_CUDA_ARCHITECTURES "90-real;80-virtual" CACHE STRING
    "CUDA_ARCHITECTURES of hyplora's CUDA tests and benchmarks")

# Flags of hyplora's own CUDA targets, scoped to CUDA compilation.
#  -Xcompiler=-Wall,-Wextra: host-side warnings from g++ (nvcc's line directives make -Wpedantic
#   unusable on its generated code, so it is left to the .cpp targets).
#  EIGEN_NO_CUDA: Eigen is used on the host only; without it Eigen marks its code
#   __host__ __device__ and nvcc warns about Eigen's internals.
add_library(hyplora_cuda_flags INTERFACE)
target_compile_options(hyplora_cuda_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>
  $<$<AND:$<BOOL:${HYPLORA_WERROR}>,$<COMPILE_LANGUAGE:CUDA>>:--Werror=all-warnings -Xcompiler=-Werror>)
target_compile_definitions(hyplora_cuda_flags INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:EIGEN_NO_CUDA>)
target_link_libraries(hyplora_cuda_flags INTERFACE CUDA::cudart CUDA::cublas)

function(hyplora_cuda_target tgt)
  target_link_libraries(${tgt} PRIVATE hyplora::hyplora hyplora_cuda_flags)
  target_compile_features(${tgt} PRIVATE cuda_std_17 cxx_std_17)
  set_target_properties(${tgt} PROPERTIES CUDA_ARCHITECTURES "${HYPLORA_CUDA_ARCHITECTURES}"
                                          CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON CUDA_EXTENSIONS OFF)
endfunction()

# Tests: tests/cuda/CMakeLists.txt (its own directory scope: it compiles their host code at -O1).
if(HYPLORA_BUILD_TESTS)
  add_subdirectory(${CMAKE_CURRENT_LIST_DIR}/../tests/cuda ${CMAKE_BINARY_DIR}/tests/cuda)
endif()

# Benchmarks: every benchmarks/cuda/bench_<x>.cu is target bench_<x> (a plain main; no GPU: skip).
if(HYPLORA_BUILD_BENCHMARKS)
  file(GLOB HYPLORA_CUDA_BENCH_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/../benchmarks/cuda/bench_*.cu)
  foreach(src IN LISTS HYPLORA_CUDA_BENCH_SOURCES)
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    hyplora_cuda_target(${name})
  endforeach()
endif()
