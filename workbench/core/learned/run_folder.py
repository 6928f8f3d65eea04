"""A training run's folder is its whole state, so any front end can start, watch, pause and resume it.

`workbench train --out RUN` and `workbench finetune --out RUN` keep there, besides `last.pt` and
`train_log.jsonl`:

* `run.json`: what the run is (which command, its options, surrogate options, image folders), so a window
  opened later on the folder shows its settings and can run the same command again;
* `progress.jsonl`: one line per step (the step's loss, rate, PSNR, temperature, the time it took) and
  the validation and preview measurements at their steps, for live curves and an ETA. A resumed run
  first drops the lines past its checkpoint, so the file never holds a step twice;
* `preview/`: a held-out crop decoded with real rounding at every validation (`preview.py`);
* `pause`: present while a pause is requested. The job saves a checkpoint and stops; running the same
  command again resumes. A file rather than a signal works the same for the app, a shell and Windows.

The app runs training as a child process of this very command (`train_command`) and only reads these
files (`ProgressTail`), so training can never stall the window and the app and the CLI are one code path.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.atomic import write_bytes_atomic
from workbench.core.errors import OptionError
from workbench.core.jobs import duration_text

RUN_FILE = "run.json"
COMMANDS = ("train", "finetune")
PROGRESS_FILE = "progress.jsonl"
PAUSE_FILE = "pause"
CHECKPOINT = "last.pt"
#: Largest piece of the progress file read at once: a window reopened on a long run catches up in pieces.
READ_LIMIT = 1 << 20


@dataclass(frozen=True)
class RunSpec:
    """What `workbench train` (or `finetune`, the `command`) is asked to do: `options` are TrainOptions'
    (FinetuneOptions') fields, `surrogate_options` the chosen surrogate's, `data` the image folders."""

    options: dict[str, Any]
    surrogate_options: dict[str, Any] = field(default_factory=dict)
    data: tuple[str, ...] = ()
    command: str = "train"


def save_spec(out_dir: str | os.PathLike, spec: RunSpec) -> Path:
    text = json.dumps({**asdict(spec), "data": list(spec.data)}, indent=1) + "\n"
    return write_bytes_atomic(Path(out_dir) / RUN_FILE, text.encode("utf-8"))


def load_spec(out_dir: str | os.PathLike) -> RunSpec:
    path = Path(out_dir) / RUN_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        spec = RunSpec(dict(raw["options"]), dict(raw.get("surrogate_options") or {}),
                       tuple(str(d) for d in raw.get("data", ())), raw.get("command", "train"))
        if spec.command not in COMMANDS:
            raise ValueError(spec.command)
    except FileNotFoundError:
        raise OptionError(f"{out_dir} is not a training run folder (it has no {RUN_FILE})") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise OptionError(f"{path} is damaged; start a new run in another folder") from None
    return spec


def is_run_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / RUN_FILE).is_file()


# --- the command line -------------------------------------------------------------------------------

def train_args(spec: RunSpec, out_dir: str | os.PathLike) -> list[str]:
    """`workbench train` (or `finetune`) arguments for `spec`: the model, quantizer and folders always,
    every other option only where it differs from its default, so the line stays readable."""
    from workbench.core.options import build

    if spec.command == "finetune":
        from workbench.core.learned.finetune import FinetuneOptions

        opts = build(FinetuneOptions, spec.options)
        return _command_head(spec, opts, out_dir) + _changed(opts, ("model", "quantizer"))
    from workbench.core.learned.quantizers import SURROGATES
    from workbench.core.learned.train import TrainOptions

    opts = build(TrainOptions, spec.options)
    sur = build(SURROGATES.get(opts.quantizer).Options, spec.surrogate_options)
    head = _command_head(spec, opts, out_dir, ["--lambda", opts.lambdas] if opts.lambdas else [])
    return head + _changed(opts, ("model", "quantizer", "lambdas")) + _changed(sur)


def _command_head(spec: RunSpec, opts: Any, out_dir: str | os.PathLike, extra: list[str] = ()) -> list[str]:
    args = [spec.command, "--model", opts.model, "--quantizer", opts.quantizer, *extra]
    for folder in spec.data:
        args += ["--data", str(folder)]
    return args + ["--out", str(out_dir)]


def _changed(opts: Any, skip: tuple[str, ...] = ()) -> list[str]:
    """Flags for the options that differ from their defaults."""
    from workbench.core.options import specs

    return [_flag(s.name, getattr(opts, s.name)) for s in specs(type(opts))
            if s.name not in skip and getattr(opts, s.name) != s.default]


def _flag(name: str, value: Any) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    return f"--{name.replace('_', '-')}={text}"


def train_command(spec: RunSpec, out_dir: str | os.PathLike, python: str | None = None) -> list[str]:
    """The argv that runs the training: this interpreter with `-m workbench`, so the child process is the
    same installation as the app."""
    return [python or sys.executable, "-m", "workbench", *train_args(spec, out_dir)]


def shell_line(spec: RunSpec, out_dir: str | os.PathLike) -> str:
    """The equivalent command as a person types it (Copy CLI command)."""
    return shlex.join(["workbench", *train_args(spec, out_dir)])


# --- pausing ----------------------------------------------------------------------------------------

def request_pause(out_dir: str | os.PathLike) -> None:
    write_bytes_atomic(Path(out_dir) / PAUSE_FILE, b"pause requested: the run stops after a checkpoint\n")


def pause_requested(out_dir: str | os.PathLike) -> bool:
    return (Path(out_dir) / PAUSE_FILE).exists()


def clear_pause(out_dir: str | os.PathLike) -> None:
    try:
        (Path(out_dir) / PAUSE_FILE).unlink()
    except FileNotFoundError:
        pass


# --- the progress file ------------------------------------------------------------------------------

class ProgressLog:
    """Appends one JSON line per record; opened at the step a run starts or resumes from, it first drops
    the lines of steps past it (computed before a kill, lost with the checkpoint that never came)."""

    def __init__(self, out_dir: str | os.PathLike, start_step: int):
        self.path = Path(out_dir) / PROGRESS_FILE
        if self.path.exists():
            kept = [line for line in self.path.read_text(encoding="utf-8").splitlines(keepends=True)
                    if _step(line) is not None and _step(line) <= start_step and line.endswith("\n")]
            write_bytes_atomic(self.path, "".join(kept).encode("utf-8"))
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, step: int, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps({"step": step, **record}) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


class ProgressTail:
    """Reads what was appended to a run's progress file since the last call, without ever blocking on the
    writer. `restarted` turns true when the file was rewritten (a resume dropped steps): the reader then
    gets every line again from the start."""

    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir) / PROGRESS_FILE
        self._offset = 0
        self._inode: int | None = None
        self._partial = b""
        self.restarted = False

    def read(self) -> list[dict[str, Any]]:
        self.restarted = False
        try:
            st = os.stat(self.path)
            if st.st_ino != self._inode or st.st_size < self._offset:
                self.restarted = self._inode is not None
                self._inode, self._offset, self._partial = st.st_ino, 0, b""
            if st.st_size == self._offset:
                return []
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read(READ_LIMIT)
        except OSError:
            return []
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        out = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                out.append(record)
        return out


# --- what a run achieved ------------------------------------------------------------------------------

def learning_summary(first: dict[str, Any], last: dict[str, Any], seconds: float | None = None) -> str:
    """One sentence on how the preview's size and quality changed between two preview records.

    >>> learning_summary({"step": 0, "bpp": 2.0, "psnr": 14.0}, {"step": 300, "bpp": 0.5, "psnr": 24.5}, 125)
    'In 2 min 05 s (300 steps) the held-out crop went from 2.000 bpp at 14.0 dB to 0.500 bpp at 24.5 dB: 75 % smaller and 10.5 dB closer to the original.'
    >>> learning_summary({"step": 0, "bpp": 0.04, "psnr": 4.4}, {"step": 300, "bpp": 0.68, "psnr": 18.2})[-77:]
    '0.680 bpp at 18.2 dB: 17.0 times the size and 13.8 dB closer to the original.'
    """
    steps = last["step"] - first["step"]
    took = f"In {duration_text(seconds)} ({steps} steps)" if seconds is not None else f"In {steps} steps"
    ratio = last["bpp"] / first["bpp"] if first["bpp"] > 0 else 1.0
    if ratio >= 2:                  # an untrained codec codes next to nothing: "1500 % larger" reads badly
        size_text = f"{ratio:.1f} times the size"
    else:
        size_text = f"{abs(ratio - 1) * 100:.0f} % {'smaller' if ratio < 1 else 'larger'}"
    gain = last["psnr"] - first["psnr"]
    quality = f"{abs(gain):.1f} dB {'closer to' if gain >= 0 else 'farther from'} the original"
    return (f"{took} the held-out crop went from {first['bpp']:.3f} bpp at {first['psnr']:.1f} dB to "
            f"{last['bpp']:.3f} bpp at {last['psnr']:.1f} dB: {size_text} and {quality}.")

