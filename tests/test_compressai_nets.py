"""CompressAI-layout transforms: recognising checkpoints by keys and shapes, refusing damaged ones.

The oracle test at the end compares against CompressAI 1.2.8 itself; it is opt-in (marker
`compressai_oracle`) and skips where compressai cannot be imported through /root/oracle/stub.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from workbench.core.errors import OptionError
from workbench.core.learned.kinds.compressai_layers import GDN, MaskedConv2d
from workbench.core.learned.kinds.compressai_nets import (ARCHITECTURES, SPECS, build_networks, load_networks,
                                                          plain_state_dict, recognise)


def sizes(arch: str) -> tuple[int, int]:
    return (8, 8) if arch.startswith("cheng2020") else (8, 12)


def checkpoint(arch: str) -> dict[str, torch.Tensor]:
    """A state dict with CompressAI's layout: the transforms' own entries plus entropy-model entries."""
    torch.manual_seed(0)
    n, m = sizes(arch)
    state = {f"{name}.{k}": v for name, net in build_networks(arch, n, m).items() for k, v in net.state_dict().items()}
    channels = m if arch == "bmshj2018-factorized" else n
    state["entropy_bottleneck.quantiles"] = torch.zeros(channels, 1, 3)
    state["entropy_bottleneck._offset"] = torch.zeros(0, dtype=torch.int32)
    if SPECS[arch].gaussian:
        state["gaussian_conditional.scale_table"] = torch.zeros(0)
    return state


def one_line_error(state) -> str:
    with pytest.raises(OptionError) as err:
        recognise(state)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_recognise_finds_architecture_and_sizes(arch):
    assert recognise(checkpoint(arch)) == (arch, *sizes(arch))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_networks_have_compressai_strides(arch):
    n, m = sizes(arch)
    nets = build_networks(arch, n, m)
    spec = SPECS[arch]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y = nets["g_a"](x)
        assert y.shape == (1, m, 64 // spec.y_stride, 64 // spec.y_stride)
        assert nets["g_s"](y).shape == x.shape
        if spec.z_stride:
            z = nets["h_a"](y.abs() if spec.abs_y_into_h_a else y)
            assert z.shape == (1, n, 64 // spec.z_stride, 64 // spec.z_stride)
            params = nets["h_s"](z)
            assert params.shape == (1, 2 * m if spec.means else m, *y.shape[2:])
        if spec.context:
            ctx = nets["context_prediction"](y)
            assert nets["entropy_parameters"](torch.cat((params, ctx), 1)).shape == (1, 2 * m, *y.shape[2:])


def test_wrappers_and_old_names_are_accepted():
    state = checkpoint("cheng2020-anchor")
    wrapped = {"epoch": 3, "loss": 0.5, "optimizer": {"state": {}},
               "state_dict": {"module." + k: v for k, v in state.items()}}
    assert plain_state_dict(wrapped) == state
    old = {k.replace(".skip.", ".downsample."): v for k, v in state.items()}
    old["entropy_bottleneck._matrix0"] = old["entropy_bottleneck._biases.1"] = torch.zeros(1)
    plain = plain_state_dict(old)
    assert "entropy_bottleneck.matrices.0" in plain and "entropy_bottleneck.biases.1" in plain
    assert recognise(plain_state_dict(wrapped)) == ("cheng2020-anchor", 8, 8)


@pytest.mark.parametrize("obj", [[1, 2], {"g_a.0.weight": [1.0]}, {3: torch.zeros(1)}, {"state_dict": "x"}])
def test_plain_state_dict_refuses_non_tensor_mappings(obj):
    with pytest.raises(OptionError, match="not a model checkpoint"):
        plain_state_dict(obj)


def test_damaged_checkpoints_get_one_line_errors():
    assert "no g_a.* keys" in one_line_error({"encoder.weight": torch.zeros(1)})
    state = checkpoint("mbt2018")
    del state["g_s.3.gamma_reparam.lower_bound.bound"]
    assert "no g_s.3.gamma_reparam.lower_bound.bound" in one_line_error(state)
    state = checkpoint("mbt2018-mean")
    state["g_s.2.weight"] = torch.zeros(8, 8, 3, 3)
    assert "g_s.2.weight is 8×8×3×3, expected 8×8×5×5" in one_line_error(state)
    state = checkpoint("bmshj2018-hyperprior")
    del state["gaussian_conditional.scale_table"]
    assert "no gaussian_conditional.*" in one_line_error(state)
    state = checkpoint("cheng2020-attn")
    state["g_a.9.weight"] = torch.zeros(1)
    assert "unexpected key g_a.9.weight" in one_line_error(state)
    state = checkpoint("mbt2018-mean")
    state["h_s.4.weight"] = torch.zeros(5, 18, 3, 3)
    assert "expected M=12" in one_line_error(state)


def test_load_networks_restores_weights():
    state = checkpoint("mbt2018")
    arch, n, m, nets = load_networks(state)
    assert (arch, n, m) == ("mbt2018", 8, 12)
    assert torch.equal(nets["h_s"][4].weight, state["h_s.4.weight"])
    assert torch.equal(nets["context_prediction"].mask, state["context_prediction.mask"])


def test_masked_convolution_is_causal():
    conv = MaskedConv2d(2, 3, kernel_size=5, padding=2)
    x = torch.zeros(1, 2, 7, 7)
    x[0, :, 3, 3:] = 1.0      # the centre and everything after it in raster order
    x[0, :, 4:] = 1.0
    with torch.no_grad():
        assert torch.equal(conv(x)[0, :, 3, 3], conv.bias)


def test_gdn_then_inverse_gdn_with_identity_weights():
    """With beta = 1 and gamma = 0, GDN divides by 1: both directions leave x unchanged."""
    gdn, igdn = GDN(4), GDN(4, inverse=True)
    with torch.no_grad():
        for layer in (gdn, igdn):
            layer.gamma.zero_()
        x = torch.randn(2, 4, 3, 3)
        assert torch.allclose(gdn(x), x, atol=1e-6) and torch.allclose(igdn(x), x, atol=1e-6)


ORACLE = Path("/root/oracle")


def compressai_models():
    if not (ORACLE / "stub.py").exists():
        pytest.skip("no CompressAI oracle at /root/oracle")
    sys.path.insert(0, str(ORACLE))
    try:
        import stub  # noqa: F401  (stand-ins for torchvision)
        from compressai.zoo.image import model_architectures
    except ImportError as err:
        pytest.skip(f"compressai not importable: {err}")
    return model_architectures


@pytest.mark.compressai_oracle
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_networks_match_compressai(arch):
    models = compressai_models()
    n, m = (16, 16) if arch.startswith("cheng2020") else (16, 24)
    torch.manual_seed(1)
    theirs = models[arch](N=n) if arch.startswith("cheng2020") else models[arch](N=n, M=m)
    theirs.eval()
    with torch.no_grad():   # fresh GDNs and biases are too regular to tell layers apart
        for p in theirs.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = theirs.state_dict()
    assert recognise(plain_state_dict({"state_dict": state})) == (arch, n, m)
    ours = build_networks(arch, n, m)
    for name, net in ours.items():
        net.load_state_dict({k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}, strict=True)
        net.eval()
    expected_keys = {k for k in state if not k.startswith(("entropy_bottleneck.", "gaussian_conditional."))}
    assert expected_keys == {f"{name}.{k}" for name, net in ours.items() for k in net.state_dict()}

    x = torch.rand(1, 3, 128, 128)
    seen = {}
    if "h_a" in ours:   # what CompressAI's own forward pass feeds h_a: |y| or y
        theirs.h_a.register_forward_pre_hook(lambda module, args: seen.update(h_a=args[0]))
    with torch.no_grad():
        theirs(x)
        y = theirs.g_a(x)
        inputs = {"g_a": x, "g_s": y, "h_a": y.abs() if SPECS[arch].abs_y_into_h_a else y,
                  "context_prediction": y.round()}
        if "h_a" in ours:
            assert torch.equal(seen["h_a"], inputs["h_a"])
            inputs["h_s"] = theirs.h_a(inputs["h_a"]).round()
        if "entropy_parameters" in ours:
            context = theirs.context_prediction(y.round())
            inputs["entropy_parameters"] = torch.cat((theirs.h_s(inputs["h_s"]), context), 1)
        for name, net in ours.items():
            mine, reference = net(inputs[name]), getattr(theirs, name)(inputs[name])
            assert torch.allclose(mine, reference, rtol=1e-5, atol=1e-5), name
        for name in ("g_a", "g_s"):   # block by block, so a mismatch names the residual or attention block
            h = inputs[name]
            for i, (mine, reference) in enumerate(zip(ours[name], getattr(theirs, name))):
                assert type(mine).__name__.lstrip("_") == type(reference).__name__, f"{name}.{i}"
                out = reference(h)
                assert torch.allclose(mine(h), out, rtol=1e-5, atol=1e-5), f"{name}.{i}"
                h = out


@pytest.mark.compressai_oracle
@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_gradients_match_compressai(inverse):
    """Finetuning an imported decoder must move its GDN parameters as CompressAI's training did,
    including the lower bound's one-sided gradient."""
    compressai_models()
    from compressai.layers import GDN as TheirGDN
    torch.manual_seed(2)
    theirs, ours = TheirGDN(6, inverse=inverse), GDN(6, inverse=inverse)
    with torch.no_grad():
        theirs.gamma.add_(0.05 * torch.randn_like(theirs.gamma))   # some entries fall below the bound
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 6, 5, 5)
    weight = torch.randn(2, 6, 5, 5)   # mixed signs, so the gradient pushes both ways at the bound
    (theirs(x) * weight).sum().backward()
    (ours(x) * weight).sum().backward()
    for name in ("beta", "gamma"):
        assert torch.allclose(getattr(ours, name).grad, getattr(theirs, name).grad, rtol=1e-5, atol=1e-6), name
