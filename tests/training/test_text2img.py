"""The committed digits-text2img meets issue 14's thresholds, recomputed here from its two ONNX
files through the service's sampler: the card's judge run again (1,000 held-out captions) with
onnxruntime and numpy, the card's own numbers checked against it."""

import json
from pathlib import Path

import pytest
import yaml

from training import captions, data
from training.judge import Judge, latest_version
from training.text_judge import OnnxTextToImage, verdict

MODELS = Path(__file__).resolve().parents[2] / "models"
NAME = "digits-text2img"


@pytest.fixture(scope="module")
def vdir() -> Path:
    found = latest_version(MODELS / NAME)
    if found is None:
        pytest.skip(f"models/{NAME} is not trained")
    return found


@pytest.fixture(scope="module")
def card(vdir) -> dict:
    return json.loads((vdir / "card.json").read_text())


@pytest.fixture(scope="module")
def judged(vdir, card) -> dict:
    """The card's judge, recomputed: same captions, seed, steps and guidance."""
    hp = card["hyperparameters"]
    split = data.digits()
    thresholds = captions.Thresholds.fit(split.x_train, split.y_train)
    asked = captions.judge_captions(1000, hp["seed"] + 1)
    model = OnnxTextToImage(vdir)
    samples = model.draw(asked.captions, hp["guidance"], steps=hp["default_steps"], seed=hp["seed"] + 2)
    return verdict(Judge(latest_version(MODELS / "digits-cnn")), samples, model.spec, asked, thresholds)


def test_samples_agree_with_their_captions(judged):
    assert judged["digit"]["agreement"] >= 0.90, judged
    assert judged["weight"]["agreement"] >= 0.70, judged
    assert judged["slant"]["agreement"] >= 0.70, judged
    assert judged["covers_all_classes"] and judged["min_class_share"] >= 0.04, judged  # no mode collapse


def test_the_card_reports_what_the_files_do(judged, card):
    reported = card["metrics"][f"judge_guidance_{card['hyperparameters']['guidance']:g}"]
    assert reported["samples"] == judged["samples"] == 1000
    for attribute in ("digit", "weight", "slant"):
        assert reported[attribute]["captions"] == judged[attribute]["captions"]
        # onnxruntime may round differently on another CPU: a sample or two may flip
        assert reported[attribute]["agreement"] == pytest.approx(judged[attribute]["agreement"], abs=0.005)


def test_the_vocabulary_is_the_captions_and_the_judge_used_held_out_phrasings(vdir, card):
    config = yaml.safe_load((vdir / "config.yaml").read_text())
    assert config["vocabulary"] == captions.vocabulary()
    assert not set(captions.HELD_OUT_PHRASINGS) & set(captions.TRAIN_PHRASINGS)
    assert card["dataset"]["captions"]["held_out_phrasings"] == captions.HELD_OUT_PHRASINGS


def test_committed_files_hold_no_paths_of_the_machine_that_trained_them(vdir, card):
    for path in vdir.iterdir():
        assert b'File "/' not in path.read_bytes(), path.name
    assert card["command"].startswith(f"python -m training {NAME} --output models ")
    assert all(error["max_scaled_error"] <= 1e-4 for error in card["parity"].values())
