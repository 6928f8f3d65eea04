"""The learned model catalog: shipped models, remembered imports, their labels; without torch."""

import json
import subprocess
import sys

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
    assert catalog.model_choices()[-1] == ("bmshj2018.pth.tar", str(ckpt))
    ckpt.unlink()                                                  # a file gone since is not offered
    assert all(v != str(ckpt) for _, v in catalog.model_choices())
    (tmp_path / "cfg" / "workbench" / "models.json").write_text("{broken")
    assert catalog.remembered_models() == []


def test_the_catalog_does_not_import_torch():
    code = "import sys; from workbench.core.learned import catalog; catalog.model_choices(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
