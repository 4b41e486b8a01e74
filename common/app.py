"""The web app: one tab per model, in the browser.

    python -m common.app                                   # http://127.0.0.1:7860, tiny random models
    python -m common.app --weights svd=ckpts/svd --weights dynamicrafter=ckpts/dc256 --port 8000
    VIDEOGEN_ANIMATEDIFF_WEIGHTS=models python -m common.app
    bash scripts/app.sh                                    # sets up (.venv with the app extra) and starts it

A model without weights (``--weights MODEL=PATH`` or ``$VIDEOGEN_<MODEL>_WEIGHTS``) runs its tiny RANDOMLY
INITIALISED demo model and its tab says so. Every generation writes the video (mp4, gif, webp; PNG frames on
request) and its ``.json``
run record to ``--output_dir`` (``videogen run --from`` repeats it); the page shows the video, offers the
three files and the record for download and shows the settings used. One generation at a time per model
(later ones queue). The app listens on 127.0.0.1 unless ``--host`` says otherwise.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from common.cli import OneLineParser, quiet_runtime
from common.videogen.run import FORMATS, MODEL_NAMES, get_spec

log = logging.getLogger("videogen.app")

#: fields the app shows as pictures / videos (upload widgets) and as number inputs with these steps
_FILE_KINDS = {"picture", "video"}


def _field(gr, prm, value, weights_dir: Path | None, spec):
    """One input widget for a setting."""
    label, info = prm.name, prm.help
    if prm.kind == "picture":
        return gr.Image(value=value, type="filepath", label=label, elem_id=f"{spec.name}-{prm.name}")
    if prm.kind == "video":
        return gr.Video(value=value, label=label, sources=["upload"], elem_id=f"{spec.name}-{prm.name}")
    if prm.choices:
        return gr.Dropdown(list(prm.choices), value=value, label=label, info=info, elem_id=f"{spec.name}-{prm.name}")
    if prm.type in (int, float):
        return gr.Number(value=value, label=label, info=info, precision=0 if prm.type is int else None,
                         minimum=prm.lo, maximum=prm.hi, elem_id=f"{spec.name}-{prm.name}")
    sub = {"motion_module": "Motion_Module", "base_model": "DreamBooth_LoRA", "lora": "DreamBooth_LoRA"}.get(prm.name)
    if sub and weights_dir is not None:  # AnimateDiff's files: pick one of the weights folder
        files = sorted(p.name for p in (weights_dir / sub).glob("*") if p.is_file()) if (weights_dir / sub).is_dir() else []
        return gr.Dropdown([""] + files, value=value or "", label=label, info=info, allow_custom_value=True,
                           elem_id=f"{spec.name}-{prm.name}")
    lines = 3 if prm.name in ("prompt", "negative_prompt") else 1
    return gr.Textbox(value=value if value is not None else "", label=label, info=info, lines=lines,
                      elem_id=f"{spec.name}-{prm.name}")


_ADVANCED = ("fps", "mode", "attention_chunk_size")


def _form(gr, spec, params, defaults, wdir) -> tuple[list, object]:
    """The tab's inputs, laid out: texts, files, the common numbers three per row, the model's own settings, and
    the execution settings folded away. Returns ``([(param, component)], the PNG-frames checkbox)``."""
    def field(p):
        return p, _field(gr, p, defaults.get(p.name), wdir, spec)

    texts = [p for p in params if p.type is str and not p.kind and p.name in ("prompt", "negative_prompt")]
    files = [p for p in params if p.kind]
    advanced = [p for p in params if p.name in _ADVANCED and not (p.name == "fps" and spec.fps_is_condition)]
    rest = [p for p in params if p not in texts + files + advanced]
    out = [field(p) for p in texts]
    with gr.Row():
        out += [field(p) for p in files]
    for k in range(0, len(rest), 3):
        with gr.Row():
            out += [field(p) for p in rest[k:k + 3]]
    with gr.Accordion("output and execution (PNG frames, frame rate, MindSpore mode, attention chunks)", open=False):
        png = gr.Checkbox(False, label="also the frames as PNG (a zip)", elem_id=f"{spec.name}-png_frames")
        with gr.Row():
            out += [field(p) for p in advanced]
    return out, png


def _value(prm, v):
    """A widget's value as the setting (numbers typed, empty file fields None)."""
    if prm.kind in _FILE_KINDS:
        return v or None
    if prm.type is int and isinstance(v, float) and v.is_integer():
        return int(v)
    if prm.type in (int, float) and v is None:
        return None
    return v


