"""Byte-level BPE shared by the open_clip and Hugging Face CLIP tokenizers (Radford et al. 2021).

Text is split by CLIP's regex into words; each word becomes the GPT-2 byte->unicode symbols of its
UTF-8 bytes, the last symbol gets ``</w>``, and merges are applied lowest rank first until none
applies. Pure Python; results per word are cached.
"""
from __future__ import annotations

import re as _stdre
from functools import lru_cache

import regex

#: CLIP's pre-tokenizer (special tokens are prepended per tokenizer).
WORD_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


@lru_cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode map (256 entries).

    Insertion order matters (it is the id order of the first 256 vocabulary entries): the printable
    bytes ``!..~``, ``¡..¬``, ``®..ÿ`` map to themselves first, then every other byte, in byte order,
    to ``chr(256 + n)``.
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in keep}
    kept = set(keep)
    for n, b in enumerate(b for b in range(256) if b not in kept):
        table[b] = chr(256 + n)
    return table


def whitespace_clean(text: str) -> str:
    """Collapse runs of whitespace to one space and strip."""
    return _stdre.sub(r"\s+", " ", text).strip()


class BytePairEncoder:
    """BPE over byte symbols.

    Args:
        encoder: token string -> id (the vocabulary, ``</w>``-suffixed word ends included).
        merges: ordered merge pairs (rank = position).
        special_tokens: strings matched whole by the pre-tokenizer and mapped straight to their ids.
        unk_id: id for a BPE piece missing from ``encoder`` (None = KeyError naming the piece).
    """

    def __init__(self, encoder: dict[str, int], merges: list[tuple[str, str]], special_tokens=(),
                 unk_id: int | None = None):
        self.encoder = encoder
        self.decoder = {v: k for k, v in encoder.items()}
        self.ranks = {tuple(m): i for i, m in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        self.special_tokens = list(special_tokens)
        self.unk_id = unk_id
        self.cache = {t: t for t in self.special_tokens}
        special = "|".join(regex.escape(t) for t in self.special_tokens)
        self.pattern = regex.compile((special + "|" if special else "") + WORD_PATTERN, regex.IGNORECASE)

    def bpe(self, word: str) -> str:
        """Space-separated BPE pieces of one pre-tokenized word (already byte-mapped)."""
        if word in self.cache:
            return self.cache[word]
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            best, best_rank = None, None
            for pair in zip(parts, parts[1:]):
                r = self.ranks.get(pair)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = pair, r
            if best is None:
                break
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and parts[i] == best[0] and parts[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        out = " ".join(parts)
        self.cache[word] = out
        return out

    def encode_clean(self, text: str) -> list[int]:
        """Ids of already cleaned text (no start/end tokens)."""
        ids = []
        for word in self.pattern.findall(text):
            mapped = "".join(self.byte_encoder[b] for b in word.encode("utf-8"))
            for piece in self.bpe(mapped).split(" "):
                tid = self.encoder.get(piece, self.unk_id)
                if tid is None:
                    raise KeyError(f"BPE piece {piece!r} is not in the vocabulary")
                ids.append(tid)
        return ids

    def decode(self, ids) -> str:
        """Text of ids (``</w>`` -> space, invalid UTF-8 replaced). Every vocabulary string is made of byte symbols."""
        text = "".join(self.decoder[int(i)] for i in ids)
        return bytearray(self.byte_decoder[c] for c in text).decode("utf-8", errors="replace").replace("</w>", " ")
