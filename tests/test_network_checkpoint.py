"""Safe checkpoint loading: code in a pickle never runs; safetensors and HF folders load."""

import os
import pickle

import pytest
import torch

from workbench.core.network.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, state_hash, tensor_table


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("via_torch", [False, True])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, via_torch):
    marker = tmp_path / "side_effect"
    ckpt = tmp_path / "evil.pt"
    payload = {"w": torch.ones(2), "x": _Evil(marker)}
    if via_torch:
        torch.save(payload, ckpt)
    else:
        ckpt.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match="refers to code"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_pt_safetensors_and_hf_folder_round_trip(tmp_path):
    sd = {"a.weight": torch.randn(3, 4), "a.bias": torch.randn(3).half(), "n": torch.tensor(7),
          "e": torch.randn(2, 2).to(torch.bfloat16)}
    save_checkpoint(sd, tmp_path / "m.pt")
    (tmp_path / "hf").mkdir()
    save_checkpoint(sd, tmp_path / "hf" / "model.safetensors")
    for src in (tmp_path / "m.pt", tmp_path / "hf" / "model.safetensors", tmp_path / "hf"):
        back = load_checkpoint(src)
        assert list(back) == list(sd) or set(back) == set(sd)
        for k in sd:
            assert back[k].dtype == sd[k].dtype and torch.equal(back[k], sd[k])
        assert state_hash({k: back[k] for k in sd}) == state_hash(sd)


def test_nested_state_dict_is_flattened_and_junk_reported(tmp_path):
    torch.save({"state_dict": {"w": torch.ones(2, 2)}, "epoch": 3}, tmp_path / "c.pt")
    notes = []
    assert list(load_checkpoint(tmp_path / "c.pt", notes=notes)) == ["state_dict.w"]
    assert notes and "epoch" in notes[0]


def test_bad_inputs_give_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(tmp_path / "empty")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.safetensors")


def test_tensor_table():
    rows = tensor_table({"w": torch.tensor([[1.0, -3.0]]), "b": torch.zeros(2)})
    assert rows[0].parameters == 2 and rows[0].abs_max == 3.0 and rows[0].shape == (1, 2)
