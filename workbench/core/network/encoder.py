"""Transformer encoders in a Hugging Face folder (BERT layout): their forward pass, a fidelity task,
and a synthetic test network.

Why the workbench runs BERT itself: compression of a transformer can only be judged by what its
outputs become, and the `transformers` package is not a dependency. A BERT encoder is a few matrix
products over the state dict, read with the Hugging Face key names (`encoder.layer.N.attention.self.
query.weight`, optionally under `bert.`) and the `config.json` fields, so a real BERT folder and the
test network below run through the same code.

Fidelity is the output cosine: the mean over tokens of the cosine between the final hidden states of
the float32 model and of the compressed one, on random token ids (no tokenizer or text is needed;
`EncoderTask` draws them from a fixed seed, so before/after compare the same inputs).

`make_test_encoder` builds a network of transformer size here, with no download: BERT's
initialisation (N(0, 0.02)) but heavy-tailed (Student t, 4 degrees of freedom) and with a few
"outlier" hidden dimensions, large in every layer's residual writes and LayerNorm gains, as trained
transformers have: the case where one step per tensor from max |w| breaks. It is not trained.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from workbench.core.network.checkpoint import StateDict, save_checkpoint
from workbench.core.network.sensitivity import fast_probes


@dataclass(frozen=True)
class EncoderConfig:
    vocab_size: int = 8192
    hidden_size: int = 512
    num_hidden_layers: int = 8
    num_attention_heads: int = 8
    intermediate_size: int = 2048
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def read(cls, folder: Path) -> "EncoderConfig | None":
        """The folder's config.json as a BERT configuration, or None when it describes something else."""
        f = Path(folder) / "config.json"
        if not f.is_file() or f.stat().st_size > 1 << 20:
            return None
        try:
            raw = json.loads(f.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            return None
        if not isinstance(raw, dict) or raw.get("model_type") != "bert" or raw.get("hidden_act", "gelu") != "gelu":
            return None
        try:
            return cls(**{k: type(v)(raw[k]) for k, v in asdict(cls()).items() if k in raw})
        except (TypeError, ValueError):
            return None

    def to_json(self) -> str:
        return json.dumps({"model_type": "bert", "architectures": ["BertModel"], "hidden_act": "gelu",
                           **asdict(self)}, indent=1)


def expected_shapes(cfg: EncoderConfig) -> dict[str, tuple[int, ...]]:
    H, I = cfg.hidden_size, cfg.intermediate_size
    s = {"embeddings.word_embeddings.weight": (cfg.vocab_size, H),
         "embeddings.position_embeddings.weight": (cfg.max_position_embeddings, H),
         "embeddings.token_type_embeddings.weight": (cfg.type_vocab_size, H),
         "embeddings.LayerNorm.weight": (H,), "embeddings.LayerNorm.bias": (H,)}
    for i in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{i}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            s[p + m + ".weight"], s[p + m + ".bias"] = (H, H), (H,)
        s[p + "intermediate.dense.weight"], s[p + "intermediate.dense.bias"] = (I, H), (I,)
        s[p + "output.dense.weight"], s[p + "output.dense.bias"] = (H, I), (H,)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            s[p + ln + ".weight"], s[p + ln + ".bias"] = (H,), (H,)
    return s


def _prefix(state: StateDict) -> str:
    return "bert." if "bert.embeddings.word_embeddings.weight" in state else ""


def matches(state: StateDict, cfg: EncoderConfig) -> bool:
    pre = _prefix(state)
    return all(tuple(state.get(pre + k, torch.empty(0)).shape) == v for k, v in expected_shapes(cfg).items())


def forward(state: StateDict, cfg: EncoderConfig, ids: torch.Tensor) -> torch.Tensor:
    """Final hidden states (batch, tokens, hidden) of BERT for token ids (batch, tokens)."""
    pre = _prefix(state)

    def w(k: str) -> torch.Tensor:
        return state[pre + k].float()

    def ln(x, k):
        return F.layer_norm(x, x.shape[-1:], w(k + ".weight"), w(k + ".bias"), cfg.layer_norm_eps)

    def lin(x, k):
        return F.linear(x, w(k + ".weight"), w(k + ".bias"))

    B, T = ids.shape
    x = (w("embeddings.word_embeddings.weight")[ids] + w("embeddings.position_embeddings.weight")[:T]
         + w("embeddings.token_type_embeddings.weight")[0])
    x = ln(x, "embeddings.LayerNorm")
    nh = cfg.num_attention_heads
    hd = cfg.hidden_size // nh
    for i in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{i}."

        def heads(t):
            return t.view(B, T, nh, hd).transpose(1, 2)

        q, k, v = (heads(lin(x, p + "attention.self." + m)) for m in ("query", "key", "value"))
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, cfg.hidden_size)
        x = ln(x + lin(a, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        h = F.gelu(lin(x, p + "intermediate.dense"))
        x = ln(x + lin(h, p + "output.dense"), p + "output.LayerNorm")
    return x


class EncoderTask:
    """Fidelity of a compressed BERT encoder: output cosine against the float32 model on random token
    ids. `accuracy` keeps the digits task's name so the compression job reports it the same way."""

    name = "encoder"
    metric = "output cosine"

    def __init__(self, reference: StateDict, cfg: EncoderConfig, batch: int = 4, tokens: int = 128, seed: int = 1):
        self.cfg = cfg
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(cfg.vocab_size, (batch, min(tokens, cfg.max_position_embeddings)), generator=g)
        with torch.no_grad():
            self.ref = forward(reference, cfg, self.ids)

    def probe(self, params: StateDict, generator: torch.Generator) -> torch.Tensor:
        """A random projection of the outputs, whose squared gradients estimate diag(JᵀJ)."""
        with fast_probes():
            out = forward(params, self.cfg, self.ids)
        return (out * torch.randn(out.shape, generator=generator)).sum()

    def probes(self, params: StateDict, generator: torch.Generator, n: int):
        """`n` probes from one forward pass (the token ids are fixed): the values of n calls of `probe`, for
        the cost of one forward pass instead of n (the caller backpropagates with `retain_graph`)."""
        with fast_probes():
            out = forward(params, self.cfg, self.ids)
        for _ in range(n):
            yield (out * torch.randn(out.shape, generator=generator)).sum()

    @torch.no_grad()
    def accuracy(self, state: StateDict) -> float:
        out = forward(state, self.cfg, self.ids)
        return float(F.cosine_similarity(out, self.ref, dim=-1).mean())


CALIBRATION_SEED = 2
"""Calibration draws other token ids than the fidelity task (seed 1): steps are not fitted to the test."""


def task_for_folder(path: str | Path, state: StateDict, seed: int = 1, batch: int = 4) -> EncoderTask | None:
    """The fidelity task of a Hugging Face BERT folder whose tensors are `state`, else None; with
    `seed=CALIBRATION_SEED`, the calibration source (random token ids through its forward pass)."""
    p = Path(path)
    cfg = EncoderConfig.read(p) if p.is_dir() else None
    if cfg is None or not matches(state, cfg):
        return None
    return EncoderTask(state, cfg, batch=batch, seed=seed)


def make_test_encoder(cfg: EncoderConfig = EncoderConfig(), seed: int = 0, outlier_dims: int = 4) -> StateDict:
    """A synthetic BERT encoder with heavy-tailed weights and outlier dimensions (see the module
    docstring). Deterministic for a seed."""
    g = torch.Generator().manual_seed(seed)

    def heavy(*shape):
        return _student_t(shape, g) * (0.02 / math.sqrt(2.0))    # t with 4 dof has variance 2

    H = cfg.hidden_size
    dims = torch.randperm(H, generator=g)[:outlier_dims]
    state: StateDict = {}
    for k, shape in expected_shapes(cfg).items():
        if k.endswith("LayerNorm.weight"):
            v = 1.0 + 0.05 * torch.randn(shape, generator=g)
            v[dims] *= 6.0
        elif k.endswith(".bias"):
            v = 0.02 * torch.randn(shape, generator=g)
        else:
            v = heavy(*shape)
            if k.endswith("output.dense.weight"):       # attention and FFN outputs: the residual stream
                v[dims] *= 10.0
        state[k] = v.float().contiguous()
    return state


def _student_t(shape, g: torch.Generator, dof: int = 4) -> torch.Tensor:
    """Student t samples from a generator: a normal over the root of a chi-square / dof."""
    z = torch.randn(shape, generator=g)
    chi2 = torch.randn((dof, *shape), generator=g).pow(2).sum(0)
    return z / torch.sqrt(chi2 / dof)


def save_folder(state: StateDict, cfg: EncoderConfig, folder: str | Path) -> Path:
    """A Hugging Face-style folder: config.json and model.safetensors."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(cfg.to_json() + "\n", encoding="utf-8")
    save_checkpoint(state, d / "model.safetensors")
    return d

