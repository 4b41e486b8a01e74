"""Tests of common.checkpoint: safe readers (torch zip/legacy, safetensors, sharded, MindSpore),
the refusal of malicious pickles, the key-report loader and the atomic writers."""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re

import mindspore as ms
import numpy as np
import pytest
import torch
from mindspore import nn
from safetensors.torch import save_file as torch_save_safetensors

from common.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    LazyTensor,
    UnsafeCheckpointError,
    apply_rename,
    load_state_dict_into,
    match_state_dict,
    read_state_dict,
    save_checkpoint_atomic,
    save_safetensors_atomic,
)
from common.nn import GroupNorm


def _torch_tensors():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 4, generator=g)
    return {
        "f32": torch.randn(3, 5, generator=g),
        "f16": torch.randn(2, 3, generator=g).half(),
        "bf16": torch.randn(4, 2, generator=g).bfloat16(),
        "f64": torch.randn(3, generator=g).double(),
        "i64": torch.arange(-3, 9, dtype=torch.int64).reshape(3, 4),
        "i32": torch.arange(5, dtype=torch.int32),
        "u8": torch.arange(7, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "transposed": base.t(),  # non-contiguous strides
        "offset_view": base[2:5, 1:3],  # shares base's storage, with an offset
        "base": base,
        "param": torch.nn.Parameter(torch.randn(2, 2, generator=g)),
    }


def _ref(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    return t.float().numpy() if t.dtype in (torch.float16, torch.bfloat16) else t.numpy()


def _check_equal(sd, ref, fp16_dtype=np.float32):
    assert set(sd) == set(ref)
    for k, t in ref.items():
        want = _ref(t)
        assert sd[k].shape == want.shape, k
        if t.dtype == torch.float16:
            assert sd[k].dtype == fp16_dtype, k
        elif t.dtype == torch.bfloat16:
            assert sd[k].dtype == np.float32, k
        else:
            assert sd[k].dtype == want.dtype, k
        np.testing.assert_array_equal(sd[k].astype(want.dtype), want, err_msg=k)


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_torch_pickle_round_trip(tmp_path, zipped):
    ref = _torch_tensors()
    path = tmp_path / "model.pt"
    torch.save(ref, path, _use_new_zipfile_serialization=zipped)
    _check_equal(read_state_dict(path), ref)
    _check_equal(read_state_dict(path, upcast=False), ref, fp16_dtype=np.float16)
    sd = read_state_dict(path)
    assert sd["transposed"].flags.writeable and sd["transposed"].flags.c_contiguous


def test_lightning_wrapper_and_prefix(tmp_path):
    ref = {"model.diffusion_model.w": torch.randn(3, 2), "first_stage_model.b": torch.randn(4)}
    ckpt = {
        "state_dict": ref, "epoch": 3, "global_step": 1200, "pytorch-lightning_version": "2.6.6",
        "hyper_parameters": {"lr": 1e-4, "names": ["a", "b"], "shape": (1, 2), "flag": True, "nothing": None},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(5.0)}}, "param_groups": [{"lr": 1e-4}]}],
        "callbacks": {"np_array": np.arange(3), "np_scalar": np.float64(1.5), "dtype": torch.float16,
                      "size": torch.Size([2, 3]), "device": torch.device("cpu"), "ids": {1, 2}},
    }
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    sd = read_state_dict(path)
    assert set(sd) == set(ref)
    np.testing.assert_array_equal(sd["first_stage_model.b"], ref["first_stage_model.b"].numpy())
    sub = read_state_dict(path, key_prefix="model.diffusion_model.")
    assert list(sub) == ["w"]
    torch.save({"module": ref, "step": 7}, tmp_path / "ds.pt")
    assert set(read_state_dict(tmp_path / "ds.pt")) == set(ref)
    torch.save({"controlnet": ref, "animatediff_config": {"v": 3}}, tmp_path / "cn.ckpt")  # a named wrapper
    assert read_state_dict(tmp_path / "cn.ckpt") == {}
    assert set(read_state_dict(tmp_path / "cn.ckpt", wrappers=("state_dict", "controlnet"))) == set(ref)


