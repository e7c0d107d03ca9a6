#!/bin/bash
# run 71: main after round 10's CPU changes (the GGUF mapping faults in every 2 MB piece at
# open): the gpu label, then `strata bench --backend cuda -p 2048 -n 128` of Qwen3-8B
# Q4_K_M and Q8_0 as in run 70 (PART=open: only the open's time below, run 71b).
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
T0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
MODELS="qwen3-8b:Q8_0:q8b8 qwen3-8b:Q4_K_M:q8b"
[ "$PART" = open ] && MODELS="qwen3-8b:Q8_0:q8b8"
(for m in $MODELS; do
   IFS=: read -r pre ty f <<< "$m"
   timeout 240 $C/strata synth --preset $pre --type $ty -o /tmp/$f.gguf > /tmp/synth_$f.log 2>&1
   echo "synth $f rc $? $(( $(date +%s) - T0 ))s"
 done > /tmp/synth.log 2>&1) &
if [ "$PART" != open ]; then
timeout 250 $C/cuda_backend_test > $OUT/test.log 2>&1
echo "cuda_backend_test rc $?: $(grep -E 'PASSED|FAILED' $OUT/test.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
timeout 100 $C/golden_test > $OUT/golden.log 2>&1
echo "golden_test rc $?: $(grep -E 'PASSED|FAILED' $OUT/golden.log | tr '\n' ' ') $(( $(date +%s) - T0 ))s"
timeout 200 python3 tests/gpu/serve_cuda_test.py $C/strata $C/testdata /tmp/serve_work > $OUT/serve.log 2>&1
echo "serve_cuda_test rc $?: $(tail -1 $OUT/serve.log) $(( $(date +%s) - T0 ))s"
wait; cat /tmp/synth.log
bench() {
  timeout 120 $C/strata bench --backend cuda -m $1 -p 2048 -n 128 2>&1 |
    awk '/^prefill/{p=$4} /^decode/{d=$4} END{printf "decode %s prefill %s", d, p}'
}
for f in q8b8 q8b; do
  for r in 1 2 3; do echo "[$f] $(bench /tmp/$f.gguf)"; done
done
fi
wait
# the open of a file whose page cache was just dropped (every piece then read at open in 2 MB
# folios), against main before round 10 (strata_old, 5e0f358: 16 samples, the rest read as the
# first forward touches it); run 71b
t() {
  python3 - "$@" <<'PY'
import os, subprocess, sys, time
path = sys.argv[1]  # the file whose cache is dropped, then the command
fd = os.open(path, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
t0 = time.time()
subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
print(f"{time.time() - t0:.2f} s", end="")
PY
}
for r in 1 2; do
  for b in strata_old strata; do
    echo "[$b] inspect after a drop: $(t /tmp/q8b8.gguf $C/$b inspect /tmp/q8b8.gguf);" \
         "bench -p 16 -n 8 after a drop: $(t /tmp/q8b8.gguf $C/$b bench --backend cuda -m /tmp/q8b8.gguf -p 16 -n 8 --reps 1)"
  done
done
echo "$(du -h /tmp/q8b8.gguf | cut -f1) file; $(( $(date +%s) - T0 ))s"
