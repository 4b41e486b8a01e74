"""Fine-tuning in process on the tiny random model: configs, one-line refusals, the objective's gradients,
the condition dropout, sample-keyed batches."""
from __future__ import annotations

import numpy as np
import pytest

from .train_helpers import TINY_TRAIN, VC_DIR, make_clips, train_module

TRAIN_CONFIGS = {
    "train_exp02_motion_transfer": ["y", "local_image", "motion"],
    "train_exp02_motion_transfer_vs_style": ["y", "local_image", "image", "motion"],
    "train_exp03_sketch2video_style": ["y", "image", "single_sketch"],
    "train_exp04_sketch2video_wo_style": ["y", "single_sketch"],
    "train_exp05_text_depths_wo_style": ["y", "depth"],
    "train_exp06_text_depths_vs_style": ["y", "image", "depth"],
}


@pytest.fixture(scope="module")
def train():
    return train_module()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_clips(tmp_path_factory.mktemp("clips"))


@pytest.mark.parametrize("name", sorted(TRAIN_CONFIGS))
def test_train_configs_load_with_their_conditions(train, name):
    cfg = train.load_train_config(VC_DIR / "configs" / f"{name}.yaml", [])
    assert cfg.guidances == TRAIN_CONFIGS[name]
    assert cfg.frames == 16 and cfg.resolution == 256 and cfg.unet_dim == 320 and cfg.optim == "adamw"


def test_overrides_reach_keys_the_file_omits(train):
    cfg = train.load_train_config(TINY_TRAIN, ["--misc_dropout=0.25", "--optim", "momentum"])
    assert cfg.misc_dropout == 0.25 and cfg.optim == "momentum"


def test_help_lists_every_training_key(train, capsys):
    with pytest.raises(SystemExit) as e:
        train.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for key in ("--conditions_for_train", "--optim ('adamw')", "--use_recompute (False)", "--use_fp16 (False)",
                "--gradient_accumulation_steps (1)", "--use_ema (False)", "--loss_scale (65536.0)",
                "--clip_grad (False)", "--root_dir", "--output_dir", "--weights_dir"):
        assert key in out, key


def _bad(tmp_path, clips, kind):
    """(extra argv, expected message) for one kind of bad input."""
    folder = tmp_path / "data"
    folder.mkdir()
    csv = folder / "video_caption.csv"
    (tmp_path / "f.txt").write_text("x")
    if kind == "header":
        csv.write_text("file,text\n0.mp4,a\n")
        return [f"--root_dir={folder}"], "the header is 'file,text', expected 'video,caption'"
    if kind == "missing_video":
        csv.write_text("video,caption\ngone.mp4,a\n")
        return [f"--root_dir={folder}"], "video_caption.csv:2: video " + str(folder / "gone.mp4") + " does not exist"
    if kind == "not_a_video":
        (folder / "x.mp4").write_bytes(b"not a video" * 40)
        csv.write_text("video,caption\nx.mp4,a\n")
        return [f"--root_dir={folder}"], "cannot decode video"
    if kind == "short_row":
        csv.write_text("video,caption\n0.mp4\n")
        return [f"--root_dir={folder}"], "video_caption.csv:2: expected 'video,caption', got '0.mp4'"
    table = {
        "optim": (["--optim=sgd"], "optim: 'sgd' is not 'adamw' or 'momentum'"),
        "unknown": (["--no_such_key=3"], "unknown option --no_such_key"),
        "typo": (["--learning_rat=3"], "did you mean 'learning_rate'"),
        "condition": (["--conditions_for_train=[text, canny]"], "conditions_for_train: 'canny' is not a condition"),
        "not_composed": (["--video_compositions=[text, motion]"], "conditions_for_train: 'local_image' is not in "
                                                                  "video_compositions"),
        "root": ([f"--root_dir={tmp_path / 'nope'}"], "video folder not found"),
        "csv": ([f"--root_dir={tmp_path}"], "CSV not found"),
        "output": ([f"--root_dir={clips}", f"--output_dir={tmp_path / 'f.txt'}/x"], "lies below the file"),
        "fp16_cpu": ([f"--root_dir={clips}", "--use_fp16=true"], "use_fp16: float16 training"),
        "warmup": ([f"--root_dir={clips}", "--warmup_steps=5"], "warmup_steps 5 is longer than the run"),
        "prob": (["--misc_dropout=1.5"], "misc_dropout: 1.5 is not a probability"),
    }
    return table[kind]


@pytest.mark.parametrize("kind", ["header", "missing_video", "not_a_video", "short_row", "optim", "unknown", "typo",
                                  "condition", "not_composed", "root", "csv", "output", "fp16_cpu", "warmup", "prob"])
