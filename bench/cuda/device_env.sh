# Sourced by the bench/cuda/run_*.sh scripts on the GPU machine, from the repository root:
# $CARRY (the carried binaries and their shared libraries; default $1), $OUT for logs, and the
# library path that finds both them and the CUDA toolkit's.
CARRY=${CARRY:-$1}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$PWD/$CARRY:/usr/local/cuda/lib64:/usr/local/cuda/lib:$LD_LIBRARY_PATH
