#!/bin/bash
# run 55: the 64-element Q4_K part in the multi-token kernel (v12 with row groups), int8 kernels
# moved to gemv_int8.cu: tests, cuda_bench's 1-16 sequence steps with the old and new part
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 $C/cuda_backend_test 2>&1 | grep -E "OK|FAIL|PASSED|Failure|rel" | tail -24
timeout 90 $C/golden_test 2>&1 | grep -E "FAIL|PASSED" | tail -5
for q in 32 64 32 64; do echo "== STRATA_CUDA_Q4K=$q"; STRATA_CUDA_Q4K=$q timeout 100 $C/cuda_bench Q4_K_M 2>&1 | grep -E "decode step"; done
