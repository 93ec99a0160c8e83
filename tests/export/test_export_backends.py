"""Export backends are parts (asclab.export.backend): one registered writer each, chosen by name."""
from __future__ import annotations

import pytest

from asclab.cli import main
from asclab.export.backend import EXPORT_BACKENDS, ExportRequest, backend_names, export_backend


def test_onnx_and_litert_are_registered_writers():
    assert backend_names() == ["litert", "onnx"]
    assert export_backend("onnx").__name__ == "write_onnx"


def test_a_new_backend_is_one_registration_and_the_cli_finds_it(tmp_path, capsys, monkeypatch):
    seen = []

    def write_toy(req: ExportRequest) -> dict:
        seen.append(req)
        return {"files": [], "backend": "toy"}

    monkeypatch.setitem(EXPORT_BACKENDS._items, "toy", write_toy)
    model = tmp_path / "model.ckpt"
    model.write_bytes(b"")  # the toy backend never opens it
    assert main(["export", str(model), "--format", "toy", "--int8"]) == 0
    assert seen and seen[0].int8 and str(seen[0].ckpt) == str(model)
    assert '"backend": "toy"' in capsys.readouterr().out


def test_an_unknown_backend_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "m.ckpt"), "--format", "tflite2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown export backend 'tflite2'; known: litert, onnx" in err[0]
