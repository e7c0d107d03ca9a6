#!/bin/bash
# (Mode numbers of the experiment build of this run, not of main: see results/run67_pdl_early.log.)
# run 67: PDL=5 (products and decode attention trigger at their start, small kernels right
# after their wait) against 1 and 3: tests and golden logits under 5, then Qwen3-8B Q4_K_M and Q8_0.
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
T0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(timeout 200 $C/strata synth --preset qwen3-8b --type Q4_K_M -o /tmp/q8b.gguf > /tmp/synth.log 2>&1; echo "synth rc $?" >> /tmp/synth.log
 timeout 200 $C/strata synth --preset qwen3-8b --type Q8_0 -o /tmp/q8b8.gguf > /tmp/synth8.log 2>&1; echo "synth8 rc $?" >> /tmp/synth8.log) &
STRATA_CUDA_PDL=5 timeout 200 $C/cuda_backend_test > $OUT/test_pdl5.log 2>&1
echo "cuda_backend_test PDL=5 rc $?: $(grep -E 'PASSED|FAILED' $OUT/test_pdl5.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
for p in 5; do
  STRATA_CUDA_PDL=$p timeout 100 $C/golden_test > $OUT/golden_pdl$p.log 2>&1
  echo "golden_test PDL=$p rc $?: $(grep -E 'PASSED|FAILED' $OUT/golden_pdl$p.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
done
wait; tail -1 /tmp/synth.log; tail -1 /tmp/synth8.log; echo "$(( $(date +%s) - T0 ))s"
bench() {
  STRATA_CUDA_PDL=$2 timeout 90 $C/strata bench --backend cuda -m $1 -p 2048 -n 128 2>&1 |
    awk '/^prefill/{p=$4} /^decode/{d=$4} END{printf "decode %s prefill %s", d, p}'
}
for r in 1 2 3; do
  for p in 1 3 5; do echo "[Q4_K_M PDL=$p] $(bench /tmp/q8b.gguf $p)"; done
done
echo "$(( $(date +%s) - T0 ))s"
for r in 1 2; do
  for p in 1 3 5; do echo "[Q8_0 PDL=$p] $(bench /tmp/q8b8.gguf $p)"; done
done
echo "$(( $(date +%s) - T0 ))s"
