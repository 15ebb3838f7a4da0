#!/usr/bin/env bash
# The main job: the SDD-FIQA hybrid end to end on the real photos in ../shared (hf_fiqa/recipes/sdd_fiqa.py):
#   dlib ResNet (converted) -> faces of LFW + CelebA -> degraded copies -> pseudo-labels -> MANIQA fitted to them
#   -> calibration -> MagFace baseline -> EDC evaluation with bootstrap CIs on unseen CelebA identities.
# Finished stages are skipped, so an interrupted run continues where it stopped.
#   FULL=1: more copies and epochs.   OUT=runs/sdd-fiqa   HF_FIQA_SHARED=../shared   PY=.venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1
exec "$PY" -m hf_fiqa.cli sdd-fiqa --shared "${HF_FIQA_SHARED:-../shared}" --output "${OUT:-runs/sdd-fiqa}" \
  $([ "${FULL:-0}" = 1 ] && echo --full) "$@"
