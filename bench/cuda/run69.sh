#!/bin/bash
# (Mode numbers of the experiment build of this run, not of main: see results/run69_preload.log.)
# run 69: STRATA_CUDA_PDL=4 (the default's early launches, and each int8 product thread loads
# its first part's weights into registers before its wait) against 1: the launch-mode test and
# golden logits under 4, then `strata bench -p 2048 -n 128` alternated on Qwen3-8B Q4_K_M and
# Q8_0 and Qwen3-30B-A3B Q4_K_M.
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
T0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(for m in qwen3-8b:Q4_K_M:q8b qwen3-8b:Q8_0:q8b8 qwen3-30b-a3b:Q4_K_M:q30; do
   IFS=: read -r pre ty f <<< "$m"
   timeout 240 $C/strata synth --preset $pre --type $ty -o /tmp/$f.gguf > /tmp/synth_$f.log 2>&1
   echo "synth $f rc $? $(( $(date +%s) - T0 ))s"
 done > /tmp/synth.log 2>&1) &
timeout 200 $C/cuda_backend_test --gtest_filter='*LaunchModes*:*Int8Products*:*MatmulMulti*' > $OUT/test.log 2>&1
echo "cuda_backend_test (filtered) rc $?: $(grep -E 'PASSED|FAILED|OK \]' $OUT/test.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
for p in 4; do
  STRATA_CUDA_PDL=$p timeout 100 $C/golden_test > $OUT/golden_pdl$p.log 2>&1
  echo "golden_test PDL=$p rc $?: $(grep -E 'PASSED|FAILED' $OUT/golden_pdl$p.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
  STRATA_CUDA_PDL=$p timeout 200 $C/cuda_backend_test > $OUT/test_pdl$p.log 2>&1
  echo "cuda_backend_test PDL=$p rc $?: $(grep -E 'PASSED|FAILED' $OUT/test_pdl$p.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
done
wait; cat /tmp/synth.log
bench() {
  STRATA_CUDA_PDL=$2 timeout 120 $C/strata bench --backend cuda -m $1 -p 2048 -n 128 2>&1 |
    awk '/^prefill/{p=$4} /^decode/{d=$4} END{printf "decode %s prefill %s", d, p}'
}
for f in q8b q8b8 q30; do
  for r in 1 2 3; do
    for p in 1 4; do echo "[$f PDL=$p] $(bench /tmp/$f.gguf $p)"; done
  done
  echo "$(( $(date +%s) - T0 ))s"
done
