#!/bin/bash
# run 53: Q6_K parts of four groups (DotQ6_K4, v5) and the 64-element Q4_K part in the expert
# products: tests, gemv chains (expert products with the old and new Q4_K part), Qwen3-8B A/B
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(timeout 150 $C/strata synth --preset qwen3-8b --type Q4_K_M -o /tmp/q8b.gguf > /tmp/synth.log 2>&1; echo synth rc $? >> /tmp/synth.log) &
timeout 200 $C/cuda_backend_test 2>&1 | grep -E "OK|FAIL|PASSED|rel" | tail -30
timeout 90 $C/golden_test 2>&1 | grep -E "FAIL|PASSED" | tail -8
timeout 150 stdbuf -oL $C/cuda_gemv_bench Q6_K:4096:12288 Q6_K:1024:4096 Q6_K:2048:4096 Q6_K:151936:4096 2>&1 | grep -v "^$"
for q in 32 64; do echo "== experts, STRATA_CUDA_Q4K=$q"; STRATA_CUDA_Q4K=$q GEMV_BENCH_EXPERTS=1 timeout 60 $C/cuda_gemv_bench Q8_0:64:2048 2>&1 | grep -A1 "^experts"; done
wait; tail -2 /tmp/synth.log
bash bench/cuda/run_env_ab.sh /tmp/q8b.gguf 2 "STRATA_CUDA_Q6K=2" "STRATA_CUDA_Q6K=4"