def test_state_dict_with_metadata_and_torch_module_state(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    path = tmp_path / "net.pth"
    torch.save(net.state_dict(), path)  # an OrderedDict carrying _metadata (BUILD opcode)
    sd = read_state_dict(path)
    assert set(sd) == set(net.state_dict())
    assert sd["1.num_batches_tracked"].dtype == np.int64


class _Evil:
    def __init__(self, target, how):
        self.target, self.how = str(target), how

    def __reduce__(self):
        if self.how == "system":
            return os.system, (f"touch {self.target}",)
        if self.how == "eval":
            return eval, (f"open({self.target!r}, 'w').close()",)
        return open, (self.target, "w")


@pytest.mark.parametrize("how", ["system", "eval", "open"])
def test_malicious_pickle_refused(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil_{how}.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "payload": _Evil(marker, how)}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        read_state_dict(path)
    msg = str(err.value)
    assert str(path) in msg
    wanted = {"system": r"(posix|os)\.system", "eval": r"builtins\.eval", "open": r"(io|builtins)\.open"}[how]
    assert re.search(wanted, msg), msg
    assert not marker.exists()


def test_malicious_legacy_pickle_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_legacy.pt"
    torch.save({"w": torch.ones(2), "x": _Evil(marker, "system")}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        read_state_dict(path)
    assert not marker.exists()


def test_unknown_class_refused_unless_stubbed(tmp_path):
    path = tmp_path / "hp.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": argparse.Namespace(lr=1)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"argparse\.Namespace"):
        read_state_dict(path)
    sd = read_state_dict(path, stub_globals=["argparse.Namespace"])
    assert list(sd) == ["w"]


def test_plain_pickle_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(CheckpointError, match="x.pt"):
        read_state_dict(path)


@pytest.mark.parametrize("kind", ["zip", "legacy", "safetensors"])
def test_truncated_file_names_path(tmp_path, kind):
    path = tmp_path / ("model.safetensors" if kind == "safetensors" else "model.ckpt")
    tensors = {"w": torch.randn(64, 64), "b": torch.randn(64)}
    if kind == "safetensors":
        torch_save_safetensors(tensors, str(path))
    else:
        torch.save(tensors, path, _use_new_zipfile_serialization=kind == "zip")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    assert str(path) in str(err.value)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_state_dict(tmp_path / "nope.ckpt")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="garbage.ckpt"):
        read_state_dict(garbage)
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_state_dict(tmp_path / "empty.bin")


def test_safetensors_fp16_bf16(tmp_path):
    g = torch.Generator().manual_seed(1)
    ref = {"h": torch.randn(3, 4, generator=g).half(), "b": torch.randn(5, generator=g).bfloat16(),
           "f": torch.randn(2, 2, generator=g), "i": torch.arange(6).reshape(2, 3)}
    path = tmp_path / "w.safetensors"
    torch_save_safetensors(ref, str(path))
    _check_equal(read_state_dict(path), ref)
    _check_equal(read_state_dict(path, upcast=False), ref, fp16_dtype=np.float16)


def test_safetensors_whose_header_length_looks_like_a_pickle(tmp_path):
    # a header of 640..1407 bytes starts the file with 0x80 0x02..0x05, a pickle's PROTO opcode
    path = tmp_path / "m.safetensors"
    names = {f"block.{i}.attention.weight": np.full((2,), i, np.float32) for i in range(12)}
    for extra in range(400):  # the (8-byte padded) header grows through 0x380 = 896 bytes on the way
        save_safetensors_atomic({**names, "x" * extra: np.zeros(1, np.float32)}, path)
        head = path.read_bytes()[:2]
        if head[0] == 0x80 and head[1] in (2, 3, 4, 5):
            break
    assert head[0] == 0x80 and head[1] in (2, 3, 4, 5)
    sd = read_state_dict(path)
    assert np.array_equal(sd["block.3.attention.weight"], [3, 3])


