#!/usr/bin/env bash
# Create .venv and install hf-fiqa with everything the tests and the CLI need. Idempotent: a second run only
# checks what is there. torch/torchvision come first, from PyPI's standard build (it also runs on CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${HF_FIQA_EXTRAS:-test}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch torchvision
.venv/bin/python -m pip install -q -e ".[${EXTRAS}]"
.venv/bin/python -c "import hf_fiqa, torch, timm, transformers; print('hf-fiqa', hf_fiqa.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__, '| timm', timm.__version__)"
# Optional: MediaPipe's face mesh ships only inside the mediapipe==0.10.14 wheel, which the face-mesh tests convert
# from (`hf-fiqa convert face-mesh`). Download that one wheel into the git-ignored .whl/mediapipe without installing
# mediapipe or its dependencies (any platform's wheel holds the same .tflite). Never fatal: without it those tests
# skip and say why. HF_FIQA_FACE_MESH=0 skips.
MEDIAPIPE_WHEELS=.whl/mediapipe
if [ "${HF_FIQA_FACE_MESH:-1}" = "1" ] && ! ls "$MEDIAPIPE_WHEELS"/mediapipe-0.10.14-*.whl >/dev/null 2>&1; then
  .venv/bin/python -m pip download -q mediapipe==0.10.14 --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_17_x86_64 --retries 2 --timeout 30 -d "$MEDIAPIPE_WHEELS" \
    || echo "setup: could not download the mediapipe==0.10.14 wheel; the face-mesh conversion tests will skip"
fi
# Optional: what tests/test_space.py needs to drive the Gradio Space in a headless browser (gradio, Playwright
# for Python, Debian's chromium). Never fatal: without them that test skips and says why. HF_FIQA_BROWSER=0 skips.
if [ "${HF_FIQA_BROWSER:-1}" = "1" ]; then
  .venv/bin/python -m pip install -q -e ".[space-test]" || echo "setup: gradio/playwright not installed; the Space browser test will skip"
  if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo -n"
      { $SUDO apt-get update -q && $SUDO apt-get install -y -q chromium; } >/dev/null 2>&1 \
        || echo "setup: could not install chromium with apt-get; the Space browser test will skip"
    else
      echo "setup: no apt-get; install Chromium yourself (or set HF_FIQA_CHROMIUM) to run the Space browser test"
    fi
  fi
fi
