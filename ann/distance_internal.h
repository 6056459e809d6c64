// Per-ISA kernel tables; only distance.cc includes this.
#ifndef QUIVER_ANN_DISTANCE_INTERNAL_H_
#define QUIVER_ANN_DISTANCE_INTERNAL_H_

#include "ann/distance.h"

namespace quiver::ann::internal {

extern const DistanceKernels kScalarKernels;
// Null where the compiler could not build that instruction set.
extern const DistanceKernels* const kAvx2Kernels;
extern const DistanceKernels* const kAvx512Kernels;
// kAvx512Kernels with AVX512-VNNI's SQ8 dot product.
extern const DistanceKernels* const kAvx512VnniKernels;

}  // namespace quiver::ann::internal

#endif  // QUIVER_ANN_DISTANCE_INTERNAL_H_
