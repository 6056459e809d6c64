// llm/cuda_kernels.cu compiled by the host compiler for the CUDA emulation
// (emulator.h, which defines the launch macro and the device-side names).
#include "tests/cuda_emulation/emulator.h"
// Keep this include after the emulator's.
#include "llm/cuda_kernels.cu"