def _notice(spec, weights) -> str:
    if weights:
        return f"**Weights:** `{weights}`."
    return (f"**No weights given: this tab runs a TINY RANDOMLY INITIALISED {spec.title}** -- the video is noise "
            f"and only shows that everything works. Real weights: {spec.weights_help}; start the app with "
            f"`--weights {spec.name}=PATH` or set `${spec.env_var}`.")


def _generate_fn(gr, spec, params: list, weights, output_dir: Path):
    def generate(release, png_frames, *values, progress=gr.Progress()):  # noqa: B008 - how Gradio hands out its progress bar
        from common.videogen.run import execute, plan

        settings = {p.name: _value(p, v) for p, v in zip(params, values)}
        try:
            unset = spec.resolve({}, weights, release or None)[0]
            for k, v in settings.items():  # an emptied text box of a setting without a default text: unset
                if v == "" and unset.get(k) is None:
                    settings[k] = None
            pl = plan(spec.name, settings, weights=weights, release=release or None, output_dir=output_dir,
                      formats=FORMATS, png_frames=bool(png_frames), use_env=False)
            progress((0, pl.settings.get("num_inference_steps") or 1), desc="building the model", unit="steps")
            res = execute(pl, callback=lambda i, n: progress((i, n), desc="denoising", unit="steps"),
                          log=log.info)
        except (ValueError, OSError) as e:  # bad input: one line, no traceback
            raise gr.Error(" ".join(str(e).split())) from None
        except Exception as e:  # noqa: BLE001 - the page shows one line; the console has the traceback
            log.exception("generation failed")
            raise gr.Error(f"generation failed: {type(e).__name__}: {' '.join(str(e).split())}") from None
        mp4 = next(f for f in res.files if f.suffix == ".mp4")
        downloads = [f for f in res.files if f.is_file()]
        for folder in (f for f in res.files if f.is_dir()):  # the PNG frames, as one zip
            import shutil

            downloads.append(Path(shutil.make_archive(str(folder), "zip", folder)))
        shown = {"model": spec.name, "release": pl.release, "random_weights": pl.random_weights,
                 "weights": pl.weights, **pl.settings, "frames": int(res.frames.shape[0]),
                 "seconds": round(res.seconds, 2), "record": str(res.record)}
        return str(mp4), [str(f) for f in downloads] + [str(res.record)], shown
    return generate


def _release_defaults(spec, weights, params):
    def defaults(release):
        d, _ = spec.resolve({}, weights, release)
        return [d.get(p.name) for p in params]
    return defaults


