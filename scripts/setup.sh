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
