"""The task 1c open-set rule (McDonnell & Gao 2019 sec. 3.7) decides in every command.

A toy model whose output is constant (cp_mobile with the classifier's BatchNorm
scale set to 0 and its shift to log [0.6, 0.25, 0.15]) has 'unknown' at 0.15:
the plain argmax says 'airport', the rule (x5: 0.75 > 0.6) says 'unknown'.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from asclab.workflows.evaluate import evaluate_run
from asclab.workflows.predict import predict_files
from asclab.data.records import Record
from asclab.errors import ConfigError
from asclab.evaluate.openset import OpenSetRule, decide, decision_logits, stored_rule, tune_weight
from asclab.export import dcase_api
from asclab.features.config import FeatureConfig
from asclab.models import create_model
from asclab.workflows.submit import write_submission
from asclab.train.checkpoint import ModelFile, save_model_file

CLASSES = ["airport", "bus", "unknown"]
PROBS = [0.6, 0.25, 0.15]
FEATURES = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=32)
RULE = {"unknown_label": "unknown", "weight": 5.0}


def constant_model_file(openset: dict | None, recipe: dict | None = None) -> ModelFile:
    torch.manual_seed(0)
    model = create_model("cp_mobile", num_classes=len(CLASSES), in_chans=1)
    bn = next(m for m in model.classifier.modules() if isinstance(m, torch.nn.BatchNorm2d))  # the last layer
    with torch.no_grad():
        bn.weight.zero_()
        bn.bias.copy_(torch.log(torch.tensor(PROBS)))
    return ModelFile(model.state_dict(), CLASSES, FEATURES.to_dict(), {"name": "cp_mobile"}, recipe or {},
                     duration=1.0, openset=openset)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openset")
    with_rule = save_model_file(constant_model_file(RULE), tmp / "rule" / "model.ckpt")
    plain = save_model_file(constant_model_file(None), tmp / "plain" / "model.ckpt")
    # an older model file: the rule only in its recipe
    legacy = save_model_file(constant_model_file(None, {"inference": {"openset": RULE}}), tmp / "legacy" / "model.ckpt")
    rng = np.random.default_rng(0)
    clips = tmp / "eval"
    clips.mkdir()
    files = []
    for i, seconds in enumerate((1.0, 2.0)):
        f = clips / f"{i}.wav"
        sf.write(f, (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000)
        files.append(f)
    return {"rule": with_rule, "plain": plain, "legacy": legacy, "files": files, "eval": clips, "tmp": tmp}


def test_decide_weights_only_the_unknown_class():
    rule = OpenSetRule("unknown", 5.0)
    assert decide(np.array(PROBS), CLASSES, None) == 0
    assert decide(np.array(PROBS), CLASSES, rule) == 2
    assert decide(np.array([PROBS, [0.9, 0.05, 0.05]]), CLASSES, rule).tolist() == [2, 0]  # 0.25 < 0.9
    assert decide(np.array(PROBS), ["a", "b", "c"], rule) == 0  # a model without that class: plain argmax
    assert int(np.argmax(decision_logits(np.array(PROBS), CLASSES, rule))) == 2
    with pytest.raises(ConfigError, match="inference.openset.weight"):
        OpenSetRule.from_config({"unknown_label": "unknown", "weight": 0})


def test_tuned_weight_is_chosen_on_the_given_labels():
    # unknown clips whose unknown probability is 0.3 next to 0.7: only weights above 7/3 catch them
    probs = np.array([[0.7, 0.0, 0.3]] * 4 + [[0.8, 0.1, 0.1]] * 4 + [[0.1, 0.8, 0.1]] * 4)
    y = np.array([2] * 4 + [0] * 4 + [1] * 4)
    weight, score = tune_weight(probs, y, CLASSES, OpenSetRule("unknown", 1.0))
    assert 7 / 3 < weight <= 8 and score == pytest.approx(1.0)  # above 8 the known clips turn unknown
    _, untuned = tune_weight(probs, y, CLASSES, OpenSetRule("unknown", 1.0), weights=[1.0])
    assert untuned < score


def test_predict_files_and_timeline_answer_unknown(setup):
    (row_long,) = predict_files(setup["rule"], [setup["files"][1]], progress=False)
    assert row_long["label"] == "unknown" and row_long["n_windows"] == 2
    assert [w["label"] for w in row_long["windows"]] == ["unknown", "unknown"]
    assert row_long["probs"]["unknown"] == pytest.approx(0.15, abs=1e-5)  # probabilities stay unweighted
    (row_plain,) = predict_files(setup["plain"], [setup["files"][1]], progress=False)
    assert row_plain["label"] == "airport"
    (row_legacy,) = predict_files(setup["legacy"], [setup["files"][0]], progress=False)
    assert row_legacy["label"] == "unknown"


def test_evaluate_uses_the_stored_rule(setup):
    records = [Record(path=f, label="unknown") for f in setup["files"]]
    m = evaluate_run(setup["rule"], records=records, out_dir=setup["tmp"] / "eval_rule", progress=False)
    assert m["accuracy"] == 1.0 and m["openset"]["weight"] == 5.0  # metrics.json names the rule used
    m = evaluate_run(setup["plain"], records=records, out_dir=setup["tmp"] / "eval_plain", progress=False)
    assert m["accuracy"] == 0.0 and m["openset"] is None


def test_submission_labels_answer_unknown(setup):
    out = setup["tmp"] / "output.csv"
    write_submission(setup["rule"], setup["eval"], out, year=2019, progress=False)
    header, *rows = out.read_text().splitlines()
    assert header.split("\t")[:2] == ["filename", "scene_label"]
    assert [r.split("\t")[1] for r in rows] == ["unknown", "unknown"]
    assert float(rows[0].split("\t")[2 + CLASSES.index("unknown")]) == pytest.approx(0.15, abs=1e-5)
    write_submission(setup["plain"], setup["eval"], out, year=2019, progress=False)
    assert [r.split("\t")[1] for r in out.read_text().splitlines()[1:]] == ["airport", "airport"]


def test_dcase_api_logits_argmax_is_unknown(setup):
    files = [str(f) for f in setup["files"]]
    logits, order = dcase_api.predict(files, ["a", "b"], model_file_path=setup["rule"])
    assert order == CLASSES and [order[i] for i in logits.argmax(1).tolist()] == ["unknown", "unknown"]
    plain, _ = dcase_api.predict(files, None, model_file_path=setup["plain"])
    assert plain.argmax(1).tolist() == [0, 0]


def test_onnx_predictor_answers_unknown(setup):
    pytest.importorskip("onnxruntime")
    from asclab.export import OnnxPredictor
    from asclab.export.onnx_export import export_onnx

    onnx_path = setup["tmp"] / "rule.onnx"
    export_onnx(setup["rule"], onnx_path)
    pred = OnnxPredictor(onnx_path)
    assert pred.openset == stored_rule(RULE, None)
    label, probs = pred.predict_file(setup["files"][1])
    assert label == "unknown" and probs[2] == pytest.approx(0.15, abs=1e-4)
    (res,) = pred.predict_files([setup["files"][1]])
    assert res.to_dict()["windows"][0]["label"] == "unknown"
