// K-quant weight quantizers (Q2_K .. Q6_K). Work in progress: not implemented yet.
#include "core/check.h"
#include "core/quant_internal.h"

namespace strata::quant_detail {

void quantize_q2_k(const float*, void*, int64_t) { STRATA_CHECK_MSG(false, "Q2_K quantize: not yet"); }
void quantize_q3_k(const float*, void*, int64_t) { STRATA_CHECK_MSG(false, "Q3_K quantize: not yet"); }
void quantize_q4_k(const float*, void*, int64_t) { STRATA_CHECK_MSG(false, "Q4_K quantize: not yet"); }
void quantize_q5_k(const float*, void*, int64_t) { STRATA_CHECK_MSG(false, "Q5_K quantize: not yet"); }
void quantize_q6_k(const float*, void*, int64_t) { STRATA_CHECK_MSG(false, "Q6_K quantize: not yet"); }
void quantize_iq4_nl(const float*, void*, int64_t) { STRATA_CHECK_MSG(false, "IQ4_NL quantize: not yet"); }
void quantize_iq4_xs(const float*, void*, int64_t) { STRATA_CHECK_MSG(false, "IQ4_XS quantize: not yet"); }
void quantize_mxfp4(const float*, void*, int64_t) { STRATA_CHECK_MSG(false, "MXFP4 quantize: not yet"); }

}  // namespace strata::quant_detail
