#!/usr/bin/env bash
# The main job: the SDD-FIQA hybrid end to end on the real photos in ../shared (hf_fiqa/recipes/sdd_fiqa.py):
#   dlib ResNet + MobileFaceNet (converted) -> faces of LFW + CFP + CelebA -> degraded copies -> pseudo-labels under
#   both recognizers, combined -> MANIQA's head on MobileFaceNet's frozen trunk -> calibration -> MagFace baseline
#   -> EDC evaluation with bootstrap CIs on unseen CelebA identities, judged by each recognizer.
# Finished stages are skipped, so an interrupted run continues where it stopped.
#   FULL=1: every photo, more copies and epochs.   OUT=runs/sdd-fiqa   HF_FIQA_SHARED=../shared   PY=.venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1
# The face mesh for the quality components of the evaluation table (eyes open, mouth closed, pitch): converted
# once from the mediapipe wheel that setup.sh downloaded; without it those three components are left out.
MESH=runs/face-mesh
if [ -z "${HF_FIQA_FACE_MESH:-}" ] && [ ! -f "$MESH/config.json" ] && ls .whl/mediapipe/mediapipe-0.10.14-*.whl >/dev/null 2>&1; then
  "$PY" -m hf_fiqa.cli convert face-mesh .whl/mediapipe/mediapipe-0.10.14-*.whl "$MESH" \
    || echo "sdd_fiqa_pipeline: face-mesh conversion failed; components without dense landmarks"
fi
if [ -z "${HF_FIQA_FACE_MESH:-}" ] && [ -f "$MESH/config.json" ]; then export HF_FIQA_FACE_MESH=$MESH; fi
exec "$PY" -m hf_fiqa.cli sdd-fiqa --shared "${HF_FIQA_SHARED:-../shared}" --output "${OUT:-runs/sdd-fiqa}" \
  $([ "${FULL:-0}" = 1 ] && echo --full) "$@"
