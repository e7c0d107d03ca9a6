#!/bin/bash
# run 41: the Q6_K part of two groups as default: tests, Q4_K 64-element parts, Qwen3-8B A/B
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(timeout 150 $C/strata synth --preset qwen3-8b --type Q4_K_M -o /tmp/q8b.gguf > /tmp/synth.log 2>&1; echo synth rc $? >> /tmp/synth.log) &
timeout 120 $C/cuda_backend_test 2>&1 | grep -E "OK|FAIL|PASSED" | tail -30
timeout 60 $C/golden_test 2>&1 | tail -2
for v in 0 1; do echo "== Q4K64=$v"; if [ $v = 1 ]; then export STRATA_CUDA_Q4K64=1; fi
  timeout 60 stdbuf -oL $C/cuda_gemv_bench Q4_K:24576:4096 Q4_K:4096:4096 Q4_K:12352:2048 2>&1 | grep -v "^$"; done
unset STRATA_CUDA_Q4K64
wait; cat /tmp/synth.log | tail -2
bash bench/cuda/run_env_ab.sh /tmp/q8b.gguf 2 "STRATA_CUDA_Q6K=1" "STRATA_CUDA_Q6K=2"
