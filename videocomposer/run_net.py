"""VideoComposer inference (run from this folder: ``python run_net.py --help``).

The original's flags (``--cfg --seed --input_video --image_path --style_image --input_text_desc
--sketch_path``) plus ``--depth_path --output_dir --mode --num_inference_steps --guidance_scale``; see README.md.
"""
import os

os.environ.setdefault("GLOG_v", "3")  # quiet MindSpore's C++ log before it is imported

from videocomposer_ms.inference import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
