"""The shared word tokenizer: fitting, encoding, padding, truncation and round-trips."""
from __future__ import annotations

import numpy as np
import pytest

from edgecv.errors import InputError
from edgecv.tokenizer import PAD_ID, UNK_ID, WordTokenizer


def test_fit_orders_by_frequency_then_alphabet() -> None:
    tok = WordTokenizer.fit(["b a a", "c b a"], vocab_size=10)
    assert tok.vocab == ["<pad>", "<unk>", "a", "b", "c"]
    assert WordTokenizer.fit(["c b a", "b a a"]).vocab == tok.vocab  # order-independent


def test_min_freq_vocab_size_and_unknowns() -> None:
    tok = WordTokenizer.fit(["x x y", "x z"], vocab_size=3, min_freq=1)
    assert tok.vocab == ["<pad>", "<unk>", "x"]
    assert tok.encode("x y never-seen") == [2, UNK_ID, UNK_ID, UNK_ID, UNK_ID]
    assert WordTokenizer.fit(["x x y"], min_freq=2).vocab == ["<pad>", "<unk>", "x"]


def test_lowercase_punctuation_and_apostrophes() -> None:
    tok = WordTokenizer.fit(["Don't STOP, now!"])
    assert tok.tokenize("Don't STOP, now!") == ["don't", "stop", ",", "now", "!"]
    cased = WordTokenizer.fit(["Hi hi"], lower=False)
    assert len(cased.vocab) == 4


def test_encode_batch_pads_truncates_and_never_empty() -> None:
    tok = WordTokenizer.fit(["a b c d e f"], max_len=4)
    ids = tok.encode_batch(["a b c d e f", "a", ""])
    assert ids.dtype == np.int64 and ids.shape == (3, 4)
    assert ids[1].tolist() == [2, PAD_ID, PAD_ID, PAD_ID]
    assert ids[2].tolist() == [UNK_ID, PAD_ID, PAD_ID, PAD_ID]  # empty text keeps one real token
    assert tok.encode_batch(["a"], length=6).shape == (1, 6)
    assert tok.decode(ids[0]) == ["a", "b", "c", "d"]


def test_round_trip_and_bad_dicts() -> None:
    tok = WordTokenizer.fit(["hello world"], max_len=7, lower=False)
    again = WordTokenizer.from_dict(tok.to_dict())
    assert again.vocab == tok.vocab and again.max_len == 7 and again.lower is False
    with pytest.raises(InputError):
        WordTokenizer.from_dict({"type": "bpe", "vocab": []})
    with pytest.raises(InputError):
        WordTokenizer(["a", "b"])


def test_long_texts_keep_their_first_max_len_tokens() -> None:
    """Truncation, not an error: an attention model's position table has only max_len rows."""
    tok = WordTokenizer.fit(["one two three four five six"], max_len=3)
    text = "six five four three two one"
    assert tok.encode(text) == [tok.vocab.index(w) for w in ("six", "five", "four")]
    ids = tok.encode_batch([text, "one"], length=5)  # a longer fixed length only pads
    assert ids.shape == (2, 5) and ids[0, 3:].tolist() == [PAD_ID, PAD_ID]
    assert tok.encode_batch([text], length=2).shape == (1, 2)  # a shorter fixed axis cuts further
    assert WordTokenizer.from_dict({**tok.to_dict(), "max_len": None}).max_len == 64  # null: the default
