"""Golden-parity adapter (``common.golden``): runs each recorded check of a DynamiCrafter case.

The model is built from the case's ``config.yaml`` (open_clip archs from its
``open_clip_archs.json``), its ``model.ckpt`` is loaded through the converter's rename table
(so the 256 case exercises ``framestride_embed`` -> ``fps_embedding``), and each check calls
the same functions the inference script uses.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import mindspore as ms
import numpy as np

from common.clip.tokenizer import SimpleTokenizer
from common.golden import GoldenAdapter, GoldenCase, GoldenCheck, GoldenError
from common.schedulers.ddim import sample_ddim

from .config import DynamiCrafterConfig
from .data import load_data_prompts, load_frame
from .model import DynamiCrafter
from .pipeline import DynamiCrafterPipeline, denoiser, make_schedule, step_noise
from .training import training_loss
from .weights import load_weights


def _t(x, dtype=None):
    x = np.asarray(x)
    if dtype is None:
        dtype = ms.int64 if x.dtype.kind in "iu" else ms.float32
    return ms.Tensor(x, dtype)


class Adapter(GoldenAdapter):
    """One case: the model with its weights, and a ``check_<name>`` per implemented check."""

    def __init__(self, case: GoldenCase):
        super().__init__(case)
        if ms.get_context("device_target") == "CPU":
            ms.runtime.launch_blocking()  # synchronous launch: several times faster PyNative on few cores; same numbers
        cfg = DynamiCrafterConfig.from_yaml(case.config_path)
        bpe = case.path("bpe_simple_vocab_16e6.txt.gz")
        tokenizer = SimpleTokenizer(bpe) if bpe.is_file() else None
        self.model = DynamiCrafter(cfg, clip_search_dirs=(str(case.root),), tokenizer=tokenizer)
        self.model.set_train(False)
        load_weights(self.model, case.path(case.manifest.get("checkpoint", "model.ckpt")), case.config_path)
        self.default_perframe = self.model.perframe_ae

    def run(self, check: GoldenCheck) -> dict:
        m = self.model
        m.perframe_ae = bool(check.params.get("perframe_ae", self.default_perframe))
        try:
            return super().run(check)
        finally:
            m.perframe_ae = self.default_perframe

    # ---- conditioning ---------------------------------------------------------------------
    def check_tokenize(self, c: GoldenCheck):
        return {"tokens": self.model.cond_stage_model.tokenize(c.params["prompts"])}

    def check_text_encoder(self, c: GoldenCheck):
        return {"context": self.model.cond_stage_model.encode_tokens(_t(c.inputs["tokens"], ms.int32)).asnumpy()}

    def check_image_encoder(self, c: GoldenCheck):
        return {"tokens": self.model.embedder(_t(c.inputs["image"])).asnumpy()}

    check_image_encoder_downscale = check_image_encoder

    def check_image_proj(self, c: GoldenCheck):
        return {"out": self.model.image_proj_model(_t(c.inputs["image_tokens"])).asnumpy()}

    # ---- denoiser / autoencoder -----------------------------------------------------------
    def check_unet(self, c: GoldenCheck):
        out = self.model.unet(_t(c.inputs["x"]), _t(c.inputs["timesteps"]), _t(c.inputs["context"]), _t(c.inputs["fs"]))
        return {"out": out.asnumpy()}

    def check_vae_encode(self, c: GoldenCheck):
        return {"z": self.model.encode_first_stage(_t(c.inputs["video"]), noise=_t(c.inputs["noise"])).asnumpy()}

    def check_vae_decode(self, c: GoldenCheck):
        return {"video": self.model.decode_first_stage(_t(c.inputs["z"])).asnumpy()}

    # ---- sampler --------------------------------------------------------------------------
    def check_ddim_schedule(self, c: GoldenCheck):
        sched = make_schedule(self.model, int(c.params["steps"]), c.params["timestep_spacing"], float(c.params["eta"]))
        return sched.index_order()

    def _sample(self, c: GoldenCheck):
        b = c.inputs["x_T"].shape[0]
        fs = _t(c.inputs["fs"])
        c_concat = _t(c.inputs["c_concat"])
        cond = {"context": _t(c.inputs["context"]), "c_concat": c_concat, "fs": fs}
        uncond = {"context": _t(c.inputs["uc_context"]), "c_concat": c_concat, "fs": fs}
        fn = denoiser(self.model, cond, uncond, float(c.params["guidance_scale"]),
                      float(c.params.get("guidance_rescale", 0.0)))
        sched = make_schedule(self.model, int(c.params["steps"]), c.params["timestep_spacing"], float(c.params["eta"]))
        noise = c.inputs.get("noise")
        noise = step_noise(c.inputs["x_T"].shape, noise) if sched.eta > 0 else None
        out = sample_ddim(fn, _t(c.inputs["x_T"]), sched, noise=noise, disable=True)
        assert out.shape[0] == b
        return {"samples": out.asnumpy()}

    check_ddim_sample = _sample
    check_ddim_sample_eta1 = _sample
    check_ddim_sample_interp = _sample  # the sampler has no interpolation code: c_concat's zeros are input

    # ---- data and the whole pipeline ------------------------------------------------------
    def check_preprocess(self, c: GoldenCheck):
        return {"image": load_frame(self.case.path(c.params["image_file"]), c.params["video_size"])}

    def check_preprocess_interp(self, c: GoldenCheck):
        # the loader reads a folder: the case's two pictures (sorted: start, end) and a one-line prompt file
        with tempfile.TemporaryDirectory() as d:
            for name in c.params["image_files"]:
                shutil.copy(self.case.path(name), Path(d) / name)
            (Path(d) / "prompts.txt").write_text(c.params["prompt"] + "\n")
            _, videos, _ = load_data_prompts(d, c.params["video_size"], int(c.params["video_frames"]), interp=True)
        return {"video": videos[0]}

    @staticmethod
    def _videos(c: GoldenCheck) -> np.ndarray:
        """The check's input video (B, 3, T, H, W), or its picture (B, 3, H, W) repeated over video_length."""
        if "video" in c.inputs:
            return c.inputs["video"]
        return np.repeat(c.inputs["image"][:, :, None], int(c.params["video_length"]), axis=2)

    @staticmethod
    def _options(c: GoldenCheck) -> dict:
        """The pipeline arguments of ``image_guided_synthesis``'s recorded params (shared by conditioning and pipeline)."""
        p = c.params
        return dict(guidance_scale=float(p["unconditional_guidance_scale"]), image_guidance_scale=p.get("cfg_img"),
                    multiple_cond_cfg=bool(p.get("multiple_cond_cfg", False)), frame_stride=int(p["frame_stride"]),
                    text_input=bool(p.get("text_input", True)), loop=bool(p.get("loop", False)),
                    interp=bool(p.get("interp", False)))

    def _conditions(self, c: GoldenCheck):
        videos = self._videos(c)
        cond, uncond, _ = DynamiCrafterPipeline(self.model).encode_conditions(
            [c.params["prompt"]] * videos.shape[0], _t(videos), encode_noise=c.inputs["encode_noise"],
            **self._options(c))
        return {"c_concat": cond["c_concat"].asnumpy(), "context": cond["context"].asnumpy(),
                "uc_c_concat": uncond["c_concat"].asnumpy(), "uc_context": uncond["context"].asnumpy(),
                "fs": cond["fs"].asnumpy()}

    check_c_concat_interp = _conditions
    check_c_concat_loop = _conditions

    def check_pipeline(self, c: GoldenCheck):
        videos = self._videos(c)  # (B, 3, T, H, W)
        b = videos.shape[0]
        n = int(c.params.get("n_samples", 1))
        out = DynamiCrafterPipeline(self.model)(
            [c.params["prompt"]] * b, videos, num_videos_per_prompt=n, num_inference_steps=int(c.params["ddim_steps"]),
            eta=float(c.params["ddim_eta"]), timestep_spacing=c.params["timestep_spacing"],
            guidance_rescale=float(c.params["guidance_rescale"]), latents=c.inputs["x_T"],
            encode_noise=c.inputs["encode_noise"], step_noise_draws=c.inputs.get("noise"), output_type="latent",
            progress=False, **self._options(c))
        # the recorded video is the decoder's raw output (B, n, 3, T, H, W), not the clamped frames
        lat = out.latents.reshape((b, n) + out.latents.shape[1:])
        return {"video": np.stack([self.model.decode_first_stage(_t(lat[:, j])).asnumpy() for j in range(n)], axis=1)}

    check_pipeline_interp = check_pipeline
    check_pipeline_loop = check_pipeline

    # ---- fine-tuning loss -----------------------------------------------------------------
    def _train(self, c: GoldenCheck) -> dict:
        """One ``shared_step`` with the recorded draws (UNet dropout off: the model is in eval mode); the four
        train_* checks are views of it, computed once per distinct set of inputs."""
        key = hashlib.sha256(repr(c.params["captions"]).encode() + b"".join(
            k.encode() + np.ascontiguousarray(v).tobytes() for k, v in sorted(c.inputs.items()))).hexdigest()
        if getattr(self, "_train_key", None) != key:
            x = c.inputs
            if "cond_frame_index" not in x and self.model.cfg.diffusion.rand_cond_frame:
                raise GoldenError(f"{c.name}: rand_cond_frame is on but the case records no cond_frame_index")
            out = training_loss(self.model, x["video"], c.params["captions"], x["fps"], random_num=x["random_num"],
                                cond_frame_index=int(x["cond_frame_index"]) if "cond_frame_index" in x else 0,
                                t=x["t"], noise=x["noise"], encode_noise=x["encode_noise"])
            self._train_out, self._train_key = {k: v.asnumpy() for k, v in out.items()}, key
        return self._train_out

    def check_train_cond(self, c: GoldenCheck):
        return {k: self._train(c)[k] for k in ("c_concat", "context")}

    def check_train_target(self, c: GoldenCheck):
        return {k: self._train(c)[k] for k in ("x_start", "x_noisy", "target")}

    def check_train_model_out(self, c: GoldenCheck):
        return {"model_out": self._train(c)["model_out"]}

    def check_train_loss(self, c: GoldenCheck):
        return {k: self._train(c)[k] for k in ("loss", "loss_simple", "loss_vlb", "loss_per_sample")}
