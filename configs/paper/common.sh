# Shared by table2.sh and table3.sh (source it, do not run it): settings, the held-out split, rows.
# Every setting is an environment variable; docs/reproduction.md explains them.
set -euo pipefail

DATA=${DATA:-data/deepglobe/train}  # DeepGlobe 2018 roads train/: <id>_sat.jpg + <id>_mask.png
RUNS=${RUNS:-runs/paper}            # one run folder per model, plus split/
VAL=${VAL:-}                        # labelled folder to score on; default: hold out HOLDOUT of DATA
HOLDOUT=${HOLDOUT:-0.1}             # 0 = train on all of DATA as the paper did (no local score)
SEED=${SEED:-0}
GPUS=${GPUS:-1}                     # > 1: torchrun, one process per GPU
BATCH=${BATCH:-8}                   # paper III-B b: "a batch size of 8" (on 4 GPUs), split over GPUS
ONLY=${ONLY:-}                      # run only these rows (run-folder names, space separated)
PYTHON=${PYTHON:-python}
read -ra EXTRA_TRAIN <<<"${EXTRA_TRAIN_ARGS:-}"
read -ra EXTRA_EVAL <<<"${EXTRA_EVAL_ARGS:-}"
if [[ ${SMOKE:-0} == 1 ]]; then     # tests the scripts: 2 CPU steps on tiny data, nothing like the paper
  EXTRA_TRAIN=(--encoder-weights none --crop 64 --batch-size 2 --max-steps 2 --workers 0 --device cpu "${EXTRA_TRAIN[@]}")
  EXTRA_EVAL=(--tile 64 --overlap 0 --device cpu "${EXTRA_EVAL[@]}")
fi

if (( BATCH % GPUS )); then echo "BATCH=$BATCH does not split over GPUS=$GPUS" >&2; exit 2; fi
TRAIN=(nltool train)
if (( GPUS > 1 )); then TRAIN=(torchrun --standalone --nproc-per-node "$GPUS" -m nltool.training); fi
# The paper's recipe (III-B b, shared/paper/NL-LinkNet.md line 116) with the authors' schedule
# (yswang1717/NLLinkNet train.py: lr / 5 after more than 5 epochs without a lower loss, stop after
# more than 8 or at a plateau with the lr below 5e-6, at most 500 epochs). These are nltool's defaults
# too; they are spelled out so the commands show the recipe. At crop 1024 on DeepGlobe's 1024² scenes
# an epoch is one pass over the files (docs/training.md).
RECIPE=(--encoder-weights imagenet --crop 1024 --batch-size $((BATCH / GPUS)) --lr 3e-4 --loss bce_dice
        --lr-factor 0.2 --plateau-patience 5 --early-stop-patience 8 --min-lr 5e-6 --epochs 500 --seed "$SEED")
# The paper's test phase (III-B c, line 118): 8 flips/rotations averaged, road where > 4 of 8,
# no multi-scale.
EVAL_RECIPE=(--tta d4 --scales 1.0 --threshold 0.5)

run() {  # print a command (copy-pasteable); run it unless DRY_RUN=1
  local line
  printf -v line '%q ' "$@"
  echo "${line% }"
  [[ ${DRY_RUN:-0} == 1 ]] || "$@"
}

if [[ -n $VAL ]]; then
  TRAIN_DATA=$DATA EVAL_DATA=$VAL
elif [[ $HOLDOUT =~ ^0*\.?0*$ ]]; then
  TRAIN_DATA=$DATA EVAL_DATA=
  echo "# HOLDOUT=0: training on all of $DATA; no local score (predict valid/ for the challenge server)"
else
  TRAIN_DATA=$RUNS/split/train EVAL_DATA=$RUNS/split/val
  if [[ -d $RUNS/split/val ]]; then
    echo "# reusing the held-out split in $RUNS/split (delete it to split again)"
  elif [[ ${DRY_RUN:-0} == 1 ]]; then
    echo "# would hold out $HOLDOUT of $DATA (seed $SEED) as links in $RUNS/split/{train,val}"
  else  # the same split as `nltool train --val-fraction $HOLDOUT --seed $SEED`, shared by every row
    nltool data split --data "$DATA" --val-fraction "$HOLDOUT" --seed "$SEED" --out "$RUNS/split" | sed 's/^/# /'
  fi
fi

ROWS=()
row() {  # row ARCH PAIRWISE PAPER_MIOU: train (unless already trained) and evaluate one model
  local arch=$1 pairwise=$2 name=$1
  [[ $arch == nl* && $pairwise != embedded_gaussian ]] && name=$arch-$pairwise
  [[ -z $ONLY || " $ONLY " == *" $name "* ]] || return 0
  local out=$RUNS/$name
  ROWS+=("$name $3")
  if [[ -e $out/last.pt ]]; then  # the rows Table II and III share are trained once
    echo "# $out already holds a run; not retraining (to continue it: add --resume $out/last.pt)"
  else
    run "${TRAIN[@]}" --data "$TRAIN_DATA" --out "$out" --val-fraction 0 --arch "$arch" --pairwise "$pairwise" \
      "${RECIPE[@]}" "${EXTRA_TRAIN[@]}"
  fi
  [[ -z $EVAL_DATA ]] ||
    run nltool evaluate --model "$out/best.pt" --data "$EVAL_DATA" "${EVAL_RECIPE[@]}" --json "$out/eval.json" \
      "${EXTRA_EVAL[@]}"
}

summary() {  # the paper's mIoU beside ours (mean per-image IoU from each eval.json)
  [[ ${DRY_RUN:-0} == 1 || -z $EVAL_DATA ]] && return 0
  "$PYTHON" - "$RUNS" "${ROWS[@]}" <<'PY'
import json
import sys
from pathlib import Path

print(f"{'model':<28} {'paper mIoU':>10} {'ours':>8}")
for row in sys.argv[2:]:
    name, paper = row.split()
    report = Path(sys.argv[1], name, "eval.json")
    ours = f"{100 * json.loads(report.read_text())['mean_iou_per_image']['value']:.2f}" if report.is_file() else "-"
    print(f"{name:<28} {paper:>10} {ours:>8}")
PY
}
