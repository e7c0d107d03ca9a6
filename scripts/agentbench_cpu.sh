#!/usr/bin/env bash
# Cache configurations of `strata serve` under one agent trace on this CPU (issue 8):
#   off      every request's system prompt made unique (--unique-prefix): nothing can be reused
#   device   --cache-ram 0, no --cache-dir: only the engine's KV pool (the "device" tier, host
#            memory on a CPU build) keeps prefixes, until its blocks are needed
#   ram      + a host-RAM tier that holds the whole working set ($RAM_BIG bytes)
#   ram+ssd  + SSD tier, with the RAM tier cut to $RAM_SMALL bytes so SSD must serve
#   restart  ram+ssd, with the server restarted after the trace's restart turn
# The KV pool is --ctx $CTX x --parallel 1 tokens; pick a trace whose working set exceeds it.
# usage: scripts/agentbench_cpu.sh MODEL.gguf TOKENIZER_DIR OUT_DIR [configs...]
# env:   TRACE_ARGS (generator flags), OFF_TRACE_ARGS (a smaller trace for `off`, whose every
#        prompt is a cold prefill), CTX, RAM_BIG, RAM_SMALL, RESTART_AFTER, THINK_SCALE
set -euo pipefail
MODEL=$1; TOK=$2; OUT=$3; shift 3
CONFIGS=${*:-off device ram ram+ssd restart}
S=${STRATA_BIN:-$(pwd)/build/src/cli/strata}
PORT=${PORT:-18733}
URL=http://127.0.0.1:$PORT
CTX=${CTX:-4096}
RAM_BIG=${RAM_BIG:-1073741824}
RAM_SMALL=${RAM_SMALL:-134217728}
RESTART_AFTER=${RESTART_AFTER:-2}
THINK_SCALE=${THINK_SCALE:-0.3}
mkdir -p "$OUT"
read -r -a TRACE <<< "${TRACE_ARGS:---preset restart --prefix-tokens 1200 --sessions 2 --turns 5 --seed 3}"
read -r -a OFF_TRACE <<< "${OFF_TRACE_ARGS:-${TRACE_ARGS:---preset restart --prefix-tokens 1200 --sessions 2 --turns 5 --seed 3}}"

serve_args() {
  case $1 in
    off|device) echo "--cache-ram 0" ;;
    ram) echo "--cache-ram $RAM_BIG" ;;
    ram+ssd|restart) echo "--cache-ram $RAM_SMALL --cache-dir $OUT/ssd" ;;
  esac
}

for c in $CONFIGS; do
  rm -rf "$OUT/ssd"; mkdir -p "$OUT/ssd"
  LOG=$OUT/serve-$c.log; PIDF=$OUT/serve.pid
  SERVE="$S serve -m $MODEL --alias q06 --port $PORT --ctx $CTX --parallel 1 $(serve_args $c)"
  nohup $SERVE > "$LOG" 2>&1 & echo $! > "$PIDF"
  cat > "$OUT/restart.sh" <<RS
kill \$(cat $PIDF); while kill -0 \$(cat $PIDF) 2>/dev/null; do sleep 0.2; done
nohup $SERVE >> $LOG 2>&1 < /dev/null & echo \$! > $PIDF
RS
  trace=("${TRACE[@]}")
  extra=(--restart-after -1)
  [ "$c" = off ] && trace=("${OFF_TRACE[@]}") && extra+=(--unique-prefix)
  [ "$c" = restart ] && extra=(--restart-after "$RESTART_AFTER" --restart-cmd "sh $OUT/restart.sh")
  echo "== $c: $SERVE ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$S" bench-agent --url $URL --model q06 --hf-tokenizer "$TOK" "${trace[@]}" "${extra[@]}" \
      --think-scale "$THINK_SCALE" -q --out "$OUT/$c" || echo "bench-agent exited $?"
  echo "== $c done ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
  kill "$(cat "$PIDF")" || true
  while kill -0 "$(cat "$PIDF")" 2>/dev/null; do sleep 0.2; done
done
