#!/bin/bash
# On the GPU machine: `strata bench --backend cuda` of one model under several environment
# settings, alternated ROUNDS times, so that an A/B is measured on one card in one session
# (machines differ by a few percent). Usage:
#   run_env_ab.sh MODEL ROUNDS "STRATA_X=0" "STRATA_X=1" ...
# Prints one line per run: the setting, decode and prefill tok/s. $CARRY holds the binaries.
source "$(dirname "$0")/device_env.sh" .gpu_carry_lead
M=$1 ROUNDS=$2
shift 2
for ((r = 0; r < ROUNDS; r++)); do
  for setting in "$@"; do
    line=$(env $setting timeout 120 "$CARRY/strata" bench --backend cuda -m "$M" -p ${P:-2048} -n ${N:-128} 2>&1 |
      awk '/^prefill/{p=$4} /^decode/{d=$4} END{printf "decode %s prefill %s", d, p}')
    echo "$(basename "$M") [$setting] $line"
  done
done
