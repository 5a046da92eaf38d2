#!/usr/bin/env bash
# `make demo`: start the gateway locally, install the available plugins and run a real
# pipeline through the CLI: train a small model on real English + Chinese text, inspect and
# test it, then prune, distill, export to GGUF (checked by llama.cpp) and back it up.
# `scripts/demo.sh stop` stops the gateway and the plugins it started.
set -euo pipefail
cd "$(dirname "$0")/.."
export APT_HOME=${APT_HOME:-$PWD/.apt-demo}
PORT=${APT_DEMO_PORT:-50551}
export APT_GATEWAY=127.0.0.1:$PORT
PY=.venv/bin/python
CLI="$PY -m apt_model"
PIDFILE=$APT_HOME/gateway.pid
STEPS=${APT_DEMO_STEPS:-300}   # training budget: about 3 minutes on 2 CPU cores
# The demo corpus lives outside the store, in a folder the operator (this script) allows callers
# to name as a path; files elsewhere reach the gateway through 'apt-model data push' / --corpus.
DATA=${APT_HOME}-data
export APT_DATA_ROOTS=$DATA

stop() {
  if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    for p in $($CLI plugin list --json 2>/dev/null | $PY -c 'import json,sys; print(" ".join(p["name"] for p in json.load(sys.stdin) if p["status"] in ("PLUGIN_STATUS_INSTALLED","PLUGIN_STATUS_UNHEALTHY")))'); do
      $CLI plugin uninstall "$p" >/dev/null || true
    done
    kill "$(cat "$PIDFILE")" && echo "gateway stopped"
  fi
  rm -f "$PIDFILE"
}
if [[ ${1:-} == stop ]]; then stop; exit 0; fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

mkdir -p "$APT_HOME" "$DATA"
stop
step "starting the gateway on $APT_GATEWAY (store: $APT_HOME, log: $APT_HOME/gateway.log)"
nohup $CLI gateway serve --listen "$APT_GATEWAY" >"$APT_HOME/gateway.log" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 100); do $CLI status >/dev/null 2>&1 && break; sleep 0.3; done
$CLI status

step "installing every plugin that is available"
for p in $($CLI plugin list --json | $PY -c 'import json,sys; print(" ".join(p["name"] for p in json.load(sys.stdin) if p["status"]=="PLUGIN_STATUS_AVAILABLE" and p["name"]!="echo"))'); do
  $CLI plugin install "$p"
done
$CLI plugin list

step "demo corpus: English (Python language reference) + Chinese (People's Daily 1998), offline"
$PY -m apt_model.data "$DATA" >/dev/null
ls -l "$DATA"

TRAIN_TEXT=(--corpus "$DATA/demo-train.jsonl")
if $CLI plugin describe data-processors >/dev/null 2>&1; then
  step "data-processors: clean, filter, deduplicate and split the demo corpus before training"
  $CLI data-processors process --paths "$DATA/demo-train.jsonl" --name demo-clean --cleaning basic \
    --dedup --eval-fraction 0.05 --overwrite
  $CLI data-processors clean-text --strategy chinese --texts "ＡＰＴ　模型 训练，很 好！"
  TRAIN_TEXT=(--dataset demo-clean)
fi

step "train a tiny apt model from scratch ($STEPS steps)"
$CLI train demo "${TRAIN_TEXT[@]}" --size tiny --vocab-size 2048 --seq-len 128 \
  --batch-size 16 --lr 1e-2 --warmup-steps 10 --max-steps "$STEPS" --max-minutes 3 --eval-every 100 --overwrite
$CLI info demo
$CLI size demo
$CLI test demo --eval-file "$DATA/demo-eval.txt" --prompt "The Python language" --prompt "人民日报" --max-new-tokens 24
$CLI debug demo --data "$DATA/demo-eval.txt"

if $CLI plugin describe model-pruning >/dev/null 2>&1; then
  step "structured pruning to half width, with a short recovery fine-tune"
  $CLI model-pruning prune --name demo --strategy structured --ratio 0.5 --output-name demo-pruned \
    --recovery-steps 60 --recovery-path "$DATA/demo-train.jsonl" --eval-path "$DATA/demo-eval.txt" --overwrite
fi
if $CLI plugin describe model-distillation >/dev/null 2>&1; then
  step "distill a 1-layer student from the 2-layer model"
  $CLI model-distillation distill --teacher demo --student-layers 1 --output-name demo-student --strategies response \
    --corpus-paths "$DATA/demo-train.jsonl" --max-steps 100 --seq-len 128 --batch-size 8 --overwrite
fi
COMPARE="demo"
for m in demo-pruned demo-student; do $CLI info "$m" >/dev/null 2>&1 && COMPARE="$COMPARE $m"; done
step "compare: $COMPARE"
$CLI compare $COMPARE --eval-file "$DATA/demo-eval.txt" --prompt "The Python language" --max-new-tokens 16

