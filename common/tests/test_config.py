"""Tests of common.config: the one reader of the originals' YAML / JSON into dataclasses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from common.config import (
    TRANSFORMERS_GENERIC_KEYS,
    ConfigError,
    fixed,
    from_mapping,
    from_node,
    join,
    load_json,
    load_with_overrides,
    load_yaml,
    unused,
)


@dataclass
class Inner:
    num_head_channels: int
    channel_mult: tuple[int, ...] = (1, 2)
    scale: float = 1.0
    kind: Literal["eps", "v"] = "eps"
    use_checkpoint: bool = unused("training only", False)

    def __post_init__(self):
        if self.num_head_channels <= 0:
            raise ConfigError(f"num_head_channels: {self.num_head_channels} is not positive")


@dataclass
class Outer:
    inner: Inner
    items: list[Inner] = field(default_factory=list)
    size: int | None = None
    extra: dict = field(default_factory=dict)
    anything: Any = None


def test_nested_build_converts_types():
    o = from_mapping(Outer, {"inner": {"num_head_channels": 8, "channel_mult": [1, 4], "scale": "1e-4"},
                             "items": [{"num_head_channels": 2}], "size": None, "anything": [1]}, "x.yaml")
    assert o.inner == Inner(8, (1, 4), 1e-4)
    assert o.items == [Inner(2)] and o.size is None and o.anything == [1]
    assert isinstance(from_mapping(Inner, {"num_head_channels": 1, "scale": 2}, "x").scale, float)


def test_unknown_key_names_file_path_and_close_key():
    with pytest.raises(ConfigError) as e:
        from_mapping(Outer, {"inner": {"num_head_chanels": 8}}, "configs/x.yaml: model.params")
    assert str(e.value) == ("configs/x.yaml: model.params.inner.num_head_chanels: unknown key "
                            "(did you mean 'num_head_channels'?)")
    with pytest.raises(ConfigError, match=r"x.yaml: zzz: unknown key \(known keys: anything, extra, inner"):
        from_mapping(Outer, {"zzz": 1}, "x.yaml")


@pytest.mark.parametrize("data, message", [
    ({"inner": {}}, r"x.yaml: inner.num_head_channels: missing \(a required key\)"),
    ({"inner": {"num_head_channels": "8"}}, r"x.yaml: inner.num_head_channels: expected int, got str '8'"),
    ({"inner": {"num_head_channels": True}}, r"inner.num_head_channels: expected int, got bool True"),
    ({"inner": {"num_head_channels": 8, "channel_mult": 3}}, r"inner.channel_mult: expected a list, got int 3"),
    ({"inner": {"num_head_channels": 8, "channel_mult": [1, "a"]}}, r"inner.channel_mult\[1\]: expected int"),
    ({"inner": {"num_head_channels": 8, "kind": "x0"}}, r"inner.kind: 'x0' is not one of \['eps', 'v'\]"),
    ({"inner": {"num_head_channels": 8, "scale": "big"}}, r"inner.scale: expected float, got str 'big'"),
    ({"inner": {"num_head_channels": 8}, "size": 1.5}, r"x.yaml: size: expected int, got float 1.5"),
    ({"inner": {"num_head_channels": 8}, "extra": [1]}, r"extra: expected a mapping, got list"),
    ({"inner": [1]}, r"x.yaml: inner: expected a mapping, got list"),
    ({"inner": {"num_head_channels": 0}}, r"^x.yaml: inner.num_head_channels: 0 is not positive$"),
])
def test_errors_name_the_key_and_the_type(data, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(Outer, data, "x.yaml")


def test_config_error_is_a_value_error_and_unused_is_documented():
    assert issubclass(ConfigError, ValueError)
    f = {f.name: f for f in Inner.__dataclass_fields__.values()}["use_checkpoint"]
    assert f.metadata["unused"] == "training only"
    a, b = Outer(Inner(1)), Outer(Inner(1))
    assert a.extra is not b.extra


def test_from_node_checks_node_keys_and_target():
    node = {"target": "lvdm.X", "params": {"num_head_channels": 4}}
    assert from_node(Inner, node, "f.yaml: unet_config").num_head_channels == 4
    assert from_node(Inner, node, "f", targets=("lvdm.X",)).num_head_channels == 4
    with pytest.raises(ConfigError, match=r"f.yaml: unet_config.target: 'lvdm.X' is not supported"):
        from_node(Inner, node, "f.yaml: unet_config", targets=("sgm.Y",))
    with pytest.raises(ConfigError, match=r"f.yaml: unet_config.parms: unknown key \(did you mean 'params'"):
        from_node(Inner, {"target": "a", "parms": {}}, "f.yaml: unet_config")
    with pytest.raises(ConfigError, match=r"unet_config.params.num_head_channels: missing"):
        from_node(Inner, {"target": "a"}, "f.yaml: unet_config")


def test_join():
    assert join("", "a") == "a"
    assert join("f.yaml", "model") == "f.yaml: model"
    assert join(join("f.yaml", "model"), "params") == "f.yaml: model.params"
    assert join("f.yaml: emb_models", 2) == "f.yaml: emb_models[2]"


def test_load_yaml_and_json_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("a: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(unsafe)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_yaml(empty) == {}
    js = tmp_path / "c.json"
    js.write_text('{"a": 1}')
    assert load_json(js) == {"a": 1}
    js.write_text("{a")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_json(js)


@dataclass
class Towers:
    width: int = 8
    attentional_pool: bool = fixed(False, "needs the attention pooler")
    multimodal_cfg: dict | None = fixed(None, "needs the CoCa decoder")


def test_fixed_keys_accept_only_their_value():
    assert from_mapping(Towers, {"attentional_pool": False, "multimodal_cfg": {}}, "a.json").width == 8
    with pytest.raises(ConfigError) as e:
        from_mapping(Towers, {"attentional_pool": True}, "a.json: vision_cfg")
    assert str(e.value) == ("a.json: vision_cfg.attentional_pool=True is not supported by this port "
                            "(only False: needs the attention pooler)")
    with pytest.raises(ConfigError, match=r"multimodal_cfg=\{'layers': 2\} is not supported"):
        from_mapping(Towers, {"multimodal_cfg": {"layers": 2}}, "a.json")


def test_transformers_generic_keys_are_named_not_guessed():
    # the reader of a transformers config drops exactly these; model keys stay checked
    assert {"architectures", "torch_dtype", "id2label", "use_cache"} <= TRANSFORMERS_GENERIC_KEYS
    assert not {"hidden_size", "num_heads", "d_model", "vocab_size"} & TRANSFORMERS_GENERIC_KEYS


def test_load_with_overrides_sets_file_keys_and_schema_keys_the_file_omits(tmp_path):
    y = tmp_path / "t.yaml"
    y.write_text("inner: {num_head_channels: 8}\nsize: 3\n")
    data = load_with_overrides(y, ["--size=5", "--inner.num_head_channels", "16", "--extra={a: 1}", "--inner.scale=2"],
                               Outer)
    assert data == {"inner": {"num_head_channels": 16, "scale": 2}, "size": 5, "extra": {"a": 1}}  # from the schema
    assert load_with_overrides(y, ["--extra.kind=v"], Outer, sections={"extra": Inner})["extra"] == {"kind": "v"}
    assert from_mapping(Outer, data, str(y)).inner.num_head_channels == 16
    with pytest.raises(ConfigError, match=r"unknown option --sise.*did you mean 'size'"):
        load_with_overrides(y, ["--sise=1"], Outer)
    with pytest.raises(ConfigError, match="unknown option --extra"):  # without the schema: only the file's keys
        load_with_overrides(y, ["--extra={a: 1}"])
    y.write_text("[1, 2]\n")
    with pytest.raises(ConfigError, match="expected a mapping of keys at the top level"):
        load_with_overrides(y, [])
