"""VideoComposer fine-tuning on top of :mod:`common.train`: data, conditions, the objective.

Data: a ``video,caption`` CSV (:class:`VideoCaptionDataset`). A sample is read as the inference inputs are
(:mod:`.data`): the video re-encoded at ``feature_framerate`` (motion vectors from the decoder), a clip of
``max_frames`` frames from a random I-frame, the frames ``CenterCropV2(resolution)`` in [-1, 1] for the VAE,
the ``misc_size`` frames for depth / sketch / first frame / masks, the motion vectors, the middle frame as
the style image, the caption's tokens. A video's decode is cached (the most recent few), so an epoch over
a small CSV does not re-encode it.

The conditions of ``conditions_for_train`` are extracted on the fly, on the host, by the frozen parts
(:func:`make_batch_fn`): OpenCLIP text (penultimate) and visual towers, MiDaS depth, PiDiNet + the
simplification GAN, the first frame, masks; the VAE encodes the clip (posterior sample) times
``scale_factor``. The objective is the original's ``GaussianDiffusion.loss`` (eps prediction, ``mse``, and
``use_div_loss``'s frame-spread term when set):
``t ~ U{0..num_timesteps-1}``, ``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise`` (``linear_sd`` betas),
``loss = mean((unet(x_t, t, conditions) - noise)^2)``.

The UNet's condition dropout in training (``misc_dropout`` with the all-zero / all-keep masks of
``p_all_zero`` / ``p_all_keep``) is drawn here per video and passed as ``cond_keep``: with probability
``p_all_zero`` every condition is zeroed (the text context and the style token included), else with
``p_all_keep`` all are kept, else each is zeroed with probability ``misc_dropout``. For one video per batch
(the configs' ``batch_size: 1``) these are the original's probabilities; the original draws the counts for
the whole batch, here each video draws its own, so a video's step does not depend on its batch mates.

Every draw (clip start, resize filters, mask, posterior noise, t, noise, dropout) comes from a generator
keyed by ``(seed, epoch, video index)``: a step is a function of the parameters and the sample keys,
identical on every rank, after a resume and in graph mode.
"""
from __future__ import annotations

import csv
from collections import OrderedDict
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn, ops
from PIL import Image

from common.clip import tokenize
from common.schedulers import ldm_alphas_cumprod
from common.train import DataLoader

from .data import center_crop_v2, clip_image, misc_transform, resize_motion, to_unit
from .masks import random_mask
from .motion import MotionVectorError, extract_motion_vectors, start_index
from .pipeline import INIT_BETA, LAST_BETA
from .train_config import VCTrainConfig
from .unet import KEEP_ORDER, UNetSDTemporal


class DataError(ValueError):
    """A bad CSV or an unreadable / too short training video (one line naming the file)."""


