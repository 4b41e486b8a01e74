"""HF CLIPTokenizer: AnimateDiff's golden ``tokenizer`` checks and the transformers rules it follows."""
from __future__ import annotations

import json

import numpy as np
import pytest

from common import golden
from common.clip.bpe import bytes_to_unicode
from common.clip.hf_tokenizer import CLIPTokenizer

_AD = [c for c in golden.discover() if c.model == "animatediff" and "tokenizer" in c.check_names]


def test_golden_root_has_tokenizer_cases():
    assert _AD, f"no animatediff tokenizer case under {golden.golden_root()}"


@pytest.mark.parametrize("case", _AD, ids=[c.name for c in _AD])
def test_animatediff_tokenizer_exact(case):
    check = case.check("tokenizer")
    tok = CLIPTokenizer.from_pretrained(case.path(check.params["tokenizer"]))
    for text, key in ((check.params["prompt"], "input_ids"), (check.params["negative_prompt"], "uncond_input_ids")):
        ours = tok(text, padding="max_length", max_length=77, truncation=True)
        assert ours.dtype == np.int64
        np.testing.assert_array_equal(ours, check.expected[key])


def _tiny_folder(tmp_path, pad="<|endoftext|>", words=("a", "ab")):
    """A valid CLIP tokenizer folder: byte symbols, their </w> forms, one merge, bos/eos."""
    syms = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(syms + [s + "</w>" for s in syms])}
    vocab["ab</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b</w>\n")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": {"content": "<|startoftext|>"}, "eos_token": "<|endoftext|>", "pad_token": pad,
         "unk_token": "<|endoftext|>", "model_max_length": 77}))
    return tmp_path, vocab


def test_padding_truncation_and_specials(tmp_path):
    folder, vocab = _tiny_folder(tmp_path)
    tok = CLIPTokenizer.from_pretrained(folder)
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (bos, eos, eos)
    out = tok(["AB  b", ""], max_length=8)
    assert out.tolist() == [[bos, vocab["ab</w>"], vocab["b</w>"], eos, eos, eos, eos, eos],
                            [bos, eos, eos, eos, eos, eos, eos, eos]]
    assert tok(["ab", "ab ab"], padding="longest").shape == (2, 4)
    long = tok("ab " * 100, max_length=10)
    assert long.shape == (1, 10) and long[0, 0] == bos and long[0, -1] == eos and (long[0, 1:-1] == vocab["ab</w>"]).all()
    with pytest.raises(ValueError, match="truncation=False"):
        tok("ab " * 100, max_length=10, truncation=False)
    # a special token string in the text maps to its id (transformers never splits it)
    assert tok("ab<|endoftext|>ab", padding="longest").tolist() == [[bos, vocab["ab</w>"], eos, vocab["ab</w>"], eos]]
    assert tok.decode(out[0]) == "ab b"


def test_sd2_style_pad_token(tmp_path):
    folder, vocab = _tiny_folder(tmp_path, pad="!")
    tok = CLIPTokenizer.from_pretrained(folder)
    assert tok.pad_token_id == vocab["!"] == 0
    assert tok("ab", max_length=5).tolist() == [[vocab["<|startoftext|>"], vocab["ab</w>"], vocab["<|endoftext|>"], 0, 0]]


def test_bad_folder(tmp_path):
    with pytest.raises(ValueError, match="vocab.json"):
        CLIPTokenizer.from_pretrained(tmp_path)
    folder, _ = _tiny_folder(tmp_path, pad="<pad>")
    with pytest.raises(ValueError, match="pad token '<pad>'"):
        CLIPTokenizer.from_pretrained(folder)
