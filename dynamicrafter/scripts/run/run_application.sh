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

version=$1
if [ "$version" = "interp" ]; then
    seed=12306; mode="--interp"
elif [ "$version" = "loop" ]; then
    seed=234; mode="--loop"
else
    echo "error: unknown application '${version}': the first argument must be interp or loop" >&2
    echo "usage: sh scripts/run/run_application.sh interp|loop [CKPT] [extra inference.py flags]" >&2
    exit 2
fi
[ $# -gt 0 ] && shift
ckpt=$1
[ $# -gt 0 ] && shift

FS=5  # this model adopts FPS 5 (recommended 5-30: smaller -> larger motion)
config=configs/inference_512_interp_v1.0.yaml
prompt_dir=${PROMPT_DIR:-prompts/512_${version}/}
savedir=${SAVEDIR:-results/dynamicrafter_512_${version}_seed${seed}}

if [ -z "$ckpt" ]; then
    echo "No checkpoint given: running a TINY RANDOMLY INITIALISED model (the video will be noise)."
    echo "Real weights: model.ckpt of Doubiiu/DynamiCrafter_512_Interp on the Hugging Face hub (README.md, Weights)."
    config=configs/inference_512_interp_tiny_demo.yaml
    weights="--random_init"
    demo="--ddim_steps 5 --mode graph"    # random weights: 5 steps exercise everything; graph is faster here
else
    weights="--ckpt_path $ckpt"
    demo=""
fi

python inference.py \
    --seed ${seed} \
    ${weights} \
    --config ${config} \
    --savedir ${savedir} \
    --n_samples 1 \
    --bs 1 --height 320 --width 512 \
    --unconditional_guidance_scale 7.5 \
    --ddim_steps 50 \
    --ddim_eta 1.0 \
    --prompt_dir ${prompt_dir} \
    --text_input \
    --video_length 16 \
    --frame_stride ${FS} \
    --timestep_spacing uniform_trailing --guidance_rescale 0.7 --perframe_ae ${mode} ${demo} "$@"
