"""Vendored copies of hf-fiqa's Hub pipeline code, so that the Space runs without hf-fiqa installed.

Each module is a whole-file copy generated from the package (its first line names the source):

* ``face_quality_pipeline.py`` <- ``src/hf_fiqa/pipelines/standalone.py`` (the pipelines saved models ship);
* ``fiqa_io.py`` <- ``src/hf_fiqa/io.py`` (image decoding);
* ``fiqa_quality_scale.py`` <- ``src/hf_fiqa/quality_scale.py`` (the 0-100 scale and its bands).

Never edit them here: edit the source, then regenerate and check from the repository root with::

    python utils/check_copies.py --fix   # rewrite every marked copy from its source
    python utils/check_copies.py         # exit 1 listing drifted copies (tests/test_copies.py runs it)
"""
