#!/bin/bash
# run 63: programmatic dependent launch for every kernel (launch.cuh): tests with PDL on (1) and
# with the products' L2 prefetch (2); Qwen3-8B Q4_K_M decode and cuda_bench's 1-16 sequence
# steps with STRATA_CUDA_PDL=0 / 1 / 2 alternated. It measured the first form, in which every
# kernel triggered its dependents at its start (bench/cuda/NOTES.md round 8); launch.cuh no
# longer does: run65.sh measures the merged form.
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(timeout 200 $C/strata synth --preset qwen3-8b --type Q4_K_M -o /tmp/q8b.gguf > /tmp/synth.log 2>&1; echo synth rc $? >> /tmp/synth.log) &
timeout 200 $C/cuda_backend_test 2>&1 | grep -E "FAIL|PASSED|Failure" | tail -8
STRATA_CUDA_PDL=2 timeout 100 $C/cuda_backend_test --gtest_filter='*Matmul*:*Int8Products*:*Tiny*:*StepGraph*' 2>&1 | grep -E "FAIL|PASSED|Failure" | tail -4
timeout 90 $C/golden_test 2>&1 | grep -E "FAIL|PASSED" | tail -3
wait; tail -1 /tmp/synth.log
bash bench/cuda/run_env_ab.sh /tmp/q8b.gguf 2 "STRATA_CUDA_PDL=0" "STRATA_CUDA_PDL=1" "STRATA_CUDA_PDL=2"
for p in 0 1 2; do echo "== STRATA_CUDA_PDL=$p"; STRATA_CUDA_PDL=$p timeout 100 $C/cuda_bench Q4_K_M 2>&1 | grep -E "sequences"; done
for p in 0 1 2; do echo "== gemv STRATA_CUDA_PDL=$p"; STRATA_CUDA_PDL=$p timeout 100 stdbuf -oL $C/cuda_gemv_bench Q4_K:24576:4096 Q6_K:4096:12288 Q4_K:4096:4096 Q4_K:4096:12288 2>&1 | grep -v "^$"; done
