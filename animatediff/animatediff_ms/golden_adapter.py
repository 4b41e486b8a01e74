"""Golden-parity adapter (``common/golden.py``): runs every AnimateDiff check of a case folder.

Roles of the files listed in ``params.weights`` come from the case's ``prompt.yaml`` (motion module,
DreamBooth file, LoRA, domain adapter, MotionLoRAs); the diffusers folder is the one holding
``model_index.json``. Sizes and options come from the case's ``config.yaml`` and ``config.json`` files.
"""
from __future__ import annotations

from pathlib import Path

import mindspore as ms
import numpy as np

from common.clip.hf_tokenizer import CLIPTokenizer
from common.golden import GoldenAdapter, GoldenError
from common.schedulers.ddim import ddim_schedule_from_diffusers

from . import loading as L
from . import sparsectrl as S
from . import training as T
from .config import InferenceConfig, TrainingConfig, UNet3DConfig, VAEConfig
from .loading import build_text_encoder, build_unet, build_vae
from .pipeline import AnimationPipeline
from .prompt_config import load_prompt_config


class Adapter(GoldenAdapter):
    """Builds each model once per distinct weight list and runs the checks (see the case README)."""

    def __init__(self, case):
        super().__init__(case)
        self.root = Path(case.root)
        self.inference = InferenceConfig.load(case.config_path)
        found = sorted(self.root.glob("**/model_index.json"))
        if not found:
            raise FileNotFoundError(f"{self.root}: no diffusers folder (model_index.json)")
        self.sd_folder = found[0].parent
        prompt = self.root / "prompt.yaml"
        self.entry = load_prompt_config(prompt, str(case.config_path))[0] if prompt.is_file() else None
        self.roles = {}
        if self.entry is not None:
            e = self.entry
            for role, p in (("motion_module", e.motion_module), ("dreambooth", e.dreambooth_path),
                            ("lora", e.lora_model_path), ("adapter", e.adapter_lora_path)):
                if p:
                    self.roles[Path(p).resolve()] = role
            for c in e.motion_module_lora_configs:
                self.roles[Path(c["path"]).resolve()] = "motion_lora"
        self._cache = {}

    # -------------------------------------------------------------------------------- file roles
    def role(self, rel: str) -> str:
        p = (self.root / rel).resolve()
        if p in self.roles:
            return self.roles[p]
        if p == self.sd_folder.resolve():
            return "sd_folder"
        if p.parent == self.sd_folder.resolve():
            return p.name  # unet / vae / text_encoder / tokenizer
        name = p.name.lower()
        if "sparsectrl" in name or p.parent.name.lower() == "sparsectrl":
            return "controlnet"
        if "adapter" in name:
            return "adapter"
        if p.suffix == ".ckpt" and "lora" in name:
            return "motion_lora"
        if p.suffix == ".ckpt":
            return "motion_module"
        if "lora" in name:
            return "lora"
        return "dreambooth"

    def _weights(self, check) -> list[tuple[str, Path]]:
        return [(self.role(w), self.root / w) for w in check.params.get("weights", [])]

    # -------------------------------------------------------------------------------- models
    def unet(self, check):
        key = ("unet", tuple(check.params.get("weights", [])), check.params.get("lora_alpha"),
               check.params.get("adapter_lora_scale"), check.params.get("alpha"))
        if key in self._cache:
            return self._cache[key]
        w = self._weights(check)
        roles = [r for r, _ in w]
        net = build_unet(self.sd_folder, self.inference.unet_additional_kwargs, load="dreambooth" not in roles)
        for role, p in w:  # load_weights order: motion module, DreamBooth, LoRA, adapter, MotionLoRA
            if role == "motion_module":
                L.load_motion_module(net, p)
        for role, p in w:
            if role == "dreambooth":
                L.load_dreambooth(net, None, None, p)
        for role, p in w:
            if role == "lora":
                L.load_lora(net, None, p, float(check.params["lora_alpha"]))
        for role, p in w:
            if role == "adapter":
                L.load_domain_adapter(net, p, float(check.params["adapter_lora_scale"]))
        for role, p in w:
            if role == "motion_lora":
                L.load_motion_lora(net, p, float(check.params["alpha"]))
        self._cache[key] = net
        return net

    def text_encoder(self, check):
        w = self._weights(check)
        roles = [r for r, _ in w]
        te = build_text_encoder(self.sd_folder, load="dreambooth" not in roles)
        for role, p in w:
            if role == "dreambooth":
                L.load_dreambooth(None, None, te, p)
        for role, p in w:
            if role == "lora":
                L.load_lora(None, te, p, float(check.params["lora_alpha"]))
        return te

    def vae(self, check):
        w = self._weights(check)
        roles = [r for r, _ in w]
        vae = build_vae(self.sd_folder, load="dreambooth" not in roles)
        for role, p in w:
            if role == "dreambooth":
                L.load_dreambooth(None, vae, None, p)
        return vae

    def pipeline(self, check) -> AnimationPipeline:
        """The ``scripts/animate.py`` flow for ``prompt.yaml`` (same code as ``text_to_video.py``)."""
        from .runner import build_entry_pipeline

        entry = load_prompt_config(self.root / check.params["prompt_config"], str(self.case.config_path))[0]
        return build_entry_pipeline(entry, self.sd_folder, progress=False, log=None)

    # -------------------------------------------------------------------------------- checks
    def check_tokenizer(self, c):
        tok = CLIPTokenizer.from_pretrained(self.root / c.params["tokenizer"])
        kw = dict(max_length=tok.model_max_length, padding="max_length", truncation=True)
        return {"input_ids": tok([c.params["prompt"]], **kw),
                "uncond_input_ids": tok([c.params["negative_prompt"]], **kw)}

    def check_text_encoder(self, c):
        """Base text encoder; the ``_dreambooth`` / ``_lora`` variants differ only by ``params.weights``."""
        return {"last_hidden_state": self.text_encoder(c)(ms.Tensor(c.inputs["input_ids"]))}

    check_text_encoder_dreambooth = check_text_encoder
    check_text_encoder_lora = check_text_encoder

    def check_unet(self, c):
        """UNet + motion module; the variants differ only by the files in ``params.weights`` and their scales."""
        x = c.inputs
        return {"out": self.unet(c)(ms.Tensor(x["sample"]), ms.Tensor(x["timestep"]),
                                    ms.Tensor(x["encoder_hidden_states"]))}

    check_unet_dreambooth = check_unet
    check_unet_lora = check_unet
    check_unet_adapter = check_unet
    check_unet_motion_lora = check_unet

    def check_vae_decode(self, c):
        pipe = AnimationPipeline(None, self.vae(c), None, None, self.inference.scheduler)
        return {"video": pipe.decode_latents(c.inputs["latents"])}

    check_vae_decode_dreambooth = check_vae_decode

    def check_ddim_sample(self, c):
        x = c.inputs
        pipe = AnimationPipeline(self.unet(c), None, None, None, self.inference.scheduler)
        steps = int(c.params["num_inference_steps"])
        traj = []
        out = pipe.denoise(x["latents"], ms.Tensor(x["text_embeddings"]), steps,
                           float(c.params["guidance_scale"]), float(c.params.get("eta", 0.0)),
                           sampler="ddim", progress=False, callback=lambda d: traj.append(d["x"].asnumpy()))
        sched = ddim_schedule_from_diffusers(pipe._scheduler_kwargs(), steps)
        return {"out": out, "trajectory": np.stack(traj), "timesteps": sched.timesteps}

    def check_pipeline(self, c):
        x, p = c.inputs, c.params
        pipe = self.pipeline(c)
        res = pipe(p["prompt"], num_frames=int(p["video_length"]), height=int(p["height"]),
                   width=int(p["width"]), num_inference_steps=int(p["num_inference_steps"]),
                   guidance_scale=float(p["guidance_scale"]), negative_prompt=p["negative_prompt"],
                   eta=float(p.get("eta", 0.0)), latents=x["latents"], sampler="ddim", progress=False)
        for k, ids in (("input_ids", pipe.tokenize(p["prompt"])),
                       ("uncond_input_ids", pipe.tokenize(p["negative_prompt"]))):
            if not np.array_equal(ids, x[k]):
                raise AssertionError(f"pipeline: our tokenization of the {k} differs from the recorded ids")
        return {"videos": res.frames.transpose(0, 4, 1, 2, 3), "text_embeddings": res.text_embeddings, "final_latents": res.latents}

    # -------------------------------------------------------------------------------- training (train.py)
    def training(self):
        """The case's training yaml, the ``train.py`` UNet (cached) and its trainable parameters."""
        if "train" not in self._cache:
            cfg = TrainingConfig.load(self.case.config_path)
            unet, params = T.build_training_unet(cfg, self.root)
            self._cache["train"] = (cfg, unet, params)
        return self._cache["train"]

    def _train_step_args(self, c):
        cfg, unet, params = self.training()
        p, x = c.params, c.inputs
        if list(p.get("trainable_modules", cfg.trainable_modules)) != list(cfg.trainable_modules):
            raise GoldenError(f"trainable_modules {p['trainable_modules']} != config {list(cfg.trainable_modules)}")
        names = [n for n, q in unet.parameters_and_names() if q.requires_grad]
        if "train_trainable" in p and set(p["train_trainable"]) != set(names):
            raise GoldenError(f"trainable set differs: ours {len(names)} parameters, reference "
                              f"{len(p['train_trainable'])}; e.g. {sorted(set(names) ^ set(p['train_trainable']))[:3]}")
        if "texts" in p:
            tok = CLIPTokenizer.from_pretrained(self.sd_folder / "tokenizer")
            ids = tok(list(p["texts"]), max_length=tok.model_max_length, padding="max_length", truncation=True)
            if not np.array_equal(ids, x["input_ids"]):
                raise GoldenError("train: our tokenization of params.texts differs from the recorded input_ids")
        te = self.text_encoder(c)
        return unet, te, cfg.noise_scheduler_kwargs, x["latents"], x["noise"], x["timesteps"], x["input_ids"]

    def check_train_encode(self, c):
        scale = VAEConfig.from_file(self.sd_folder / "vae" / "config.json").scaling_factor
        if "scaling_factor" in c.params and abs(float(c.params["scaling_factor"]) - scale) > 1e-12:
            raise GoldenError(f"scaling_factor {c.params['scaling_factor']} != vae/config.json {scale}")
        return {"latents": T.encode_videos(self.vae(c), c.inputs["pixel_values"], c.inputs["noise"],
                                           scaling_factor=scale)}

    def check_train_loss(self, c):
        return T.training_loss(*self._train_step_args(c))

    def check_train_grad(self, c):
        unet, *args = self._train_step_args(c)
        _, _, params = self.training()
        _, grads, norm = T.loss_and_grads(unet, *args, params=params)
        names = {id(q): n for n, q in unet.parameters_and_names()}
        return {"grad_norm": norm, **{names[id(q)]: g for q, g in zip(params, grads)}}

    # -------------------------------------------------------------------------------- SparseCtrl
    def check_sparsectrl_image(self, c):
        p = c.params
        return {"controlnet_images": S.load_condition_images([self.root / q for q in p["images"]], int(p["height"]),
                                                             int(p["width"]), bool(p["normalize_condition_images"]))}

    check_sparsectrl_image_rgb = check_sparsectrl_image
    check_sparsectrl_image_scribble = check_sparsectrl_image

    def check_sparsectrl_encode_rgb(self, c):
        if abs(float(c.params.get("scaling_factor", 0.18215)) - 0.18215) > 1e-12:
            raise GoldenError(f"scaling_factor {c.params['scaling_factor']} is not the pipeline's 0.18215")
        return {"latents": S.encode_condition_images(self.vae(c), c.inputs["controlnet_images"], c.inputs["noise"])}

    def check_sparsectrl_cond(self, c):
        cond, mask = S.make_condition(c.inputs["controlnet_images"], list(c.params["controlnet_image_index"]),
                                      int(c.params["video_length"]))
        return {"cond": cond, "mask": mask}

    check_sparsectrl_cond_rgb = check_sparsectrl_cond
    check_sparsectrl_cond_scribble = check_sparsectrl_cond

    def controlnet(self, c):
        """``SparseControlNetModel.from_unet`` (the diffusers folder's UNet config + config.yaml) + the checkpoint."""
        key = ("controlnet", tuple(c.params["weights"]), c.params["controlnet_config"])
        if key not in self._cache:
            files = [p for role, p in self._weights(c) if role == "controlnet"]
            if len(files) != 1:
                raise GoldenError(f"{c.name}: expected one controlnet file in params.weights, got {files}")
            ucfg = UNet3DConfig.from_files(self.sd_folder / "unet" / "config.json",
                                           self.inference.unet_additional_kwargs)
            self._cache[key] = S.build_controlnet(ucfg, self.root / c.params["controlnet_config"], files[0])
        return self._cache[key]

    def check_sparsectrl(self, c):
        x, p = c.inputs, c.params
        net = self.controlnet(c)
        if int(p["n_down"]) != net.num_residuals:
            raise GoldenError(f"n_down {p['n_down']} != our {net.num_residuals} residuals")
        down, mid = net(ms.Tensor(x["sample"]), ms.Tensor(x["timestep"]), ms.Tensor(x["encoder_hidden_states"]),
                        ms.Tensor(x["controlnet_cond"]), ms.Tensor(x["conditioning_mask"]),
                        float(p["conditioning_scale"]))
        return {"mid": mid, **{f"down_{i:02d}": d for i, d in enumerate(down)}}

    check_sparsectrl_rgb = check_sparsectrl
    check_sparsectrl_scribble = check_sparsectrl

    def check_unet_sparsectrl(self, c):
        x = c.inputs
        n = int(c.params["n_down"])
        down = tuple(ms.Tensor(x[f"down_block_additional_residuals.{i}"]) for i in range(n))
        return {"out": self.unet(c)(ms.Tensor(x["sample"]), ms.Tensor(x["timestep"]),
                                    ms.Tensor(x["encoder_hidden_states"]), down,
                                    ms.Tensor(x["mid_block_additional_residual"]))}

    check_unet_sparsectrl_rgb = check_unet_sparsectrl
    check_unet_sparsectrl_scribble = check_unet_sparsectrl

    def check_pipeline_sparsectrl(self, c):
        """The ``scripts/animate.py`` flow of ``params.prompt_config`` with the recorded condition images (the RGB
        ones are VAE posterior samples whose noise the original draws unseeded)."""
        x, p = c.inputs, c.params
        pipe = self.pipeline(c)
        if pipe.controlnet is None:
            raise GoldenError(f"{p['prompt_config']}: no controlnet built")
        if [int(i) for i in pipe.condition.index] != [int(i) for i in p["controlnet_image_index"]]:
            raise GoldenError(f"controlnet_image_indexs {pipe.condition.index} != {p['controlnet_image_index']}")
        mids = []
        net = pipe.controlnet

        def recording(*args):
            down, mid = net(*args)
            mids.append(mid.asnumpy())
            return down, mid

        pipe._controlnet_fn = recording
        res = pipe(p["prompt"], num_frames=int(p["video_length"]), height=int(p["height"]), width=int(p["width"]),
                   num_inference_steps=int(p["num_inference_steps"]), guidance_scale=float(p["guidance_scale"]),
                   negative_prompt=p["negative_prompt"], eta=float(p.get("eta", 0.0)), latents=x["latents"],
                   sampler="ddim", progress=False, controlnet_images=x["controlnet_images"],
                   controlnet_image_index=list(p["controlnet_image_index"]),
                   controlnet_conditioning_scale=float(p["controlnet_conditioning_scale"]))
        for k, ids in (("input_ids", pipe.tokenize(p["prompt"])),
                       ("uncond_input_ids", pipe.tokenize(p["negative_prompt"]))):
            if not np.array_equal(ids, x[k]):
                raise AssertionError(f"pipeline: our tokenization of the {k} differs from the recorded ids")
        return {"videos": res.frames.transpose(0, 4, 1, 2, 3), "text_embeddings": res.text_embeddings,
                "final_latents": res.latents, "step0_mid_residual": mids[0]}

    check_pipeline_sparsectrl_rgb = check_pipeline_sparsectrl
    check_pipeline_sparsectrl_scribble = check_pipeline_sparsectrl
