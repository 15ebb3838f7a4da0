#!/usr/bin/env bash
# The SDD-FIQA method end to end on the real photos in ../shared/data, CPU-sized:
#   recognizer (MagFace, LFW) -> embeddings -> pseudo-labels -> MANIQA on them -> EDC evaluation on CelebA.
# Each step is skipped when its output exists, so an interrupted run continues where it stopped.
#   QUICK (default): fewer training steps (~20 min on 2 cores).  FULL=1: the configs' own step counts.
#   OUT=runs/sdd-fiqa  HF_FIQA_SHARED=../shared  PY=.venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${HF_FIQA_SHARED:-../shared}
OUT=${OUT:-runs/sdd-fiqa}
PY=${PY:-.venv/bin/python}
HF="$PY -m hf_fiqa.cli"
DET=$SHARED/weights/yunet/face_detection_yunet.onnx
export HF_FIQA_DETECTOR_WEIGHTS=$DET HF_HUB_OFFLINE=1
if [ "${FULL:-0}" = 1 ]; then REC_STEPS=300; FIQA_STEPS=300; else REC_STEPS=120; FIQA_STEPS=150; fi
for needed in "$SHARED/data/lfw/labels.csv" "$SHARED/data/celeba-wild-ids/labels.csv" "$DET"; do
  [ -e "$needed" ] || { echo "missing $needed (set HF_FIQA_SHARED)"; exit 2; }
done
mkdir -p "$OUT"
step() { echo; echo "== $*"; }

step "1/5 recognizer: small iResNet + MagFace head on LFW ($REC_STEPS steps)"
if [ ! -f "$OUT/recognizer/model/model.safetensors" ]; then
  $PY train.py --config hub_configs/magface-iresnet-lfw.yaml output_dir="$OUT/recognizer" \
    data.root="$SHARED/data/lfw" data.detector_weights="$DET" max_steps=$REC_STEPS \
    eval_every=$((REC_STEPS / 3)) save_every=$((REC_STEPS / 3)) trackers=[] \
    $([ -d "$OUT/recognizer/checkpoints" ] && echo --resume latest)
fi

step "2/5 embeddings of LFW (training identities) and CelebA (unseen identities)"
[ -f "$OUT/emb-lfw/rows.csv" ] || $HF embed "$SHARED/data/lfw/labels.csv" --model "$OUT/recognizer/model" --output "$OUT/emb-lfw"
[ -f "$OUT/emb-celeba/rows.csv" ] || $HF embed "$SHARED/data/celeba-wild-ids/labels.csv" --model "$OUT/recognizer/model" --output "$OUT/emb-celeba"

step "3/5 SDD-FIQA pseudo-labels of the LFW faces (24 pos, 24 neg, 12 repetitions)"
[ -f "$OUT/labels-lfw.parquet" ] || $HF pseudo-label --embeddings "$OUT/emb-lfw/embeddings.npy" --rows "$OUT/emb-lfw/rows.csv" \
  --output "$OUT/labels-lfw.parquet" --histogram "$OUT/labels-lfw.png"

step "4/5 MANIQA regressing the pseudo-labels ($FIQA_STEPS steps)"
if [ ! -f "$OUT/maniqa/trainer_state.json" ]; then
  $PY train.py --config hub_configs/maniqa-sdd-fiqa-lfw.yaml output_dir="$OUT/maniqa" \
    data.rows="$OUT/emb-lfw/rows.csv" data.labels="$OUT/labels-lfw.parquet" data.embeddings="$OUT/emb-lfw/embeddings.npy" \
    data.root="$SHARED/data/lfw" data.detector_weights="$DET" max_steps=$FIQA_STEPS \
    eval_every=$((FIQA_STEPS / 3)) save_every=$((FIQA_STEPS / 3)) trackers=[] \
    $([ -d "$OUT/maniqa/checkpoints" ] && echo --resume latest)
fi

step "5/5 EDC evaluation on CelebA: MANIQA-SDD, MagFace magnitude, baselines"
$HF evaluate-fiqa --embeddings "$OUT/emb-celeba/embeddings.npy" --identities "$OUT/emb-celeba/rows.csv" \
  --images-root "$SHARED/data/celeba-wild-ids" --quality magface="$OUT/emb-celeba/rows.csv:norm" \
  --method maniqa_sdd="$OUT/maniqa/model" --method detector_confidence --method inter_eye_distance \
  --method face_size --method sharpness --method random --fnmr 0.1 --fnmr 0.2 --output-dir "$OUT/eval"
echo
cat "$OUT/eval/pauc.md"
