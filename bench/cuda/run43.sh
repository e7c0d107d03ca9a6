#!/bin/bash
# run 43 (and 46 after the decode-step rule): int8 products for 2-16 tokens of a decode step (v12): tests, then
# steps with the old path (STRATA_CUDA_Q8N=0: float kernel to 8 tokens, cuBLAS above) and v12.
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 $C/cuda_backend_test 2>&1 | grep -E "FAIL|PASSED|Failure|rel" | tail -20
timeout 60 $C/golden_test 2>&1 | grep -E "FAIL|PASSED" | tail -5
for v in 0 1; do echo "== STRATA_CUDA_Q8N=$v"; STRATA_CUDA_Q8N=$v timeout 120 $C/cuda_bench Q4_K_M 2>&1 | grep -E "roofs|decode step|==" ; done
timeout 150 python3 tests/gpu/serve_cuda_test.py $C/strata $C/testdata /tmp/servecuda 2>&1 | tail -3
