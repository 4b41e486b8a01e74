"""Golden-parity adapter (``common/golden.py``; cases and quirks: ``../shared/golden/dropletvideo/README.md``).

Each case's ``DropletVideo-V1.0-weights/`` folder is loaded as the released folder is
(:meth:`DropletVideoPipeline.from_pretrained`), and every check calls the matching part of the port.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np

from common.golden import GoldenAdapter, GoldenCase, GoldenError
from common.text import T5Tokenizer

from .pipeline import DropletVideoPipeline
from .transformer import prepare_rotary


def _t(a) -> ms.Tensor:
    a = np.asarray(a)
    return ms.Tensor(a if a.dtype == np.int64 else a.astype(np.float32))


def _same(what: str, recorded, ours):
    if recorded != ours:
        raise GoldenError(f"{what}: the case records {recorded}, the port derives {ours}")


class Adapter(GoldenAdapter):
    """Runs the checks of one case on one loaded :class:`DropletVideoPipeline`."""

    def __init__(self, case: GoldenCase):
        super().__init__(case)
        self.folder = case.checkpoint_path()
        self.pipe = DropletVideoPipeline.from_pretrained(self.folder)

    def check_tokenize(self, c):
        tok = T5Tokenizer(self.case.path(c.params["tokenizer_dir"]))
        return {"input_ids": tok(c.params["prompts"], int(c.params["max_sequence_length"]))}

    def check_text_encoder(self, c):
        return {"last_hidden_state": self.pipe.encode_ids(c.inputs["input_ids"])}

    def check_rotary(self, c):
        p = self.pipe
        _same("vae_scale_factor_spatial", c.params["vae_scale_factor_spatial"], p.vae_scale_spatial)
        _same("patch_size", c.params["patch_size"], p.transformer.config.patch_size)
        _same("attention_head_dim", c.params["attention_head_dim"], p.transformer.config.attention_head_dim)
        cos, sin, info = prepare_rotary(c.params["height"], c.params["width"], c.params["num_latent_frames"],
                                        p.vae_scale_spatial, p.transformer.config.patch_size,
                                        p.transformer.config.attention_head_dim)
        _same("grid_size", tuple(c.params["grid_size"]), tuple(info["grid_size"]))
        _same("crops_coords", [list(x) for x in c.params["crops_coords"]], [list(x) for x in info["crops_coords"]])
        return {"cos": cos, "sin": sin}

    def check_transformer(self, c):
        i = c.inputs
        out = self.pipe.transformer(_t(i["hidden_states"]), _t(i["encoder_hidden_states"]), _t(i["timestep"]),
                                    _t(i["timestep_cond"]), _t(i["inpaint_latents"]), _t(i["image_rotary_emb_cos"]),
                                    _t(i["image_rotary_emb_sin"]))
        return {"noise_pred": out}

    def check_vae_encode(self, c):
        mean, logvar = self.pipe.vae.encode(_t(c.inputs["video"]))
        return {"mean": mean, "logvar": logvar}

    def check_vae_decode(self, c):
        return {"sample": self.pipe.vae.decode(_t(c.inputs["z"]))}

    def check_inpaint_latents(self, c):
        p, i = self.pipe, c.inputs
        _same("scaling_factor", c.params["scaling_factor"], p.scaling_factor)
        _same("add_noise_in_inpaint_model", c.params["add_noise_in_inpaint_model"],
              p.transformer.config.add_noise_in_inpaint_model)
        out = p.inpaint_latents(i["video"], i["mask_video"], i["ref_noise"], float(c.params["noise_aug_strength"]))
        return {"inpaint_latents": out}

    def check_sample(self, c):
        i, prm = c.inputs, c.params
        if prm.get("use_dynamic_cfg"):
            raise GoldenError("use_dynamic_cfg=True is not ported")
        steps = []
        x, ts = self.pipe.sample(_t(i["latents"]), _t(i["prompt_embeds"]), _t(i["negative_prompt_embeds"]),
                                 _t(i["inpaint_latents"]), _t(i["image_rotary_emb_cos"]), _t(i["image_rotary_emb_sin"]),
                                 fps=int(prm["fps"][0]), num_inference_steps=int(prm["num_inference_steps"]),
                                 guidance_scale=float(prm["guidance_scale"]), eta=float(prm["eta"]),
                                 callback=lambda d: steps.append(d["x"].asnumpy()), progress=False)
        return {"timesteps": np.asarray(ts, np.int64), "step_latents": np.stack(steps), "latents": x}

    def check_pipeline(self, c):
        i, prm = c.inputs, c.params
        if prm.get("use_dynamic_cfg") or float(prm.get("strength", 1.0)) != 1.0:
            raise GoldenError("use_dynamic_cfg / strength < 1 are not ported")
        p = self.pipe
        _same("add_noise_in_inpaint_model", prm["add_noise_in_inpaint_model"],
              p.transformer.config.add_noise_in_inpaint_model)
        L = int(prm["max_sequence_length"])
        ids = p.tokenizer([prm["prompt"], prm["negative_prompt"]], L)
        if not (np.array_equal(ids[0:1], i["prompt_ids"]) and np.array_equal(ids[1:2], i["negative_prompt_ids"])):
            raise GoldenError("the prompts tokenize differently from the recorded prompt_ids / negative_prompt_ids")
        out = p(prm["prompt"], negative_prompt=prm["negative_prompt"], height=int(prm["height"]),
                width=int(prm["width"]), num_frames=int(prm["num_frames"]),
                num_inference_steps=int(prm["num_inference_steps"]), guidance_scale=float(prm["guidance_scale"]),
                fps=int(prm["fps"][0]), max_sequence_length=L, eta=float(prm["eta"]),
                noise_aug_strength=float(prm["noise_aug_strength"]), video=i["video"], mask_video=i["mask_video"],
                latents=i["latents"], ref_noise=i["ref_noise"], progress=False)
        return {"videos": out.frames.transpose(0, 4, 1, 2, 3)}
