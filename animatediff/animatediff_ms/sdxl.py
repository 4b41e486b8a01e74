"""The SDXL base configs (``stabilityai/stable-diffusion-xl-base-1.0`` ``unet/``, ``text_encoder/``,
``text_encoder_2/``, ``vae/`` ``config.json``, values that matter) and the ``mm_sdxl_v10_beta`` motion-module
structure, for the converter and the released-layout tests when no SDXL folder is at hand."""
from __future__ import annotations

SDXL_UNET = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280], "center_input_sample": False, "class_embed_type": None,
    "class_embeddings_concat": False, "conv_in_kernel": 3, "conv_out_kernel": 3, "cross_attention_dim": 2048,
    "cross_attention_norm": None, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1, "dual_cross_attention": False, "encoder_hid_dim": None, "encoder_hid_dim_type": None,
    "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_only_cross_attention": None, "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05, "norm_num_groups": 32, "num_attention_heads": None, "num_class_embeds": None,
    "only_cross_attention": False, "out_channels": 4, "projection_class_embeddings_input_dim": 2816,
    "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": False, "resnet_time_scale_shift": "default",
    "sample_size": 128, "time_cond_proj_dim": None, "time_embedding_act_fn": None, "time_embedding_dim": None,
    "time_embedding_type": "positional", "timestep_post_act": None, "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "upcast_attention": None,
    "use_linear_projection": True,
}
SDXL_TEXT_ENCODER = {
    "architectures": ["CLIPTextModel"], "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
    "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05, "projection_dim": 768,
}
SDXL_TEXT_ENCODER_2 = {
    "architectures": ["CLIPTextModelWithProjection"], "vocab_size": 49408, "hidden_size": 1280,
    "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 20, "max_position_embeddings": 77,
    "hidden_act": "gelu", "layer_norm_eps": 1e-05, "projection_dim": 1280,
}
SDXL_VAE = {
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "norm_num_groups": 32, "out_channels": 3, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
#: diffusers ``MotionAdapter`` config of ``guoyww/animatediff-motion-adapter-sdxl-beta`` (= ``mm_sdxl_v10_beta``):
#: two motion modules per down level, three per up level, none in the mid block, 8 heads, 32-frame tables.
MM_SDXL_BETA_ADAPTER = {
    "block_out_channels": [320, 640, 1280], "motion_layers_per_block": 2, "motion_max_seq_length": 32,
    "motion_mid_block_layers_per_block": 1, "motion_norm_num_groups": 32, "motion_num_attention_heads": 8,
    "motion_transformer_layers_per_block": 1, "use_motion_mid_block": False,
}