def test_lazy_safetensors_read_on_demand_and_load_one_by_one(tmp_path):
    g = torch.Generator().manual_seed(2)
    ref = {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g).bfloat16(),
           "h": torch.randn(2, 1, generator=g).half()}
    torch_save_safetensors({"w": ref["w"]}, str(tmp_path / "a.safetensors"))
    torch_save_safetensors({"b": ref["b"], "h": ref["h"]}, str(tmp_path / "b.safetensors"))
    (tmp_path / "m.index.json").write_text(json.dumps(
        {"weight_map": {"w": "a.safetensors", "b": "b.safetensors", "h": "b.safetensors"}}))
    lazy = read_state_dict(tmp_path, lazy=True)
    assert all(isinstance(v, LazyTensor) for v in lazy.values())
    assert lazy["w"].shape == (3, 4) and lazy["h"].ndim == 2
    eager = read_state_dict(tmp_path)
    for k in ref:
        np.testing.assert_array_equal(np.asarray(lazy[k]), eager[k])
    assert np.asarray(lazy["h"].reshape((2,))).shape == (2,)

    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.w = ms.Parameter(ms.Tensor(np.zeros((3, 4), np.float32)), name="w")
            self.h = ms.Parameter(ms.Tensor(np.zeros((2,), np.float32)), name="h")

    net = Net()
    report = load_state_dict_into(net, lazy, ignore=["^b$"], strict_shapes=False)
    assert report.loaded == 2
    np.testing.assert_array_equal(net.w.asnumpy(), eager["w"])
    np.testing.assert_array_equal(net.h.asnumpy(), eager["h"].reshape(2))


