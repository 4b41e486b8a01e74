"""DropletVideo image-to-video with FPS control (run from this folder: ``python inference.py --help``).

    python inference.py --ckpt DropletVideo-V1.0-weights --ref_img_dir assets/demo.png --FPS 4 --prompt "..."
    python inference.py --demo          # tiny RANDOM model: checks the installation

Same flags as the original ``inference.py``; see README.md.
"""
import os

os.environ.setdefault("GLOG_v", "3")  # quiet MindSpore's C++ log before it is imported

from dropletvideo_ms.inference import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
