#!/bin/bash
# run 70: the default (1) now also has the Q8_0 products load their first weights before their
# wait; 5 = the early launches alone (run 68's default), 3 = round 8's form. The gpu label
# under the default, then `strata bench -p 2048 -n 128` alternated.
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
T0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(for m in qwen3-8b:Q8_0:q8b8 qwen3-8b:Q4_K_M:q8b qwen3-30b-a3b:Q4_K_M:q30; do
   IFS=: read -r pre ty f <<< "$m"
   timeout 240 $C/strata synth --preset $pre --type $ty -o /tmp/$f.gguf > /tmp/synth_$f.log 2>&1
   echo "synth $f rc $? $(( $(date +%s) - T0 ))s"
 done > /tmp/synth.log 2>&1) &
timeout 250 $C/cuda_backend_test > $OUT/test.log 2>&1
echo "cuda_backend_test rc $?: $(grep -E 'PASSED|FAILED' $OUT/test.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
grep -E 'OK \] CudaBackend.LaunchModes' $OUT/test.log
timeout 100 $C/golden_test > $OUT/golden.log 2>&1
echo "golden_test rc $?: $(grep -E 'PASSED|FAILED' $OUT/golden.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
timeout 200 python3 tests/gpu/serve_cuda_test.py $C/strata $C/testdata /tmp/serve_work > $OUT/serve.log 2>&1
echo "serve_cuda_test rc $?: $(tail -1 $OUT/serve.log) $(( $(date +%s) - T0 ))s"
wait; cat /tmp/synth.log
bench() {
  STRATA_CUDA_PDL=$2 timeout 120 $C/strata bench --backend cuda -m $1 -p 2048 -n 128 2>&1 |
    awk '/^prefill/{p=$4} /^decode/{d=$4} END{printf "decode %s prefill %s", d, p}'
}
for f in q8b8 q8b; do
  for r in 1 2 3; do
    for p in 1 5 3; do echo "[$f PDL=$p] $(bench /tmp/$f.gguf $p)"; done
  done
  echo "$(( $(date +%s) - T0 ))s"
done
for r in 1 2; do
  for p in 1 3; do echo "[q30 PDL=$p] $(bench /tmp/q30.gguf $p)"; done
done
echo "$(( $(date +%s) - T0 ))s"
