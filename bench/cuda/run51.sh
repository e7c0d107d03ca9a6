#!/bin/bash
# run 51: Q4_K parts of 64 elements (DotQ4_K64) and v3's row groups: tests, gemv chain against
# the read ceiling, Qwen3-8B Q4_K_M A/B (STRATA_CUDA_Q4K=32: the old part)
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(timeout 150 $C/strata synth --preset qwen3-8b --type Q4_K_M -o /tmp/q8b.gguf > /tmp/synth.log 2>&1; echo synth rc $? >> /tmp/synth.log) &
timeout 150 $C/cuda_backend_test 2>&1 | grep -E "OK|FAIL|PASSED|rel" | tail -30
timeout 90 $C/golden_test 2>&1 | grep -E "FAIL|PASSED" | tail -8
timeout 200 stdbuf -oL $C/cuda_gemv_bench Q4_K:24576:4096 Q4_K:4096:12288 Q4_K:4096:4096 Q4_K:1024:4096 Q4_K:12352:2048 Q4_K:2048:4096 2>&1 | grep -v "^$"
wait; tail -2 /tmp/synth.log
bash bench/cuda/run_env_ab.sh /tmp/q8b.gguf 2 "STRATA_CUDA_Q4K=32" "STRATA_CUDA_Q4K=64" "STRATA_CUDA_Q4K=64 STRATA_CUDA_GEMV_ROWS=4"
