#!/usr/bin/env bash
# The gateway's load and fault benchmark (results: benchmarks/results/gateway/{load,load-burst,saturation,fault}/):
#   bash benchmarks/gateway_bench.sh            # PYTHON=.venv/bin/python by default
# 1. load: 200 closed-loop clients for 60 s against `toolorch serve --orchestrator only:mini`, the
#    experts being the simulated expert server at its declared latency (mini ~6 s), side by side with
#    the same load sent straight to that server (the baseline): the gateway's added latency and overhead.
#    Twice: clients joining over 6 s (load/), and all 200 at the same instant (load-burst/).
# 2. saturation: concurrency 1,16,64,200 for 20 s each with experts answering at once (latency scale 0):
#    what bounds throughput on this machine (2 cores shared by the generator, the gateway, the experts).
# 3. fault: 100 clients for 60 s through a scripted orchestrator engine (benchmarks/scripted_engine.py);
#    the experts fail 10% of calls (HTTP 500) and hang on another 10%; the engine is stopped at 1/3 of the run and
#    restarted at 2/3. Passes when every request ends ok or OpenAI-shaped, none past its deadline
#    (max_latency_s 20 + 5 s), none lost, and /ready is false while the engine is down.
# Every expert here is simulated (serve.sim_experts) and the engine is scripted: said in each report.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
LOAD_S=${LOAD_S:-60}; SAT_S=${SAT_S:-20}; FAULT_S=${FAULT_S:-60}; OUT=${OUT:-benchmarks/results}
PHASES=${PHASES:-"load saturation fault"}
DOWN_AT=$((FAULT_S / 3)); UP_AT=$((2 * FAULT_S / 3))
SIM=9311; ENGINE=9321; GW=9331
WORK=$(mktemp -d); PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'stop_all; [ -f "$WORK/engine.pid" ] && kill "$(cat "$WORK/engine.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT

