"""The transforms of CompressAI's six image architectures, and how a checkpoint says which one it holds.

`build_networks` gives each sub-network CompressAI's attribute name and inner layout, so a
checkpoint's `g_a.*`, `g_s.*`, `h_a.*`, `h_s.*`, `context_prediction.*` and `entropy_parameters.*`
entries load with strict=True; the entropy models (`entropy_bottleneck.*`, `gaussian_conditional.*`)
are built elsewhere. `recognise` reads the architecture, N and M from key names and shapes only
(checkpoints carry no architecture name), then checks every key and shape of the transforms, so a
damaged file is refused with one line instead of failing halfway through loading.

What the coding needs to know about each architecture is in `SPECS`: CompressAI's bmshj2018-hyperprior
feeds |y| to h_a and its h_s outputs scales only (through a final ReLU); the others feed y and their
h_s (or, with a context model, entropy_parameters) outputs 2M channels, scales first, then means. The
context models' entropy_parameters take torch.cat((h_s output, context_prediction output)), in that
order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from workbench.core.errors import OptionError
from workbench.core.learned.kinds.compressai_layers import (GDN, AttentionBlock, MaskedConv2d, ResidualBlock,
                                                            ResidualBlockUpsample, ResidualBlockWithStride, conv,
                                                            conv3x3, deconv, subpel_conv3x3)


@dataclass(frozen=True)
class ArchSpec:
    name: str
    networks: tuple[str, ...]      # the sub-networks `build_networks` returns, CompressAI's attribute names
    gaussian: bool                 # y is coded under gaussian_conditional (else y is the entropy_bottleneck's)
    means: bool                    # the Gaussian parameters hold means after the scales
    abs_y_into_h_a: bool           # z = h_a(|y|) rather than h_a(y)
    context: bool                  # a masked 5×5 context model: y must be decoded serially
    y_stride: int                  # image pixels per y position, per axis
    z_stride: int | None           # image pixels per z position (None: no hyperprior)

    @property
    def downsampling_factor(self) -> int:
        """Image sides must be multiples of this (CompressAI pads to it)."""
        return self.z_stride or self.y_stride

    @property
    def entropy_prefixes(self) -> tuple[str, ...]:
        return ("entropy_bottleneck", "gaussian_conditional") if self.gaussian else ("entropy_bottleneck",)


_HYPER = ("g_a", "g_s", "h_a", "h_s")
_CONTEXT = (*_HYPER, "context_prediction", "entropy_parameters")
SPECS: dict[str, ArchSpec] = {s.name: s for s in (
    ArchSpec("bmshj2018-factorized", ("g_a", "g_s"), False, False, False, False, 16, None),
    ArchSpec("bmshj2018-hyperprior", _HYPER, True, False, True, False, 16, 64),
    ArchSpec("mbt2018-mean", _HYPER, True, True, False, False, 16, 64),
    ArchSpec("mbt2018", _CONTEXT, True, True, False, True, 16, 64),
    ArchSpec("cheng2020-anchor", _CONTEXT, True, True, False, True, 16, 64),
    ArchSpec("cheng2020-attn", _CONTEXT, True, True, False, True, 16, 64),
)}
ARCHITECTURES: tuple[str, ...] = tuple(SPECS)


def _gdn_analysis(n: int, m: int) -> nn.Sequential:
    """Four 5×5 stride-2 convolutions with GDN between them (bmshj2018 and mbt2018 alike)."""
    return nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m))


def _gdn_synthesis(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
                         deconv(n, n), GDN(n, inverse=True), deconv(n, 3))


def _cheng_networks(n: int, attention: bool) -> dict[str, nn.Module]:
    g_a = [ResidualBlockWithStride(3, n), ResidualBlock(n, n), ResidualBlockWithStride(n, n),
           ResidualBlock(n, n), ResidualBlockWithStride(n, n), ResidualBlock(n, n), conv3x3(n, n, stride=2)]
    g_s = [ResidualBlock(n, n), ResidualBlockUpsample(n, n), ResidualBlock(n, n), ResidualBlockUpsample(n, n),
           ResidualBlock(n, n), ResidualBlockUpsample(n, n), ResidualBlock(n, n), subpel_conv3x3(n, 3, 2)]
    if attention:   # after the second stage and at the end of g_a; at the start and before the last stage of g_s
        g_a[3:3] = [AttentionBlock(n)]
        g_a.append(AttentionBlock(n))
        g_s[0:0] = [AttentionBlock(n)]
        g_s[5:5] = [AttentionBlock(n)]
    lrelu = nn.LeakyReLU
    h_a = nn.Sequential(conv3x3(n, n), lrelu(), conv3x3(n, n), lrelu(), conv3x3(n, n, stride=2), lrelu(),
                        conv3x3(n, n), lrelu(), conv3x3(n, n, stride=2))
    h_s = nn.Sequential(conv3x3(n, n), lrelu(), subpel_conv3x3(n, n, 2), lrelu(), conv3x3(n, n * 3 // 2), lrelu(),
                        subpel_conv3x3(n * 3 // 2, n * 3 // 2, 2), lrelu(), conv3x3(n * 3 // 2, n * 2))
    return {"g_a": nn.Sequential(*g_a), "g_s": nn.Sequential(*g_s), "h_a": h_a, "h_s": h_s}


def _context_networks(m: int) -> dict[str, nn.Module]:
    return {"context_prediction": MaskedConv2d(m, 2 * m, kernel_size=5, padding=2),
            "entropy_parameters": nn.Sequential(nn.Conv2d(m * 12 // 3, m * 10 // 3, 1), nn.LeakyReLU(),
                                                nn.Conv2d(m * 10 // 3, m * 8 // 3, 1), nn.LeakyReLU(),
                                                nn.Conv2d(m * 8 // 3, m * 6 // 3, 1))}


def build_networks(arch: str, n: int, m: int) -> dict[str, nn.Module]:
    """Freshly initialised transforms of `arch` (cheng2020 has M = N; its m must equal n)."""
    if arch not in SPECS:
        raise OptionError(f"unknown CompressAI architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    if arch.startswith("cheng2020"):
        if m != n:
            raise OptionError(f"{arch} has M = N, got N={n}, M={m}")
        return {**_cheng_networks(n, attention=arch == "cheng2020-attn"), **_context_networks(m)}
    nets: dict[str, nn.Module] = {"g_a": _gdn_analysis(n, m), "g_s": _gdn_synthesis(n, m)}
    if arch == "bmshj2018-hyperprior":
        nets["h_a"] = nn.Sequential(conv(m, n, 3, 1), nn.ReLU(), conv(n, n), nn.ReLU(), conv(n, n))
        nets["h_s"] = nn.Sequential(deconv(n, n), nn.ReLU(), deconv(n, n), nn.ReLU(), conv(n, m, 3, 1), nn.ReLU())
    elif arch in ("mbt2018-mean", "mbt2018"):
        lrelu = nn.LeakyReLU
        nets["h_a"] = nn.Sequential(conv(m, n, 3, 1), lrelu(), conv(n, n), lrelu(), conv(n, n))
        nets["h_s"] = nn.Sequential(deconv(n, m), lrelu(), deconv(m, m * 3 // 2), lrelu(),
                                    conv(m * 3 // 2, m * 2, 3, 1))
        if arch == "mbt2018":
            nets.update(_context_networks(m))
    return nets


def plain_state_dict(obj: object) -> dict[str, torch.Tensor]:
    """The model's own state dict out of what torch.load returned: a bare state dict (the zoo's files)
    or CompressAI's training checkpoint {"state_dict": ..., "epoch": ..., ...}; keys lose the
    "module." prefix DataParallel adds, and the older names CompressAI itself still renames on
    loading (`.downsample.` in residual blocks, `entropy_bottleneck._matrix0`/`_matrices.0` style)
    take their 1.2.8 form."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise OptionError(f"not a model checkpoint: expected a mapping of parameter names to tensors, "
                          f"found {type(obj).__name__}")
    plain: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise OptionError(f"not a model checkpoint: entry {key!r} is a {type(value).__name__}, "
                              f"expected parameter names mapped to tensors")
        name = _current_name(key.removeprefix("module."))
        if name in plain:
            raise OptionError(f"not a model checkpoint: {name} appears twice (with and without 'module.')")
        plain[name] = value
    return plain


