"""The learned model catalog: shipped models, remembered imports, their labels; without torch."""

import json
import subprocess
import sys

import pytest

from workbench.core.errors import OptionError
from workbench.core.learned import catalog


def test_choices_name_each_model_by_its_metric_and_remember_imports(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    choices = dict((v, label) for label, v in catalog.model_choices())
    assert choices["dct-hyperprior-mse"] == "dct-hyperprior-mse (PSNR)"
    assert choices["dct-hyperprior-msssim"] == "dct-hyperprior-msssim (MS-SSIM)"
    ckpt = tmp_path / "bmshj2018.pth.tar"
    ckpt.write_bytes(b"whatever it holds is judged when it is used")
    assert catalog.remember_model(ckpt) == str(ckpt.resolve())
    catalog.remember_model(ckpt)                                   # once in the list, most recent first
    assert json.loads((tmp_path / "cfg" / "workbench" / "models.json").read_text())["models"] == [str(ckpt)]
    assert catalog.model_choices()[-1] == ("bmshj2018.pth.tar (CompressAI checkpoint)", str(ckpt))
    ckpt.unlink()                                                  # a file gone since is not offered
    assert all(v != str(ckpt) for _, v in catalog.model_choices())
    (tmp_path / "cfg" / "workbench" / "models.json").write_text("{broken")
    assert catalog.remembered_models() == []


def test_compressai_checkpoints_are_labelled_by_architecture_metric_and_quality(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    label = catalog.model_label
    assert label(str(tmp_path / "mbt2018-mean-3-0123abcd.pth.tar")) == "mbt2018-mean (CompressAI, PSNR, quality 3)"
    assert label(str(tmp_path / "cheng2020-attn-msssim-6-0123abcd.pth.tar")) == \
        "cheng2020-attn (CompressAI, MS-SSIM, quality 6)"
    assert label(str(tmp_path / "checkpoint_best_loss.pth.tar")) == "checkpoint_best_loss.pth.tar (CompressAI checkpoint)"
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for q in (1, 2, 3, 5):
        (zoo / f"bmshj2018-hyperprior-{q}-0123abcd.pth.tar").write_bytes(b"")
    assert label(str(zoo)) == "bmshj2018-hyperprior (CompressAI, PSNR, qualities 1, 2, 3, 5)"
    (zoo / "bmshj2018-hyperprior-5-0123abcd.pth.tar").unlink()
    assert label(str(zoo)) == "bmshj2018-hyperprior (CompressAI, PSNR, qualities 1–3)"
    catalog.remember_model(zoo)                                    # a zoo folder is offered like a file
    assert catalog.model_choices()[-1] == ("bmshj2018-hyperprior (CompressAI, PSNR, qualities 1–3)", str(zoo))
    assert catalog.zoo_folder(tmp_path / "cfg") is None            # no zoo files: an ordinary folder
    (zoo / "mbt2018-2-0123abcd.pth.tar").write_bytes(b"")
    with pytest.raises(OptionError, match="one architecture and metric.*found bmshj2018-hyperprior"):
        catalog.zoo_folder(zoo)


def test_the_catalog_does_not_import_torch():
    code = "import sys; from workbench.core.learned import catalog; catalog.model_choices(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_a_decoder_finetuned_for_a_trellis_quantizer_says_so_in_its_label():
    assert catalog.model_label("dct-checkerboard-mse-tcq") == "dct-checkerboard-mse-tcq (PSNR, decoder for tcq8)"
    assert catalog.model_label("dct-checkerboard-msssim") == "dct-checkerboard-msssim (MS-SSIM)"
