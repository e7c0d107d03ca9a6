#!/bin/bash
# run 52: the new rule (Q4_K: 64-element parts, v5 at 4 rows a CTA): tests, whole-model A/B on
# Qwen3-8B, Qwen3.6-35B-A3B and Qwen3-30B-A3B Q4_K_M (STRATA_CUDA_Q4K=32: the old part and rule)
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for m in qwen3-8b:q8b qwen3.6-35b-a3b:q36 qwen3-30b-a3b:q30; do
  (timeout 240 $C/strata synth --preset ${m%%:*} --type Q4_K_M -o /tmp/${m##*:}.gguf > /tmp/synth_${m##*:}.log 2>&1; echo synth rc $? >> /tmp/synth_${m##*:}.log) &
done
timeout 150 $C/cuda_backend_test --gtest_filter='*Matmul*:*Int8*:*Tiny*:*Hybrid*:*Fused*:*Residual*' 2>&1 | grep -E "OK|FAIL|PASSED|rel" | tail -12
timeout 90 $C/golden_test 2>&1 | grep -E "FAIL|PASSED" | tail -8
wait; tail -qn1 /tmp/synth_*.log
for m in q8b q36 q30; do bash bench/cuda/run_env_ab.sh /tmp/$m.gguf 2 "STRATA_CUDA_Q4K=32" "STRATA_CUDA_Q4K=64"; done
