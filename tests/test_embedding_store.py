"""The embeddings format has one writer and one reader: both layouts read back the same."""

from __future__ import annotations

import numpy as np
import pytest

from hf_fiqa.embedding.store import (
    EmbeddingFormatError,
    format_float,
    read_embeddings,
    read_rows,
    usable_rows,
    write_embeddings,
)


def _table(n: int = 4) -> tuple[list[dict], np.ndarray]:
    emb = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    emb[2] = np.nan
    rows = [{"row": i, "path": f"p/{i}.jpg", "identity": "007" if i < 2 else "x", "ok": i != 2,
             "error": "" if i != 2 else "no face detected", "n_faces": 1 if i != 2 else 0,
             "det_score": format_float(0.9), "norm": format_float(float(np.linalg.norm(emb[i]))) if i != 2 else ""}
            for i in range(n)]
    return rows, emb


@pytest.mark.parametrize("fmt", ["npy", "parquet"])
def test_both_layouts_read_back_the_same(tmp_path, fmt):
    rows, emb = _table()
    files = write_embeddings(tmp_path, fmt, rows, emb)
    assert all(f.is_file() for f in files) and not list(tmp_path.glob("*.tmp"))
    table_file = files[-1]
    np.testing.assert_array_equal(read_embeddings(files[0], mmap=True), emb)
    table = read_rows(table_file)
    assert table["identity"].tolist() == ["007", "007", "x", "x"]  # identities stay text
    assert table["ok"].tolist() == [True, True, False, True]
    rows_ok, identities, left_out = usable_rows(table_file)
    assert rows_ok.tolist() == [0, 1, 3] and identities.tolist() == ["007", "007", "x"] and left_out == 1


def test_readers_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(EmbeddingFormatError, match="no such file"):
        read_embeddings(tmp_path / "missing.npy")
    broken = tmp_path / "broken.npy"
    broken.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(EmbeddingFormatError, match="broken.npy"):
        read_embeddings(broken)
    (tmp_path / "rows.csv").write_text("path,identity\na.jpg,1\n")
    with pytest.raises(EmbeddingFormatError, match=r"lacks the column\(s\) \['row'\]"):
        read_rows(tmp_path / "rows.csv")