_OLD_DENSITY = re.compile(r"^entropy_bottleneck\._(matri|bias|factor)(?:ces|es|s|x)?\.?(\d+)$")
_DENSITY_LISTS = {"matri": "matrices", "bias": "biases", "factor": "factors"}


def _current_name(key: str) -> str:
    key = key.replace(".downsample.", ".skip.")
    old = _OLD_DENSITY.match(key)
    return f"entropy_bottleneck.{_DENSITY_LISTS[old[1]]}.{old[2]}" if old else key


def _shape(t: torch.Tensor | torch.Size) -> str:
    return "×".join(map(str, t.shape if isinstance(t, torch.Tensor) else t)) or "scalar"


def _require(state: Mapping[str, torch.Tensor], what: str, *keys: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise OptionError(f"not a CompressAI {what} checkpoint: no {missing[0]}")


def _identify(state: Mapping[str, torch.Tensor]) -> tuple[str, int, int]:
    """The table of key patterns: which keys (and, for the two hyperpriors, which h_s width) mark each
    architecture, and where N and M are read."""
    if "g_a.0.conv1.weight" in state:   # residual blocks in g_a: cheng2020
        arch = "cheng2020-attn" if "g_a.3.conv_a.0.conv.0.weight" in state else "cheng2020-anchor"
        n = state["g_a.0.conv1.weight"].shape[0]
        return arch, n, n
    if "g_a.0.weight" not in state:
        raise OptionError("not a CompressAI image model: g_a.0 is neither a convolution (g_a.0.weight) "
                          "nor a residual block (g_a.0.conv1.weight)")
    _require(state, "image model", "g_a.6.weight")
    n, m = state["g_a.0.weight"].shape[0], state["g_a.6.weight"].shape[0]
    if "context_prediction.weight" in state:
        return "mbt2018", n, m
    if not any(k.startswith("h_s.") for k in state):
        return "bmshj2018-factorized", n, m
    _require(state, "hyperprior", "h_s.4.weight")
    h_s_out = state["h_s.4.weight"].shape[0]   # scales only (M) or scales and means (2M)
    if h_s_out not in (m, 2 * m):
        raise OptionError(f"not a CompressAI hyperprior checkpoint: h_s.4.weight has {h_s_out} outputs, "
                          f"expected M={m} (bmshj2018-hyperprior) or 2M={2 * m} (mbt2018-mean)")
    return ("mbt2018-mean" if h_s_out == 2 * m else "bmshj2018-hyperprior"), n, m


def expected_shapes(arch: str, n: int, m: int) -> dict[str, torch.Size]:
    """Every transform key of `arch` with its shape; built on the meta device, so no weights are made."""
    with torch.device("meta"):
        nets = build_networks(arch, n, m)
    return {f"{name}.{key}": t.shape for name, net in nets.items() for key, t in net.state_dict().items()}


def recognise(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, int, int]:
    """(architecture, N, M) of a plain state dict (see `plain_state_dict`), after checking that every
    transform key is present with the shape that architecture gives it, that the entropy models'
    entries are there, and that nothing else is."""
    if not any(k.startswith("g_a.") for k in state_dict):
        raise OptionError("not a CompressAI image model: no g_a.* keys "
                          "(expected g_a, g_s and entropy_bottleneck weights)")
    arch, n, m = _identify(state_dict)
    spec = SPECS[arch]
    label = f"{arch} (N={n}, M={m})"
    expected = expected_shapes(arch, n, m)
    missing = [k for k in expected if k not in state_dict]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise OptionError(f"not a complete CompressAI {label} checkpoint: no {missing[0]}{more}")
    for key, shape in expected.items():
        if state_dict[key].shape != shape:
            raise OptionError(f"not a CompressAI {label} checkpoint: {key} is {_shape(state_dict[key])}, "
                              f"expected {_shape(shape)}")
    for prefix in spec.entropy_prefixes:
        if not any(k.startswith(prefix + ".") for k in state_dict):
            raise OptionError(f"not a complete CompressAI {label} checkpoint: no {prefix}.* entries")
    allowed = spec.networks + spec.entropy_prefixes
    extra = [k for k in state_dict if k not in expected and k.split(".")[0] not in spec.entropy_prefixes]
    if extra:
        raise OptionError(f"not a CompressAI {label} checkpoint: unexpected key {extra[0]} "
                          f"(expected only {', '.join(p + '.*' for p in allowed)})")
    return arch, n, m


def load_networks(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, int, int, dict[str, nn.Module]]:
    """Recognise a plain state dict and load its transforms into freshly built networks (strict)."""
    arch, n, m = recognise(state_dict)
    nets = build_networks(arch, n, m)
    for name, net in nets.items():
        net.load_state_dict({k[len(name) + 1:]: v for k, v in state_dict.items() if k.startswith(name + ".")})
    return arch, n, m, nets
