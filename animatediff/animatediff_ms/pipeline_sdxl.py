"""``AnimationSDXLPipeline``: text -> video with the SDXL UNet and its motion modules (original sdxl branch
``AnimationPipeline``; diffusers' ``AnimateDiffSDXLPipeline`` computes the same with the same sampler).

One call: both tokenizers and text encoders encode the prompt (and the negative prompt) as the SDXL
pipelines do -- the penultimate hidden states of CLIP ViT-L and of OpenCLIP bigG concatenated along the width
(``(n, 77, 768 + 1280)``), plus the pooled, projected bigG output (``text_embeds``, ``(n, 1280)``); with no
negative prompt both are zeros (``force_zeros_for_empty_prompt``). The size / crop conditioning
``time_ids = (orig_h, orig_w, crop_top, crop_left, target_h, target_w)`` (default ``(H, W, 0, 0, H, W)``)
goes with every UNet call. Sampling, guidance, context windows and FreeInit are those of
:class:`~animatediff_ms.pipeline.AnimationPipeline`; decoding divides by the VAE's ``scaling_factor``
(0.13025 for SDXL) and returns frames ``(b, L, H, W, 3)`` in [0, 1].
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import ops

from common.pipeline_utils import to_unit_range

from .config import SchedulerConfig
from .pipeline import AnimationPipeline, AnimationPipelineOutput


class AnimationSDXLPipeline(AnimationPipeline):
    """Two tokenizers + two CLIP text encoders + SDXL motion UNet + VAE + sampler.

    Args:
        unet: :class:`~animatediff_ms.models.unet_sdxl.UNetSDXLMotionModel`.
        vae: :class:`common.vae.AutoencoderKL`.
        text_encoder / tokenizer: CLIP ViT-L (``text_encoder/``, ``tokenizer/``).
        text_encoder_2 / tokenizer_2: OpenCLIP bigG with ``text_projection`` (``text_encoder_2/``, ``tokenizer_2/``;
            :class:`common.clip.hf_clip.CLIPTextModel` built ``with_projection``).
        scheduler: :class:`~animatediff_ms.config.SchedulerConfig` (``noise_scheduler_kwargs`` + sampler).
        vae_scaling_factor: the latent scale of ``vae/config.json`` (0.13025).
        jit: run the UNet as a compiled graph.
        force_zeros_for_empty_prompt: with no negative prompt the unconditional branch gets zero embeddings
            (True, as SDXL's ``model_index.json``); False encodes "".
    """

    def __init__(self, unet, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2, scheduler: SchedulerConfig,
                 vae_scaling_factor: float = 0.13025, jit: bool = False, force_zeros_for_empty_prompt: bool = True):
        super().__init__(unet, vae, text_encoder, tokenizer, scheduler, jit=jit)
        self.text_encoder_2 = text_encoder_2
        self.tokenizer_2 = tokenizer_2
        self.vae_scaling_factor = float(vae_scaling_factor)
        self.force_zeros_for_empty_prompt = force_zeros_for_empty_prompt
        self._text_embeds = None  # (branches, P) pooled text of the current call ([uncond, cond])
        self._time_ids = None  # (1, 6) of the current call

    def _run_unet(self, x, t, emb, branch, *residuals):
        # x (branches*b, 4, f, h, w) ordered [uncond x b, cond x b], or branch `branch` alone (b, ...); the pooled
        # text follows the same order
        n = x.shape[0]
        te = self._text_embeds if branch is None else self._text_embeds[branch:branch + 1]
        if te.shape[0] != n:
            te = ms.Tensor(np.repeat(te.asnumpy(), n // te.shape[0], axis=0))
        ids = ms.Tensor(np.repeat(self._time_ids, n, axis=0))
        return (self.compiled("unet") if self.jit else self.unet)(x, t, emb, te, ids)

    # ------------------------------------------------------------------------------------------ text
    def _encode_one(self, text: str):
        """``(1, 77, D1 + D2)`` penultimate states of both encoders and the ``(1, P)`` pooled projection."""
        states = []
        pooled = None
        for tok, enc in ((self.tokenizer, self.text_encoder), (self.tokenizer_2, self.text_encoder_2)):
            ids = ms.Tensor(tok([text], max_length=tok.model_max_length, padding="max_length", truncation=True))
            hidden = enc.hidden_states(ids)  # [embeddings, layer 1, ..., layer N]
            states.append(hidden[-2])  # (1, 77, D): penultimate layer, no final LayerNorm
            if enc is self.text_encoder_2:
                last = enc.text_model.final_layer_norm(hidden[-1])
                pooled = enc.text_projection(enc.pooled_output(last, ids))  # (1, P)
        return ops.concat(states, axis=-1), pooled

    def encode_prompt_sdxl(self, prompt: str, negative_prompt: str | None, do_cfg: bool):
        """``(emb, text_embeds)``: ``(2, 77, D)`` / ``(2, P)`` = [uncond, cond] with guidance, else one row each."""
        emb, pooled = self._encode_one(prompt)
        if not do_cfg:
            return emb, pooled
        if negative_prompt is None and self.force_zeros_for_empty_prompt:
            n_emb, n_pooled = ops.zeros_like(emb), ops.zeros_like(pooled)
        else:
            n_emb, n_pooled = self._encode_one(negative_prompt or "")
        return ops.concat([n_emb, emb], axis=0), ops.concat([n_pooled, pooled], axis=0)

    def encode_prompt(self, prompt: str, negative_prompt: str | None, do_cfg: bool) -> ms.Tensor:
        """The UNet's ``encoder_hidden_states`` (see :meth:`encode_prompt_sdxl`); the pooled text is kept for the
        UNet calls of this generation."""
        emb, self._text_embeds = self.encode_prompt_sdxl(prompt, negative_prompt, do_cfg)
        return emb

    @staticmethod
    def time_ids(height: int, width: int, original_size=None, crops_coords_top_left=(0, 0), target_size=None):
        """``(1, 6)`` float32 ``original_size + crops_coords_top_left + target_size`` (sizes default to (H, W))."""
        ids = list(original_size or (height, width)) + list(crops_coords_top_left) + list(target_size or (height, width))
        if len(ids) != 6:
            raise ValueError(f"original_size, crops_coords_top_left and target_size are (h, w) pairs, got {ids}")
        return np.asarray([ids], np.float32)

    def decode_latents(self, latents) -> np.ndarray:
        """``(b, 4, L, h, w)`` -> video ``(b, 3, L, H, W)`` in [0, 1] (``latents / scaling_factor``, frame by frame)."""
        z = latents if isinstance(latents, ms.Tensor) else ms.Tensor(np.asarray(latents, np.float32))
        return to_unit_range(self.vae.decode_video(z, self.vae_scaling_factor, chunk_size=1).asnumpy())

    # ------------------------------------------------------------------------------------------ call
    def __call__(self, prompt: str, num_frames: int = 16, height: int = 1024, width: int = 1024,
                 num_inference_steps: int = 25, guidance_scale: float = 8.5, negative_prompt: str | None = None,
                 eta: float = 0.0, seed: int | None = None, latents=None, sampler: str | None = None,
                 output_type: str = "np", callback=None, progress: bool = True, original_size=None,
                 crops_coords_top_left=(0, 0), target_size=None, context_length: int | None = None,
                 context_overlap: int = 4, context_schedule: str = "uniform", context_fuse: str = "pyramid",
                 **kwargs) -> AnimationPipelineOutput:
        """Generate one video.

        Args:
            prompt: the text (both encoders get it).
            num_frames: frames L (16; at most the motion module's 32-frame table unless ``context_length``).
            height / width: pixels H, W (multiples of 8; 1024, SDXL's size).
            num_inference_steps: sampler steps (25). guidance_scale: CFG weight, <= 1 disables it (8.5, the
                sdxl branch's prompt configs).
            negative_prompt: the unconditional text; None = zero embeddings (``force_zeros_for_empty_prompt``).
            eta / seed / latents / sampler / output_type / callback / progress: as
                :meth:`AnimationPipeline.__call__ <animatediff_ms.pipeline.AnimationPipeline.__call__>`.
            original_size / crops_coords_top_left / target_size: SDXL's micro-conditioning, (h, w) pairs
                (defaults (H, W), (0, 0), (H, W)).
            context_length / context_overlap / context_schedule / context_fuse: sliding frame windows (None = off).
            kwargs: FreeInit (``free_init_iters``, ...) as the SD-1.5 pipeline. Prompt travel and SparseCtrl are
                SD-1.5 only (a ``{frame: text}`` prompt or ``controlnet_images`` are refused).
        """
        if kwargs.get("controlnet_images") is not None:
            raise ValueError("controlnet_images: SparseCtrl is an SD-1.5 feature, not available with SDXL")
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string for the SDXL pipeline, got {type(prompt).__name__}")
        self._time_ids = self.time_ids(height, width, original_size, crops_coords_top_left, target_size)
        return super().__call__(prompt, num_frames, height, width, num_inference_steps, guidance_scale,
                                negative_prompt, eta, seed, latents, sampler, output_type, callback, progress,
                                context_length=context_length, context_overlap=context_overlap,
                                context_schedule=context_schedule, context_fuse=context_fuse, **kwargs)
