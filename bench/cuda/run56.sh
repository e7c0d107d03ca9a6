#!/bin/bash
# run 56: after moving the int8 products to gemv_int8.cu (the multi-token kernel back to the
# 32-element Q4_K part): the gpu label, and the 1-16 sequence steps once
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 $C/cuda_backend_test 2>&1 | grep -E "FAIL|PASSED|Failure|rel" | tail -8
timeout 90 $C/golden_test 2>&1 | grep -E "FAIL|PASSED" | tail -5
timeout 150 python3 tests/gpu/serve_cuda_test.py $C/strata $C/testdata /tmp/servecuda 2>&1 | tail -2
timeout 100 $C/cuda_bench Q4_K_M 2>&1 | grep -E "decode step"
