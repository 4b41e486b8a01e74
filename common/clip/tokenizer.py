"""open_clip's CLIP tokenizer (``open_clip.tokenize``, SimpleTokenizer semantics).

Cleaning: ``ftfy.fix_text``, ``html.unescape`` twice, strip, whitespace collapse, lower-case; then
CLIP's regex pre-tokenizer and byte-level BPE. ``tokenize`` returns int64 (N, context_length):
``[<start_of_text>=49406] + ids + [<end_of_text>=49407]``, zero padded; a longer sequence is cut to
``context_length`` with its last id forced to ``<end_of_text>``.

The vocabulary ``assets/bpe_simple_vocab_16e6.txt.gz`` is open_clip's / OpenAI CLIP's (MIT licence,
``assets/LICENSE-open_clip.txt``): 256 byte symbols, the same with ``</w>``, 48894 merges, 2 specials.
"""
from __future__ import annotations

import gzip
import html
from functools import lru_cache
from pathlib import Path

import ftfy
import numpy as np

from .bpe import BytePairEncoder, bytes_to_unicode, whitespace_clean

DEFAULT_BPE_PATH = Path(__file__).resolve().parent / "assets" / "bpe_simple_vocab_16e6.txt.gz"
SOT, EOT = "<start_of_text>", "<end_of_text>"


def basic_clean(text: str) -> str:
    """``ftfy.fix_text`` then ``html.unescape`` twice, stripped."""
    return html.unescape(html.unescape(ftfy.fix_text(text))).strip()


class SimpleTokenizer:
    """open_clip SimpleTokenizer.

    Args:
        bpe_path: gzip'd merges file (first line a header; merges ``1 .. 48894`` are used).
        special_tokens: extra special tokens appended after ``<start_of_text>``/``<end_of_text>``.
    """

    def __init__(self, bpe_path: str | Path = DEFAULT_BPE_PATH, special_tokens=()):
        path = Path(bpe_path)
        try:
            lines = gzip.open(path).read().decode("utf-8").split("\n")
        except OSError as e:
            raise ValueError(f"cannot read the CLIP BPE vocabulary {path}: {e}") from e
        merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
        bad = [i for i, m in enumerate(merges) if len(m) != 2]
        if bad:
            raise ValueError(f"{path}: merge line {bad[0] + 2} is not a pair")
        symbols = list(bytes_to_unicode().values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
        specials = [SOT, EOT] + list(special_tokens)
        vocab += specials
        self.encoder = {t: i for i, t in enumerate(vocab)}
        self.bpe = BytePairEncoder(self.encoder, merges, specials)
        self.sot_token_id = self.encoder[SOT]
        self.eot_token_id = self.encoder[EOT]
        self.vocab_size = len(self.encoder)

    @staticmethod
    def clean(text: str) -> str:
        """open_clip's cleaning: basic_clean, whitespace collapse, lower-case."""
        return whitespace_clean(basic_clean(text)).lower()

    def encode(self, text: str) -> list[int]:
        """BPE ids of one text, without start/end tokens."""
        return self.bpe.encode_clean(self.clean(text))

    def decode(self, ids) -> str:
        """Text of ids (padding zeros are decoded too; strip them first)."""
        return self.bpe.decode(ids)

    def __call__(self, texts, context_length: int = 77) -> np.ndarray:
        """Tokenize one string or a list: int64 (N, context_length), zero padded, EOT-terminated when cut."""
        if isinstance(texts, str):
            texts = [texts]
        if context_length < 2:
            raise ValueError(f"context_length must be >= 2, got {context_length}")
        out = np.zeros((len(texts), context_length), dtype=np.int64)
        for i, text in enumerate(texts):
            ids = [self.sot_token_id] + self.encode(text) + [self.eot_token_id]
            if len(ids) > context_length:
                ids = ids[:context_length]
                ids[-1] = self.eot_token_id
            out[i, :len(ids)] = ids
        return out


@lru_cache(maxsize=4)
def get_tokenizer(bpe_path: str | None = None) -> SimpleTokenizer:
    """The shared :class:`SimpleTokenizer` (built once per vocabulary file)."""
    return SimpleTokenizer(bpe_path or DEFAULT_BPE_PATH)


def tokenize(texts, context_length: int = 77, bpe_path: str | None = None) -> np.ndarray:
    """``open_clip.tokenize``: int64 (N, context_length) NumPy ids (see :class:`SimpleTokenizer`)."""
    return get_tokenizer(None if bpe_path is None else str(bpe_path))(texts, context_length)
