#!/bin/bash
# run 48: the read ceiling of a product in a graph chain (two read-only kernels), v13 (a
# resident grid striding over row pairs), the merge kernel's new form: tests, gemv chain, A/B
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(timeout 150 $C/strata synth --preset qwen3-8b --type Q4_K_M -o /tmp/q8b.gguf > /tmp/synth.log 2>&1; echo synth rc $? >> /tmp/synth.log) &
timeout 100 $C/cuda_backend_test --gtest_filter='*Attention*:*HeadChain*:*Tiny*:*Elementwise*:*Fused*' 2>&1 | grep -E "OK|FAIL|PASSED" | tail -12
timeout 90 $C/golden_test 2>&1 | grep -E "FAIL|PASSED" | tail -8
timeout 200 stdbuf -oL $C/cuda_gemv_bench Q4_K:24576:4096 Q6_K:4096:12288 Q4_K:4096:12288 Q4_K:4096:4096 Q4_K:1024:4096 Q8_0:24576:4096 Q4_K:12352:2048 2>&1 | grep -v "^$"
wait; tail -2 /tmp/synth.log
bash bench/cuda/run_env_ab.sh /tmp/q8b.gguf 2 "STRATA_CUDA_GEMV=0" "STRATA_CUDA_GEMV=13"
