"""What ``--vae_tile_size`` costs in accuracy and saves in memory (the figures of README.md "VAE tiling").

    python tools/vae_tiling_report.py memory --size 96x168 --latent_frames 2 --tile 48x64
    python tools/vae_tiling_report.py accuracy --size 192x336 --tile 128x192

``memory``: the release VAE architecture (vae/config.json defaults: 128/256/256/512 channels, 3 layers per
block; RANDOM weights, no download) decodes random latents once untiled and once tiled, each in its own process;
prints the peak resident memory of each and of the model alone. ``accuracy``: the tiny random VAE of
``--demo`` decodes random latents untiled and tiled (overlap a quarter of the tile, several margins); prints the
mean absolute difference relative to the mean absolute pixel and the largest one; ``--diffusers`` adds
diffusers' ``AutoencoderKLCogVideoX`` with the same weights, untiled (a sanity check: equal to ours) and with its
own tiling at the same tile size (its overlaps are 1/6 and 1/5 of the tile; ours are then set to the same
widths). Sizes are pixels (H x W).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _pair(text: str) -> tuple[int, int]:
    h, _, w = text.partition("x")
    return int(h), int(w)


def _child(args) -> None:
    """One decode in this process; prints a JSON line (peak RSS before and after the decode)."""
    import mindspore as ms

    from common.bench import peak_rss_gib
    from common.vae3d import AutoencoderKLCausal3D, CausalVAEConfig

    ms.runtime.launch_blocking()
    vae = AutoencoderKLCausal3D(CausalVAEConfig())
    s = vae.config.spatial_factor
    h, w = (v // s for v in args.size)
    z = np.random.default_rng(0).standard_normal((1, 16, args.latent_frames, h, w)).astype(np.float32)
    model_gib = peak_rss_gib()
    t = time.perf_counter()
    tile = None if args.child == "untiled" else tuple(v // s for v in args.tile)
    out = vae.decode(ms.Tensor(z), tile)
    print(json.dumps({"case": args.child, "model_gib": model_gib, "peak_gib": peak_rss_gib(),
                      "seconds": time.perf_counter() - t, "shape": list(out.shape)}))


def memory(args) -> None:
    from common.bench import machine_line, run_child

    print(machine_line())
    for case in ("untiled", "tiled"):
        r = run_child([sys.executable, __file__, "memory", "--size", f"{args.size[0]}x{args.size[1]}",
                       "--latent_frames", str(args.latent_frames), "--tile", f"{args.tile[0]}x{args.tile[1]}",
                       "--child", case], label=case)
        print(json.dumps(r))


def accuracy(args) -> None:
    import mindspore as ms
    from dropletvideo_ms.tiny import TINY_CONFIGS

    from common.config import from_mapping
    from common.vae3d import AutoencoderKLCausal3D, CausalVAEConfig

    ms.runtime.launch_blocking()
    ms.set_seed(0)
    vae = AutoencoderKLCausal3D(from_mapping(CausalVAEConfig, TINY_CONFIGS["vae"], "tiny"))
    s = vae.config.spatial_factor
    h, w = (v // s for v in args.size)
    z = ms.Tensor(np.random.default_rng(0).standard_normal((1, 16, args.latent_frames, h, w)).astype(np.float32))
    ref = vae.decode(z).asnumpy()
    tile = tuple(v // s for v in args.tile)
    overlap = (tile[0] // 4, tile[1] // 4)
    if args.diffusers:
        overlap = _diffusers(vae, z.asnumpy(), ref, args.tile)
    for frac in (0, 4, 2.5):
        margin = tuple(int(o * s / frac) if frac else 0 for o in overlap)
        d = np.abs(vae.decode(z, tile, overlap, margin).asnumpy() - ref)
        print(json.dumps({"tile_px": list(args.tile), "overlap_px": [o * s for o in overlap], "margin_px": margin,
                          "mean_rel": float(d.mean() / np.abs(ref).mean()), "max_abs": float(d.max()),
                          "max_ref": float(np.abs(ref).max())}))


def _diffusers(vae, z: np.ndarray, ours: np.ndarray, tile_px: tuple[int, int]) -> tuple[int, int]:
    """diffusers' decode of ``z`` with ``vae``'s weights, untiled and tiled; returns its overlaps in latents."""
    import torch
    from diffusers import AutoencoderKLCogVideoX

    c = vae.config
    ref = AutoencoderKLCogVideoX(
        block_out_channels=tuple(c.block_out_channels), latent_channels=c.latent_channels,
        layers_per_block=c.layers_per_block, norm_num_groups=c.norm_num_groups,
        temporal_compression_ratio=c.temporal_compression_ratio, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, use_quant_conv=False, use_post_quant_conv=False).eval()
    ref.load_state_dict({n: torch.from_numpy(p.asnumpy()) for n, p in vae.parameters_and_names()}, strict=True)
    with torch.no_grad():
        untiled = ref.decode(torch.from_numpy(z)).sample.numpy()
        ref.enable_tiling(tile_sample_min_height=tile_px[0], tile_sample_min_width=tile_px[1])
        tiled = ref.decode(torch.from_numpy(z)).sample.numpy()
    s = c.spatial_factor
    row = {"diffusers_untiled_vs_ours_max_abs": float(np.abs(untiled - ours).max()), "tiled_shape": list(tiled.shape)}
    if tiled.shape == untiled.shape:
        d = np.abs(tiled - untiled)
        row.update(mean_rel=float(d.mean() / np.abs(untiled).mean()), max_abs=float(d.max()))
    print(json.dumps({"diffusers_tile_px": list(tile_px), **row}))
    t = (tile_px[0] // s, tile_px[1] // s)
    return t[0] - int(t[0] * (1 - ref.tile_overlap_factor_height)), t[1] - int(t[1] * (1 - ref.tile_overlap_factor_width))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["memory", "accuracy"])
    p.add_argument("--size", type=_pair, default=(96, 168), help="frame H x W in pixels (multiples of 8)")
    p.add_argument("--latent_frames", type=int, default=2, help="latent frames (2 -> 8 video frames)")
    p.add_argument("--tile", type=_pair, default=(48, 64), help="tile H x W in pixels (multiples of 8)")
    p.add_argument("--diffusers", action="store_true", help="accuracy: compare with diffusers' tiled decode")
    p.add_argument("--child", choices=["untiled", "tiled"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args)
    elif args.what == "memory":
        memory(args)
    else:
        accuracy(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
