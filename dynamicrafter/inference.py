"""DynamiCrafter image-to-video inference (run from this folder: ``python inference.py --help``).

Same flags as the original ``scripts/evaluation/inference.py``; see README.md.
"""
import os

os.environ.setdefault("GLOG_v", "3")  # quiet MindSpore's C++ log before it is imported

from dynamicrafter_ms.inference import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
