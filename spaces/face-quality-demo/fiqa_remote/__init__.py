"""Vendored copies of hf-fiqa's Hub pipeline code (the files saved models ship beside their weights).

``face_quality_pipeline.py`` is ``src/hf_fiqa/hub/face_quality_pipeline.py`` and ``fiqa_io.py`` is
``src/hf_fiqa/io.py``, byte for byte (tests/test_space.py checks it). Refresh with::

    cp src/hf_fiqa/hub/face_quality_pipeline.py spaces/face-quality-demo/fiqa_remote/
    cp src/hf_fiqa/io.py spaces/face-quality-demo/fiqa_remote/fiqa_io.py
"""
