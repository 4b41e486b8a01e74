"""Golden-parity adapter (see ``common/golden.py`` and ``../shared/golden/svd/README.md``).

The model of a case is built from its ``config.yaml`` (open_clip arch JSON beside it), the
released-layout checkpoint is loaded through the same rename table as inference, and each check
calls the matching part of the port with the recorded inputs.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np

from common.golden import GoldenAdapter, GoldenCase, GoldenError

from .loss import SVDDiffusionLoss
from .model import load_svd_model
from .pipeline import SVDPipeline
from .sampling import sample_svd


def _t(a) -> ms.Tensor:
    return ms.Tensor(np.asarray(a, dtype=np.float32))


class Adapter(GoldenAdapter):
    """Runs the checks of one case on one loaded :class:`SVDModel`."""

    def __init__(self, case: GoldenCase):
        super().__init__(case)
        self.model, report = load_svd_model(case.config_path, case.checkpoint_path())
        if not report.ok:
            raise GoldenError(f"{case.root}: checkpoint load: {report.summary()}")
        self.model.set_train(False)

    # ---- checks ---------------------------------------------------------------------------
    def check_image_encoder(self, c):
        return {"crossattn": self.model.conditioner.image_embedding(_t(c.inputs["image"]))}

    def check_vector(self, c):
        return {"vector": self.model.conditioner.vector({k: _t(v) for k, v in c.inputs.items()})}

    def check_cond_latent(self, c):
        x = c.inputs["image"] + np.float32(c.params["cond_aug"]) * c.inputs["noise"]
        return {"concat": self.model.conditioner.cond_latent(_t(x))}

    def check_unet(self, c):
        i = c.inputs
        out = self.model.unet(_t(i["x"]), _t(i["timesteps"]), _t(i["context"]), _t(i["y"]),
                              _t(i["image_only_indicator"]), int(c.params["num_video_frames"]))
        return {"out": out}

    def check_denoiser(self, c):
        i = c.inputs
        self._check_frames(c)
        out = self.model.denoiser(_t(i["x"]), _t(i["sigma"]), _t(i["crossattn"]), _t(i["vector"]),
                                  _t(i["concat"]), _t(i["image_only_indicator"]))
        return {"denoised": out}

    def check_sample(self, c):
        i, p = c.inputs, c.params
        cond = {k: _t(i["c_" + k]) for k in ("crossattn", "vector", "concat")}
        uncond = {k: _t(i["uc_" + k]) for k in ("crossattn", "vector", "concat")}
        z, sigmas = sample_svd(self.model.denoiser, _t(i["noise"]), cond, uncond, int(p["num_frames"]),
                               int(p["num_steps"]), p["sigma_min"], p["sigma_max"], p["rho"], p["min_scale"],
                               p["max_scale"], disable=True)
        return {"samples_z": z, "sigmas": sigmas}

    def check_vae_decode(self, c):
        if abs(float(c.params["scale_factor"]) - self.model.scale_factor) > 1e-12:
            raise GoldenError(f"scale_factor {c.params['scale_factor']} != config {self.model.scale_factor}")
        return {"frames": self.model.decode_latents(_t(c.inputs["z"]), int(c.params["decode_chunk_size"]))}

    def check_train_loss(self, c):
        i, p = c.inputs, c.params
        self._check_frames(c)
        loss = SVDDiffusionLoss(self.model.denoiser, sigma_data=p["sigma_data"], loss_type=p["loss_type"])
        per_frame = loss(_t(i["latents"]), _t(i["crossattn"]), _t(i["vector"]), _t(i["concat"]), _t(i["sigmas"]),
                         _t(i["noise"]), _t(i["image_only_indicator"]))
        return {"loss": per_frame, "loss_mean": per_frame.mean()}

    def check_pipeline(self, c):
        i, p = c.inputs, c.params
        out = SVDPipeline(self.model)(i["image"], num_frames=int(p["num_frames"]),
                                      num_inference_steps=int(p["num_steps"]), fps_id=float(p["fps_id"]),
                                      motion_bucket_id=float(p["motion_bucket_id"]),
                                      noise_aug_strength=float(p["cond_aug"]), decode_chunk_size=int(p["decoding_t"]),
                                      cond_noise=i["cond_noise"], latents=i["noise"], progress=False)
        return {"frames": out.frames[0].transpose(0, 3, 1, 2), "latents": out.latents}

    @staticmethod
    def _check_frames(c):
        t = c.inputs["image_only_indicator"].shape[1]
        if int(c.params.get("num_video_frames", t)) != t:
            raise GoldenError(f"num_video_frames {c.params['num_video_frames']} != image_only_indicator T {t}")

