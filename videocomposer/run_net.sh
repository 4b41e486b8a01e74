#!/usr/bin/env bash
# The original's tasks (exp02-06) with the released weights in model_weights/, or `bash run_net.sh demo`:
# the tiny random-weight model on the bundled clip (no download; the output is noise, it shows the code path).
set -e
cd "$(dirname "$0")"
EXTRA=("${@:2}")

if [ "${1:-all}" = "demo" ]; then
    python run_net.py --cfg configs/demo_tiny.yaml --seed 182 --random_weights \
        --input_video demo_video/moving_sun.mp4 --image_path demo_video/sun_first_frame.png \
        --style_image demo_video/style_gradient.png --input_text_desc "A yellow sun moving across the sky" \
        --output_dir outputs "${EXTRA[@]}"
    exit 0
fi

# Exp02: motion transfer from a video to a single image
python run_net.py --cfg configs/exp02_motion_transfer.yaml --seed 9999 \
    --input_video demo_video/motion_transfer.mp4 --image_path demo_video/sunflower.png \
    --input_text_desc "A sunflower in a field of flowers" "${EXTRA[@]}"

python run_net.py --cfg configs/exp02_motion_transfer_vs_style.yaml --seed 9999 \
    --input_video demo_video/motion_transfer.mp4 --image_path demo_video/moon_on_water.jpg \
    --style_image demo_video/moon_on_water.jpg \
    --input_text_desc "A beautiful big silver moon on the water" "${EXTRA[@]}"

# Exp03: single sketch to video with a style image
python run_net.py --cfg configs/exp03_sketch2video_style.yaml --seed 8888 \
    --sketch_path demo_video/src_single_sketch.png --style_image demo_video/style/qibaishi_01.png \
    --input_text_desc "Red-backed Shrike lanius collurio" "${EXTRA[@]}"

# Exp04: single sketch to video without style
python run_net.py --cfg configs/exp04_sketch2video_wo_style.yaml --seed 144 \
    --sketch_path demo_video/src_single_sketch.png \
    --input_text_desc "A little bird is standing on a branch" "${EXTRA[@]}"

# Exp05: depth to video without style
python run_net.py --cfg configs/exp05_text_depths_wo_style.yaml --seed 9999 \
    --input_video demo_video/tennis.mp4 \
    --input_text_desc "Ironman is fighting against the enemy, big fire in the background, photorealistic" "${EXTRA[@]}"

# Exp06: depth to video with a style image
python run_net.py --cfg configs/exp06_text_depths_vs_style.yaml --seed 9999 \
    --input_video demo_video/tennis.mp4 --style_image demo_video/style/fangao_01.jpeg \
    --input_text_desc "Van Gogh played tennis under the stars" "${EXTRA[@]}"
