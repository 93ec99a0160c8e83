"""``asclab soup`` (issue 22 item 5): uniform and greedy weight averages of fine-tunes of one model."""
from __future__ import annotations

import json

import pytest
import torch

from asclab.cli import main
from asclab.train.checkpoint import load_model_file, save_model_file
from conftest import tiny_trained_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """A CP-Mobile trained for one epoch on the synthetic scenes, and two copies with perturbed weights."""
    base = tmp_path_factory.mktemp("soup")
    paths = [tiny_trained_model(base, seed=5)]
    gen = torch.Generator().manual_seed(0)
    for i in (1, 2):
        mf = load_model_file(paths[0])
        mf.state_dict = {k: v + 0.05 * i * torch.randn(v.shape, generator=gen).to(v.dtype) if v.is_floating_point()
                         else v for k, v in mf.state_dict.items()}
        paths.append(save_model_file(mf, base / f"m{i}.ckpt"))
    return base, paths


def test_uniform_soup_is_the_mean_of_the_members_weights_and_records_them(members, tmp_path, capsys):
    base, paths = members
    out = tmp_path / "soup.ckpt"
    assert main(["soup", *map(str, paths), "--out", str(out)]) == 0
    soup, states = load_model_file(out), [load_model_file(p).state_dict for p in paths]
    for k, v in soup.state_dict.items():
        if v.is_floating_point():
            assert torch.allclose(v.float(), sum(s[k].float() for s in states) / 3, atol=1e-3), k
        else:
            assert torch.equal(v, states[0][k])
    step = soup.extra["ancestry"][-1]
    assert step["soup"] == "uniform" and [m["file"] for m in step["members"]] == [str(p) for p in paths]
    capsys.readouterr()
    wav = next((base / "synth").rglob("*.wav"))
    assert main(["predict", str(out), str(wav), "--jsonl", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in soup.classes
    # an existing output is kept unless --force
    assert main(["soup", *map(str, paths), "--out", str(out)]) == 2


def test_greedy_soup_never_scores_below_its_best_member_on_the_validation_data(members, tmp_path, capsys):
    base, paths = members
    out = tmp_path / "greedy.ckpt"
    assert main(["soup", *map(str, paths), "--out", str(out), "--greedy-on", str(base / "synth")]) == 0
    text = capsys.readouterr().out
    assert "greedy soup" in text and "wrote" in text
    best_single = float(text.split("best single ")[1].split(",")[0])
    soup_acc = float(text.split("greedy soup ")[1].split()[0])
    assert soup_acc >= best_single
    assert load_model_file(out).extra["ancestry"][-1]["soup"] == "greedy"


def test_a_member_of_another_model_is_refused_in_one_line(members, tmp_path, capsys):
    _, paths = members
    mf = load_model_file(paths[0])
    mf.classes = list(reversed(mf.classes))
    other = save_model_file(mf, tmp_path / "other.ckpt")
    capsys.readouterr()
    assert main(["soup", str(paths[0]), str(other), "--out", str(tmp_path / "x.ckpt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "classes differs" in err[0] and not (tmp_path / "x.ckpt").exists()
