// The row kernels in portable C++ (any CPU): the reference forms.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "llm/internal/row_kernels.h"
#include "nn/half.h"

namespace quiver::llm::portable {
namespace {

#include "llm/internal/generic_kernels.inc"

}  // namespace

extern const internal::RowKernels kKernels = {
    .name = "portable",
    .dot = Dot,
    .dot_rows4 = DotRows4Generic,
    .dot4 = Dot4,
    .dot4x4 = Dot4x4Generic,
    .block_scores = BlockScores,
    .pack_panel = PackPanelGeneric,
    .panel_product = PanelProductRows<1>,
    .dot_q8 = DotQ8Portable,
    .dot_q8x4 = DotQ8Rows4<DotQ8Portable>,
    .dot_q4 = DotQ4Portable,
    .dot_q4x4 = DotQ4Rows4<DotQ4Portable>,
    .dot_f16 = DotHalfPortable<false>,
    .dot_bf16 = DotHalfPortable<true>,
    .dot_k = DotKPortable,
    .dot_k_rows4 = DotKRows4<DotKPortable>,
    .dequantize_f16 = DequantizeF16Portable,
    .dequantize_bf16 = DequantizeBF16,
    .dequantize_q8 = DequantizeQ8,
    .dequantize_q4 = DequantizeQ4,
    .dequantize_k = DequantizeK,
};

}  // namespace quiver::llm::portable
