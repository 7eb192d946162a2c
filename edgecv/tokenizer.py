"""The ONE word-level tokenizer shared by training, export and the runtime (pure Python + numpy).

It is fitted on the training split only, saved in checkpoints and embedded in ONNX metadata
(``edgecv.tokenizer``), so every stage splits and numbers words identically.
Ids: 0 = padding, 1 = unknown word; padding is what models mask out.

Truncation: a text longer than ``max_len`` tokens keeps its first ``max_len`` tokens and drops
the rest, silently. That is deliberate: an attention model's position table has only ``max_len``
rows, so a longer sequence would not run at all, and training saw texts cut the same way. The
model contract records the limit as ``edgecv.max_seq_len`` (docs/metadata.md) and lowers the
embedded tokenizer's ``max_len`` to it, so the runtime's tokenizer never exceeds the graph.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable, Sequence

import numpy as np

from edgecv.errors import InputError

PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
# Words (with inner apostrophes: "don't") or single punctuation marks.
TOKEN_PATTERN = r"\w+(?:'\w+)*|[^\w\s]"


class WordTokenizer:
    """Word-level tokenizer: regex split, optional lower-casing, fixed vocabulary, max length.

    ``max_len`` caps every encoded text: longer texts are truncated to their first ``max_len``
    tokens (see the module docstring for why this is silent).
    """

    def __init__(self, vocab: Sequence[str], *, lower: bool = True, max_len: int = 64,
                 pattern: str = TOKEN_PATTERN) -> None:
        vocab = list(vocab)
        if vocab[:2] != [PAD_TOKEN, UNK_TOKEN]:
            raise InputError(f"tokenizer vocabulary must start with {PAD_TOKEN!r}, {UNK_TOKEN!r}")
        if max_len < 1:
            raise InputError(f"tokenizer max_len={max_len}: expected >= 1")
        self.vocab = vocab
        self.lower = lower
        self.max_len = int(max_len)
        self.pattern = pattern
        self._regex = re.compile(pattern)
        self._index = {tok: i for i, tok in enumerate(vocab)}

    @classmethod
    def fit(cls, texts: Iterable[str], *, vocab_size: int = 20000, min_freq: int = 1,
            lower: bool = True, max_len: int = 64, pattern: str = TOKEN_PATTERN) -> WordTokenizer:
        """Build the vocabulary from ``texts`` (the training split only): most frequent first,
        ties broken alphabetically so the result does not depend on input order."""
        probe = cls([PAD_TOKEN, UNK_TOKEN], lower=lower, max_len=max_len, pattern=pattern)
        counts = Counter(tok for text in texts for tok in probe.tokenize(text))
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        return cls([PAD_TOKEN, UNK_TOKEN] + ranked[: max(0, vocab_size - 2)],
                   lower=lower, max_len=max_len, pattern=pattern)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        if self.lower:
            text = text.lower()
        return self._regex.findall(text)

    def encode(self, text: str) -> list[int]:
        """Token ids of the first ``max_len`` tokens (the rest is dropped); an empty text becomes
        ``[UNK_ID]`` so that every sequence has at least one real token (masked pooling never
        divides by zero)."""
        ids = [self._index.get(tok, UNK_ID) for tok in self.tokenize(text)][: self.max_len]
        return ids or [UNK_ID]

    def encode_batch(self, texts: Sequence[str], *, length: int | None = None) -> np.ndarray:
        """(B, T) int64 ids padded with ``PAD_ID``; T = ``length`` or the longest text (<= max_len).

        Texts are truncated to ``max_len`` first, then to ``length`` when that is shorter (a
        model with a fixed sequence axis); a longer ``length`` only adds padding."""
        encoded = [self.encode(t) for t in texts]
        width = length or max((len(e) for e in encoded), default=1)
        out = np.full((len(encoded), width), PAD_ID, dtype=np.int64)
        for row, ids in enumerate(encoded):
            ids = ids[:width]
            out[row, : len(ids)] = ids
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.vocab[i] if 0 <= i < len(self.vocab) else UNK_TOKEN for i in ids if i != PAD_ID]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "word", "vocab": self.vocab, "lower": self.lower, "max_len": self.max_len,
                "pattern": self.pattern, "pad_id": PAD_ID, "unk_id": UNK_ID}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordTokenizer:
        if data.get("type", "word") != "word":
            raise InputError(f"tokenizer type {data.get('type')!r}: expected 'word'")
        return cls(data["vocab"], lower=data.get("lower", True), max_len=data.get("max_len") or 64,
                   pattern=data.get("pattern", TOKEN_PATTERN))