def test_sharded_folder_and_single_file_folder(tmp_path):
    g = torch.Generator().manual_seed(2)
    ref = {f"layer{i}.weight": torch.randn(2, i + 1, generator=g) for i in range(4)}
    shard = tmp_path / "text_encoder"
    shard.mkdir()
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    parts = [dict(list(ref.items())[:2]), dict(list(ref.items())[2:])]
    weight_map = {}
    for name, part in zip(names, parts):
        torch_save_safetensors(part, str(shard / name))
        weight_map.update({k: name for k in part})
    (shard / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    for p in (shard, shard / "model.safetensors.index.json"):
        _check_equal(read_state_dict(p), ref)
    # an index naming a key its shard lacks
    bad = dict(weight_map, extra="model-00001-of-00002.safetensors")
    (shard / "model.safetensors.index.json").write_text(json.dumps({"weight_map": bad}))
    with pytest.raises(CheckpointError, match="extra"):
        read_state_dict(shard)

    single = tmp_path / "vae"
    single.mkdir()
    torch_save_safetensors(ref, str(single / "diffusion_pytorch_model.safetensors"))
    _check_equal(read_state_dict(single), ref)
    with pytest.raises(CheckpointError, match="folder without"):
        read_state_dict(_empty_dir(tmp_path))


def _empty_dir(tmp_path):
    d = tmp_path / "nothing_here"
    d.mkdir()
    (d / "notes.txt").write_text("no weights")
    return d


class _Tiny(nn.Cell):
    def __init__(self):
        super().__init__()
        self.proj = nn.Dense(3, 4)
        self.norm = GroupNorm(2, 4)

    def construct(self, x):
        return self.norm(self.proj(x))


def _tiny_sd():
    rng = np.random.default_rng(0)
    return {"proj.weight": rng.standard_normal((4, 3)), "proj.bias": rng.standard_normal(4),
            "norm.weight": rng.standard_normal(4), "norm.bias": rng.standard_normal(4)}


def test_mindspore_ckpt_round_trip(tmp_path):
    net = _Tiny()
    load_state_dict_into(net, _tiny_sd())
    path = save_checkpoint_atomic(net, tmp_path / "converted.ckpt")
    sd = read_state_dict(path)
    assert set(sd) == set(_tiny_sd())
    for k, v in _tiny_sd().items():
        np.testing.assert_allclose(sd[k], v.astype(np.float32))
    path2 = save_checkpoint_atomic({"a": np.arange(3, dtype=np.float32), "b": ms.Tensor(np.ones((2, 2)))},
                                   tmp_path / "dict")
    assert path2.name == "dict.ckpt"
    sd2 = read_state_dict(path2)
    np.testing.assert_array_equal(sd2["a"], np.arange(3))
    assert sd2["b"].shape == (2, 2)


def test_load_full_with_rename_ignore_and_dtype():
    net = _Tiny()
    src = {k.replace("norm.", "gn."): v for k, v in _tiny_sd().items()}
    src["betas"] = np.zeros(10)
    rep = load_state_dict_into(net, src, rename=[(r"^gn\.", "norm.")], ignore=[r"^betas$"])
    assert rep.ok and rep.loaded == 4 and rep.ignored == 1
    params = dict(net.parameters_and_names())
    assert params["proj.weight"].dtype == ms.float32
    np.testing.assert_allclose(params["norm.bias"].asnumpy(), _tiny_sd()["norm.bias"].astype(np.float32))
    rep = load_state_dict_into(net, src, rename=lambda k: None if k == "betas" else k.replace("gn.", "norm."))
    assert rep.ok and rep.ignored == 1


def test_partial_load_refused_naming_missing_key():
    net = _Tiny()
    before = dict(net.parameters_and_names())["proj.weight"].asnumpy().copy()
    src = _tiny_sd()
    del src["norm.bias"]
    src["extra.key"] = np.zeros(2)
    with pytest.raises(CheckpointMismatchError) as err:
        load_state_dict_into(net, src)
    msg = str(err.value)
    assert "norm.bias" in msg and "extra.key" in msg and "1 missing" in msg and "\n" not in msg
    assert err.value.report.missing == ["norm.bias"] and err.value.report.unexpected == ["extra.key"]
    # nothing was copied
    np.testing.assert_array_equal(dict(net.parameters_and_names())["proj.weight"].asnumpy(), before)
    rep = load_state_dict_into(net, src, allow_partial=True)
    assert rep.missing == ["norm.bias"] and rep.unexpected == ["extra.key"] and rep.loaded == 3
    np.testing.assert_allclose(dict(net.parameters_and_names())["proj.weight"].asnumpy(),
                               src["proj.weight"].astype(np.float32))
    assert "norm.bias" in rep.summary()


def test_misshaped_load_refused_naming_both_shapes():
    net = _Tiny()
    src = _tiny_sd()
    src["proj.weight"] = np.zeros((4, 5))
    with pytest.raises(CheckpointMismatchError) as err:
        load_state_dict_into(net, src)
    msg = str(err.value)
    assert "proj.weight" in msg and "[4, 3]" in msg and "[4, 5]" in msg
    rep = load_state_dict_into(net, src, allow_partial=True)
    assert rep.mismatched == [("proj.weight", (4, 3), (4, 5))] and rep.loaded == 3
    # size-1 axes: refused with strict_shapes, reshaped without
    src = _tiny_sd()
    src["norm.bias"] = src["norm.bias"].reshape(4, 1, 1)
    with pytest.raises(CheckpointMismatchError, match="norm.bias"):
        load_state_dict_into(net, src)
    assert load_state_dict_into(net, src, strict_shapes=False).ok


def test_rename_collision_refused():
    with pytest.raises(CheckpointMismatchError, match="both"):
        load_state_dict_into(_Tiny(), {"a.w": np.zeros(1), "b.w": np.zeros(1)}, rename=[(r"^[ab]\.", "")])


def test_rename_table_rows_apply_in_order_and_none_drops_with_why():
    table = [
        (r"^_forward_module\.", "", "DeepSpeed prefix"),
        (r"^gn\.", "norm.", "older release's name"),
        (r"^norm\.bias$", None, "not used"),  # sees the key AFTER the rows above
        (r"^betas$", None, "schedule buffer, rebuilt"),
    ]
    assert apply_rename("_forward_module.gn.weight", table) == "norm.weight"
    assert apply_rename("_forward_module.gn.bias", table) is None
    assert apply_rename("proj.weight", table) == "proj.weight"
    src = {"_forward_module." + k.replace("norm.", "gn."): v for k, v in _tiny_sd().items()}
    src["betas"] = np.zeros(10)
    matched, rep = match_state_dict(_Tiny(), src, rename=table)
    assert rep.dropped == {"not used": ["_forward_module.gn.bias"], "schedule buffer, rebuilt": ["betas"]}
    assert rep.ignored == 2 and rep.renamed["_forward_module.gn.weight"] == "norm.weight"
    assert rep.missing == ["norm.bias"] and not rep.unexpected and not rep.mismatched and rep.loaded == 0
    assert list(matched) == ["proj.weight", "proj.bias", "norm.weight"]  # model order, our names


class _Shape:
    """A shape stand-in: no data at all."""

    def __init__(self, *shape):
        self.shape = shape


def test_match_from_shapes_alone_names_every_kind():
    shapes = {"a": (2, 3), "b": (4,), "c": (), "d": (5,)}
    sd = {"a": _Shape(2, 3), "b": (3,), "c": np.zeros(1), "e": _Shape(1), "old_d": (5,)}  # .shape or a shape
    matched, rep = match_state_dict(shapes, sd, rename=[(r"^old_", "", "renamed in a later release")])
    assert rep.mismatched == [("b", (4,), (3,))] and rep.unexpected == ["e"] and rep.missing == []
    assert set(matched) == {"a", "c", "d"} and matched["c"].shape == ()  # 0-d stored as [1] (MindSpore)
    msg = rep.message("f.ckpt")
    assert "'b': file [3] vs model [4]" in msg and "'e'" in msg and msg.endswith("(f.ckpt)") and "\n" not in msg
    _, rep = match_state_dict(shapes, {"a": _Shape(2, 3)}, optional=r"^[bcd]$")
    assert rep.ok
    _, rep = match_state_dict(shapes, {"a": _Shape(2, 3)}, optional=lambda k: k != "d")
    assert rep.missing == ["d"]
    with pytest.raises(CheckpointMismatchError, match=r"1 missing from the file, e.g. 'd' \(x\)"):
        rep.check("x")
    assert rep.check("x", allow_partial=True) is rep


def test_shapes_of_a_model_built_without_weights():
    from mindspore.nn.utils import no_init_parameters

    with no_init_parameters():
        lazy = _Tiny()
    matched, rep = match_state_dict(lazy, _tiny_sd())
    assert rep.ok and set(matched) == set(_tiny_sd())
    net = _Tiny()
    assert load_state_dict_into(net, matched).loaded == 4


def test_nothing_is_copied_on_any_mismatch():
    net = _Tiny()
    before = {k: p.asnumpy().copy() for k, p in net.parameters_and_names()}
    src = _tiny_sd()
    src["proj.weight"] = np.zeros((4, 5))
    with pytest.raises(CheckpointMismatchError, match="mis-shaped"):
        load_state_dict_into(net, src, source="bad.ckpt")
    for k, p in net.parameters_and_names():
        np.testing.assert_array_equal(p.asnumpy(), before[k])


def _listing(d):
    return sorted(p.name for p in d.iterdir())


def test_atomic_save_leaves_no_temp_files(tmp_path):
    save_safetensors_atomic({"x": np.arange(4, dtype=np.float32), "y": ms.Tensor(np.ones(2, np.float16))},
                            tmp_path / "a.safetensors")
    save_checkpoint_atomic(_Tiny(), tmp_path / "b.ckpt")
    save_checkpoint_atomic(_Tiny(), tmp_path / "b.ckpt")  # overwrite an existing (read-only) file
    assert _listing(tmp_path) == ["a.safetensors", "b.ckpt"]
    sd = read_state_dict(tmp_path / "a.safetensors", upcast=False)
    assert sd["y"].dtype == np.float16
    np.testing.assert_array_equal(sd["x"], np.arange(4))


def test_atomic_save_failure_keeps_old_target(tmp_path, monkeypatch):
    target = tmp_path / "w.safetensors"
    save_safetensors_atomic({"x": np.zeros(3, np.float32)}, target)
    old = target.read_bytes()

    def crash_mid_write(obj, name, *a, **k):  # writes half a file, then the process "dies"
        with open(name, "wb") as f:
            f.write(b"\x0a\x05half")
        raise KeyboardInterrupt("simulated crash during write")

    monkeypatch.setattr(ms, "save_checkpoint", crash_mid_write)
    ck = tmp_path / "m.ckpt"
    ck.write_bytes(b"old checkpoint")
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint_atomic(_Tiny(), ck)
    assert ck.read_bytes() == b"old checkpoint"
    monkeypatch.undo()

    import common.checkpoint as cp

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(cp.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_safetensors_atomic({"x": np.ones(3, np.float32)}, target)
    monkeypatch.undo()
    assert target.read_bytes() == old
    assert _listing(tmp_path) == ["m.ckpt", "w.safetensors"]


def test_native_byte_order_and_big_endian_archive(tmp_path):
    import zipfile

    ref = {"f": torch.randn(3, 2), "h": torch.randn(4).half(), "b": torch.randn(2).bfloat16(), "i": torch.arange(3)}
    src = tmp_path / "little.pt"
    torch.save(ref, src)
    sd = read_state_dict(src)
    assert all(v.dtype.byteorder in "=|" for v in sd.values())
    # the same archive as a big-endian machine would write it: byteorder record + swapped storages
    sizes = [t.element_size() for t in ref.values()]  # storage key k = k-th tensor saved
    big = tmp_path / "big.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            name = info.filename
            if name.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in name and name.rsplit("/", 1)[-1].isdigit():
                n = sizes[int(name.rsplit("/", 1)[-1])]
                data = np.frombuffer(data, f"u{n}").byteswap().tobytes() if n > 1 else data
            zout.writestr(info, data)
    _check_equal(read_state_dict(big), ref)
