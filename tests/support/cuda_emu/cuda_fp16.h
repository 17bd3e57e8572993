// cuda_fp16.h for the host emulator: see hyplora_cuda_emu.hpp.
#pragma once
#include "hyplora_cuda_emu.hpp"
