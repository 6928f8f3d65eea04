"""Command line over the headless core: `workbench <command> ...` or `python -m workbench ...`.

Every user mistake ends in one line on stderr and exit status 2; the traceback is reserved for bugs.
Codec-specific flags are generated from each codec's options dataclass, so `workbench compress -c avif
--help` lists exactly the knobs that codec declares.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from workbench import __version__
from workbench.core.errors import OUT_OF_MEMORY, OptionError, OutputError, WorkbenchError, out_of_memory


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args, rest = parser.parse_known_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    if rest and args.command not in ("compress", "compress-net", "train", "finetune"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.func(args, rest)
    except WorkbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as err:
        if not out_of_memory(err):
            raise
        print(f"error: {OUT_OF_MEMORY}", file=sys.stderr)
        return 2


_INTERVAL_HELP = ("quality interval each BD-rate is averaged over: pair (each row over its own overlap with "
                  "the anchor, printed beside it) or common (every row over the one interval all curves reach, "
                  "so rows can be ranked)")


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description="Compression Workbench: compress, decompress "
                                "and benchmark images, and compress neural-network checkpoints.")
    p.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("codecs", help="list every codec, whether it is available here and why not")
    c.set_defaults(func=cmd_codecs)

    c = sub.add_parser("compress", help="compress an image and report size, bpp, PSNR, MS-SSIM and timings",
                       add_help=False)
    c.add_argument("input", nargs="?", help="image file (PNG, JPEG, WebP, TIFF, BMP, ...)")
    c.add_argument("-c", "--codec", help="codec name (see `workbench codecs`); required")
    c.add_argument("-q", "--quality", help="quality knob in the codec's own range")
    c.add_argument("-o", "--output", help="output file (default: input name with the codec's extension)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("-h", "--help", action="store_true", help="show help, including the codec's own options")
    c.set_defaults(func=cmd_compress, subparser=c)

    c = sub.add_parser("decompress", help="decode a compressed file (any supported codec) to PNG")
    c.add_argument("input", help="compressed file; its codec is recognised from its contents")
    c.add_argument("-o", "--output", required=True, help="output PNG")
    c.add_argument("--model", action="append", default=[],
                   help="learned model file the input was made with, when it is not shipped or remembered "
                        "(.safetensors or a CompressAI checkpoint; repeatable)")
    c.set_defaults(func=cmd_decompress)

    c = sub.add_parser("bench", help="rate-distortion sweep of codecs over a folder of images")
    c.add_argument("folder", help="folder of images")
    c.add_argument("--codecs", required=True, help="comma-separated codec names, e.g. jpeg,webp,hevc")
    c.add_argument("--anchor", help="codec the BD-rates are measured against (default: the first codec)")
    c.add_argument("--out", default="bench-out", help="folder for JSON, CSV, BD-rate table and plot")
    c.add_argument("--limit", type=int, help="use only the first N images (sorted by name)")
    c.add_argument("--qualities", action="append", default=[], metavar="CODEC=Q1,Q2,...",
                   help="override a codec's sweep (repeatable)")
    c.add_argument("--jobs", type=int, metavar="N", help="processes measuring points side by side (default: "
                   "this machine's cores); the numbers are the same as with one, only the times differ")
    c.add_argument("--reference", nargs="+", action="extend", default=[], metavar="FILE",
                   help="published curves (CompressAI-schema JSON) to add to the BD table and plot, "
                   "marked as not measured in this run")
    c.add_argument("--interval", choices=("pair", "common"), default="pair",
                   help=_INTERVAL_HELP)
    c.set_defaults(func=cmd_bench)

    c = sub.add_parser("bdrate", help="BD-rate between results files in CompressAI's JSON schema")
    c.add_argument("anchor", help="results JSON of the anchor (e.g. bench-out/jpeg.json or a published curve)")
    c.add_argument("tests", nargs="+", help="results JSON files to compare with the anchor")
    c.add_argument("--interval", choices=("pair", "common"), default="pair", help=_INTERVAL_HELP)
    c.add_argument("--per-point", action="store_true",
                   help="also print, for each point of each test curve, its rate over the anchor's at the same "
                        "quality: where along the curve a codec gains or loses")
    c.set_defaults(func=cmd_bdrate)

    c = sub.add_parser("compress-net", help="compress a network checkpoint (.pt/.pth/.safetensors/HF folder) "
                       "to a .wbn file", add_help=False)
    c.add_argument("input", nargs="?", help="checkpoint: .pt/.pth state dict, .safetensors, or a folder with model.safetensors")
    c.add_argument("-q", "--quantizer", default="uniform", help="uniform, rdoq, tcq or shvq")
    c.add_argument("-o", "--output", help="output .wbn (default: input name with .wbn)")
    c.add_argument("--coder", default="auto", choices=("auto", "cabac", "categorical"),
                   help="entropy coder; auto runs, per tensor, the one its size estimate says is smaller")
    c.add_argument("--base", help="base checkpoint: code only the difference to it (delta coding)")
    c.add_argument("--importance", help="checkpoint of per-weight importances (same keys and shapes)")
    c.add_argument("--bias-bits", type=int, default=16, help="precision of 1-D tensors (near-lossless), 2..24")
    c.add_argument("--nonfinite", default="refuse", choices=("refuse", "raw"),
                   help="float tensors holding NaN or infinite values: refuse the checkpoint, or store "
                        "those tensors raw (exact, uncompressed)")
    c.add_argument("--eval", default="auto", choices=("auto", "digits", "encoder", "none"),
                   help="task evaluator (auto: digits accuracy for the demo CNN; output cosine against the "
                        "original for a Hugging Face BERT folder)")
    c.add_argument("--calibrate", default="none", choices=("none", "digits", "tokens"),
                   help="choose each tensor's step from the task sensitivity measured on calibration inputs: "
                        "the digits training images (demo CNN), or random token ids through a BERT folder")
    c.add_argument("--summary", help="where to save the per-tensor summary JSON (default OUTPUT.json)")
    c.add_argument("-h", "--help", action="store_true", help="show help, including the quantizer's own options")
    c.set_defaults(func=cmd_compress_net, subparser=c)

    c = sub.add_parser("train", help="train a learned image codec (resumable; runs under torchrun for DDP)",
                       add_help=False)
    c.add_argument("--model", default="hyperprior", help="architecture: hyperprior or factorized")
    c.add_argument("--quantizer", default="sua", help="training surrogate: noise, ste or sua")
    c.add_argument("--lambda", dest="lambdas", help="λ, or comma-separated λ per quality level "
                   "(default: 8 levels for the metric)")
    c.add_argument("--data", action="append", default=[], help="folder of training images (repeatable; default "
                   "../shared/datasets/train and wikipedia49 when present)")
    c.add_argument("--out", help="run folder: checkpoint last.pt and train_log.jsonl (running again resumes; "
                   "a file named 'pause' in it stops the run after a checkpoint)")
    c.add_argument("-h", "--help", action="store_true", help="show help, including the quantizer's options")
    c.set_defaults(func=cmd_train, subparser=c)

    c = sub.add_parser("finetune", help="retrain a model's decoder on the latents of its real inference "
                       "quantizer (rounding or trellis); resumable", add_help=False)
    c.add_argument("--data", action="append", default=[], help="folder of training images (repeatable; default "
                   "../shared/datasets/train and wikipedia49 when present)")
    c.add_argument("--out", help="run folder: checkpoint last.pt and train_log.jsonl (running again resumes; "
                   "a file named 'pause' in it stops the run after a checkpoint)")
    c.add_argument("-h", "--help", action="store_true", help="show help with every finetuning option")
    c.set_defaults(func=cmd_finetune, subparser=c)

    c = sub.add_parser("export-model", help="turn a training checkpoint into shippable float16 codec weights")
    c.add_argument("checkpoint", help="last.pt of a training run")
    c.add_argument("-o", "--output", required=True, help="output .safetensors")
    c.add_argument("--description", default="", help="one line shown in the model list")
    c.set_defaults(func=cmd_export_model)

    c = sub.add_parser("decompress-net", help="decode a .wbn file to model.safetensors or model.pt")
    c.add_argument("input", help=".wbn file")
    c.add_argument("-o", "--output", required=True, help="output checkpoint (.safetensors or .pt)")
    c.add_argument("--base", help="base checkpoint, for files made with compress-net --base")
    c.set_defaults(func=cmd_decompress_net)
    return p


def cmd_codecs(args, rest) -> int:
    from workbench.core.codecs import all_codecs
    from workbench.core.options import specs

    rows = []
    for cls in all_codecs():
        ok, why = cls.availability()
        q = next(s for s in specs(cls.Options) if s.name == "quality")
        extra = ", ".join(f"--{s.name.replace('_', '-')}" for s in specs(cls.Options) if s.name != "quality")
        rows.append((cls.name, "yes" if ok else "no", f"{q.minimum:g}..{q.maximum:g}", cls.label,
                     why if not ok else (f"options: {extra}" if extra else "")))
    w = [max(len(r[i]) for r in rows + [("codec", "available", "quality", "description", "")]) for i in range(4)]
    print(f"{'codec':<{w[0]}}  {'available':<{w[1]}}  {'quality':<{w[2]}}  {'description':<{w[3]}}  notes")
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]:<{w[3]}}  {r[4]}")
    return 0


def _options_parser(prog: str, description: str, options_cls: type, skip: tuple[str, ...] = ()):
    """Flags generated from an options dataclass, so the CLI offers exactly what the GUI offers."""
    from workbench.core.options import specs

    p = argparse.ArgumentParser(prog=prog, add_help=False, description=description)
    for s in specs(options_cls):
        if s.name in skip:
            continue
        rng = f" [{s.minimum:g}..{s.maximum:g}]" if s.minimum is not None and s.maximum is not None else ""
        choices = f" {{{','.join(map(str, s.choices))}}}" if s.choices else ""
        p.add_argument(f"--{s.name.replace('_', '-')}", dest=s.name, metavar=s.type.__name__.upper(),
                       help=f"{s.help}{rng}{choices} (default {s.default})".replace("%", "%%"))
    return p


def cmd_compress(args, rest) -> int:
    from workbench.core.atomic import check_writable, write_bytes_atomic
    from workbench.core.codecs import codec_class
    from workbench.core.compress import compress_job
    from workbench.core.images import load_image
    from workbench.core.jobs import TextProgressBar, run
    from workbench.core.options import build

    if args.codec is None:
        if args.help:
            args.subparser.print_help()
            return 0
        raise OptionError("compress needs a codec: -c NAME (see `workbench codecs`)")
    cls = codec_class(args.codec)
    extra = _options_parser(f"workbench compress IN -c {cls.name}", f"{cls.label}. {cls.quality_help}",
                           cls.Options, skip=("quality",))
    if args.help:
        args.subparser.print_help()
        print()
        extra.print_help()
        return 0
    ns, leftover = extra.parse_known_args(rest)
    if leftover:
        raise OptionError(f"codec {cls.name} has no option(s) {' '.join(leftover)} "
                          f"(see `workbench compress IN -c {cls.name} --help`)")
    values = {k: v for k, v in vars(ns).items() if v is not None}
    if args.quality is not None:
        values["quality"] = args.quality   # converted and range-checked by the codec's option declaration
    options = build(cls.Options, values)
    src = _required_input(args)
    out = Path(args.output) if args.output else src.with_suffix(cls.extension)
    check_writable(out, protect=[src])
    img = load_image(src)
    bar = TextProgressBar()          # only codecs with an encoding job (learned --optimize) draw it
    try:
        result = run(compress_job(img.rgb, cls.name, options), on_progress=bar)
    finally:
        bar.close()
    write_bytes_atomic(out, result.data, protect=[src])
    report = {
        "input": str(src), "output": str(out), "codec": cls.name, "options": result.options,
        "width": img.width, "height": img.height, "bytes": result.size_bytes, "bpp": result.bpp,
        "psnr": result.quality.psnr, "ms_ssim": result.quality.ms_ssim, "ms_ssim_db": result.quality.ms_ssim_db,
        "encode_s": result.encode_s, "decode_s": result.decode_s, "input_notes": list(img.notes),
        "estimated_bpp": result.estimated_bpp,
    }
    if args.json:
        import json
        print(json.dumps(report, indent=1))
        return 0
    for note in img.notes:
        print(f"note: {note}", file=sys.stderr)
    ms = "n/a (image smaller than 161 px)" if result.quality.ms_ssim is None else \
        f"{result.quality.ms_ssim:.5f} ({result.quality.ms_ssim_db:.2f} dB)"
    print(f"{out}: {result.size_bytes} bytes, {result.bpp:.4f} bpp ({_size_change(result.size_bytes, img.file_size)})")
    if result.estimated_bpp is not None:
        print(f"model's estimated rate {result.estimated_bpp:.4f} bpp; the real file is "
              f"{100 * (result.bpp / result.estimated_bpp - 1):+.1f} % off (header, coding tables' precision)")
    print(f"PSNR {result.quality.psnr:.3f} dB, MS-SSIM {ms}")
    print(f"encode {result.encode_s * 1000:.0f} ms, decode {result.decode_s * 1000:.0f} ms")
    return 0


def _size_change(size: int, before: int) -> str:
    """How the output compares with the input file, in words that stay right when it grew.

    >>> _size_change(50, 200), _size_change(580, 200), _size_change(7, 7)
    ('75.0 % smaller than the input file', '190.0 % larger than the input file', 'as large as the input file')
    """
    if not before or size == before:
        return "as large as the input file"
    change = 100.0 * abs(size - before) / before
    return f"{change:.1f} % {'smaller' if size < before else 'larger'} than the input file"


def _required_input(args) -> Path:
    if not args.input:
        raise OptionError(f"{args.command} needs an input file (see `workbench {args.command} --help`)")
    return Path(args.input)


def _read_compressed(src: Path, limit: int) -> bytes:
    from workbench.core.errors import BitstreamError
    from workbench.core.files import read_limited

    if src.is_dir():
        raise BitstreamError(f"{src} is a folder, not a compressed file")
    data = read_limited(src, limit, BitstreamError, what="a compressed file")
    if not data:
        raise BitstreamError(f"{src}: the file is empty")
    return data


def cmd_decompress(args, rest) -> int:
    from workbench.core.atomic import check_writable
    from workbench.core.codecs import decode_any
    from workbench.core.errors import BitstreamError
    from workbench.core.images import MAX_FILE_BYTES, save_png

    src = Path(args.input)
    check_writable(args.output, protect=[src])
    data = _read_compressed(src, MAX_FILE_BYTES)
    if args.model:      # a file names its model by hash; loading these makes them known to the decoder
        from workbench.core.learned.weights import load_codec_model
        for model in args.model:
            load_codec_model(model)
    t0 = time.perf_counter()
    try:
        rgb, cls = decode_any(data)
    except BitstreamError as err:
        raise BitstreamError(f"{src}: {err}") from None
    dt = time.perf_counter() - t0
    save_png(rgb, args.output, protect=[src])
    print(f"{args.output}: {rgb.shape[1]}x{rgb.shape[0]} decoded with {cls.file_label(data)} in {dt * 1000:.0f} ms")
    return 0


def cmd_bench(args, rest) -> int:
    from workbench.core.bdtable import load_results_json, unique_labels
    from workbench.core.bench import BenchProgress, bench_job, default_jobs
    from workbench.core.bench_report import format_bd_table, write_report
    from workbench.core.bench_store import POINTS_FILE
    from workbench.core.images import list_images
    from workbench.core.jobs import TextProgressBar, run

    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    if not codecs:
        raise OptionError("--codecs needs at least one codec name")
    anchor = args.anchor or codecs[0]
    if anchor not in codecs:
        codecs.insert(0, anchor)
    sweeps = {}
    for item in args.qualities:
        name, eq, qs = item.rpartition("=")      # the codec spec may hold '=' itself (learned:model=NAME)
        try:
            values = [float(q) if "." in q else int(q) for q in qs.split(",") if q.strip()]
        except ValueError:
            values = []
        if not eq or not name.strip() or not values:
            raise OptionError(f"--qualities {item!r}: expected CODEC=Q1,Q2,...")
        sweeps[name.strip()] = values
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise OptionError(f"--jobs must be at least 1, got {jobs}")
    references = unique_labels([load_results_json(f) for f in args.reference], taken=codecs)
    images = list_images(args.folder)
    if args.limit:
        images = images[: args.limit]
    bar = TextProgressBar()
    resumed = 0

    def show(event) -> None:
        nonlocal resumed
        resumed += isinstance(event, BenchProgress) and event.resumed
        bar(event)

    t0 = time.perf_counter()
    try:
        result = run(bench_job(images, codecs, sweeps, jobs=jobs, out_dir=args.out), on_progress=show)
    finally:
        bar.close()
    written = write_report(result, args.out, anchor, references, args.interval)
    measured = len(result.points) - resumed
    print(f"{len(images)} image(s), {measured} encodes in {time.perf_counter() - t0:.0f} s with {jobs} process(es)"
          + (f"; {resumed} point(s) measured before were reused from {os.path.join(args.out, POINTS_FILE)}"
             if resumed else ""))
    for codec in codecs:
        c = result.curve(codec)
        print(f"{codec}: bpp {min(c.bpp):.3f}..{max(c.bpp):.3f}, PSNR {min(c.psnr):.2f}..{max(c.psnr):.2f} dB, "
              f"encode {sum(c.encode_s) / len(c.encode_s) * 1000:.0f} ms, "
              f"decode {sum(c.decode_s) / len(c.decode_s) * 1000:.0f} ms per image")
    table = format_bd_table(result.bd_table(anchor, references, args.interval), anchor)
    if table:
        print()
        print(table)
    print(f"wrote {len(written)} files to {os.path.abspath(args.out)}")
    return 0


def cmd_bdrate(args, rest) -> int:
    from workbench.core.bdtable import bd_rows, format_bd_table, format_ratio_table, load_results_json, unique_labels

    anchor, *tests = unique_labels([load_results_json(f, measured=True) for f in [args.anchor, *args.tests]])
    rows = bd_rows(anchor, tests, args.interval)
    print(format_bd_table(rows, anchor.name))
    if args.per_point:
        for row, test in zip(rows, tests):
            print(format_ratio_table(row, test))
    return 0


def cmd_compress_net(args, rest) -> int:
    import json

    from workbench.core.atomic import check_writable, write_bytes_atomic
    from workbench.core.jobs import TextProgressBar, run
    from workbench.core.network.checkpoint import load_checkpoint
    from workbench.core.network.compress import compress_network_job
    from workbench.core.network.quantizers import NET_QUANTIZERS
    from workbench.core.options import build

    cls = NET_QUANTIZERS.get(args.quantizer)
    extra = _options_parser(f"workbench compress-net IN -q {cls.name}", cls.label, cls.Options)
    if args.help:
        args.subparser.print_help()
        print()
        extra.print_help()
        return 0
    src = _required_input(args)
    ns, leftover = extra.parse_known_args(rest)
    if leftover:
        raise OptionError(f"quantizer {cls.name} has no option(s) {' '.join(leftover)} "
                          f"(see `workbench compress-net IN -q {cls.name} --help`)")
    options = build(cls.Options, {k: v for k, v in vars(ns).items() if v is not None})
    out = Path(args.output) if args.output else (src if src.is_file() else src / "model").with_suffix(".wbn")
    summary = Path(args.summary) if args.summary else out.with_name(out.name + ".json")
    protect = [p for p in (src, args.base, args.importance) if p]
    check_writable(out, protect=protect)            # before the work, not after it
    check_writable(summary, protect=protect + [out])
    notes: list[str] = []
    state = load_checkpoint(src, notes=notes)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    base = load_checkpoint(args.base) if args.base else None
    importance = load_checkpoint(args.importance) if args.importance else None
    task = None
    if args.eval != "none":
        from workbench.core.network.demo import task_for

        from workbench.core.network.encoder import task_for_folder

        task = task_for(state) if args.eval != "encoder" else None
        if task is None and args.eval != "digits":
            task = task_for_folder(src, state)
        if task is None and args.eval == "digits":
            raise OptionError("--eval digits needs a checkpoint with the demo CNN's tensors")
        if task is None and args.eval == "encoder":
            raise OptionError("--eval encoder needs a folder with a BERT config.json and its model.safetensors")
    calibration = None
    if args.calibrate == "digits":
        from workbench.core.network.demo import task_for

        calibration = task_for(state)
        if calibration is None:
            raise OptionError("--calibrate digits needs a checkpoint with the demo CNN's tensors")
    elif args.calibrate == "tokens":
        from workbench.core.network.encoder import CALIBRATION_SEED, task_for_folder

        calibration = task_for_folder(src, state, seed=CALIBRATION_SEED)
        if calibration is None:
            raise OptionError("--calibrate tokens needs a folder with a BERT config.json and its model.safetensors")
    bar = TextProgressBar()
    try:
        result = run(compress_network_job(state, cls.name, options, coder=args.coder, base=base,
                                          importance=importance, task=task, bias_bits=args.bias_bits,
                                          nonfinite=args.nonfinite, keep_state=False, calibration=calibration),
                     on_progress=bar)
    finally:
        bar.close()
    # The old summary goes first: a kill between the two writes then leaves the new .wbn without a
    # summary, never beside one that describes the file it replaced.
    try:
        summary.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot replace {summary}: {exc.strerror or exc}") from None
    write_bytes_atomic(out, result.data, protect=protect)
    write_bytes_atomic(summary, json.dumps({"input": str(src), "output": str(out), **result.to_dict()},
                                           indent=1).encode(), protect=protect + [out])
    print(result.format_summary())
    print(f"wrote {out} and {summary}")
    return 0


def cmd_decompress_net(args, rest) -> int:
    from workbench.core.atomic import check_writable
    from workbench.core.container import MAX_FILE_BYTES
    from workbench.core.network.checkpoint import load_checkpoint, save_checkpoint
    from workbench.core.network.compress import decompress_network
    from workbench.core.errors import BitstreamError

    src = Path(args.input)
    check_writable(args.output, protect=[src] + ([args.base] if args.base else []))
    data = _read_compressed(src, MAX_FILE_BYTES)
    base = load_checkpoint(args.base) if args.base else None
    t0 = time.perf_counter()
    try:
        state = decompress_network(data, base)
    except BitstreamError as err:
        raise BitstreamError(f"{src}: {err}") from None
    dt = time.perf_counter() - t0
    save_checkpoint(state, args.output, protect=[src] + ([args.base] if args.base else []))
    n = sum(t.numel() for t in state.values())
    print(f"{args.output}: {len(state)} tensors, {n} parameters decoded in {dt * 1000:.0f} ms")
    return 0


def cmd_train(args, rest) -> int:
    from workbench.core.learned.quantizers import SURROGATES
    from workbench.core.learned.train import TrainOptions, train_job
    from workbench.core.options import build

    surrogate = SURROGATES.get(args.quantizer)
    base = _options_parser("workbench train", "Training options.", TrainOptions,
                           skip=("model", "quantizer", "lambdas"))
    extra = _options_parser("workbench train", f"Options of the {surrogate.label} surrogate.", surrogate.Options)
    if args.help:
        args.subparser.print_help()
        for p in (base, extra):
            print()
            p.print_help()
        return 0
    ns, leftover = base.parse_known_args(rest)
    ns2, leftover = extra.parse_known_args(leftover)
    if leftover:
        raise OptionError(f"train has no option(s) {' '.join(leftover)} (see `workbench train --help`)")
    values = {k: v for k, v in vars(ns).items() if v is not None}
    values.update(model=args.model, quantizer=args.quantizer)
    if args.lambdas:
        values["lambdas"] = args.lambdas
    opts = build(TrainOptions, values)
    sur_opts = {k: v for k, v in vars(ns2).items() if v is not None}
    folders = _training_folders(args, "train")
    final, last_val = _run_training(train_job(opts, folders, Path(args.out), sur_opts), opts.steps, "val_bpp_hard")
    if final is None:
        return 0
    if last_val:
        print(f"validation (hard rounding, mean over levels): {_hard_figures(last_val, 'val')}; "
              f"surrogate-vs-hard mismatch {last_val['mismatch_bpp']:+.4f} bpp, {last_val['mismatch_psnr']:+.2f} dB")
        if "native_bpp_hard" in last_val:
            print(f"held-out photographs at their own scale: {_hard_figures(last_val, 'native')}")
    print(f"checkpoint: {final}")
    return 0


def _hard_figures(v: dict, prefix: str) -> str:
    """One validation set's hard-rounded figures as `train.validate` names them ("val_…", "native_…")."""
    ms = v.get(f"{prefix}_ms_ssim_hard")
    return (f"{v[f'{prefix}_bpp_hard']:.4f} bpp, PSNR {v[f'{prefix}_psnr_hard']:.2f} dB"
            + (f", MS-SSIM {ms:.4f}" if ms is not None else ""))


