"""Training a learned image codec as a job of progress events, resumable and DDP-capable.

The loss is R + λ·D per image, with R in bits per pixel, D = 255²·MSE or 1 − MS-SSIM, and λ drawn
per image: a variable-rate model draws a continuous quality q in [1, levels] and uses the λ
interpolated geometrically between its neighbouring levels, so every level and the paths between
them are trained (single-λ training is the special case of one level).

Every `validate_every` steps the job measures the train–test mismatch on held-out crops: the same
images through the training surrogate and through hard rounding (what the coder does), at every
integer quality; and, with hard rounding, crops of held-out photographs at their own scale
(`native_*`), where a recipe has to hold too (`data.py`). Rank 0 keeps `last.pt` (model, optimizer,
step, RNG) and a JSON-lines log in the output folder; running the same command again resumes from
`last.pt`. It also keeps what the app shows (`run_folder.py`): the run's settings, a line per step, a
preview picture per validation, and it stops after a checkpoint when a pause is requested.

Under `torchrun` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel: gloo on CPU,
nccl on CUDA. Each rank samples its own batches (seed + rank) from the same crops.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from workbench.core import metrics
from workbench.core.allocator import keep_freed_buffers
from workbench.core.errors import OptionError, WorkbenchError
from workbench.core.jobs import Job, Progress
from workbench.core.learned import data as crops_data
from workbench.core.learned import preview, run_folder
from workbench.core.learned.device import pick_device
from workbench.core.learned.kinds import MODELS, MSE_LAMBDAS, MSSSIM_LAMBDAS, interpolate_levels
from workbench.core.learned.quantizers import StraightThrough, make_surrogate
from workbench.core.options import option


@dataclass(frozen=True)
class TrainOptions:
    model: str = option("dct-hyperprior", "architecture",
                        choices=tuple(k.name for k in MODELS if k.trainable))
    channels: int = option(64, "channels of the transforms (N)", minimum=8, maximum=512)
    latent_channels: int = option(192, "channels of the latent y (M; the DCT model needs 192)", minimum=8, maximum=512)
    quantizer: str = option("sua", "training surrogate for rounding", choices=("noise", "ste", "sua"))
    zero_center: bool = option(True, "quantize y − μ instead of y (hyperprior only)")
    scale_bound: float = option(0.11, "lower bound on the Gaussian scale", minimum=1e-3, maximum=10.0)
    metric: str = option("mse", "distortion the model is optimised for", choices=("mse", "ms-ssim"))
    lambdas: str = option("", "comma-separated λ per quality level (default: 8 levels for the metric)")
    steps: int = option(20000, "training steps", minimum=1)
    batch: int = option(8, "images per step (per process under torchrun)", minimum=1, maximum=256)
    crop: int = option(128, "crop size in pixels", minimum=32, maximum=1024)
    crops_per_image: int = option(8, "random crops cut from each training image", minimum=1, maximum=1000)
    lr: float = option(2e-4, "Adam learning rate (halved at 75 % and 90 % of the steps)", minimum=1e-7, maximum=1.0)
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto (CUDA when present), cpu or cuda")
    validate_every: int = option(500, "steps between validations", minimum=1)
    checkpoint_every: int = option(500, "steps between checkpoints", minimum=1)
    init: str = option("", "start from these weights: a training checkpoint (last.pt) or a model file (a shipped "
                       "name or .safetensors), e.g. the shipped DCT model to start dct-context from")
    train_only: str = option("", "train only these parts of the model (comma-separated names, e.g. spatial); the "
                             "rest keeps the weights --init gave it: new parts learn without moving what works")
    vq_dim: int = option(1, "dct-shvq: vector dimension (1 scalar, 4 = 2×2 blocks of one channel)", choices=(1, 4))
    vq_centers: int = option(64, "dct-shvq: centers per (level, channel) codebook", minimum=2, maximum=4096)
    vq_options: str = option("", "dct-shvq: more quantizer options as key=value,... (shvq.SHVQOptions)")

    def lambda_values(self) -> tuple[float, ...]:
        if not self.lambdas:
            return MSE_LAMBDAS if self.metric == "mse" else MSSSIM_LAMBDAS
        try:
            values = tuple(float(v) for v in self.lambdas.split(","))
        except ValueError:
            raise OptionError(f"--lambda must be comma-separated numbers, got {self.lambdas!r}") from None
        if not values or any(not v > 0 for v in values) or list(values) != sorted(values):
            raise OptionError("λ values must be positive and increasing")
        return values


def distortion(x: torch.Tensor, x_hat: torch.Tensor, metric: str) -> torch.Tensor:
    """Per-image distortion in the loss's units: 255²·MSE, or 1 − MS-SSIM."""
    if metric == "mse":
        return (x - x_hat).pow(2).mean(dim=(1, 2, 3)) * 255.0 ** 2
    return 1.0 - metrics.ms_ssim_torch(x * 255.0, x_hat.clamp(0, 1) * 255.0)