def read_csv(path: Path, root: Path) -> list[tuple[Path, str]]:
    """``[(video path, caption)]`` of a ``video,caption`` CSV (paths relative to ``root``); every file must exist."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise DataError(f"cannot read the CSV {path}: {e.strerror or e}") from None
    if not rows or [c.strip() for c in rows[0][:2]] != ["video", "caption"]:
        head = ",".join(rows[0]) if rows else "(empty)"
        raise DataError(f"{path}: the header is {head!r}, expected 'video,caption'")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise DataError(f"{path}:{n}: expected 'video,caption', got {','.join(row)!r}")
        video = root / row[0].strip()
        if not video.is_file():
            raise DataError(f"{path}:{n}: video {video} does not exist")
        out.append((video, row[1]))
    if not out:
        raise DataError(f"{path}: no videos listed")
    return out


class VideoCaptionDataset:
    """The training clips of a ``video,caption`` CSV; ``load(index, epoch)`` returns one sample.

    A sample: ``video`` (3, F, R, R) in [-1, 1] (``mean`` / ``std``), ``misc`` (F, 3, S, S) in [0, 1],
    ``motion`` (F, 2, R, R) in pixels, ``style`` (3, V, V) CLIP-normalised middle frame, ``tokens`` (77,)
    int32, ``key`` (2,) int64 = (epoch, index).
    """

    def __init__(self, cfg: VCTrainConfig, csv_path: Path, root: Path, seed: int, cache: int = 8):
        self.cfg, self.seed = cfg, seed
        self.items = read_csv(csv_path, root)
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache

    def __len__(self) -> int:
        return len(self.items)

    def _decoded(self, path: Path):
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        try:
            mv = extract_motion_vectors(path, fps=self.cfg.feature_framerate, min_frames=self.cfg.frames)
            start_index(mv.frame_types, self.cfg.frames, np.random.default_rng(0))  # long enough?
        except MotionVectorError as e:
            raise DataError(str(e)) from None
        self._cache[path] = mv
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return mv

    def check(self) -> None:
        """Open every video's container and find its video stream without decoding it (cheap, so a long
        CSV is checked before any model is built); the first bad file raises :class:`DataError`. A video
        that opens but cannot be decoded stops the run when it is first read."""
        import av

        for path, _ in self.items:
            try:
                with av.open(str(path)) as c:
                    if not c.streams.video:
                        raise DataError(f"no video stream in {path}")
            except DataError:
                raise
            except Exception as e:  # av.error.* (InvalidDataError, ...)
                raise DataError(f"cannot decode video {path}: {e}") from None

    def load(self, index: int, epoch: int) -> tuple[np.ndarray, ...]:
        cfg, f = self.cfg, self.cfg.frames
        path, caption = self.items[index]
        mv = self._decoded(path)
        rng = np.random.default_rng([self.seed, epoch, index])
        s = start_index(mv.frame_types, f, rng)
        frames = [Image.fromarray(a) for a in mv.frames[s:s + f]]
        mean = np.asarray(cfg.mean, np.float32).reshape(3, 1, 1)
        std = np.asarray(cfg.std, np.float32).reshape(3, 1, 1)
        video = np.stack([(to_unit(center_crop_v2(fr, cfg.resolution)) - mean) / std for fr in frames], axis=1)
        misc = np.stack([misc_transform(fr, cfg.misc_size, rng) for fr in frames])
        motion = resize_motion(mv.mvs[s:s + f], cfg.resolution)
        style = clip_image(frames[len(frames) // 2], cfg.vit_image_size, cfg.vit_mean, cfg.vit_std, False)
        tokens = tokenize([caption])[0].astype(np.int32)
        return (video.astype(np.float32), misc, motion, style.astype(np.float32), tokens,
                np.array([epoch, index], np.int64))


class KeyedLoader(DataLoader):
    """:class:`common.train.DataLoader` whose samples know their (epoch, index) key."""

    def __next__(self):
        epoch = self.sampler.epoch  # the epoch of the batch about to be drawn
        return self.collate_fn([self.dataset.load(int(i), epoch) for i in next(self.sampler)])


def condition_keep(rng: np.random.Generator, cfg: VCTrainConfig) -> np.ndarray:
    """(8,) multipliers in :data:`~.unet.KEEP_ORDER` for one video (see the module doc)."""
    zero, keep_all = rng.random() < cfg.p_all_zero, rng.random() < cfg.p_all_keep
    drop = rng.random(len(KEEP_ORDER)) < cfg.misc_dropout
    if zero:
        return np.zeros(len(KEEP_ORDER), np.float32)
    if keep_all:
        return np.ones(len(KEEP_ORDER), np.float32)
    return (1.0 - drop).astype(np.float32)


class DiffusionLoss(nn.Cell):
    """The batch mean of the original's per-video loss: ``mean((unet(x_t, t, y, conditions, cond_keep) -
    noise)^2)`` over the video's elements, plus with ``div_loss`` (``use_div_loss``, more than one frame)
    ``0.001 / (mean(std_frames(x0_pred)) + 1e-4)``, ``x0_pred = coef[0] x_t - coef[1] eps`` (the frame-wise
    standard deviation with Bessel's correction, as torch's ``std``).

    ``construct(x_t, t, noise, keep, coef, y, *conditions)``: ``coef`` (b, 2) = ``sqrt(1/a_t)``,
    ``sqrt(1/a_t - 1)``; the conditions in the order of ``names``."""

    def __init__(self, unet: UNetSDTemporal, names: list[str], div_loss: bool = False):
        super().__init__(auto_prefix=False)
        self.unet, self.names, self.div_loss = unet, tuple(names), div_loss

    def construct(self, xt, t, noise, keep, coef, y, *conds):
        kwargs = {}
        for name, c in zip(self.names, conds):
            kwargs[name] = c
        eps = self.unet(xt, t, y, cond_keep=keep, **kwargs).astype(ms.float32)
        b = xt.shape[0]
        loss = ops.square(eps - noise).reshape(b, -1).mean(axis=1)  # (b,)
        if self.div_loss and xt.shape[2] > 1:
            x0 = coef[:, 0].reshape(b, 1, 1, 1, 1) * xt - coef[:, 1].reshape(b, 1, 1, 1, 1) * eps
            spread = ops.std(x0, axis=2, ddof=1).reshape(b, -1).mean(axis=1)  # (b,)
            loss = loss + 0.001 / (spread + 1e-4)
        return loss.mean()


def _t(a) -> ms.Tensor:
    return ms.Tensor(np.ascontiguousarray(a, dtype=np.float32))


def make_batch_fn(cfg: VCTrainConfig, parts, seed: int):
    """``batch_fn(batch, rng) -> (x_t, t, noise, keep, coef, y, *conditions)`` for :class:`common.train.Trainer`.

    Args:
        cfg: the run's config.
        parts: an object with the frozen ``clip``, ``vae`` and (when needed) ``midas`` / ``sketch``
            (:class:`~.pipeline.VideoComposerPipeline`).
        seed: base of the per-video generators.
    Returns the function and the names of the conditions it passes, in order.
    """
    ac = ldm_alphas_cumprod("linear", cfg.num_timesteps, INIT_BETA, LAST_BETA)  # float64
    sqrt_a, sqrt_1ma = np.sqrt(ac), np.sqrt(1.0 - ac)
    sqrt_recip, sqrt_recipm1 = np.sqrt(1.0 / ac), np.sqrt(1.0 / ac - 1.0)
    g = cfg.guidances
    names = [n for n in g if n != "y"]
    chunk = max(int(cfg.chunk_size), 1)
    zero_y = parts.encode_text([""]).asnumpy()  # (1, 77, C)

    def per_frame(net, x: np.ndarray) -> np.ndarray:
        return np.concatenate([net(_t(x[s:s + chunk])).asnumpy() for s in range(0, x.shape[0], chunk)])

    def batch_fn(batch, rng=None):
        video, misc, motion, style, tokens, keys = (np.asarray(x) for x in batch)
        b, _, f = video.shape[:3]
        gens = [np.random.default_rng([seed, 7, int(k[0]), int(k[1])]) for k in keys]
        h, w = parts.vae.latent_size(video.shape[3], video.shape[4])
        post = np.stack([r.standard_normal((4, f, h, w), dtype=np.float32) for r in gens])
        x0 = parts.vae.encode_video(_t(video), post, chunk_size=chunk, scale_factor=cfg.scale_factor).asnumpy()
        t = np.array([int(r.integers(0, cfg.num_timesteps)) for r in gens], np.int64)
        if cfg.share_noise:
            noise = np.stack([np.repeat(r.standard_normal((4, 1, h, w), dtype=np.float32), f, 1) for r in gens])
        else:
            noise = np.stack([r.standard_normal((4, f, h, w), dtype=np.float32) for r in gens])
        coef = lambda c: c[t].astype(np.float32).reshape(b, 1, 1, 1, 1)  # noqa: E731
        xt = coef(sqrt_a) * x0 + coef(sqrt_1ma) * noise  # q_sample
        recip = np.stack([sqrt_recip[t], sqrt_recipm1[t]], axis=1)  # (b, 2) for the div loss's x0
        keep = np.stack([condition_keep(r, cfg) for r in gens])
        if "y" not in g:  # the original's UNet drops a given text context only; zero_y (y=None) stays
            keep[:, KEEP_ORDER.index("y")] = 1.0
        masks = [random_mask(cfg.misc_size, r) for r in gens] if "masked" in g else None
        flat = misc.reshape((b * f,) + misc.shape[2:])  # (b*f, 3, S, S)
        sk = None
        if "sketch" in g or "single_sketch" in g:
            sk = per_frame(lambda x: parts.sketch(x)[1], flat).reshape(b, f, 1, *flat.shape[2:])
        conds = []
        for name in names:
            if name == "image":
                conds.append(parts.clip.encode_image(_t(style)).expand_dims(1))  # (b, 1, C)
                continue
            if name == "depth":
                d = per_frame(lambda x: parts.midas(x * 2.0 - 1.0), flat)
                arr = np.clip(d / cfg.depth_std, 0.0, cfg.depth_clamp).reshape(b, f, 1, *flat.shape[2:])
            elif name == "sketch":
                arr = sk
            elif name == "single_sketch":
                arr = np.repeat(sk[:, :1], f, 1)
            elif name == "local_image":
                arr = np.repeat(misc[:, :1], f, 1)
            elif name == "motion":
                arr = motion
            else:  # masked: cat[(img*2-1)*(1-mask), 1-mask]
                kp = 1.0 - np.stack(masks)[:, None, None]  # (b, 1, 1, S, S)
                arr = np.concatenate([(misc * 2 - 1) * kp, np.repeat(kp, f, 1)], axis=2)
            conds.append(_t(arr.transpose(0, 2, 1, 3, 4)))  # (b, c, f, H, W)
        if "y" in g:
            y = parts.clip.encode_with_transformer(ms.Tensor(tokens.astype(np.int32)))
        else:
            y = _t(np.repeat(zero_y, b, 0))
        return (_t(xt), ms.Tensor(t.astype(np.int32)), _t(noise), _t(keep), _t(recip), ops.stop_gradient(y),
                *(ops.stop_gradient(c) for c in conds))

    return batch_fn, names


def set_dropout(cell: nn.Cell, active: bool, host_seeds: bool = True) -> int:
    """Switch every dropout below ``cell`` on (training) or off (identity); returns how many there are.

    Each ``nn.Dropout`` becomes a :class:`common.train.ReseedableDropout`: its masks follow the Trainer's
    per-step reseed (exact resume) and repeat in the recomputation of a checkpointed block (correct
    gradients with ``use_recompute``). ``host_seeds=False`` in graph mode (see that class).
    """
    from common.train import ReseedableDropout, use_reseedable_dropout

    use_reseedable_dropout(cell, host_seeds)
    n = 0
    for _, sub in cell.cells_and_names():
        if isinstance(sub, ReseedableDropout):
            sub.set_train(active)
            n += 1
    return n