def test_bad_input_is_one_line_before_any_work(train, clips, tmp_path, capsys, kind):
    extra, message = _bad(tmp_path, clips, kind)
    argv = ["-c", str(TINY_TRAIN), "--random_weights", f"--output_dir={tmp_path / 'out'}", *extra]
    if not any(a.startswith("--root_dir") for a in extra):
        argv.append(f"--root_dir={clips}")
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and message in err, err
    assert not list((tmp_path / "out").glob("ckpt-*"))


def test_missing_weights_folder_is_refused(train, clips, tmp_path, capsys):
    assert train.main(["-c", str(TINY_TRAIN), f"--root_dir={clips}", f"--weights_dir={tmp_path / 'w'}",
                       f"--output_dir={tmp_path / 'o'}"]) == 2
    assert "weights folder" in capsys.readouterr().err


# ---- the objective ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(train, clips):
    import mindspore as ms
    from videocomposer_ms.pipeline import VideoComposerPipeline
    from videocomposer_ms.training import VideoCaptionDataset, make_batch_fn, set_dropout

    from common.train import default_collate

    cfg = train.load_train_config(TINY_TRAIN, [f"--root_dir={clips}", "--conditions_for_train=[text, local_image, "
                                               "image, motion, depthmap, sketch, single_sketch, mask]"])
    ms.set_seed(0)
    parts = VideoComposerPipeline(cfg, None)
    parts.unet.set_train(True)
    set_dropout(parts.unet, False)
    ds = VideoCaptionDataset(cfg, clips / "video_caption.csv", clips, seed=0)
    batch = default_collate([ds.load(0, 0), ds.load(1, 0)])
    fn, names = make_batch_fn(cfg, parts, seed=0)
    return cfg, parts, ds, batch, fn, names


def test_batch_has_every_condition_and_is_keyed_by_sample(setup):
    cfg, parts, ds, batch, fn, names = setup
    assert names == ["local_image", "image", "motion", "depth", "sketch", "single_sketch", "masked"]
    a, b = fn(batch), fn(batch)
    for x, y in zip(a, b):
        assert np.array_equal(x.asnumpy(), y.asnumpy())
    xt, t, noise, keep, coef, y, *conds = a
    assert coef.shape == (2, 2)
    assert xt.shape == (2, 4, 2, 32, 32) and noise.shape == xt.shape and t.shape == (2,) and keep.shape == (2, 8)
    assert y.shape == (2, 77, 64)
    shapes = {n: tuple(c.shape) for n, c in zip(names, conds)}
    assert shapes == {"local_image": (2, 3, 2, 64, 64), "image": (2, 1, 64), "motion": (2, 2, 2, 256, 256),
                      "depth": (2, 1, 2, 64, 64), "sketch": (2, 1, 2, 64, 64), "single_sketch": (2, 1, 2, 64, 64),
                      "masked": (2, 4, 2, 64, 64)}
    other = fn((*batch[:-1], batch[-1] + np.array([[1, 0]])))  # the same videos in another epoch
    assert not np.array_equal(other[2].asnumpy(), noise.asnumpy())
    # one video's inputs do not depend on its batch mate
    single = fn(tuple(x[:1] for x in batch))
    for x, s in zip(a, single):
        assert np.array_equal(x.asnumpy()[:1], s.asnumpy())


def _loss_and_grads(parts, names, inputs):
    import mindspore as ms
    from videocomposer_ms.training import DiffusionLoss

    loss = DiffusionLoss(parts.unet, names)
    params = parts.unet.trainable_params()
    value, grads = ms.value_and_grad(loss, None, params)(*inputs)
    return loss, params, float(value.asnumpy()), {p.name: g.asnumpy() for p, g in zip(params, grads)}


@pytest.fixture(scope="module")
def kept(setup):
    """Inputs with every condition kept, and the loss and gradients there."""
    import mindspore as ms

    cfg, parts, ds, batch, fn, names = setup
    inputs = list(fn(batch))
    inputs[3] = ms.Tensor(np.ones((2, 8), np.float32))
    return (inputs, *_loss_and_grads(parts, names, inputs))


def test_loss_and_gradients_are_sane(kept):
    import mindspore as ms

    inputs, loss, params, value, grads = kept
    assert 0.5 < value < 3.0  # eps-MSE of a random small-output model against N(0, 1) noise
    assert all(np.isfinite(g).all() for g in grads.values())
    for prefix in ("motion_embedding", "local_image_embedding", "depth_embedding", "masked_embedding",
                   "pre_image_condition", "input_blocks", "out."):
        assert any(np.abs(g).max() > 0 for n, g in grads.items() if n.startswith(prefix)), prefix
    # directional derivative along the gradient = |g|^2 / |g| (central differences; float32 rounding of a
    # loss ~1 is ~1e-7, so with h = 1e-2 the difference quotient carries ~1e-5 absolute error)
    flat = np.concatenate([g.ravel() for g in grads.values()])
    gnorm = float(np.linalg.norm(flat))
    saved = {p.name: p.asnumpy().copy() for p in params}
    h = 1e-2

    def shifted(sign):
        for p in params:
            p.set_data(ms.Tensor(saved[p.name] + sign * h * grads[p.name] / gnorm))
        return float(loss(*inputs).asnumpy())

    try:
        fd = (shifted(1) - shifted(-1)) / (2 * h)
    finally:
        for p in params:
            p.set_data(ms.Tensor(saved[p.name]))
    assert abs(fd - gnorm) <= 0.02 * gnorm + 1e-4, (fd, gnorm)


