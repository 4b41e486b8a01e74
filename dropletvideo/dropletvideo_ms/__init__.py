"""DropletVideo (IEIT-AGI) image-to-video with FPS control, on MindSpore.

Modules: :mod:`.transformer` (the DiT with the FPS branch), :mod:`.weights` (reading the released
diffusers-style folder), :mod:`.pipeline` (inpaint conditioning, DDIM with CFG, decode),
:mod:`.golden_adapter` (parity checks). The T5 encoder, RoPE, AdaLN and the causal 3D VAE come from ``common``.
"""
