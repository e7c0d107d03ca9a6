#!/bin/bash
# run 58: the head chain's loads hoisted ahead of its stores; split-K attention's CTA target
# (STRATA_CUDA_ATTN_CTAS): tests, Qwen3-8B Q4_K_M decode against the binary before (strata_base)
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(timeout 150 $C/strata synth --preset qwen3-8b --type Q4_K_M -o /tmp/q8b.gguf > /tmp/synth.log 2>&1; echo synth rc $? >> /tmp/synth.log) &
timeout 150 $C/cuda_backend_test --gtest_filter='*HeadChain*:*Attention*:*Tiny*:*Hybrid*:*StepGraph*' 2>&1 | grep -E "OK|FAIL|PASSED|rel" | tail -10
timeout 90 $C/golden_test 2>&1 | grep -E "FAIL|PASSED" | tail -5
wait; tail -1 /tmp/synth.log
for r in 1 2; do
  for v in "base" "new" "new STRATA_CUDA_ATTN_CTAS=528" "new STRATA_CUDA_ATTN_CTAS=2112"; do
    bin=$C/strata; [ "${v%% *}" = base ] && bin=$C/strata_base
    setting=$([ "$v" = "${v#* }" ] && echo "" || echo "${v#* }")
    line=$(env $setting timeout 120 $bin bench --backend cuda -m /tmp/q8b.gguf -p 2048 -n 128 2>&1 | awk '/^prefill/{p=$4} /^decode/{d=$4} END{printf "decode %s prefill %s", d, p}')
    echo "[$v] $line"
  done
done
