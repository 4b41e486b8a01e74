"""VideoComposer (Wang et al. 2023, "VideoComposer: Compositional Video Synthesis with Motion Controllability")
on MindSpore: UNetSD_temporal with its condition encoders, OpenCLIP text/style encoders, the LDM VAE,
the original DDIM, MiDaS depth and PiDiNet sketch extractors."""
