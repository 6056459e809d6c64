// IEEE 754 half precision and bfloat16 <-> float32, for model files.
#ifndef QUIVER_NN_HALF_H_
#define QUIVER_NN_HALF_H_

#include <cstdint>

namespace quiver::nn {

float HalfToFloat(uint16_t h);
// Rounds to nearest even; overflow gives infinity.
uint16_t FloatToHalf(float f);
float Bf16ToFloat(uint16_t h);
// Rounds to nearest even (as vcvtneps2bf16); NaN stays a (quiet) NaN.
uint16_t FloatToBf16(float f);

}  // namespace quiver::nn

#endif  // QUIVER_NN_HALF_H_
