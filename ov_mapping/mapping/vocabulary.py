"""A label vocabulary with text embeddings, and vocabulary labelling of instances (3D-OVS normalisation).

The caller supplies ``embed_fn(texts) -> (N, D)`` (e.g. a CLIP text encoder), so this module stays model-agnostic;
rows are L2-normalised here. Every mutating call builds the new state first and swaps it in at the end, so a call
that raises leaves the vocabulary as it was.

Labelling rule (``label_instances``), for instance embeddings ``e_n`` and label embeddings ``t_c`` (unit rows):
    ``p[n, c] = softmax_c(temperature * e_n . t_c)``                        (relevancy of class c at instance n)
    ``q[n, c] = (p[n, c] - min_n p[:, c]) / (max_n p[:, c] - min_n p[:, c])``  (per-class normalisation, 3D-OVS)
    label(n) = argmax_c q[n, c] (ties by p), score = q[n, label], probability = p[n, label].
The per-class normalisation undoes CLIP's class bias (one class scoring high everywhere), so that e.g. "chair" and
"sofa" separate; like 3D-OVS it assumes the vocabulary names things present in the scene. A class whose relevancy
is flat over the instances (including the one-instance case) keeps its raw ``p``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

CANONICAL_NEGATIVES = ("object", "things", "stuff", "texture")
EmbedFn = Callable[[Sequence[str]], np.ndarray]
_FLAT = 1e-9


def check_text(text: str, max_chars: int) -> str:
    """Return ``text`` stripped; ValueError if it is not a str, empty, or longer than ``max_chars``."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise ValueError("text is empty")
    if len(stripped) > max_chars:
        raise ValueError(f"text is {len(stripped)} characters long, the limit is {max_chars}")
    return stripped


