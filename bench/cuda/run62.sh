#!/bin/bash
# run 62: the multi-token kernel (2-16 sequences of a decode step): the 32-element Q4_K part as
# before (209 registers at 8 tokens), the same through the row-group walk (75 registers), and
# v16 (the 64-element part, 4 rows a CTA in row groups); tests with each
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for q in 33 64; do STRATA_CUDA_Q4K_TOKENS=$q timeout 100 $C/cuda_backend_test --gtest_filter='*Matmul*:*Int8Products*:*Tiny*' 2>&1 | grep -E "FAIL|PASSED|Failure" | tail -3; done
for r in 1 2; do for q in 32 33 64; do echo "== STRATA_CUDA_Q4K_TOKENS=$q"; STRATA_CUDA_Q4K_TOKENS=$q timeout 100 $C/cuda_bench Q4_K_M 2>&1 | grep -E "sequences"; done; done
