#!/bin/bash
# run 72: the K/V blocks heads major ([kv head][token][dim], backend::kv_row_offset): the gpu
# label at this commit, then Qwen3-8B Q4_K_M decode and prefill, the previous build
# (strata_old: 88da509's CUDA code, blocks tokens major) against this one, alternated.
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
T0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(timeout 240 $C/strata synth --preset qwen3-8b --type Q4_K_M -o /tmp/q8b.gguf > /tmp/synth.log 2>&1
 echo "synth rc $? $(( $(date +%s) - T0 ))s" >> /tmp/synth.log) &
timeout 250 $C/cuda_backend_test > $OUT/test.log 2>&1
echo "cuda_backend_test rc $?: $(grep -E 'PASSED|FAILED' $OUT/test.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
timeout 100 $C/golden_test > $OUT/golden.log 2>&1
echo "golden_test rc $?: $(grep -E 'PASSED|FAILED' $OUT/golden.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
timeout 200 python3 tests/gpu/serve_cuda_test.py $C/strata $C/testdata /tmp/serve_work > $OUT/serve.log 2>&1
echo "serve_cuda_test rc $?: $(tail -1 $OUT/serve.log) $(( $(date +%s) - T0 ))s"
wait; tail -1 /tmp/synth.log
bench() {
  timeout 150 $C/$1 bench --backend cuda -m /tmp/q8b.gguf -p 2048 -n $2 2>&1 |
    awk '/^prefill/{p=$4} /^decode/{d=$4} END{printf "decode %s prefill %s", d, p}'
}
for r in 1 2 3; do
  for b in strata_old strata; do echo "[$b -n 128] $(bench $b 128)"; done
done
for b in strata_old strata; do echo "[$b -n 1024] $(bench $b 1024)"; done
echo "$(( $(date +%s) - T0 ))s"
