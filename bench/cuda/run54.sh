#!/bin/bash
# run 54: final state of the round (Q4_K 64-element parts in batch-1 and expert products, the Q6_K
# rule): the gpu label (cuda_backend_test, golden_test, serve_cuda_test), Qwen3-8B and Llama-3-8B
# Q4_K_M decode (STRATA_CUDA_Q4K=32: the old Q4_K part), cuda_bench's 1-16 sequence steps
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(for m in qwen3-8b:q8b llama3-8b:l8b; do timeout 200 $C/strata synth --preset ${m%%:*} --type Q4_K_M -o /tmp/${m##*:}.gguf 2>&1 | tail -1; done > /tmp/synth.log 2>&1) &
timeout 200 $C/cuda_backend_test 2>&1 | grep -E "FAIL|PASSED|Failure|rel" | tail -10
timeout 90 $C/golden_test 2>&1 | grep -E "FAIL|PASSED" | tail -5
timeout 150 python3 tests/gpu/serve_cuda_test.py $C/strata $C/testdata /tmp/servecuda 2>&1 | tail -3
wait; cat /tmp/synth.log
bash bench/cuda/run_env_ab.sh /tmp/q8b.gguf 2 "STRATA_CUDA_Q4K=64" "STRATA_CUDA_Q4K=32"
bash bench/cuda/run_env_ab.sh /tmp/l8b.gguf 1 "STRATA_CUDA_Q4K=64" "STRATA_CUDA_Q4K=32"
timeout 100 $C/cuda_bench Q4_K_M 2>&1 | grep -E "roofs|decode step|=="