def train_job(opts: TrainOptions, data_folders: list[Path], out_dir: Path, surrogate_options: dict | None = None
              ) -> Job[Path]:
    """Yields Progress events; returns the path of the final checkpoint."""
    stride = MODELS.get(opts.model).z_stride
    if opts.crop % stride:
        raise OptionError(f"--crop must be a multiple of {stride} for the {opts.model} model, got {opts.crop}")
    lambdas = torch.tensor(opts.lambda_values(), dtype=torch.float64)
    levels = len(lambdas)
    surrogate = make_surrogate(opts.quantizer, **(surrogate_options or {}))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = pick_device(opts.device)
    keep_freed_buffers()
    if world > 1:
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    out_dir = Path(out_dir)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)

    yield Progress(0, opts.steps, "cutting training crops")
    crops = crops_data.cached_crops(out_dir, data_folders, opts.crop, opts.crops_per_image, opts.seed, rank == 0)
    val_crop = max(opts.crop, metrics.MS_SSIM_MIN_SIDE + 31)
    val = crops_data.cached_crops(out_dir, data_folders, val_crop, 1, opts.seed + 1, rank == 0).validation[:8]
    if val.shape[0] == 0:
        val = crops.train[:4]
    val = (val.float() / 255.0).to(device)
    native = crops_data.cached_crops(out_dir, data_folders, val_crop, 1, opts.seed + 2, rank == 0,
                                     crops_data.NATIVE).validation
    native = (crops_data.spread(native, 8).float() / 255.0).to(device)

    torch.manual_seed(opts.seed + rank)
    kind = MODELS.get(opts.model)
    model = kind(**kind.training_config(opts, lambdas.tolist())).to(device)
    optimizer = torch.optim.Adam(_trainable_parameters(model, opts.train_only), lr=opts.lr)
    step = 0
    last = out_dir / "last.pt"
    if last.exists():
        state = torch.load(last, map_location=device, weights_only=True)
        _check_same_recipe(state, opts)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    elif opts.init:
        init = _initial_weights(opts.init, device)
        model.load_init(init, lambdas.tolist())     # takes what fits, e.g. from another architecture
    progress = None
    if rank == 0:
        run_folder.save_spec(out_dir, run_folder.RunSpec(asdict(opts), asdict(surrogate.opts),
                                                         tuple(str(Path(f).resolve()) for f in data_folders)))
        progress = run_folder.ProgressLog(out_dir, step)
        if step == 0:           # where the run starts from, for "how much it learned"
            progress.write(0, _preview_record(model, val, levels, 0, out_dir, opts))
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model)
    gen = torch.Generator().manual_seed(opts.seed * 1000 + rank + step)
    stream = crops_data.batches(crops.train, opts.batch, gen)
    log_path = out_dir / "train_log.jsonl"
    recipe = {**asdict(opts), "surrogate_options": surrogate_options or {}, "world_size": world,
              "train_crops": int(crops.train.shape[0]), "validation_crops": int(val.shape[0]),
              "files": crops.files, "lambda_values": lambdas.tolist()}
    window: list[dict] = []
    skipped = 0
    t_start = t_step = time.perf_counter()
    while step < opts.steps:
        for group in optimizer.param_groups:
            group["lr"] = opts.lr * (0.5 if step >= 0.75 * opts.steps else 1.0) * (0.5 if step >= 0.9 * opts.steps else 1.0)
        x = next(stream).to(device)
        quality = model.training_qualities(x.shape[0], gen)
        lam = torch.exp(interpolate_levels(torch.log(lambdas), quality)).to(device=device, dtype=torch.float32)
        quality = quality.to(device)
        model.train()
        res = net(x, quality, surrogate, step, opts.zero_center)
        pixels = x.shape[-1] * x.shape[-2]
        bpp = (res.bits_y + res.bits_z) / pixels
        dist = distortion(x, res.x_hat, opts.metric)
        loss = (bpp + lam * dist).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        step += 1
        record: dict = {}
        if torch.isfinite(grad_norm):
            optimizer.step()
            with torch.no_grad():
                mse = (x - res.x_hat.clamp(0, 1)).pow(2).mean()
                window.append({"loss": float(loss), "bpp": float(bpp.mean()), "mse": float(mse),
                               "entropy": float(((res.bits_y + res.bits_z) / res.latents).mean())})
            record = {**window[-1], "psnr": 10 * math.log10(1.0 / max(window[-1]["mse"], 1e-12))}
        else:
            # One non-finite gradient would turn every weight into NaN through Adam: skip the batch.
            # DDP ranks see the same all-reduced norm, so they skip together.
            skipped += 1
            if skipped > max(20, opts.steps // 50):
                raise WorkbenchError(f"training diverged: {skipped} steps with non-finite gradients "
                                     "(try a lower --lr)")
        metrics_now = {k: sum(w[k] for w in window) / len(window) for k in window[0]} if window else {}
        if window:
            metrics_now["psnr"] = 10 * math.log10(1.0 / max(metrics_now["mse"], 1e-12))
        metrics_now["skipped_steps"] = skipped
        metrics_now.update(model.progress_metrics())       # e.g. SHVQ's σ and soft–hard gap
        tau = surrogate.temperature(step)
        if tau is not None:
            metrics_now["temperature"] = tau
        record.update((k, v) for k, v in metrics_now.items() if k not in _WINDOW_KEYS)
        if step % opts.validate_every == 0 or step == opts.steps:
            v = validate(model, val, levels, surrogate, step, opts, native)
            metrics_now.update(v)
            record.update(v)
            if rank == 0:
                record.update(_preview_record(model, val, levels, step, out_dir, opts))
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": step, "seconds": time.perf_counter() - t_start, **metrics_now}) + "\n")
            window.clear()
        checkpoint = step % opts.checkpoint_every == 0 or step == opts.steps
        if rank == 0 and checkpoint:
            save_checkpoint(last, model, optimizer, step, recipe)
        if progress is not None:
            now = time.perf_counter()
            progress.write(step, {**record, "step_seconds": now - t_step})
            t_step = now
        yield Progress(step, opts.steps, f"step {step}", metrics=metrics_now)
        if world == 1 and step < opts.steps and run_folder.pause_requested(out_dir):
            if not checkpoint:
                save_checkpoint(last, model, optimizer, step, recipe)
            run_folder.clear_pause(out_dir)
            return last                 # paused: the same command resumes from here
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
    return last


_WINDOW_KEYS = ("loss", "bpp", "mse", "entropy", "psnr")     # averages in the events, per step in the log


def _preview_record(model, val: torch.Tensor, levels: int, step: int, out_dir: Path, opts: TrainOptions) -> dict:
    p = preview.write_preview(model, val[:1], preview.preview_level(levels), step, out_dir, opts.zero_center)
    return {"preview_bpp": p["bpp"], "preview_psnr": p["psnr"]}


@torch.no_grad()
def validate(model, val: torch.Tensor, levels: int, surrogate, step: int, opts: TrainOptions,
             native: torch.Tensor | None = None) -> dict:
    """Surrogate vs hard-rounded rate and distortion on held-out crops, averaged over the levels; the
    hard-rounded figures also on `native` crops (held-out photographs at their own scale) when given."""
    model.eval()
    hard_q = StraightThrough()
    out = _level_means(model, val, levels, step, opts, "val", {"soft": surrogate, "hard": hard_q})
    out["mismatch_bpp"] = out["val_bpp_soft"] - out["val_bpp_hard"]
    out["mismatch_psnr"] = out["val_psnr_soft"] - out["val_psnr_hard"]
    if "val_ms_ssim_hard" in out:
        out["ms_ssim"] = out["val_ms_ssim_hard"]
    if native is not None and native.shape[0]:
        out.update(_level_means(model, native, levels, step, opts, "native", {"hard": hard_q}))
    return out


def _level_means(model, x: torch.Tensor, levels: int, step: int, opts: TrainOptions, prefix: str,
                 quantizers: dict) -> dict:
    """`{prefix}_bpp_{name}` and `{prefix}_psnr_{name}` per quantizer, `{prefix}_ms_ssim_hard` when the
    crops are large enough for five MS-SSIM scales; means over the integer quality levels."""
    pixels = x.shape[-1] * x.shape[-2]
    with_ms_ssim = min(x.shape[-2:]) >= metrics.MS_SSIM_MIN_SIDE
    sums: dict[str, float] = {}
    for level in range(1, levels + 1):
        q = torch.full((x.shape[0],), float(level), device=x.device)
        for name, quant in quantizers.items():
            hard = name == "hard"
            r = model(x, q, quant, step, opts.zero_center, hard=hard)
            x_hat = r.x_hat.clamp(0, 1)
            mse = (x - x_hat).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-12)
            terms = {f"{prefix}_bpp_{name}": float(((r.bits_y + r.bits_z) / pixels).mean()),
                     f"{prefix}_psnr_{name}": float((10 * torch.log10(1.0 / mse)).mean())}
            if hard and with_ms_ssim:
                terms[f"{prefix}_ms_ssim_hard"] = float(metrics.ms_ssim_torch(x * 255, torch.round(x_hat * 255)).mean())
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value
    return {k: v / levels for k, v in sums.items()}


