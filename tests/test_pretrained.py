"""Shipped pretrained generators: registry, sha256 check, export, loading by name, model cards."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from srgan_edu import evaluate as evaluate_mod
from srgan_edu import pretrained as P
from srgan_edu import upscale as upscale_mod
from srgan_edu.checkpoint import CheckpointError, network_entry, save_checkpoint
from srgan_edu.cli import resolve_checkpoint
from srgan_edu.models import build_generator

ROOT = Path(__file__).resolve().parents[1]
SHARED_CELEBA = ROOT.parent / "shared" / "data" / "celeba_89x109"
SHIPPED = ROOT / "assets" / "checkpoints"
NAME = "srresnet_x4_celeba"


def _run_generator(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A small generator saved the way a training run saves ``srresnet.pt``."""
    G = build_generator(4, n_blocks=2, channels=16, seed=3).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        for m in G.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    path = save_checkpoint(
        {"kind": "generator", "generator": network_entry(G), "config": {"lr": 1e-4}, "step": 7},
        tmp_path / "srresnet.pt",
    )
    log = [{"step": 5, "loss/mse": 0.1}, {"step": 5, "phase": "srresnet", "val/psnr_y": 20.5}]
    (tmp_path / "log.jsonl").write_text("\n".join(map(json.dumps, log)) + '\n{"step": 7, "val')
    return path, G


@pytest.fixture
def exported(tmp_path, monkeypatch):
    """The small generator exported under NAME into tmp/shipped, registered with its sha256."""
    src, G = _run_generator(tmp_path)
    path, sha = P.export(src, NAME, tmp_path / "shipped")
    monkeypatch.setitem(P.PRETRAINED, NAME, dataclasses.replace(P.PRETRAINED[NAME], sha256=sha))
    monkeypatch.setenv(P.PRETRAINED_ENV, str(tmp_path / "shipped"))
    return path, G


def test_export_stores_float16_and_loads_by_name(exported):
    path, G = exported
    assert path.name == f"{NAME}.pt" and P.file_sha256(path) == P.PRETRAINED[NAME].sha256
    raw = torch.load(path, weights_only=True)  # a plain srgan_edu checkpoint, no code runs
    state = raw["generator"]["state_dict"]
    assert raw["label"] == "SRResNet" and raw["weights_dtype"] == "float16" and raw["step"] == 7
    assert raw["val_history"] == [{"step": 5, "phase": "srresnet", "val/psnr_y": 20.5}]
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert any(not v.is_floating_point() for v in state.values())  # BN's counter stays integer

    loaded = P.load_pretrained(NAME)
    assert not loaded.training
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = G(x * 2 - 1), loaded(x * 2 - 1)
    assert (want - got).abs().max() < 2e-2  # float16 rounding only
    assert (want - got).abs().max() > 0  # ...which is really there: the file holds float16
    assert resolve_checkpoint(NAME) == path


def test_damaged_or_missing_files_are_refused(exported, tmp_path):
    path, _ = exported
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"sha256 .* damaged .*git checkout"):
        P.load_pretrained(NAME)
    path.unlink()
    with pytest.raises(CheckpointError, match=r"is missing.*pip install -e"):
        P.pretrained_path(NAME)
    with pytest.raises(CheckpointError, match=r"Did you mean 'srresnet_x4_celeba'"):
        P.pretrained_path("srresnet_x4_celba")
    with pytest.raises(CheckpointError, match=r"not found.*srgan_vgg22_x4_celeba"):
        resolve_checkpoint(tmp_path / "nothing.pt")


def test_export_refuses_a_file_without_a_generator(tmp_path):
    bad = save_checkpoint({"kind": "other", "step": 1}, tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="holds no generator"):
        P.export(bad, NAME, tmp_path / "out")
    assert P.main(["export", str(bad), NAME, "--out", str(tmp_path / "out")]) == 2