def _run_training(job, steps: int, val_key: str) -> tuple[Path | None, dict]:
    """Run a train or finetune job with a progress bar: (its checkpoint, the last validation's metrics),
    or (None, {}) after saying how to continue when it was paused before its last step."""
    from workbench.core.jobs import TextProgressBar, run

    bar = TextProgressBar()
    last_val: dict = {}
    reached = 0

    def show(event) -> None:
        nonlocal reached
        bar(event)
        reached = event.step
        if val_key in event.metrics:
            last_val.update(event.metrics)

    try:
        final = run(job, on_progress=show)
    finally:
        bar.close()
    if 0 < reached < steps:
        print(f"paused at step {reached} of {steps} (checkpoint {final}); run the same command again to continue")
        return None, {}
    return final, last_val


def _training_folders(args, command: str) -> list[Path]:
    """--data folders (default: the shared training sets), never Kodak; and --out must be given."""
    folders = [Path(d) for d in args.data] or [p for p in (Path("../shared/datasets/train"),
                                                          Path("../shared/datasets/wikipedia49")) if p.is_dir()]
    if not folders:
        raise OptionError(f"{command} needs --data FOLDER (no ../shared/datasets here)")
    for f in folders:
        if not f.is_dir():
            raise OptionError(f"--data {f}: not a folder")
        if "kodak" in f.resolve().as_posix().lower():
            raise OptionError(f"--data {f}: Kodak is the evaluation set; training on it would make every "
                              "Kodak figure meaningless")
    if not args.out:
        raise OptionError(f"{command} needs --out FOLDER for its checkpoint and log")
    return folders