def save_checkpoint(path: Path, model, optimizer, step: int, recipe: dict, extra: dict | None = None) -> None:
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise WorkbenchError(f"training diverged before step {step} (non-finite weights); the last good "
                             f"checkpoint {path} was kept — resume with a lower --lr")
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "recipe": json.dumps(recipe), "architecture": model.name, "config": json.dumps(model.config),
                **(extra or {})}, tmp)
    os.replace(tmp, path)


def _check_same_recipe(state: dict, opts: TrainOptions) -> None:
    saved = json.loads(state.get("recipe", "{}"))
    for key in ("model", "channels", "latent_channels", "metric", "lambdas"):
        if key in saved and saved[key] != getattr(opts, key):
            raise OptionError(f"the checkpoint in this folder was trained with {key}={saved[key]!r}, not "
                              f"{getattr(opts, key)!r}; use another --out folder to start a new run")


def _trainable_parameters(model, train_only: str) -> list[torch.nn.Parameter]:
    """All parameters, or only those of the named parts (the others frozen: no gradient, no Adam state)."""
    if not train_only:
        return list(model.parameters())
    names = [n.strip() for n in train_only.split(",") if n.strip()]
    parts = dict(model.named_children())
    unknown = [n for n in names if n not in parts or not any(True for _ in parts[n].parameters())]
    if unknown or not names:
        trainable = ", ".join(n for n, m in parts.items() if any(True for _ in m.parameters()))
        raise OptionError(f"--train-only: the {model.name} model has no trainable part named "
                          f"{', '.join(unknown) or repr(train_only)} (its parts: {trainable})")
    model.requires_grad_(False)
    params = [p for n in names for p in parts[n].parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def _initial_weights(init: str, device) -> dict:
    """{"model": state dict} of a training checkpoint, or of a model file's float16 weights."""
    if init.endswith(".pt"):
        return torch.load(init, map_location=device, weights_only=True)
    from safetensors.torch import load_file

    from workbench.core.learned.weights import model_path
    tensors = load_file(model_path(init))
    return {"model": {k[len("weights."):]: v.to(device, torch.float32) for k, v in tensors.items()
                      if k.startswith("weights.")}}
