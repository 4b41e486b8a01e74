"""Hugging Face ``CLIPTokenizer`` (transformers' slow tokenizer with ftfy) from a tokenizer folder.

Reads ``vocab.json`` + ``merges.txt`` and the special tokens from ``tokenizer_config.json`` /
``special_tokens_map.json`` (bos ``<|startoftext|>``, eos ``<|endoftext|>``, pad as configured:
``<|endoftext|>`` for SD-1.x, ``!`` for SD-2.x; unk). As in transformers, the raw text is first cut at
every special token string (each maps to its id; with SD-2's pad ``!`` that includes every ``!``),
then each piece is cleaned -- ``ftfy.fix_text``, whitespace collapse, lower-case (no HTML unescape,
unlike open_clip) -- and byte-level BPE encoded. ``__call__`` gives what
``tokenizer(texts, padding="max_length", max_length=77, truncation=True).input_ids`` gives:
``[bos] + ids[:max_length-2] + [eos]`` padded with the pad id.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import ftfy
import numpy as np

from .bpe import BytePairEncoder, whitespace_clean


def _token_content(v):
    """A special token entry: a plain string or an AddedToken dict (``{"content": ...}``)."""
    if isinstance(v, dict):
        return v.get("content")
    return v


class CLIPTokenizer:
    """CLIP BPE tokenizer of a diffusers/transformers ``tokenizer/`` folder.

    Args:
        vocab: token -> id (``vocab.json``).
        merges: merge pairs in rank order (``merges.txt`` without its ``#version`` header).
        bos_token / eos_token / pad_token / unk_token: special token strings (ids from ``vocab``).
        model_max_length: default ``max_length`` (77).
        source: where the files came from (for error messages).
    """

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], bos_token="<|startoftext|>",
                 eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>",
                 model_max_length: int = 77, source: str = "CLIPTokenizer"):
        for role, tok in (("bos", bos_token), ("eos", eos_token), ("pad", pad_token), ("unk", unk_token)):
            if tok not in vocab:
                raise ValueError(f"{source}: {role} token {tok!r} is not in vocab.json")
        self.vocab = vocab
        self.bos_token_id = vocab[bos_token]
        self.eos_token_id = vocab[eos_token]
        self.pad_token_id = vocab[pad_token]
        self.unk_token_id = vocab[unk_token]
        self.model_max_length = int(model_max_length)
        # transformers never splits special tokens: the raw text is cut at every special token string
        # (longest first) before cleaning, and each one maps straight to its id.
        self.special_ids = {t: vocab[t] for t in (bos_token, eos_token, pad_token, unk_token)}
        alts = sorted(self.special_ids, key=len, reverse=True)
        self._special_re = re.compile("(" + "|".join(re.escape(t) for t in alts) + ")")
        self.bpe = BytePairEncoder(vocab, merges, (), unk_id=self.unk_token_id)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> CLIPTokenizer:
        """Load ``vocab.json``, ``merges.txt`` and the special tokens of a tokenizer folder."""
        folder = Path(folder)
        for name in ("vocab.json", "merges.txt"):
            if not (folder / name).is_file():
                raise ValueError(f"{folder}: no {name} (not a CLIPTokenizer folder)")
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        lines = (folder / "merges.txt").read_text(encoding="utf-8").strip().split("\n")
        # transformers: header line dropped, at most 49152 - 256 - 2 merges
        merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
        bad = [i for i, m in enumerate(merges) if len(m) != 2]
        if bad:
            raise ValueError(f"{folder / 'merges.txt'}: line {bad[0] + 2} is not a merge pair")
        kw = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the config wins
            p = folder / name
            if p.is_file():
                d = json.loads(p.read_text(encoding="utf-8"))
                for k in ("bos_token", "eos_token", "pad_token", "unk_token"):
                    if d.get(k) is not None:
                        kw[k] = _token_content(d[k])
                if "model_max_length" in d and int(d["model_max_length"]) < 10 ** 6:
                    kw["model_max_length"] = int(d["model_max_length"])
        return cls(vocab, merges, source=str(folder), **kw)

    @staticmethod
    def clean(text: str) -> str:
        """transformers' CLIPTokenizer with ftfy: ``whitespace_clean(ftfy.fix_text(text)).lower()``."""
        return whitespace_clean(ftfy.fix_text(text)).lower()

    def encode(self, text: str) -> list[int]:
        """BPE ids of one text, without bos/eos (special token strings in the text map to their ids)."""
        ids = []
        for i, seg in enumerate(self._special_re.split(text)):
            if i % 2:  # a special token
                ids.append(self.special_ids[seg])
            elif seg:
                ids.extend(self.bpe.encode_clean(self.clean(seg)))
        return ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Text of ids (bos/eos/pad dropped by default)."""
        drop = {self.bos_token_id, self.eos_token_id, self.pad_token_id} if skip_special_tokens else set()
        return self.bpe.decode([i for i in ids if int(i) not in drop]).strip()

    def __call__(self, texts, max_length: int | None = None, padding: str = "max_length",
                 truncation: bool = True) -> np.ndarray:
        """int64 ids (N, max_length) (``padding="max_length"``) or (N, longest) (``padding="longest"``).

        Args:
            texts: a string or a list of strings.
            max_length: sequence length with bos/eos (default ``model_max_length``, 77).
            padding: ``"max_length"`` (diffusers pipelines) or ``"longest"``.
            truncation: cut to ``max_length - 2`` BPE ids before adding bos/eos; without it a longer text
                raises ValueError.
        """
        if isinstance(texts, str):
            texts = [texts]
        if padding not in ("max_length", "longest"):
            raise ValueError(f"padding must be 'max_length' or 'longest', got {padding!r}")
        max_length = self.model_max_length if max_length is None else int(max_length)
        rows = []
        for text in texts:
            ids = self.encode(text)
            if len(ids) > max_length - 2:
                if not truncation:
                    raise ValueError(f"text of {len(ids) + 2} tokens exceeds max_length {max_length} "
                                     f"(truncation=False): {text[:40]!r}...")
                ids = ids[:max_length - 2]
            rows.append([self.bos_token_id] + ids + [self.eos_token_id])
        length = max_length if padding == "max_length" else max(len(r) for r in rows)
        out = np.full((len(rows), length), self.pad_token_id, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
        return out
