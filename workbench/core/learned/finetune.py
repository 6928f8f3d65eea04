"""Finetuning a trained codec's decoder on the latents its real inference quantizer produces.

A model is trained through a surrogate (noise, SUA, ...), so its decoder has never seen what the
coder actually sends: rounded latents, or the trellis search's choices, whose errors are larger and
differently distributed (the search zeroes what is expensive). Borzechowski et al. (2025) freeze the
encoder, quantize with the real quantizer and retrain the decoder on the result. Here the frozen part
is everything that decides symbols (analysis, gains, hyper-analysis, the z density, the
hyper-synthesis and any context model, so the entropy parameters and therefore the bitstream are
those of the original model); the trained part is what the kind names as its decoder
(`ModelKind.decoder_parameters`: e.g. inverse gains, synthesis and post-filter), and the kind says
what its coder decides on a batch (`ModelKind.quantized_latents`). The loss is λ·D per image at a
random quality, the rate being fixed by the frozen encoder. With the decoder, the quantizer's
reconstruction offsets are learned (`latent_quantizers.offset_slots`: where in its cell each nonzero
level is best reconstructed, per quantizer, scale level and magnitude), at a higher learning rate since
they start from zero.

The result is a normal training checkpoint (`last.pt`, resumable), which `workbench export-model` turns
into a model file like any other. The run folder is kept as `workbench train` keeps it (`run_folder.py`:
the run's settings, a line per step, a preview per validation, a pause file), so the app's Train tab runs,
watches, pauses and resumes a finetuning exactly as it does a training.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from workbench.core.errors import OptionError, WorkbenchError
from workbench.core.jobs import Job, Progress
from workbench.core.learned import data as crops_data
from workbench.core.learned import preview, run_folder
from workbench.core.learned.kinds import interpolate_levels
from workbench.core.learned.kinds.base import QuantizedLatents
from workbench.core.learned.latent_quantizers import LATENT_QUANTIZERS, OFFSET_SHAPE, apply_offsets, offset_slots
from workbench.core.learned.train import distortion, save_checkpoint
from workbench.core.learned.weights import load_codec_model
from workbench.core.options import option, specs


@dataclass(frozen=True)
class FinetuneOptions:
    model: str = option("dct-hyperprior-mse", "model to start from: a shipped name, a .safetensors file or a "
                                                  "CompressAI checkpoint")
    quantizer: str = option("tcq8", "the inference quantizer whose output the decoder learns",
                            choices=("round", "rdoq", "tcq4", "tcq8"))
    steps: int = option(2000, "training steps", minimum=1)
    batch: int = option(8, "crops per step", minimum=1, maximum=256)
    crop: int = option(128, "crop size in pixels (a multiple of the model's stride)", minimum=32, maximum=1024)
    crops_per_image: int = option(8, "random crops cut from each training image", minimum=1, maximum=1000)
    lr: float = option(1e-4, "Adam learning rate (halved at 75 % and 90 % of the steps)", minimum=1e-8, maximum=1.0,
                       label="Learning rate")
    offset_lr: float = option(0.01, "learning rate of the reconstruction offsets (0: learn none)", minimum=0.0,
                              maximum=1.0, label="Offsets' learning rate")
    seed: int = option(0, "random seed")
    validate_every: int = option(250, "steps between validations", minimum=1)
    checkpoint_every: int = option(250, "steps between checkpoints", minimum=1)


QUANTIZERS: tuple[str, ...] = next(s.choices for s in specs(FinetuneOptions) if s.name == "quantizer")


def check_finetune(cm, opts: FinetuneOptions) -> None:
    """Refuse, in one line, what cannot be finetuned: a kind without a trainable decoder, a quantizer the
    kind does not code with, or one whose loss needs the λ a checkpoint does not record."""
    if not cm.model.supports_finetune:
        raise OptionError(f"decoder finetuning is not available for the {cm.model.name} model")
    cm.model.check_tools(opts)          # a quantizer the kind does not code with
    lambdas = json.loads(cm.info.get("lambdas") or "[]")
    if len(lambdas) != cm.model.levels and not (cm.model.levels == 1 and opts.quantizer == "round"):
        # (with one rate point and rounding, λ scales the loss only: it is not needed)
        raise OptionError(f"{opts.model} does not record its λ per level, which finetuning with {opts.quantizer} "
                          "needs (a CompressAI checkpoint: name it like the zoo's files, e.g. mbt2018-mean-3-....pth.tar)")


def refused_quantizers(model: str) -> dict[str, str]:
    """Why each quantizer cannot be finetuned on with `model` (the ones it can are absent), asked of the
    model's kind through `check_finetune`, so a front end offers exactly what the job accepts. Loads the
    model: run it off the GUI thread."""
    cm = load_codec_model(model)
    out = {}
    for name in QUANTIZERS:
        try:
            check_finetune(cm, FinetuneOptions(model=model, quantizer=name))
        except OptionError as err:
            out[name] = str(err)
    return out


def finetune_job(opts: FinetuneOptions, data_folders: list[Path], out_dir: Path) -> Job[Path]:
    """Yields Progress events (distortion, PSNR on training and held-out crops); returns `last.pt`, early
    when a pause is requested in the run folder (running it again resumes)."""
    cm = load_codec_model(opts.model)
    check_finetune(cm, opts)
    if opts.crop % cm.model.z_stride:
        raise OptionError(f"--crop must be a multiple of {cm.model.z_stride} for this model, got {opts.crop}")
    quantizer = LATENT_QUANTIZERS.get(opts.quantizer)()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    yield Progress(0, opts.steps, "cutting training crops")
    crops = crops_data.cached_crops(out_dir, data_folders, opts.crop, opts.crops_per_image, opts.seed, True)
    val = crops_data.cached_crops(out_dir, data_folders, max(opts.crop, 192), 1, opts.seed + 1, True).validation[:8]
    if val.shape[0] == 0:
        val = crops.train[:4]
    val = val.float() / 255.0

    torch.manual_seed(opts.seed)
    model = copy.deepcopy(cm.model).train()
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(model.is_decoder_parameter(name))
        if p.requires_grad:
            params.append(p)
    base_offsets = cm.offsets.get(opts.quantizer)       # a model finetuned before starts from its own
    offsets = torch.zeros(OFFSET_SHAPE) if base_offsets is None else torch.from_numpy(base_offsets).float()
    offsets.requires_grad_(opts.offset_lr > 0)
    keep_offsets = opts.offset_lr > 0 or base_offsets is not None
    groups = [{"params": params, "lr": opts.lr}]
    if opts.offset_lr > 0:
        groups.append({"params": [offsets], "lr": opts.offset_lr})
    optimizer = torch.optim.Adam(groups)
    lambdas = json.loads(cm.info.get("lambdas") or "[]")
    metric = cm.info.get("metric", "mse")
    log_lambdas = torch.log(torch.tensor(lambdas or [1.0], dtype=torch.float64))
    step = 0
    last = out_dir / "last.pt"
    recipe = {**asdict(opts), "finetune_of": cm.name, "base_sha256": cm.sha256.hex(), "metric": metric,
              "lambda_values": lambdas, "files": crops.files, "train_crops": int(crops.train.shape[0])}
    if last.exists():
        state = torch.load(last, map_location="cpu", weights_only=True)
        saved = json.loads(state.get("recipe", "{}"))
        if saved.get("base_sha256") != recipe["base_sha256"] or saved.get("quantizer") != opts.quantizer \
                or (saved.get("offset_lr", 0) > 0) != (opts.offset_lr > 0):
            raise OptionError(f"{last} finetunes another model or quantizer, or with(out) offsets; "
                              "use another --out folder")
        model.load_state_dict(state["model"])
        if keep_offsets:
            with torch.no_grad():
                offsets.copy_(state["offsets"][opts.quantizer])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    run_folder.save_spec(out_dir, run_folder.RunSpec(asdict(opts), {}, tuple(str(Path(f).resolve())
                                                                             for f in data_folders), "finetune"))
    progress = run_folder.ProgressLog(out_dir, step)
    shown = _Preview(cm, quantizer, opts, val[:1], out_dir)
    if step == 0:               # what the original decoder makes of the crop, for "how much it learned"
        progress.write(0, shown.write(cm.model, None if base_offsets is None else
                                      torch.from_numpy(base_offsets).float(), 0))
    gen = torch.Generator().manual_seed(opts.seed * 1000 + step)
    stream = crops_data.batches(crops.train, opts.batch, gen)
    log_path = out_dir / "train_log.jsonl"
    window: list[float] = []
    skipped = 0
    t0 = t_step = time.perf_counter()
    while step < opts.steps:
        decay = (0.5 if step >= 0.75 * opts.steps else 1.0) * (0.5 if step >= 0.9 * opts.steps else 1.0)
        for group, base_lr in zip(optimizer.param_groups, (opts.lr, opts.offset_lr)):
            group["lr"] = base_lr * decay
        x = next(stream)
        quality = 1 + torch.rand(x.shape[0], generator=gen) * (model.levels - 1)
        lam = torch.exp(interpolate_levels(log_lambdas, quality)).float()
        y_hat = decoded_latents(cm.model.quantized_latents(cm, x, quality, quantizer), offsets)
        _, g_inv = model.gains(quality)
        x_hat = model.synthesise(y_hat * g_inv)
        d = distortion(x, x_hat, metric)
        loss = (lam * d).mean() / lam.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        step += 1
        record: dict = {}
        if torch.isfinite(grad_norm) and (offsets.grad is None or torch.isfinite(offsets.grad).all()):
            optimizer.step()
            with torch.no_grad():
                offsets.clamp_(-0.5, 0.5)       # stay inside the level's cell
            window.append(float((x - x_hat.detach().clamp(0, 1)).pow(2).mean()))
            record = {"loss": float(loss.detach()), "mse": window[-1],
                      "psnr": 10 * math.log10(1 / max(window[-1], 1e-12))}
        else:
            # one non-finite gradient would turn every weight into NaN through Adam: skip the batch
            skipped += 1
            if skipped > max(20, opts.steps // 50):
                raise WorkbenchError(f"finetuning diverged: {skipped} steps with non-finite gradients "
                                     "(try a lower --lr)")
        m = {"mse": sum(window) / len(window)} if window else {}
        if window:
            m["psnr"] = 10 * math.log10(1 / max(m["mse"], 1e-12))
        m["skipped_steps"] = skipped
        record["skipped_steps"] = skipped
        if step % opts.validate_every == 0 or step == opts.steps:
            v = validate(cm, quantizer, model, offsets.detach(), val)
            m.update(v)
            record.update(v, **shown.write(model, offsets.detach(), step))
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": step, "seconds": time.perf_counter() - t0, **m}) + "\n")
            window.clear()
        checkpoint = step % opts.checkpoint_every == 0 or step == opts.steps
        extra = {"offsets": {opts.quantizer: offsets.detach().clone()}} if keep_offsets else None
        if checkpoint:
            save_checkpoint(last, model, optimizer, step, recipe, extra)
        now = time.perf_counter()
        progress.write(step, {**record, "step_seconds": now - t_step})
        t_step = now
        yield Progress(step, opts.steps, f"step {step}", metrics=m)
        if step < opts.steps and run_folder.pause_requested(out_dir):
            if not checkpoint:
                save_checkpoint(last, model, optimizer, step, recipe, extra)
            run_folder.clear_pause(out_dir)
            break                       # paused: the same command resumes from here
    progress.close()
    return last


class _Preview:
    """The held-out crop as the decoder being finetuned makes it of what the quantizer decides, at the
    middle level. The decisions and the file's size are the frozen encoder's, so they are computed once:
    the rate a finetuning shows is that of the file the quantizer writes for the crop, and it stays."""

    def __init__(self, cm, quantizer, opts: FinetuneOptions, crop: torch.Tensor, out_dir: Path):
        from workbench.core.codecs import get_codec

        self.crop, self.out_dir, self.quantizer = crop, out_dir, quantizer.name
        self.level = preview.preview_level(cm.model.levels)
        self.q = torch.full((1,), float(self.level))
        self.decisions = cm.model.quantized_latents(cm, crop, self.q, quantizer)
        rgb = torch.round(crop[0].permute(1, 2, 0) * 255).to(torch.uint8).numpy()
        codec = get_codec("learned")
        data = codec.encode(rgb, codec.options(quality=self.level, model=opts.model, quantizer=opts.quantizer))
        self.bpp = len(data) * 8 / (rgb.shape[0] * rgb.shape[1])

    @torch.no_grad()
    def write(self, net, offsets: torch.Tensor | None, step: int) -> dict:
        training = net.training
        net.eval()
        x_hat = net.synthesise(decoded_latents(self.decisions, offsets) * net.gains(self.q)[1])
        net.train(training)
        p = preview.save_preview(self.out_dir, self.crop, x_hat, step, self.level, self.bpp,
                                 quantizer=self.quantizer)
        return {"bpp": p["bpp"], "preview_psnr": p["psnr"]}


def decoded_latents(q: QuantizedLatents, offsets: torch.Tensor | None) -> torch.Tensor:
    """ŷ = μ + Δ·(x̂ + offset): differentiable in the offsets, which is how finetuning learns them."""
    if offsets is None:
        return q.means + q.delta * q.nominal
    return q.means + q.delta * apply_offsets(q.nominal, offset_slots(q.nominal, q.quant, q.levels), offsets)


@torch.no_grad()
def validate(cm, quantizer, model, offsets: torch.Tensor, val: torch.Tensor) -> dict:
    """PSNR of the original decoder and of the finetuned one, each with its own reconstruction offsets,
    on held-out crops, averaged over levels."""
    model.eval()
    base_offsets = cm.offsets.get(quantizer.name)
    decoders = ((cm.model, None if base_offsets is None else torch.from_numpy(base_offsets).float()),
                (model, offsets))
    by_ms_ssim = cm.info.get("metric", "mse") != "mse"
    psnr, ms_ssim = [0.0, 0.0], [0.0, 0.0]
    for level in range(1, model.levels + 1):
        q = torch.full((val.shape[0],), float(level))
        decisions = cm.model.quantized_latents(cm, val, q, quantizer)
        for i, (net, off) in enumerate(decoders):
            x_hat = net.synthesise(decoded_latents(decisions, off) * net.gains(q)[1]).clamp(0, 1)
            mse = (val - x_hat).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-12)
            psnr[i] += float((10 * torch.log10(1 / mse)).mean()) / model.levels
            if by_ms_ssim:
                ms_ssim[i] += float(1 - distortion(val, x_hat, "ms-ssim").mean()) / model.levels
    model.train()
    out = {"val_psnr_base": psnr[0], "val_psnr": psnr[1], "val_gain_db": psnr[1] - psnr[0]}
    if by_ms_ssim:          # what the model was trained for: its finetuning is judged by it too
        out.update(val_ms_ssim_base=ms_ssim[0], val_ms_ssim=ms_ssim[1])
    return out
