// QUIVER_CUDA_LAUNCH(kernel, grid, block, shared_bytes, stream)(args...):
// kernel<<<grid, block, shared_bytes, stream>>>(args...) under nvcc. Our .cu
// files launch through it so that the same source also compiles as host
// C++ for the CUDA emulation the tests use on machines without a GPU
// (tests/cuda_emulation/emulator.h defines it first).
#ifndef QUIVER_NN_CUDA_LAUNCH_H_
#define QUIVER_NN_CUDA_LAUNCH_H_

#ifndef QUIVER_CUDA_LAUNCH
#define QUIVER_CUDA_LAUNCH(kernel, grid, block, shared_bytes, stream) \
  kernel<<<grid, block, shared_bytes, stream>>>
#endif

#endif  // QUIVER_NN_CUDA_LAUNCH_H_