if $CLI plugin describe advanced-debugging >/dev/null 2>&1; then
  step "advanced-debugging: gradient flow and training anomalies of the demo model"
  $CLI advanced-debugging gradient-flow --name demo --data-path "$DATA/demo-eval.txt" \
    --batches 2 --seq-len 64 --batch-size 2 --output-name demo-gradient-flow --overwrite
  $CLI advanced-debugging anomaly-detection --name demo --output-name demo-anomalies --overwrite
fi
if $CLI plugin describe advanced-visualization >/dev/null 2>&1; then
  step "advanced-visualization: a self-contained dashboard of the demo's models (HTML, offline)"
  if $CLI info demo-pruned >/dev/null 2>&1 && $CLI info demo-student >/dev/null 2>&1; then
    $CLI advanced-visualization dashboard --models demo --models demo-pruned --models demo-student \
      --output-name demo-dashboard --overwrite
  else
    $CLI advanced-visualization dashboard --models demo --output-name demo-dashboard --overwrite
  fi
  $CLI data pull demo-dashboard --output "$APT_HOME-viz/demo-dashboard" --overwrite
  echo "open $APT_HOME-viz/demo-dashboard/dashboard.html in a browser"
  if [ "$COMPARE" != "demo" ]; then
    step "advanced-visualization: an HTML comparison report of $COMPARE (the numbers compare printed, with intervals)"
    set -- $COMPARE  # demo, then the pruned and/or the distilled model
    if [ $# -ge 3 ]; then
      $CLI advanced-visualization comparison-report --models "$1" --models "$2" --models "$3" \
        --eval-path "$DATA/demo-eval.txt" --prompts "The Python language" --max-new-tokens 16 \
        --output-name demo-report --overwrite
    else
      $CLI advanced-visualization comparison-report --models "$1" --models "$2" \
        --eval-path "$DATA/demo-eval.txt" --prompts "The Python language" --max-new-tokens 16 \
        --output-name demo-report --overwrite
    fi
    $CLI data pull demo-report --output "$APT_HOME-viz/demo-report" --overwrite
    echo "open $APT_HOME-viz/demo-report/report.html in a browser"
  fi
fi
if $CLI plugin describe multimodal-training >/dev/null 2>&1; then
  step "multimodal-training: digits + captions checked into shards, a short image-caption training, retrieval vs text-only"
  PYTHONPATH=services/multimodal-training $PY -m apt_multimodal.sample_data "$DATA/mm" --digits 48 >/dev/null
  $CLI multimodal-training create-dataset --name demo-digits --manifest-path "$DATA/mm/digits/manifest.jsonl" --overwrite
  $CLI multimodal-training train --model demo --dataset demo-digits --output-name demo-mm --max-steps 20 \
    --batch-size 8 --encoder-width 32 --encoder-layers 1 --device cpu --overwrite
  $CLI multimodal-training evaluate --model demo-mm --dataset demo-digits --max-rows 10 --device cpu
fi
if $CLI plugin describe reasoning-training >/dev/null 2>&1; then
  step "reasoning-training: generated word problems, a short CoT SFT (with its answer-only ablation), self-consistency search"
  $CLI reasoning-training generate-tasks --output-name demo-probs --train-size 400 --eval-size 20 --max-steps 2 --overwrite
  $CLI reasoning-training cot-training --model demo --dataset demo-probs --output-name demo-cot \
    --max-steps 30 --batch-size 8 --eval-questions 5 --max-new-tokens 32 --ablation --overwrite
  $CLI reasoning-training tree-search --model demo-cot --dataset demo-probs --output-name demo-search \
    --strategy self_consistency --token-budget 96 --max-new-tokens 32 --max-questions 5 --overwrite
fi
if $CLI plugin describe ollama-export >/dev/null 2>&1; then
  step "export to GGUF q8_0 with a Modelfile; llama.cpp loads it and its logits are compared with PyTorch"
  $CLI ollama-export export --name demo --outtype q8_0
fi
if $CLI plugin describe cloud-storage >/dev/null 2>&1; then
  step "back up to a local destination, list, and restore under a new name (every sha256 checked)"
  BK="file://$APT_HOME/exports/backups"  # exports: the one store folder operations may write by path
  TAG="demo-$(date -u +%Y%m%d%H%M%S)"  # a backup is never replaced: each run of the demo adds its own
  $CLI cloud-storage backup --name demo --destination "$BK" --tag "$TAG"
  $CLI cloud-storage list-backups --destination "$BK"
  $CLI cloud-storage restore --source "$BK" --backup-name demo --tag "$TAG" --name demo-restored --overwrite
fi
step "the store now holds"
$CLI list
echo
echo "The gateway keeps running on $APT_GATEWAY; stop it with: make demo-stop"
