// IEEE 754 half precision and bfloat16 <-> float32, for model files.
#ifndef QUIVER_COMMON_HALF_H_
#define QUIVER_COMMON_HALF_H_

#include <cstdint>

namespace quiver {

float HalfToFloat(uint16_t h);
// Rounds to nearest even; overflow gives infinity.
uint16_t FloatToHalf(float f);
float Bf16ToFloat(uint16_t h);

}  // namespace quiver

#endif  // QUIVER_COMMON_HALF_H_
