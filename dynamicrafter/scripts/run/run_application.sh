#!/bin/sh
# DynamiCrafter generative frame interpolation / looping video with the original settings
# (the original's scripts/run_application.sh: the 512 interp checkpoint, 320x512, 16 frames, FPS 5,
# DDIM 50 uniform_trailing, eta 1.0, CFG 7.5, guidance rescale 0.7, per-frame VAE; seed 12306 / 234).
#
#   sh scripts/run/run_application.sh interp|loop [CKPT] [extra inference.py flags]
#
# CKPT: model.ckpt of Doubiiu/DynamiCrafter_512_Interp (PyTorch, read directly) or a converted MindSpore .ckpt
# (tools/convert_weight.py --kind 512_interp). interp: prompts/512_interp/ holds picture pairs (start, end;
# sorted by name), one prompt per pair. loop: prompts/512_loop/ holds pictures, one prompt each; the saved
# video drops the last generated frame (it repeats the first), as the original does.
# Without CKPT: a tiny randomly initialised model of the same layout (configs/inference_512_interp_tiny_demo.yaml)
# with 5 DDIM steps -- a smoke test that writes a real mp4 of noise.
# Extra flags after CKPT go to inference.py and win; PROMPT_DIR=... SAVEDIR=... change the folders.
# Run from anywhere (the script cds to the dynamicrafter/ folder).
set -e
cd "$(dirname "$0")/../.."

case "$1" in
    interp) seed=12306 ;;   # the original's seeds
    loop) seed=234 ;;
    *) echo "error: unknown application '$1': the first argument must be interp or loop" >&2
       echo "usage: sh scripts/run/run_application.sh interp|loop [CKPT] [extra inference.py flags]" >&2
       exit 2 ;;
esac
version=$1
mode="--$1"
ckpt=$2
shift $(( $# < 2 ? $# : 2 ))

# the original's settings on top of run_infer.sh 512's (320x512, 16 frames, DDIM 50 uniform_trailing, eta 1.0,
# CFG 7.5, guidance rescale 0.7, per-frame VAE): FPS 5 (recommended 5-30: smaller -> larger motion), the seed,
# the interp config and the mode flag; extra flags come last and win
export PROMPT_DIR=${PROMPT_DIR:-prompts/512_${version}/}
export SAVEDIR=${SAVEDIR:-results/dynamicrafter_512_${version}_seed${seed}}
if [ -z "$ckpt" ]; then
    echo "No checkpoint given: the interp/loop demo uses random weights."
    echo "Real weights: model.ckpt of Doubiiu/DynamiCrafter_512_Interp on the Hugging Face hub (README.md, Weights)."
    export DEMO_CONFIG=configs/inference_512_interp_tiny_demo.yaml DEMO_STEPS=5
    config=""
else
    config="--config configs/inference_512_interp_v1.0.yaml"
fi
exec sh scripts/run/run_infer.sh 512 "$ckpt" --seed ${seed} --frame_stride 5 ${config} ${mode} "$@"