def test_upscale_and_evaluate_accept_the_name(exported, tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(3):
        arr = (torch.rand(40, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(folder / f"{i}.png")
    out = tmp_path / "up"
    assert upscale_mod.main(["--checkpoint", NAME, str(folder / "0.png"), "--out", str(out)]) == 0
    assert Image.open(upscale_mod.output_path(folder / "0.png", out, 4)).size == (32 * 4, 40 * 4)
    report = evaluate_mod.evaluate(folder, NAME, split="all")
    assert report.method == "SRResNet" and report.result.n == 3
    assert report.checkpoint == exported[0]


# ---- the files that ship -----------------------------------------------------------------------

CARD_SECTIONS = [
    "## Data and split",
    "## Training",
    "## Results on the 1,000 held-out faces",
    "## Known failure cases",
    "## Licence and data terms",
    "## Reproduce",
]


@pytest.mark.parametrize("name", sorted(P.PRETRAINED))
def test_shipped_file_checks_out_and_has_a_card(name, monkeypatch):
    monkeypatch.delenv(P.PRETRAINED_ENV, raising=False)
    path = P.pretrained_path(name)  # sha256 checked
    assert path.parent == SHIPPED and path.stat().st_size <= 8 * 1024 * 1024
    payload = torch.load(path, weights_only=True)
    assert payload["name"] == name and payload["label"] == P.PRETRAINED[name].label
    G = P.load_pretrained(name)
    assert G.scale == 4 and not G.training
    card = (SHIPPED / P.PRETRAINED[name].card).read_text()
    for section in CARD_SECTIONS:
        assert section in card, f"{name}.md lacks {section!r}"
    assert "python -m srgan_edu.train" in card and "CelebA" in card
    assert f"`{P.PRETRAINED[name].sha256}`" in card  # the card names the file it describes


def card_figures(name: str) -> dict[str, float]:
    """The card's machine-checked row: ``| test subset: first N held-out faces | ... |``."""
    card = (SHIPPED / P.PRETRAINED[name].card).read_text()
    m = re.search(
        r"^\| test subset: first (\d+) held-out faces \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| "
        r"([\d.]+) \|",
        card,
        re.M,
    )
    assert m, f"{name}.md has no test-subset row"
    n, b_psnr, b_ssim, psnr, ssim = m.groups()
    return {"n": int(n), "bicubic_psnr_y": float(b_psnr), "bicubic_ssim_y": float(b_ssim),
            "psnr_y": float(psnr), "ssim_y": float(ssim)}  # fmt: skip


@pytest.mark.skipif(not SHARED_CELEBA.is_dir(), reason="../shared/data/celeba_89x109 not available")
@pytest.mark.parametrize("name", sorted(P.PRETRAINED))
def test_card_figures_are_reproduced_on_held_out_faces(name, monkeypatch):
    monkeypatch.delenv(P.PRETRAINED_ENV, raising=False)
    want = card_figures(name)
    got = P.measure(name, SHARED_CELEBA, holdout=1000, limit=want["n"])
    assert got["n"] == want["n"]
    assert got["psnr_y"] == pytest.approx(want["psnr_y"], abs=0.05)
    assert got["bicubic_psnr_y"] == pytest.approx(want["bicubic_psnr_y"], abs=0.05)
    assert got["ssim_y"] == pytest.approx(want["ssim_y"], abs=0.002)


def test_list_command_reports_every_model(capsys, monkeypatch):
    monkeypatch.delenv(P.PRETRAINED_ENV, raising=False)
    assert P.main([]) == 0
    out = capsys.readouterr().out
    for name in P.PRETRAINED:
        assert f"{name}: ok" in out


def test_measure_command_prints_json(exported, tmp_path, capsys):
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(1)
    for i in range(1, 7):
        arr = (torch.rand(44, 36, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(folder / f"{i:06d}.jpg", quality=95)
    (folder.parent / "list_eval_partition.txt").write_text(
        "".join(f"{i:06d}.jpg 0\n" for i in range(1, 7))
    )
    assert P.main(["measure", NAME, "--data", str(folder.parent), "--holdout", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 4
    assert result["gain_db"] == pytest.approx(result["psnr_y"] - result["bicubic_psnr_y"])
