#!/usr/bin/env bash
# Cache configurations of `strata serve` under one agent trace on this CPU (issue 8):
#   off      every request's system prompt made unique (--unique-prefix): nothing can be reused
#   device   --cache-ram 0, no --cache-dir: only the engine's KV pool (the "device" tier, host
#            memory on a CPU build) keeps prefixes, until its blocks are needed
#   ram      + a 1 GiB host-RAM tier (holds the whole working set)
#   ram+ssd  + SSD tier, with the RAM tier cut to 128 MiB (~1.1k tokens of Qwen3-0.6B KV) so SSD serves
#   restart  ram+ssd, with the server restarted after turn 3 (0-based 2) (the trace's restart point)
# The KV pool is --ctx 4096 --parallel 1 = 64 blocks of 64 tokens, smaller than the working set
# (a 1.2k-token shared prefix + 2 sessions of ~1-2.5k tokens each).
# usage: scripts/agentbench_cpu.sh MODEL.gguf TOKENIZER_DIR OUT_DIR [configs...]
set -euo pipefail
MODEL=$1; TOK=$2; OUT=$3; shift 3
CONFIGS=${*:-off device ram ram+ssd restart}
S=${STRATA_BIN:-$(pwd)/build/src/cli/strata}
PORT=${PORT:-18733}
URL=http://127.0.0.1:$PORT
mkdir -p "$OUT"
TRACE=(--preset restart --prefix-tokens 1200 --sessions 2 --turns 5 --hf-tokenizer "$TOK" --seed 3)

serve_args() {
  case $1 in
    off|device) echo "--cache-ram 0" ;;
    ram) echo "--cache-ram 1073741824" ;;
    ram+ssd|restart) echo "--cache-ram 134217728 --cache-dir $OUT/ssd" ;;
  esac
}

for c in $CONFIGS; do
  rm -rf "$OUT/ssd"; mkdir -p "$OUT/ssd"
  LOG=$OUT/serve-$c.log; PIDF=$OUT/serve.pid
  SERVE="$S serve -m $MODEL --alias q06 --port $PORT --ctx 4096 --parallel 1 $(serve_args $c)"
  nohup $SERVE > "$LOG" 2>&1 & echo $! > "$PIDF"
  cat > "$OUT/restart.sh" <<RS
kill \$(cat $PIDF); while kill -0 \$(cat $PIDF) 2>/dev/null; do sleep 0.2; done
nohup $SERVE >> $LOG 2>&1 < /dev/null & echo \$! > $PIDF
RS
  extra=(--restart-after -1)
  [ "$c" = off ] && extra+=(--unique-prefix)
  [ "$c" = restart ] && extra=(--restart-cmd "sh $OUT/restart.sh")
  echo "== $c: $SERVE"
  "$S" bench-agent --url $URL --model q06 "${TRACE[@]}" "${extra[@]}" --think-scale 0.3 -q \
      --out "$OUT/$c" || echo "bench-agent exited $?"
  kill "$(cat "$PIDF")" || true
  while kill -0 "$(cat "$PIDF")" 2>/dev/null; do sleep 0.2; done
done
