#!/bin/bash
# run 47: split-K merge by the last CTA (no merge launch), RoPE angles by sincospif, the
# folded duplicates: tests, Qwen3-8B Q4_K_M A/B, one decode step under Nsight Compute
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(timeout 150 $C/strata synth --preset qwen3-8b --type Q4_K_M -o /tmp/q8b.gguf > /tmp/synth.log 2>&1; echo synth rc $? >> /tmp/synth.log) &
timeout 150 $C/cuda_backend_test 2>&1 | grep -E "OK|FAIL|PASSED" | tail -30
timeout 90 $C/golden_test 2>&1 | grep -E "FAIL|PASSED" | tail -8
wait; tail -2 /tmp/synth.log
bash bench/cuda/run_env_ab.sh /tmp/q8b.gguf 3 "STRATA_CUDA_ATTN_MERGE=kernel" "STRATA_CUDA_ATTN_MERGE=fused"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
timeout 170 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
  --log-file "$OUT/ncu_q8b.csv" "$C/strata" bench --backend cuda -m /tmp/q8b.gguf -p 64 -n 4 --reps 1 > "$OUT/ncu_q8b.log" 2>&1
echo "ncu rc=$?"; python3 bench/cuda/ncu_steps.py "$OUT/ncu_q8b.csv" 2>&1 | head -30
