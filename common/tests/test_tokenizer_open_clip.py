"""open_clip tokenizer: the golden ``tokenize`` checks of DynamiCrafter and behaviour a user relies on."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from common import golden
from common.clip.bpe import bytes_to_unicode
from common.clip.tokenizer import DEFAULT_BPE_PATH, SimpleTokenizer, get_tokenizer, tokenize

_DC = [c for c in golden.discover() if c.model == "dynamicrafter" and "tokenize" in c.check_names]


def test_golden_root_has_tokenize_cases():
    assert _DC, f"no dynamicrafter tokenize case under {golden.golden_root()}"


@pytest.mark.parametrize("case", _DC, ids=[c.name for c in _DC])
def test_dynamicrafter_tokenize_exact(case):
    check = case.check("tokenize")
    prompts = check.params["prompts"]
    assert any(p == "" for p in prompts) and any("&amp;" in p for p in prompts)  # the hard cases are there
    ours = tokenize(prompts)
    ref = check.expected["tokens"]
    assert ours.dtype == np.int64 and ours.shape == ref.shape
    bad = [i for i in range(len(prompts)) if not np.array_equal(ours[i], ref[i])]
    assert not bad, f"rows {bad} differ: {[prompts[i][:30] for i in bad]}"


@pytest.mark.parametrize("case", _DC[:1], ids=[c.name for c in _DC[:1]])
def test_shipped_vocab_equals_case_vocab(case):
    shipped = gzip.open(DEFAULT_BPE_PATH).read()
    assert shipped == gzip.open(case.path("bpe_simple_vocab_16e6.txt.gz")).read()


def test_special_ids_and_layout():
    tok = get_tokenizer()
    assert tok.vocab_size == 49408 and (tok.sot_token_id, tok.eot_token_id) == (49406, 49407)
    out = tokenize(["", "a photo"])
    assert out.shape == (2, 77)
    assert list(out[0, :3]) == [49406, 49407, 0] and not out[0, 2:].any()
    n = int((out[1] != 0).sum())
    assert out[1, 0] == 49406 and out[1, n - 1] == 49407 and not out[1, n:].any()


def test_truncation_keeps_eot_and_context_length():
    long = " ".join(["waves"] * 200)
    out = tokenize(long, context_length=16)
    assert out.shape == (1, 16) and out[0, -1] == 49407 and (out[0, 1:-1] == out[0, 1]).all()
    with pytest.raises(ValueError, match="context_length"):
        tokenize("x", context_length=1)


def test_cleaning_html_whitespace_case():
    a = tokenize("  Fish &amp;amp;   CHIPS\n\t")
    b = tokenize("fish & chips")
    np.testing.assert_array_equal(a, b)


def test_decode_round_trip():
    tok = get_tokenizer()
    ids = tok.encode("a tiny robot dancing, 4k!")
    assert tok.decode(ids).strip() == "a tiny robot dancing , 4 k !"


def test_byte_symbols_order_is_id_order():
    # the first 256 ids are the byte symbols in open_clip's order: printable bytes first
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    tok = get_tokenizer()
    assert tok.encoder["!"] == 0 and tok.encoder[table[0]] == 188 and tok.encoder["!</w>"] == 256


def test_bad_vocab_path(tmp_path):
    with pytest.raises(ValueError, match="BPE vocabulary"):
        SimpleTokenizer(tmp_path / "missing.txt.gz")