def normalise_rows(name: str, matrix: np.ndarray, rows: int, dim: int | None = None) -> np.ndarray:
    """Check a finite real (rows, D) matrix with non-zero rows (D == dim if given); return it row-normalised."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != rows or not np.issubdtype(matrix.dtype, np.number):
        raise ValueError(f"{name} must be a numeric ({rows}, D) array, got shape {matrix.shape} dtype {matrix.dtype}")
    if np.iscomplexobj(matrix) or matrix.shape[1] == 0:
        raise ValueError(f"{name} must be real with D > 0")
    if dim is not None and matrix.shape[1] != dim:
        raise ValueError(f"{name} has dimension {matrix.shape[1]}, expected {dim}")
    matrix = matrix.astype(np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if not np.isfinite(matrix).all() or (norms < 1e-12).any():
        raise ValueError(f"{name} must be finite with non-zero rows")
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


class Vocabulary:
    """Labels, their text embeddings and the canonical negatives used by text queries."""

    def __init__(
        self,
        embed_fn: EmbedFn,
        labels: Sequence[str] = (),
        negatives: Sequence[str] = CANONICAL_NEGATIVES,
        max_labels: int = 10000,
        max_text_chars: int = 256,
        batch_size: int = 256,
    ) -> None:
        """
        Args:
            embed_fn: texts -> (N, D) array; called in batches of at most ``batch_size`` texts.
            labels: the initial vocabulary (may be empty).
            negatives: phrases every query is contrasted with (LERF's canonical negatives); at least one.
            max_labels: the largest vocabulary accepted.
            max_text_chars: the longest label or query accepted (after stripping).
        Raises:
            ValueError on bad arguments or on an ``embed_fn`` result of the wrong shape or with zero/NaN rows.
        """
        if not callable(embed_fn):
            raise ValueError("embed_fn must be callable: texts -> (N, D) array")
        for name, value in (("max_labels", max_labels), ("max_text_chars", max_text_chars), ("batch_size", batch_size)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self._embed_fn = embed_fn
        self.max_labels = int(max_labels)
        self.max_text_chars = int(max_text_chars)
        self.batch_size = int(batch_size)
        negatives = self._check_labels(negatives, "negatives")
        if not negatives:
            raise ValueError("at least one negative phrase is needed")
        self.negatives = negatives
        self.negative_embeddings = self._embed(list(negatives), None)
        self.negative_embeddings.flags.writeable = False
        self.dim = self.negative_embeddings.shape[1]
        self.labels: tuple[str, ...] = ()
        self.embeddings = np.zeros((0, self.dim), dtype=np.float32)
        self.set_labels(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def _check_labels(self, labels: Sequence[str], what: str) -> tuple[str, ...]:
        if isinstance(labels, str) or not hasattr(labels, "__iter__"):
            raise ValueError(f"{what} must be a sequence of str, got {type(labels).__name__}")
        cleaned = tuple(check_text(label, self.max_text_chars) for label in labels)
        if len(cleaned) > self.max_labels:
            raise ValueError(f"{what} has {len(cleaned)} entries, the limit is {self.max_labels}")
        seen: set[str] = set()
        for label in cleaned:
            if label in seen:
                raise ValueError(f"{what}: {label!r} occurs twice")
            seen.add(label)
        return cleaned

    def _embed(self, texts: list[str], dim: int | None) -> np.ndarray:
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            chunks.append(normalise_rows("embed_fn output", self._embed_fn(batch), len(batch), dim))
        if not chunks:
            return np.zeros((0, dim or 0), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(chunks))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit embeddings (N, D) float32 of checked texts."""
        texts = list(self._check_labels(texts, "texts"))
        return self._embed(texts, self.dim)

    def embed_query(self, text: str) -> np.ndarray:
        """Unit embedding (D,) float32 of one query; ValueError if empty or longer than ``max_text_chars``."""
        return self._embed([check_text(text, self.max_text_chars)], self.dim)[0]

    def set_labels(self, labels: Sequence[str]) -> None:
        """Replace the vocabulary (0 to ``max_labels`` distinct non-empty labels); unchanged if this raises."""
        labels = self._check_labels(labels, "labels")
        embeddings = self._embed(list(labels), self.dim)
        embeddings.flags.writeable = False
        self.labels, self.embeddings = labels, embeddings


@dataclass(frozen=True)
class InstanceLabels:
    """Vocabulary labels of N instances; ``label_index`` is -1 (label "") when the vocabulary is empty."""

    label_index: np.ndarray  # (N,) int64
    labels: tuple  # (N,) str
    scores: np.ndarray  # (N,) float32 per-class normalised relevancy q in [0, 1]
    probabilities: np.ndarray  # (N,) float32 softmax relevancy p


def _class_probabilities(embeddings: np.ndarray, label_embeddings: np.ndarray, temperature: float) -> np.ndarray:
    logits = temperature * (embeddings @ label_embeddings.T)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def label_instances(
    vocabulary: Vocabulary,
    embeddings: np.ndarray,
    temperature: float = 100.0,
    normalise_per_class: bool = True,
    chunk_size: int = 2048,
) -> InstanceLabels:
    """Label each instance embedding with its best vocabulary label (rule in the module docstring).

    Args:
        vocabulary: the labels and their embeddings (dimension D).
        embeddings: (N, D) unit instance embeddings, e.g. ``InstanceMap.embedding_matrix()[1]``.
        temperature: softmax temperature on cosine similarities (CLIP's logit scale is 100).
        normalise_per_class: apply the 3D-OVS per-class normalisation across the N instances.
        chunk_size: instances per block, bounding memory to ``chunk_size * len(vocabulary)`` floats.
    """
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or embeddings.shape[1] != vocabulary.dim:
        raise ValueError(f"embeddings must have shape (N, {vocabulary.dim}), got {embeddings.shape}")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    n, num_labels = len(embeddings), len(vocabulary)
    if num_labels == 0 or n == 0:
        return InstanceLabels(
            np.full(n, -1, dtype=np.int64), ("",) * n, np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32)
        )
    label_embeddings = vocabulary.embeddings
    blocks = [slice(start, min(n, start + chunk_size)) for start in range(0, n, chunk_size)]
    low = np.full(num_labels, np.inf)
    high = np.full(num_labels, -np.inf)
    if normalise_per_class:
        for block in blocks:
            p = _class_probabilities(embeddings[block], label_embeddings, temperature)
            low = np.minimum(low, p.min(axis=0))
            high = np.maximum(high, p.max(axis=0))
    span = high - low
    flat = ~(span > _FLAT)
    index = np.empty(n, dtype=np.int64)
    scores = np.empty(n, dtype=np.float32)
    probabilities = np.empty(n, dtype=np.float32)
    for block in blocks:
        p = _class_probabilities(embeddings[block], label_embeddings, temperature)
        if normalise_per_class:
            q = np.where(flat, p, (p - low) / np.where(flat, 1.0, span))
        else:
            q = p
        best = q.max(axis=1, keepdims=True)
        choice = np.argmax(np.where(q >= best - _FLAT, p, -np.inf), axis=1)
        rows = np.arange(len(choice))
        index[block] = choice
        scores[block] = q[rows, choice]
        probabilities[block] = p[rows, choice]
    names = tuple(vocabulary.labels[i] for i in index.tolist())
    return InstanceLabels(index, names, scores, probabilities)