def build_app(weights: dict[str, str | None] | None = None, output_dir="outputs/app"):
    """The Gradio Blocks (not launched). ``weights``: ``{model: folder}``; a model missing there takes
    ``$VIDEOGEN_<MODEL>_WEIGHTS``, else its tiny random model."""
    import gradio as gr

    weights = dict(weights or {})
    output_dir = Path(output_dir).absolute()
    with gr.Blocks(title="Video generation zoo (MindSpore)") as demo:
        gr.Markdown("# Video generation zoo on MindSpore\nOne tab per model. Each run writes the video (mp4, gif, "
                    "webp) and a `.json` with every setting to `" + str(output_dir) + "`; "
                    "`videogen run --from FILE.json` repeats it.")
        with gr.Tabs():
            for name in MODEL_NAMES:
                spec = get_spec(name)
                w = spec.weights_from_env(weights.get(name))
                wdir = Path(w) if w and Path(w).is_dir() else None
                with gr.Tab(spec.title, id=name, elem_id=f"tab-{name}"):
                    gr.Markdown(f"*{spec.task}*\n\n" + _notice(spec, w), elem_id=f"{name}-notice")
                    defaults, _ = spec.resolve({}, w, None)
                    params = list(spec.params().values())
                    with gr.Row():
                        with gr.Column():
                            release = gr.Dropdown(list(spec.releases), value=spec.default_release(), label="release",
                                                  info="which release the weights are" if w else
                                                  "(no weights: the tiny demo model)", interactive=bool(w),
                                                  elem_id=f"{name}-release")
                            pairs, png = _form(gr, spec, params, defaults, wdir)
                            params, inputs = [p for p, _ in pairs], [c for _, c in pairs]
                            button = gr.Button("Generate", variant="primary", elem_id=f"{name}-generate")
                        with gr.Column():
                            video = gr.Video(label="video", elem_id=f"{name}-video", autoplay=True, loop=True,
                                             interactive=False)
                            files = gr.File(label="download (mp4, gif, webp, settings .json)", file_count="multiple",
                                            elem_id=f"{name}-files", interactive=False)
                            shown = gr.JSON(label="settings used", elem_id=f"{name}-settings")
                    if w:  # another release: its defaults in the fields (pictures, videos and texts stay)
                        typed = [(p, c) for p, c in zip(params, inputs)
                                 if not p.kind and p.name not in ("prompt", "negative_prompt")]
                        release.change(_release_defaults(spec, w, [p for p, _ in typed]), release,
                                       [c for _, c in typed])
                    button.click(_generate_fn(gr, spec, params, w, output_dir), [release, png, *inputs],
                                 [video, files, shown], concurrency_limit=1, concurrency_id=name)
    demo.queue(default_concurrency_limit=1)
    return demo


def get_parser() -> argparse.ArgumentParser:
    head, _, rest = __doc__.strip().partition("\n\n")
    p = OneLineParser(description=head, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", action="append", default=[], metavar="MODEL=PATH",
                   help=f"weights of a model ({', '.join(MODEL_NAMES)}); repeat for several; default "
                        "$VIDEOGEN_<MODEL>_WEIGHTS, else the tiny random model")
    p.add_argument("--host", default=os.environ.get("VIDEOGEN_APP_HOST", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 = every interface)")
    p.add_argument("--port", type=int, default=int(os.environ.get("VIDEOGEN_APP_PORT", 7860)), help="port (7860)")
    p.add_argument("--output_dir", default="outputs/app", help="where videos and their .json go (outputs/app)")
    p.add_argument("--debug", action="store_true", help="flag errors: traceback instead of one line; page: errors shown with details")
    return p


def _main(argv) -> int:
    from common.cli import InputError, check_dir, prepare_output_dir

    args = get_parser().parse_args(argv)
    weights = {}
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not sep or name not in MODEL_NAMES:
            raise InputError(f"--weights {item}: expected MODEL=PATH with MODEL one of {', '.join(MODEL_NAMES)}")
        if not Path(path).exists():
            raise InputError(f"weights not found: {path} (--weights {name}=...)")
        if Path(path).is_dir():
            check_dir(path, f"--weights {name}=...")
        weights[name] = path
    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port}: must be 1..65535")
    out = prepare_output_dir(args.output_dir, "--output_dir")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    demo = build_app(weights, out)
    demo.launch(server_name=args.host, server_port=args.port, allowed_paths=[str(out)], show_error=args.debug,
                footer_links=[])
    return 0


def main(argv=None) -> int:
    """Entry point; returns the exit status (2 and one ``error:`` line on bad flags)."""
    from common.cli import run_cli

    quiet_runtime()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    return run_cli(_main, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
