#!/bin/bash
# run 68: the small kernels' early launches as the default (STRATA_CUDA_PDL=1; 3 is round 8's
# PDL without them): the gpu label (cuda_backend_test with LaunchModesGiveTheSameDecode,
# golden_test, serve_cuda_test) under the default, then `strata bench -p 2048 -n 128` with
# PDL 1 / 3 alternated on Qwen3-8B Q4_K_M and Q8_0, Llama-3-8B Q4_K_M, Qwen3-30B-A3B Q4_K_M,
# and cuda_bench's decode steps of 1-16 sequences.
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
T0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(for m in qwen3-8b:Q4_K_M:q8b qwen3-8b:Q8_0:q8b8 llama3-8b:Q4_K_M:l8b qwen3-30b-a3b:Q4_K_M:q30; do
   IFS=: read -r pre ty f <<< "$m"
   timeout 240 $C/strata synth --preset $pre --type $ty -o /tmp/$f.gguf > /tmp/synth_$f.log 2>&1
   echo "synth $f rc $? $(( $(date +%s) - T0 ))s"
 done > /tmp/synth.log 2>&1) &
timeout 300 $C/cuda_backend_test > $OUT/test.log 2>&1
echo "cuda_backend_test rc $?: $(grep -E 'PASSED|FAILED' $OUT/test.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
grep -E 'LaunchModes' $OUT/test.log | tail -2
timeout 100 $C/golden_test > $OUT/golden.log 2>&1
echo "golden_test rc $?: $(grep -E 'PASSED|FAILED' $OUT/golden.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
timeout 300 python3 tests/gpu/serve_cuda_test.py $C/strata $C/testdata /tmp/serve_work > $OUT/serve.log 2>&1
echo "serve_cuda_test rc $?: $(tail -2 $OUT/serve.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
wait; cat /tmp/synth.log
bench() {
  STRATA_CUDA_PDL=$2 timeout 120 $C/strata bench --backend cuda -m $1 -p 2048 -n 128 2>&1 |
    awk '/^prefill/{p=$4} /^decode/{d=$4} END{printf "decode %s prefill %s", d, p}'
}
for f in q8b q8b8 l8b q30; do
  for r in 1 2 3; do
    for p in 1 3; do echo "[$f PDL=$p] $(bench /tmp/$f.gguf $p)"; done
  done
  echo "$(( $(date +%s) - T0 ))s"
done
timeout 120 $C/strata bench --backend cuda -m /tmp/q8b.gguf -p 2048 -n 128 > $OUT/bench_q8b_full.log 2>&1
for p in 1 3; do
  echo "== cuda_bench PDL=$p"
  STRATA_CUDA_PDL=$p timeout 100 $C/cuda_bench Q4_K_M 2>&1 | grep -E "decode|prefill" | head -12
done
echo "$(( $(date +%s) - T0 ))s"