def test_recompute_gives_the_same_gradients(setup, kept):
    parts, names = setup[1], setup[5]
    inputs, _, _, v0, g0 = kept
    parts.unet.set_recompute(True)
    try:
        _, _, v1, g1 = _loss_and_grads(parts, names, inputs)
    finally:
        parts.unet.set_recompute(False)
    # the same ops on the same values, run again in the backward pass: equal up to float32 rounding, which is
    # relative to the gradients flowing through the shared graph, not to each tensor's own (some are pure
    # rounding noise: a time embedding or bias added before a GroupNorm of one channel per group)
    assert abs(v0 - v1) <= 1e-6 * abs(v0)
    scale = max(float(np.abs(g).max()) for g in g0.values())
    for k in g0:
        assert np.allclose(g1[k], g0[k], rtol=0, atol=1e-5 * scale), k


def test_dropped_conditions_get_no_gradient(setup):
    import mindspore as ms
    from videocomposer_ms.unet import KEEP_ORDER

    cfg, parts, ds, batch, fn, names = setup
    inputs = list(fn(batch))
    keep = np.ones((2, 8), np.float32)
    keep[:, KEEP_ORDER.index("motion")] = 0.0
    keep[:, KEEP_ORDER.index("image")] = 0.0
    inputs[3] = ms.Tensor(keep)
    _, _, _, grads = _loss_and_grads(parts, names, inputs)
    for prefix in ("motion_embedding", "pre_image_condition"):
        assert all(np.abs(g).max() == 0 for n, g in grads.items() if n.startswith(prefix)), prefix
    assert any(np.abs(g).max() > 0 for n, g in grads.items() if n.startswith("local_image_embedding"))


def test_condition_dropout_probabilities(setup):
    from videocomposer_ms.training import condition_keep

    cfg = setup[0]  # the original's defaults: misc_dropout 0.5, p_all_zero 0.1, p_all_keep 0.1
    rng = np.random.default_rng(0)
    n = 4000
    k = np.stack([condition_keep(rng, cfg) for _ in range(n)])
    all_zero, all_one = (k == 0).all(1).mean(), (k == 1).all(1).mean()
    # batch of one video, as the original: zero w.p. 0.1, else keep-all w.p. 0.1 (0.09 in all), else each
    # condition dropped w.p. 0.5 (which also makes all-0 / all-1 by chance: 0.81 * 0.5^8 each); 4-sigma bounds
    p_zero, p_one = 0.1 + 0.81 * 0.5 ** 8, 0.09 + 0.81 * 0.5 ** 8
    assert abs(all_zero - p_zero) < 4 * np.sqrt(p_zero * (1 - p_zero) / n)
    assert abs(all_one - p_one) < 4 * np.sqrt(p_one * (1 - p_one) / n)
    p_keep = 0.09 + 0.81 * 0.5  # one condition kept
    assert abs(k[:, 0].mean() - p_keep) < 4 * np.sqrt(p_keep * (1 - p_keep) / n)


def test_div_loss_is_the_originals():
    """DiffusionLoss on a stand-in UNet output against the formula in numpy (torch's unbiased std)."""
    import mindspore as ms
    from mindspore import nn
    from videocomposer_ms.training import DiffusionLoss

    rng = np.random.default_rng(0)
    xt, noise, out = (rng.standard_normal((2, 4, 3, 4, 4)).astype(np.float32) for _ in range(3))
    coef = np.array([[1.5, 0.8], [1.1, 0.3]], np.float32)

    class Fixed(nn.Cell):
        def construct(self, x, t, y, cond_keep=None):
            return ms.Tensor(out)

    args = [ms.Tensor(a) for a in (xt, np.zeros(2, np.int32), noise, np.ones((2, 8), np.float32), coef,
                                   np.zeros((2, 77, 8), np.float32))]
    mse = ((out - noise) ** 2).reshape(2, -1).mean(1)
    x0 = coef[:, :1, None, None, None] * xt - coef[:, 1:, None, None, None] * out
    div = 0.001 / (x0.astype(np.float64).std(axis=2, ddof=1).reshape(2, -1).mean(1) + 1e-4)
    assert np.isclose(float(DiffusionLoss(Fixed(), []).construct(*args).asnumpy()), mse.mean(), rtol=1e-6)
    assert np.isclose(float(DiffusionLoss(Fixed(), [], div_loss=True).construct(*args).asnumpy()),
                      (mse + div).mean(), rtol=1e-5)
