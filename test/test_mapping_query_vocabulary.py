"""Vocabulary: model-agnostic embeddings, atomic updates, limits; labelling with 3D-OVS per-class normalisation."""

import hashlib

import numpy as np
import pytest

from ov_mapping.mapping.vocabulary import CANONICAL_NEGATIVES, Vocabulary, label_instances


def unit(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return (values / np.linalg.norm(values)).astype(np.float32)


TEXTS = {
    "chair": unit([0.5, 0.3, 0, 0.8, 0, 0]),
    "sofa": unit([0.6, 0.9, 0, 0.2, 0, 0]),
    "lamp": unit([0, 0, 1, 0.3, 0, 0]),
    **{name: unit([0, 0, 0, 0, 1, 0.1 * i]) for i, name in enumerate(CANONICAL_NEGATIVES)},
}
INSTANCES = np.stack([unit([1, 0, 0, 0, 0, 0]), unit([0, 1, 0, 0, 0, 0]), unit([0, 0, 1, 0, 0, 0])])


def embed(texts):
    return np.stack([TEXTS[text] for text in texts])


def hashed_embed(texts, dim=16):
    """A deterministic stand-in encoder for any text (not normalised: the vocabulary must do it)."""
    rows = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        rows.append(3.0 * np.random.default_rng(seed).normal(size=dim))
    return np.stack(rows)


def test_per_class_normalisation_separates_chair_from_sofa():
    vocabulary = Vocabulary(embed, ["chair", "sofa", "lamp"])
    # CLIP-like bias: the chair instance is closer to the text "sofa" than to "chair".
    assert TEXTS["sofa"] @ INSTANCES[0] > TEXTS["chair"] @ INSTANCES[0]
    raw = label_instances(vocabulary, INSTANCES, normalise_per_class=False)
    assert raw.labels == ("sofa", "sofa", "lamp")
    normalised = label_instances(vocabulary, INSTANCES)
    assert normalised.labels == ("chair", "sofa", "lamp")
    assert normalised.label_index.tolist() == [0, 1, 2]
    assert np.all((normalised.scores >= 0) & (normalised.scores <= 1))
    assert normalised.probabilities[0] < 0.5  # the raw softmax still prefers "sofa" there
    chunked = label_instances(vocabulary, INSTANCES, chunk_size=1)
    assert chunked.labels == normalised.labels and np.allclose(chunked.scores, normalised.scores)


def test_single_instance_keeps_raw_relevancy():
    vocabulary = Vocabulary(embed, ["chair", "sofa", "lamp"])
    result = label_instances(vocabulary, INSTANCES[2:])
    assert result.labels == ("lamp",) and result.scores[0] == pytest.approx(result.probabilities[0])


def test_empty_vocabulary_labels_nothing():
    vocabulary = Vocabulary(embed)
    result = label_instances(vocabulary, INSTANCES)
    assert result.labels == ("", "", "") and result.label_index.tolist() == [-1, -1, -1]
    assert np.all(result.scores == 0)


def test_five_thousand_labels_are_embedded_in_batches():
    calls = []

    def counting_embed(texts):
        calls.append(len(texts))
        return hashed_embed(texts)

    vocabulary = Vocabulary(counting_embed, [f"thing {i}" for i in range(5000)], batch_size=1000)
    assert len(vocabulary) == 5000 and vocabulary.embeddings.shape == (5000, 16)
    assert max(calls) <= 1000
    assert np.allclose(np.linalg.norm(vocabulary.embeddings, axis=1), 1.0, atol=1e-5)
    # An instance equal to one label's embedding gets that label.
    instances = vocabulary.embeddings[[17, 4321]]
    assert label_instances(vocabulary, instances).labels == ("thing 17", "thing 4321")


def test_failed_updates_leave_the_vocabulary_unchanged():
    vocabulary = Vocabulary(hashed_embed, ["chair", "sofa"], max_labels=10)
    labels, embeddings = vocabulary.labels, vocabulary.embeddings.copy()
    bad = [
        (["chair", "chair"], "occurs twice"),
        (["chair", ""], "text is empty"),
        ([f"l{i}" for i in range(11)], "11 entries, the limit is 10"),
        (["x" * 10000], "10000 characters long"),
        ("chair", "sequence of str"),
        ([3], "must be a str"),
    ]
    for new_labels, message in bad:
        with pytest.raises(ValueError, match=message):
            vocabulary.set_labels(new_labels)
    assert vocabulary.labels == labels and np.array_equal(vocabulary.embeddings, embeddings)
    vocabulary.set_labels([])
    assert len(vocabulary) == 0 and vocabulary.embeddings.shape == (0, 16)


def test_bad_encoder_output_is_reported_and_changes_nothing():
    state = {"mode": "good"}

    def flaky(texts):
        if state["mode"] == "nan":
            return np.full((len(texts), 16), np.nan)
        if state["mode"] == "short":
            return hashed_embed(texts)[:-1]
        if state["mode"] == "wide":
            return hashed_embed(texts, dim=8)
        return hashed_embed(texts)

    vocabulary = Vocabulary(flaky, ["chair"])
    for mode, message in (("nan", "finite"), ("short", r"\(2, D\)"), ("wide", "dimension 8, expected 16")):
        state["mode"] = mode
        with pytest.raises(ValueError, match=message):
            vocabulary.set_labels(["chair", "sofa"])
        assert vocabulary.labels == ("chair",)
    with pytest.raises(ValueError, match="callable"):
        Vocabulary("not a function")
    with pytest.raises(ValueError, match="at least one negative"):
        Vocabulary(hashed_embed, negatives=())


def test_label_instances_validates_input():
    vocabulary = Vocabulary(embed, ["chair"])
    with pytest.raises(ValueError, match=r"shape \(N, 6\)"):
        label_instances(vocabulary, np.ones((2, 5)))
    with pytest.raises(ValueError, match="temperature"):
        label_instances(vocabulary, INSTANCES, temperature=0)
