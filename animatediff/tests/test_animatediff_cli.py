"""text_to_video.py end to end: the demo (tiny random model), a tiny real-format weight set, and the
one-line errors for bad input."""
import importlib.util
from pathlib import Path

import pytest
import yaml
from PIL import Image

from common.video_io import read_video_frames

PROJECT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("text_to_video", PROJECT / "text_to_video.py")
t2v = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(t2v)


def gif_frames(path):
    im = Image.open(path)
    n = 0
    try:
        while True:
            n += 1
            im.seek(im.tell() + 1)
    except EOFError:
        pass
    return n, im.size


def only_dir(root: Path) -> Path:
    (d,) = list(root.iterdir())
    return d


def test_demo_config_writes_gif_mp4_and_grid(tmp_path, capsys):
    rc = t2v.main(["--config", str(PROJECT / "configs" / "prompts" / "demo.yaml"), "--output_dir", str(tmp_path),
                   "--steps", "2", "--L", "4", "--no_progress", "--mode", "pynative"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "RANDOMLY INITIALISED" in out
    d = only_dir(tmp_path)
    assert d.name.startswith("demo-")
    gifs = sorted((d / "sample").glob("*.gif"))
    assert [g.name.split("-")[0] for g in gifs] == ["0", "1"]
    assert gif_frames(gifs[0]) == (4, (64, 64))
    frames = read_video_frames(gifs[1].with_suffix(".mp4"))
    assert frames.shape == (4, 64, 64, 3) and frames.std() > 1  # a real, non-constant video
    assert gif_frames(d / "sample.gif")[0] == 4 and (d / "sample.mp4").is_file()
    saved = yaml.safe_load((d / "config.yaml").read_text())
    assert saved[0]["random_seed"] == [42, 7]


def write_prompt_config(path: Path, **entry):
    base = dict(inference_config="configs/inference/inference-v2.yaml", motion_module="models/Motion_Module/mm_tiny_v2.ckpt",
                H=32, W=32, L=4, seed=[3], steps=2, guidance_scale=7.5, prompt=["a tiny test"], n_prompt=["blurry"])
    base.update(entry)
    path.write_text(yaml.safe_dump([base]))
    return path


def test_real_format_weights_through_the_cli(tiny_weights, tmp_path, capsys, monkeypatch):
    root = tiny_weights["root"]
    monkeypatch.chdir(root)  # relative paths as in the original: from the project folder
    cfg = write_prompt_config(tmp_path / "tiny.yaml", dreambooth_path="models/DreamBooth_LoRA/tinyToon.safetensors",
                              lora_model_path="models/DreamBooth_LoRA/tinyStyle_lora.safetensors", lora_alpha=0.7,
                              motion_module_lora_configs=[{"path": "models/MotionLoRA/v2_lora_TinyZoom.ckpt",
                                                           "alpha": 0.5}], sampler="dpmpp_2m")
    rc = t2v.main(["--config", str(cfg), "--pretrained_model_path", str(tiny_weights["sd"]),
                   "--output_dir", str(tmp_path / "out"), "--save_mp4", "--no_progress", "--mode", "pynative"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    out = captured.out
    for step in ("load motion module", "load dreambooth model", "load lora model", "load motion LoRA"):
        assert step in out
    assert out.index("load motion module") < out.index("load dreambooth") < out.index("load lora") < \
        out.index("load motion LoRA")
    d = only_dir(tmp_path / "out")
    assert gif_frames(d / "sample" / "0-a-tiny-test.gif") == (4, (32, 32))
    assert read_video_frames(d / "sample" / "0-a-tiny-test.mp4").shape == (4, 32, 32, 3)


@pytest.mark.parametrize("entry,extra,match", [
    (dict(motion_module="models/Motion_Module/missing_mm.ckpt"), [], r"motion_module: file not found: .*missing_mm"),
    (dict(H=100), [], r"\.H: 100 is not a positive multiple of 8"),
    ({}, ["--W", "130"], r"--W 130: H and W must be positive multiples of 8"),
    (dict(lora_model_path="models/DreamBooth_LoRA/wrongBase_lora.safetensors"), [],
     r"lora_model_path: wrongBase_lora.safetensors: .*proj_in.*does not fit"),
    (dict(motion_module="models/Motion_Module/mm_tiny_v1.ckpt"), [], r"mm_tiny_v1.ckpt has no mid-block motion module"),
    (dict(inference_config="configs/inference/inference-v1.yaml"), [], r"mm_tiny_v2.ckpt has a mid-block motion module"),
    (dict(L=40), [], r"L=40 frames exceed the motion module's temporal_position_encoding_max_len=24"),
    ({}, ["--steps", "0"], r"--steps 0: sampling steps must be >= 1"),
    ({}, ["--fps", "0"], r"--fps 0: frames per second must be >= 1"),
    ({}, ["--L", "-2"], r"--L -2: frames must be >= 1"),
    ({}, ["--context_length", "8", "--context_overlap", "8"], r"--context_overlap 8: must be below --context_length 8"),
    (dict(L=40), ["--context_length", "30"], r"context_length=30 exceed the motion module's temporal_position"),
    ({}, ["--output_dir", "{file}/sub"], r"output folder .*/sub lies below the file .*a_file \(--output_dir\)"),
    ({}, ["--inference_config", "{root}"], r"inference config .* is a folder, not a file \(--inference_config\)"),
])
def test_bad_input_gives_one_error_line(tiny_weights, tmp_path, capsys, monkeypatch, entry, extra, match):
    monkeypatch.chdir(tiny_weights["root"])
    cfg = write_prompt_config(tmp_path / "bad.yaml", **entry)
    (tmp_path / "a_file").write_text("x")
    extra = [a.format(file=tmp_path / "a_file", root=tmp_path) for a in extra]
    rc = t2v.main(["--config", str(cfg), "--pretrained_model_path", str(tiny_weights["sd"]),
                   "--output_dir", str(tmp_path / "out"), "--no_progress"] + extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: ") and "\n" not in err, err
    import re
    assert re.search(match, err), err


def test_named_weights_without_a_base_model_folder(tiny_weights, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tiny_weights["root"])
    cfg = write_prompt_config(tmp_path / "x.yaml")
    rc = t2v.main(["--config", str(cfg), "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "diffusers Stable Diffusion 1.5 folder (see README 'Weights') not found" in err, err
    assert "(--pretrained_model_path)" in err and "\n" not in err


@pytest.mark.parametrize("config", sorted(str(p.relative_to(PROJECT)) for p in (PROJECT / "configs" / "prompts").rglob("*.yaml")))
def test_shipped_prompt_configs_follow_the_schema(config):
    from animatediff_ms.config import InferenceConfig
    from animatediff_ms.prompt_config import load_prompt_config

    entries = load_prompt_config(PROJECT / config, check_files=False)
    for e in entries:
        assert Path(e.inference_config).is_file()
        InferenceConfig.load(e.inference_config)
        assert len(e.prompts) == len(e.n_prompts) == len(e.seeds) and e.steps > 0


def test_sampler_from_the_inference_config(tmp_path):
    from animatediff_ms.config import ConfigError, InferenceConfig

    src = (PROJECT / "configs" / "inference" / "inference-v3.yaml").read_text()
    (tmp_path / "a.yaml").write_text(src + "\nsampler: dpmpp_2m\n")
    assert InferenceConfig.load(tmp_path / "a.yaml").scheduler.sampler == "dpmpp_2m"
    (tmp_path / "b.yaml").write_text(src + "\nsampler: euler\n")
    with pytest.raises(ConfigError, match="sampler: 'euler' is not one of"):
        InferenceConfig.load(tmp_path / "b.yaml")


def test_cli_memory_knobs_follow_the_free_memory_and_the_flags():
    """Graph mode (the default) asks common.memory_plan with the 256x256 graph figures (animatediff_ms.memory):
    256x256 x 16 frames with CFG runs stacked with 64 GiB free (17.2 GiB estimated) and split with 18 GiB (budget
    15.3: split 11.7 GiB); 512x512 with 22 GiB (split 28.2 GiB, extrapolated) adds feed-forward chunks and
    attention chunks of 128 (the size rule's, below 256); the flags win; pynative: stacked, the size rule."""
    from animatediff_ms.memory import memory_knobs

    def knobs(*flags, size=256, frames=16, cfg=True, free):
        args = t2v.parse_args(["--config", "x.yaml", *flags])
        return memory_knobs(args.mode, (size // 8, size // 8), frames, 2 if cfg else 1, split_cfg=args.split_cfg,
                            attention_chunk=args.attention_chunk_size, ff_chunk=args.ff_chunk, available_gib=free)[:3]

    assert t2v.parse_args(["--config", "x.yaml"]).mode == "graph"
    assert knobs(free=64) == (False, None, None)
    assert knobs(free=18) == (True, None, None)
    assert knobs(size=512, free=22) == (True, 128, 4096)
    assert knobs("--no_split_cfg", "--attention_chunk", "64", "--ff_chunk", "8", size=512, free=22) == (False, 64, 8)
    assert knobs("--split_cfg", free=64) == (True, None, None)
    assert knobs("--mode", "pynative", size=512, free=1) == (False, 128, None)
    assert knobs(cfg=False, free=1)[0] is False
    assert knobs(size=512, frames=8, free=64) == (False, 128, None)  # a context window of 8 frames: 28.2 GiB


def test_bad_chunk_flag_is_one_line(tmp_path, capsys):
    rc = t2v.main(["--config", str(PROJECT / "configs" / "prompts" / "demo.yaml"), "--output_dir", str(tmp_path),
                   "--ff_chunk", "0"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: --ff_chunk 0: must be >= 1") and "\n" not in err, err


def test_random_init_builds_the_sd15_layout(tmp_path, capsys, monkeypatch):
    """``--random_init`` builds the SD-1.5 configs of :mod:`animatediff_ms.sd15` with random weights (here shrunk
    to the demo's widths, so the test stays small) and CLIP's own tokenizer, and the run prints its knobs."""
    import animatediff_ms.sd15 as sd15
    from animatediff_ms.demo import CLIP_MERGES, TINY_UNET, tiny_tokenizer

    from common.clip.tokenizer import get_tokenizer

    text = "a corgi running on the beach, golden hour!"
    clip = get_tokenizer()
    want = [clip.sot_token_id, *clip.encode(text), clip.eot_token_id]
    tok = tiny_tokenizer(CLIP_MERGES)
    assert len(tok.vocab) == 49408 and list(tok([text], max_length=77, padding="max_length")[0][:len(want)]) == want
    monkeypatch.setattr(sd15, "SD15_UNET", TINY_UNET)
    monkeypatch.setattr(sd15, "SD15_VAE", {**sd15.SD15_VAE, "block_out_channels": [32, 32, 32, 32],
                                            "layers_per_block": 1})
    monkeypatch.setattr(sd15, "SD15_TEXT_ENCODER", {**sd15.SD15_TEXT_ENCODER, "hidden_size": 32,
                                                    "intermediate_size": 64, "num_hidden_layers": 1,
                                                    "num_attention_heads": 4, "projection_dim": 32})
    cfg = write_prompt_config(tmp_path / "r.yaml", motion_module="",
                              inference_config=str(PROJECT / "configs" / "inference" / "inference-v2.yaml"))
    rc = t2v.main(["--config", str(cfg), "--random_init", "--output_dir", str(tmp_path / "out"), "--no_progress",
                   "--mode", "pynative", "--H", "32", "--W", "32", "--L", "2", "--steps", "1"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "--random_init: the full-size SD-1.5 model with RANDOM weights" in out
    assert "pynative mode: split_cfg=False, attention chunk None, feed-forward chunk None" in out
    assert gif_frames(next((only_dir(tmp_path / "out") / "sample").glob("*.gif"))) == (2, (32, 32))
