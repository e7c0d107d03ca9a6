#!/bin/bash
# run 59 (and 61): the gpu label on the session's last commit
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 $C/cuda_backend_test 2>&1 | grep -E "FAIL|PASSED|Failure" | tail -8
timeout 90 $C/golden_test 2>&1 | grep -E "FAIL|PASSED" | tail -5
timeout 150 python3 tests/gpu/serve_cuda_test.py $C/strata $C/testdata /tmp/servecuda 2>&1 | tail -2
