#!/bin/sh
# DynamiCrafter image-to-video inference with the original settings per resolution.
#
#   sh scripts/run/run_infer.sh [256|512|1024] [CKPT]
#
# CKPT: the released model.ckpt (PyTorch, read directly) or a converted MindSpore .ckpt.
# Without CKPT and with 256: a tiny randomly initialised model (configs/inference_256_tiny_demo.yaml)
# animates prompts/256/ with 10 DDIM steps -- a smoke test that writes a real mp4 of noise.
# Extra flags after CKPT go to inference.py and win over the defaults here
# (e.g. --save_gif --ddim_steps 25). Every run uses inference.py's default graph mode: the UNet call compiled
# once (ms.jit) and reused for every step and both guidance branches, the encoders and the VAE eager; the
# guidance branches as one call or two (--split_cfg) and the attention / feed-forward chunks are chosen from the
# size and the free memory (flags override: --split_cfg / --no_split_cfg, --attention_chunk, --ff_chunk).
# --mode pynative runs everything eagerly (slower per step, less memory; README "Speed and memory").
# DDIM eta is the original's 1.0 (inference.py's default for --sampler ddim). Faster, deterministic:
#   sh scripts/run/run_infer.sh 512 model.ckpt --sampler dpmpp_2m --ddim_steps 25   (README: Samplers)
# Run from the dynamicrafter/ folder (the script cds there itself).
set -e
cd "$(dirname "$0")/../.."

res=$1
if [ "$res" = "256" ]; then
    H=256; W=256; FS=3          # frame stride 3 (recommended 1-6: larger -> more motion)
elif [ "$res" = "512" ]; then
    H=320; W=512; FS=24         # FPS 24 (recommended 15-30: smaller -> more motion)
elif [ "$res" = "1024" ]; then
    H=576; W=1024; FS=10        # FPS 10 (recommended 15-5: smaller -> more motion)
else
    echo "error: unknown resolution '${res}': the first argument must be 256, 512 or 1024" >&2
    echo "usage: sh scripts/run/run_infer.sh [256|512|1024] [CKPT] [extra inference.py flags]" >&2
    exit 2
fi
[ $# -gt 0 ] && shift
ckpt=$1
[ $# -gt 0 ] && shift

seed=123
config=configs/inference_${res}_v1.0.yaml
prompt_dir=${PROMPT_DIR:-prompts/${res}/}
savedir=${SAVEDIR:-results/dynamicrafter_${res}_seed${seed}}

if [ -z "$ckpt" ]; then
    if [ "$res" != "256" ] && [ -z "$DEMO_CONFIG" ]; then
        echo "error: no checkpoint given for ${res}: download model.ckpt of Doubiiu/DynamiCrafter_${res}" >&2
        echo "       (see README.md, Weights) and run: sh scripts/run/run_infer.sh ${res} /path/to/model.ckpt" >&2
        exit 2
    fi
    echo "No checkpoint given: running a TINY RANDOMLY INITIALISED model (the video will be noise)."
    echo "Real weights: model.ckpt of Doubiiu/DynamiCrafter on the Hugging Face hub (README.md, Weights)."
    config=${DEMO_CONFIG:-configs/inference_256_tiny_demo.yaml}   # DEMO_CONFIG: run_application.sh's tiny model
    weights="--random_init"
    demo="--ddim_steps ${DEMO_STEPS:-10}"   # random weights: a few steps exercise everything
else
    weights="--ckpt_path $ckpt"
    demo=""
fi

if [ "$res" = "256" ]; then
    extra=""
else
    extra="--timestep_spacing uniform_trailing --guidance_rescale 0.7 --perframe_ae"
fi

python inference.py \
    --seed ${seed} \
    ${weights} \
    --config ${config} \
    --savedir ${savedir} \
    --n_samples 1 \
    --bs 1 --height ${H} --width ${W} \
    --unconditional_guidance_scale 7.5 \
    --ddim_steps 50 \
    --prompt_dir ${prompt_dir} \
    --text_input \
    --video_length 16 \
    --frame_stride ${FS} \
    ${extra} ${demo} "$@"
