#!/bin/bash
# run 49: the int8 products' occupancy (v3 kernels bounded to 12 or 16 CTAs an SM), against
# the read ceiling; whole-model A/B of the bound and of 4 rows a CTA
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(timeout 150 $C/strata synth --preset qwen3-8b --type Q4_K_M -o /tmp/q8b.gguf > /tmp/synth.log 2>&1; echo synth rc $? >> /tmp/synth.log) &
timeout 250 stdbuf -oL $C/cuda_gemv_bench Q4_K:24576:4096 Q6_K:4096:12288 Q4_K:4096:12288 Q4_K:4096:4096 Q4_K:1024:4096 Q6_K:1024:4096 Q4_K:12352:2048 2>&1 | grep -v "^$"
wait; tail -2 /tmp/synth.log
bash bench/cuda/run_env_ab.sh /tmp/q8b.gguf 2 "STRATA_CUDA_GEMV_OCC=0" "STRATA_CUDA_GEMV_OCC=16" "STRATA_CUDA_GEMV_OCC=12" "STRATA_CUDA_GEMV_OCC=16 STRATA_CUDA_GEMV_ROWS=4"