def cmd_finetune(args, rest) -> int:
    from workbench.core.learned.finetune import FinetuneOptions, finetune_job
    from workbench.core.options import build

    parser = _options_parser("workbench finetune", "Finetuning options.", FinetuneOptions)
    if args.help:
        args.subparser.print_help()
        print()
        parser.print_help()
        return 0
    ns, leftover = parser.parse_known_args(rest)
    if leftover:
        raise OptionError(f"finetune has no option(s) {' '.join(leftover)} (see `workbench finetune --help`)")
    opts = build(FinetuneOptions, {k: v for k, v in vars(ns).items() if v is not None})
    folders = _training_folders(args, "finetune")
    final, last_val = _run_training(finetune_job(opts, folders, Path(args.out)), opts.steps, "val_psnr")
    if final is None:
        return 0
    if last_val:
        print(f"validation with {opts.quantizer} (mean over levels): PSNR {last_val['val_psnr']:.2f} dB, "
              f"{last_val['val_gain_db']:+.3f} dB over the original decoder")
        if "val_ms_ssim" in last_val:
            print(f"MS-SSIM {last_val['val_ms_ssim']:.5f}, original decoder {last_val['val_ms_ssim_base']:.5f}")
    print(f"checkpoint: {final} (turn it into a model file with `workbench export-model`)")
    return 0


def cmd_export_model(args, rest) -> int:
    from workbench.core.learned.weights import export_checkpoint

    out = export_checkpoint(Path(args.checkpoint), Path(args.output), args.description)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
