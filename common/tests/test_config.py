"""Tests of common.config: YAML reading, attribute access, the target registry and instantiate."""
from __future__ import annotations

import pytest

from common.config import (
    TARGETS,
    AttrDict,
    ConfigError,
    Registry,
    UnknownTargetError,
    get_target_class,
    instantiate,
    load_yaml,
    register_target,
)

YAML = """
model:
  target: lvdm.models.ddpm3d.LatentVisualDiffusion
  params:
    linear_start: 0.00085
    image_size: [8, 8]
    unet_config:
      target: lvdm.modules.networks.openaimodel3d.UNetModel
      params:
        model_channels: 32
        channel_mult: [1, 2]
    stages:
      - {target: a.B, params: {x: 1}}
"""


class DummyUNet:
    def __init__(self, model_channels, channel_mult=(1,), dropout=0.0):
        self.model_channels, self.channel_mult, self.dropout = model_channels, list(channel_mult), dropout


class DummyLVD:
    def __init__(self, unet_config, linear_start, image_size, stages=()):
        self.unet = instantiate(unet_config, REG)  # the original style: nested nodes built inside
        self.linear_start, self.image_size = linear_start, image_size


REG = Registry("test")
REG.register("lvdm.modules.networks.openaimodel3d.UNetModel")(DummyUNet)
REG.register("lvdm.models.ddpm3d.LatentVisualDiffusion")(DummyLVD)


def test_load_yaml_attribute_and_item_access(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(YAML)
    cfg = load_yaml(p)
    assert cfg.model.params.unet_config.params.model_channels == 32
    assert cfg["model"]["params"]["image_size"] == [8, 8]
    assert cfg.model.params.stages[0].params.x == 1
    assert cfg.model.params.get("missing", 5) == 5
    assert type(cfg.to_dict()["model"]) is dict
    with pytest.raises(AttributeError, match="nope"):
        _ = cfg.model.nope


def test_load_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such config"):
        load_yaml(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_yaml(bad)
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("a: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="unsafe.yaml"):
        load_yaml(unsafe)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="not a mapping"):
        load_yaml(lst)


def test_instantiate_nested_with_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(YAML)
    cfg = load_yaml(p)
    m = instantiate(cfg.model, REG)
    assert isinstance(m, DummyLVD) and isinstance(m.unet, DummyUNet)
    assert m.unet.model_channels == 32 and m.unet.channel_mult == [1, 2] and m.linear_start == 0.00085
    u = instantiate(cfg.model.params.unet_config, REG, dropout=0.5, model_channels=8)
    assert (u.dropout, u.model_channels) == (0.5, 8)
    assert get_target_class("lvdm.models.ddpm3d.LatentVisualDiffusion", REG) is DummyLVD
    # plain mapping registry and node without params
    obj = instantiate({"target": "x.Y"}, {"x.Y": dict})
    assert obj == {}


def test_unknown_target_names_close_ones():
    with pytest.raises(UnknownTargetError) as err:
        get_target_class("lvdm.modules.networks.openaimodel3d.UNetModel3D", REG)
    msg = str(err.value)
    assert "'lvdm.modules.networks.openaimodel3d.UNetModel3D'" in msg
    assert "lvdm.modules.networks.openaimodel3d.UNetModel'" in msg
    with pytest.raises(UnknownTargetError) as err:
        instantiate({"target": "sgm.models.LatentVisualDiffusion", "params": {}}, REG)
    assert "lvdm.models.ddpm3d.LatentVisualDiffusion" in str(err.value)
    with pytest.raises(UnknownTargetError, match="zzz"):
        get_target_class("zzz", {"a.B": dict})


def test_bad_nodes_and_params():
    with pytest.raises(ConfigError, match="without 'target'"):
        instantiate({"params": {}}, REG)
    with pytest.raises(ConfigError, match="not a mapping"):
        instantiate({"target": "lvdm.modules.networks.openaimodel3d.UNetModel", "params": [1]}, REG)
    with pytest.raises(ConfigError, match=r"UNetModel.*DummyUNet.*bogus"):
        instantiate({"target": "lvdm.modules.networks.openaimodel3d.UNetModel",
                     "params": {"model_channels": 4, "bogus": 1}}, REG)


def test_register_target_default_registry_and_conflicts():
    name = "tests.common.config.OnlyHere"

    @register_target(name, "tests.common.config.Alias")
    def factory(a=1):
        return ("built", a)

    assert name in TARGETS and get_target_class("tests.common.config.Alias") is factory
    assert instantiate({"target": name, "params": {"a": 3}}) == ("built", 3)
    register_target(name)(factory)  # same object again: fine
    with pytest.raises(ConfigError, match="already registered"):
        register_target(name)(dict)
    with pytest.raises(ConfigError):
        register_target()
    assert isinstance(AttrDict({"a": {"b": 1}}).a, AttrDict)
