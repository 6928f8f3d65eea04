"""CompressAI checkpoints opened as learned codecs: both checkpoint forms, all six architectures coded
through our container and decoded to what the encoder reconstructed, the tools each allows, and
one-line refusals of checkpoints that are not what they claim. The checkpoints are tiny ones with
CompressAI's key layout that the tests make themselves (CompressAI itself is only an opt-in oracle:
benchmarks/compressai_oracle.py)."""

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.core import container
from workbench.core.bench import plan_bench
from workbench.core.codecs import get_codec
from workbench.core.compress import compress_image
from workbench.core.errors import BitstreamError, OptionError
from workbench.core.learned.kinds import MODELS
from workbench.core.learned.kinds.compressai_nets import ARCHITECTURES
from workbench.core.learned.weights import load_codec_model

RGB = (np.indices((72, 88, 3)).sum(0) * 7 % 256).astype(np.uint8)


def compressai_state(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A checkpoint as CompressAI writes one after `update()`: our kind's parameters carry CompressAI's
    names, plus its coding buffers (which the loader ignores) and quantiles around a median."""
    torch.manual_seed(seed)
    n, m = (8, 8) if arch.startswith("cheng2020") else (8, 12)
    model = MODELS.get(arch)(n=n, m=m)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    eb = model.entropy_bottleneck
    state["entropy_bottleneck.quantiles"] = torch.tensor([-6.0, 0.3, 6.0]).repeat(eb.channels, 1, 1)
    state["entropy_bottleneck._offset"] = torch.zeros(eb.channels, dtype=torch.int32)
    state["entropy_bottleneck._quantized_cdf"] = torch.zeros(eb.channels, 20, dtype=torch.int32)
    state["entropy_bottleneck._cdf_length"] = torch.zeros(eb.channels, dtype=torch.int32)
    if arch != "bmshj2018-factorized":
        state["gaussian_conditional.scale_table"] = torch.exp(torch.linspace(np.log(0.11), np.log(256), 64))
        state["gaussian_conditional.scale_bound"] = torch.tensor([0.11])
    return state


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compressai")
    files = {}
    for arch in ARCHITECTURES:
        state = compressai_state(arch)
        bare = tmp / f"{arch}-3-0123abcd.pth.tar"          # the zoo's name and form: quality 3, MSE
        torch.save(state, bare)
        wrapped = tmp / f"{arch}-checkpoint_best_loss.pth.tar"       # the training example's form
        torch.save({"epoch": 4, "state_dict": {f"module.{k}": v for k, v in state.items()}, "loss": 0.5,
                    "optimizer": {"state": {}, "param_groups": []}}, wrapped)
        files[arch] = (bare, wrapped)
    return files


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_both_checkpoint_forms_code_and_decode_bit_exactly(checkpoints, arch):
    bare, wrapped = checkpoints[arch]
    a = compress_image(RGB, "learned", model=str(bare))
    b = compress_image(RGB, "learned", model=str(wrapped))
    assert a.reconstruction.shape == RGB.shape and np.array_equal(a.reconstruction, b.reconstruction)
    assert np.array_equal(get_codec("learned").decode(a.data), a.reconstruction)
    stream_bits = 8 * sum(len(s) for s in container.unpack(a.data).streams)    # what the estimate is of
    assert abs(stream_bits - a.estimated_bits) < 96 + 0.05 * a.estimated_bits
    cm = load_codec_model(str(bare))
    assert cm.model.name == arch and cm.info["quality"] == "3" and cm.info["metric"] == "mse"


def test_a_file_names_its_checkpoint_by_hash(checkpoints, tmp_path):
    bare, _ = checkpoints["mbt2018-mean"]
    data = compress_image(RGB, "learned", model=str(bare)).data
    other = tmp_path / bare.name                 # same name, other weights
    torch.save(compressai_state("mbt2018-mean", seed=1), other)
    from workbench.core.learned import weights
    own = weights._BY_HASH.pop(load_codec_model(str(bare)).sha256)
    try:
        load_codec_model(str(other))
        with pytest.raises(BitstreamError, match="needs the learned model"):
            get_codec("learned").decode(data)
    finally:
        weights._BY_HASH[own.sha256] = own


def test_tools_each_architecture_allows(checkpoints):
    mean, _ = checkpoints["mbt2018-mean"]
    for tools in ({"quantizer": "tcq8"}, {"optimize": 3}):       # λ known from the zoo name
        r = compress_image(RGB, "learned", model=str(mean), **tools)
        assert np.array_equal(get_codec("learned").decode(r.data), r.reconstruction)
    _, unnamed = checkpoints["mbt2018-mean"]
    with pytest.raises(OptionError, match="needs the λ"):
        compress_image(RGB, "learned", model=str(unnamed), quantizer="rdoq")
    ar, _ = checkpoints["mbt2018"]
    with pytest.raises(OptionError, match="round only"):
        compress_image(RGB, "learned", model=str(ar), quantizer="tcq8")
    factorized, _ = checkpoints["bmshj2018-factorized"]
    with pytest.raises(OptionError, match="optimization is not available"):
        compress_image(RGB, "learned", model=str(factorized), optimize=2)


def test_optimized_latents_of_an_autoregressive_checkpoint_decode_serially_to_the_encoders_pixels(checkpoints):
    bare, _ = checkpoints["mbt2018"]         # cheng2020's kinds share its coder and surrogate
    events = []
    from workbench.core.compress import compress_job
    from workbench.core.jobs import run
    codec = get_codec("learned")
    r = run(compress_job(RGB, "learned", codec.options(model=str(bare), optimize=3)), events.append)
    assert [e.step for e in events] == [1, 2, 3] and "hard_bpp" in events[-1].metrics
    assert np.array_equal(codec.decode(r.data), r.reconstruction)


def test_malformed_checkpoints_get_one_line_errors(checkpoints, tmp_path):
    state = compressai_state("mbt2018-mean")
    cases = {
        "missing.pth": {k: v for k, v in state.items() if k != "g_s.0.weight"},
        "shape.pth": {**state, "entropy_bottleneck.matrices.0": torch.zeros(3, 3, 1)},
        "notimage.pt": {"fc.weight": torch.zeros(3, 3)},
    }
    for name, obj in cases.items():
        torch.save(obj, tmp_path / name)
    (tmp_path / "code.pth").write_bytes(b"\x80\x04cos\nsystem\n(S'echo pwned'\ntR.")   # a pickle that runs code
    for name in (*cases, "code.pth"):
        with pytest.raises(OptionError) as err:
            load_codec_model(str(tmp_path / name))
        assert "\n" not in str(err.value) and len(str(err.value)) < 300, str(err.value)


def test_a_folder_of_zoo_checkpoints_is_one_model_whose_quality_picks_the_file(tmp_path):
    for q in (1, 2):
        torch.save(compressai_state("bmshj2018-hyperprior", seed=q), tmp_path / f"bmshj2018-hyperprior-{q}-00ff00ff.pth.tar")
    names = [container.unpack(compress_image(RGB, "learned", model=str(tmp_path), quality=q).data).params["model"]
             for q in (1, 2)]
    assert names == ["bmshj2018-hyperprior-1-00ff00ff.pth.tar", "bmshj2018-hyperprior-2-00ff00ff.pth.tar"]
    with pytest.raises(OptionError, match="qualities 1, 2, not 5"):
        compress_image(RGB, "learned", model=str(tmp_path), quality=5)


def test_a_sweep_codes_each_rate_point_of_a_checkpoint_once(checkpoints, tmp_path):
    """One checkpoint is one rate point (eight qualities would code one file eight times); a zoo folder
    sweeps the qualities it has, not 1..8 (the others would fail)."""
    image = tmp_path / "img.png"
    Image.fromarray(RGB).save(image)
    single = plan_bench([image], [f"learned:model={checkpoints['mbt2018-mean'][1]}"])
    assert [t.quality for t in single.tasks] == [1]
    folder = tmp_path / "zoo"
    folder.mkdir()
    for q in (2, 5):
        torch.save(compressai_state("bmshj2018-hyperprior", seed=q), folder / f"bmshj2018-hyperprior-{q}-00ff00ff.pth.tar")
    assert [t.quality for t in plan_bench([image], [f"learned:model={folder}"]).tasks] == [2, 5]
    assert len(plan_bench([image], ["learned"]).tasks) == 8


@pytest.mark.parametrize("arch,quantizer", [("bmshj2018-hyperprior", "rdoq"), ("mbt2018-mean", "tcq8"),
                                            ("mbt2018", "round")])
def test_finetuned_decoder_of_a_checkpoint_is_a_model_file_that_codes_bit_exactly(arch, quantizer, tmp_path):
    """Only g_s and the reconstruction offsets move; the encoder, its tables and so the rounded streams are
    the checkpoint's exactly, and files of the new model (offsets applied, for the autoregressive model
    behind its context) decode to what its encoder reconstructed."""
    import shutil
    from pathlib import Path

    from workbench.core.images import load_image
    from workbench.core.jobs import run
    from workbench.core.learned.finetune import FinetuneOptions, finetune_job
    from workbench.core.learned.weights import export_checkpoint
    data = Path(__file__).parent / "data"
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(data / "chapel_192x176.png", images / "a.png")
    shutil.copy(data.parents[1] / "resources" / "samples" / "endeavour.png", images / "b.png")
    state = compressai_state(arch)
    last = max((k for k in state if k.startswith("g_a.") and k.endswith(".weight")),
               key=lambda k: int(k.split(".")[1]))
    state[last] = state[last] * 40           # latents large enough that rounding leaves nonzero levels
    bare, wrapped = tmp_path / f"{arch}-3-0123abcd.pth.tar", tmp_path / f"{arch}-checkpoint.pth.tar"
    torch.save(state, bare)
    torch.save({"state_dict": state}, wrapped)
    opts = FinetuneOptions(model=str(bare), quantizer=quantizer, steps=2, batch=2, crop=64, crops_per_image=2,
                           validate_every=2, checkpoint_every=2, lr=1e-3, offset_lr=0.05)
    events = []
    tuned = export_checkpoint(run(finetune_job(opts, [images], tmp_path / "ft"), events.append),
                              tmp_path / f"{arch}-ft.safetensors")
    assert events[-1].metrics["val_psnr"] != events[-1].metrics["val_psnr_base"]
    base_cm, tuned_cm = load_codec_model(str(bare)), load_codec_model(str(tuned))
    assert tuned_cm.model.name == arch and np.abs(tuned_cm.offsets[quantizer]).max() > 0
    a, b = base_cm.model.state_dict(), tuned_cm.model.state_dict()
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and all(k.startswith("g_s.") for k in changed)
    rgb = load_image(data / "chapel_192x176.png").rgb[:72, :88]
    fa = container.unpack(compress_image(rgb, "learned", model=str(bare)).data)
    fb = container.unpack(compress_image(rgb, "learned", model=str(tuned)).data)
    assert fa.streams == fb.streams and fa.model_hash != fb.model_hash
    r = compress_image(rgb, "learned", model=str(tuned), quantizer=quantizer)
    assert np.array_equal(get_codec("learned").decode(r.data), r.reconstruction)
    if arch == "mbt2018-mean":         # λ is what the zoo's name says; without it only rounding can be finetuned
        with pytest.raises(OptionError, match="λ"):
            run(finetune_job(FinetuneOptions(**{**opts.__dict__, "model": str(wrapped)}), [images], tmp_path / "x"))
        rounded = run(finetune_job(FinetuneOptions(**{**opts.__dict__, "model": str(wrapped), "quantizer": "round",
                                                      "steps": 1}), [images], tmp_path / "r"))
        unnamed = export_checkpoint(rounded, tmp_path / "unnamed-ft.safetensors")
        with pytest.raises(OptionError, match="needs the λ"):
            compress_image(rgb, "learned", model=str(unnamed), quantizer="tcq8")
    if arch == "mbt2018":
        with pytest.raises(OptionError, match="round only"):
            run(finetune_job(FinetuneOptions(**{**opts.__dict__, "quantizer": "tcq8"}), [images], tmp_path / "y"))
