"""Key tables between the released AnimateDiff / Stable Diffusion files and this port's parameter names.

* :mod:`.ldm`: LDM single-file checkpoints (``model.diffusion_model.*``, ``first_stage_model.*``,
  ``cond_stage_model.transformer.*``) and the diffusers-folder VAE.
* :mod:`.lora`: kohya LoRA and diffusers attention-processor LoRA (domain adapter, MotionLoRA) merges.
"""
from .ldm import (
    diffusers_vae_to_ldm,
    ldm_unet_renames,
    ldm_unet_table,
    split_ldm_checkpoint,
    vae_ddconfig_from_diffusers,
)
from .lora import merge_diffusers_lora, merge_kohya_lora

__all__ = ["ldm_unet_table", "ldm_unet_renames", "split_ldm_checkpoint", "diffusers_vae_to_ldm",
           "vae_ddconfig_from_diffusers", "merge_kohya_lora", "merge_diffusers_lora"]