wait_for() {  # url seconds
  for _ in $(seq 1 $((${2} * 10))); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "not up: $1" >&2; return 1
}
catalog() {  # timeout_s retries -> $WORK/catalog.yaml: the simulated experts over HTTP
  { echo "experts:"
    for e in frontier mini qwen-32b; do
      echo "  - {name: $e, base_url: 'http://127.0.0.1:$SIM/v1', model: $e, price: $e, timeout_s: $1, max_retries: $2}"
    done
    echo "episode: {max_turns: 6, budget_usd: 1.0}"
    echo "tools: {code: false}"; } > "$WORK/catalog.yaml"
}
sim() { "$PY" -m toolorch.serve.sim_experts --config configs/tiny.yaml --port $SIM "$@" > "$WORK/sim.log" 2>&1 &
        PIDS+=($!); wait_for http://127.0.0.1:$SIM/health 60; }
gateway() { "$PY" -m toolorch.cli serve --catalog "$WORK/catalog.yaml" --port $GW --max-inflight 512 \
              --log-level warning "$@" > "$WORK/gateway.log" 2>&1 &
            GW_PID=$!; PIDS+=($!); wait_for http://127.0.0.1:$GW/health 120; }
cpu_s() { awk '{print ($14 + $15) / 100}' "/proc/$GW_PID/stat"; }  # the gateway's CPU seconds (user + system)
load() {  # gateway_load.py, and the gateway's own CPU over the run (gateway_cpu.txt beside load.md)
  local name=$2 before after
  before=$(cpu_s)
  "$PY" benchmarks/gateway_load.py "http://127.0.0.1:$GW/v1" --model toolorch --out-dir "$OUT" "$@" || return $?
  after=$(cpu_s)
  "$PY" - "$OUT/$name" "$before" "$after" <<'PYEOF'
import json, sys
from pathlib import Path
out, before, after = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
result = json.loads((out / "load.json").read_text())
rows = [r["target"] for r in result.get("levels", [])] or [result["fault"]["summary"]]
requests = sum(r["requests"] for r in rows)
wall = sum(r["wall_s"] for r in rows)
cpu = after - before  # includes the baseline's time, when the gateway idles
(out / "gateway_cpu.txt").write_text(
    f"gateway CPU {cpu:.2f} s over {requests} requests: {1000 * cpu / max(requests, 1):.2f} ms a request "
    f"(user + system, /proc; the target side ran {wall:.0f} s)\n")
PYEOF
  cat "$OUT/$name/gateway_cpu.txt"
}

if [[ " $PHASES " == *" load "* ]]; then
echo "== load: 200 clients, declared expert latency"
catalog 60 2; sim --latency-scale 1; gateway --orchestrator only:mini
NOTE="Gateway: toolorch serve --orchestrator only:mini (2 orchestrator turns and 1 expert call a request); experts: the simulated expert server (simulated, declared latency: mini ~6 s). Baseline: the same load straight to that server (model mini). One machine, 2 cores shared by the load generator, the gateway and the experts."
load --name gateway/load --concurrency 200 --duration "$LOAD_S" --timeout 60 --ramp 6 \
  --baseline "http://127.0.0.1:$SIM/v1" --baseline-model mini --note "$NOTE Clients join over the first 6 s."
load --name gateway/load-burst --concurrency 200 --duration "$LOAD_S" --timeout 60 \
  --baseline "http://127.0.0.1:$SIM/v1" --baseline-model mini \
  --note "$NOTE All 200 clients send their first request at the same instant."
stop_all; PIDS=()
fi

if [[ " $PHASES " == *" saturation "* ]]; then
echo "== saturation: experts answer at once"
sim --latency-scale 0; gateway --orchestrator only:mini
load --name gateway/saturation --concurrency 1,16,64,200 --duration "$SAT_S" --timeout 60 \
  --baseline "http://127.0.0.1:$SIM/v1" --baseline-model mini \
  --note "As gateway/load, but the simulated experts answer at once (latency scale 0): every process is CPU-bound on the same 2 cores; this shows what bounds throughput, not a deployment."
stop_all; PIDS=()
fi

if [[ " $PHASES " == *" fault "* ]]; then
echo "== fault: 20% expert faults, the engine stopped and restarted"
catalog 3 1; sim --latency-scale 0.1 --fail-rate 0.1 --fail-status 500 --timeout-rate 0.1 --hang-s 300
start_engine="nohup $PY benchmarks/scripted_engine.py --port $ENGINE --expert mini --latency-s 0.05 >> $WORK/engine.log 2>&1 & echo \$! > $WORK/engine.pid"
bash -c "$start_engine"; wait_for http://127.0.0.1:$ENGINE/v1/models 60
gateway --orchestrator "openai:http://127.0.0.1:$ENGINE/v1#orchestrator"
load --name gateway/fault --fault --concurrency 100 --duration "$FAULT_S" --timeout 30 --deadline 25 \
  --extra-body '{"max_latency_s": 20}' --ready-url "http://127.0.0.1:$GW/ready" \
  --hook "$DOWN_AT:kill \$(cat $WORK/engine.pid)" --hook "$UP_AT:$start_engine" \
  --note "Gateway with a scripted orchestrator engine (benchmarks/scripted_engine.py: ask mini, then answer with its reply; 50 ms a turn); experts: the simulated expert server (simulated) at 0.1x declared latency failing 10% of calls with HTTP 500 and hanging 300 s on another 10% (expert timeout 3 s, 1 retry, then fallback); every request asks max_latency_s 20. The engine is killed at ${DOWN_AT} s and restarted at ${UP_AT} s." \
  || echo "fault run FAILED (see $OUT/gateway/fault/load.md)"
curl -s "http://127.0.0.1:$GW/metrics" | grep -E '^toolorch_(requests_total|budget_exhaustions_total|expert_fallbacks_total|tool_calls_total|engine_ready)' \
  > "$OUT/gateway/fault/gateway_metrics.txt" || true
fi
