"""The anomaly detector and `python -m toy_gan.anomaly`: outputs, JSON, plot, errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from toy_gan import anomaly
from toy_gan.gan import save_generator, train_gan


@pytest.fixture(scope="module")
def generator():
    return train_gan(seed=0).generator


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, generator):
    return save_generator(generator, tmp_path_factory.mktemp("ckpt") / "g.pt")


def cli(*args, cwd=None):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "toy_gan.anomaly", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_sources_draw_in_unit_interval_and_validate():
    rng = np.random.default_rng(0)
    for name in anomaly.SOURCES:
        u = anomaly.make_source(name).draw(rng, (3, 50))
        assert u.shape == (3, 50) and u.min() >= 0 and u.max() <= 1
    assert anomaly.make_source("uniform").healthy
    assert not anomaly.make_source("uniform", high=0.9).healthy
    assert anomaly.make_source("beta").label == "beta(1,5)"
    for name, params in [
        ("beta", {"a": -1}),
        ("uniform", {"low": 0.5, "high": 0.2}),
        ("normal", {"std": 0}),
        ("stuck", {"value": 2}),
    ]:
        with pytest.raises(ValueError, match="invalid parameters"):
            anomaly.make_source(name, **params)
    with pytest.raises(ValueError, match="unknown source"):
        anomaly.make_source("gamma")
    with pytest.raises(ValueError, match="takes"):
        anomaly.make_source("beta", mode=0.3)


def test_default_run_separates_healthy_from_broken(generator):
    report = anomaly.run(generator=generator, batches=1000)
    healthy, broken = report.results
    assert healthy.source == "uniform(0,1)" and not healthy.anomaly
    assert broken.source == "beta(1,5)" and broken.anomaly and broken.p_value < 1e-6
    assert report.power["beta(1,5)"] > 0.99
    # Against N(0,1) the false-alarm rate is alpha plus what G's own error adds (small for a
    # converged G); against G's own output law it is alpha itself.
    assert report.false_alarm_rate < 0.1
    calibrated = anomaly.run(generator=generator, batches=2000, reference="generator")
    assert calibrated.false_alarm_rate == pytest.approx(0.05, abs=0.02)


def test_detector_flags_drift_more_with_larger_samples(generator):
    det = anomaly.AnomalyDetector(generator, reference="generator")
    drift = anomaly.make_source("uniform", high=0.97)  # the top 3% of the noise range is lost
    rng = np.random.default_rng(0)
    rates = [det.flag_rate(drift, n, 300, rng) for n in (20, 200, 2000, 20000)]
    assert rates[0] < 0.2 and rates[-1] > 0.95
    assert rates == sorted(rates)


def test_format_and_json(generator):
    report = anomaly.run(generator=generator, batches=50)
    table = anomaly.format_report(report)
    assert "uniform(0,1)" in table and "ANOMALY" in table and "False-alarm rate" in table
    data = json.loads(json.dumps(report.to_dict()))
    assert {r["source"] for r in data["results"]} == {"uniform(0,1)", "beta(1,5)"}


def test_cli_default_run(tmp_path, checkpoint):
    out = cli("--checkpoint", str(checkpoint), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("uniform(0,1)") and " normal " in line for line in lines)
    assert any(line.startswith("beta(1,5)") and "ANOMALY" in line for line in lines)
    assert "False-alarm rate" in out.stdout and "Detection power" in out.stdout
    png = tmp_path / "anomaly_report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_trains_when_no_checkpoint(tmp_path):
    out = cli(
        "--steps",
        "50",
        "--batches",
        "20",
        "--plot",
        "none",
        "--json",
        "--save-checkpoint",
        str(tmp_path / "g.pt"),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["generator"].startswith("trained (50 steps")
    assert (tmp_path / "g.pt").is_file() and not (tmp_path / "anomaly_report.png").exists()


def test_cli_json_with_source_options(tmp_path, checkpoint):
    out = cli(
        "--checkpoint",
        str(checkpoint),
        "--source",
        "uniform",
        "--low",
        "0.1",
        "--sample-size",
        "500",
        "--batches",
        "200",
        "--alpha",
        "0.01",
        "--json",
        "--plot",
        str(tmp_path / "figs" / "r.png"),
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["alpha"] == 0.01 and data["sample_size"] == 500
    assert [r["source"] for r in data["results"]] == ["uniform(0,1)", "uniform(0.1,1)"]
    assert data["results"][1]["anomaly"] and data["power"]["uniform(0.1,1)"] > 0.9
    assert (tmp_path / "figs" / "r.png").is_file()


def test_cli_help():
    out = cli("--help")
    assert out.returncode == 0
    for word in (
        "--source",
        "--sample-size",
        "--alpha",
        "--batches",
        "--seed",
        "--checkpoint",
        "--plot",
        "--json",
        "beta(1,5)",
        "stuck",
    ):
        assert word in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sample-size", "-5"], "positive integer"),
        (["--batches", "0"], "positive integer"),
        (["--alpha", "1.5"], "between 0 and 1"),
        (["--alpha", "zero"], "number"),
        (["--source", "gamma"], "invalid choice"),
        (["--source", "beta", "--a", "-1"], "a > 0"),
        (["--source", "beta", "--mode", "0.2"], "takes"),
        (["--a", "2"], "needs --source"),
        (["--frobnicate"], "unrecognized"),
    ],
)
def test_cli_bad_arguments_give_one_line(args, message):
    out = cli(*args)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and message in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_bad_checkpoint_gives_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("hello")
    for path in (bad, tmp_path / "missing.pt"):
        out = cli("--checkpoint", str(path), "--plot", "none")
        assert out.returncode == 1
        assert out.stderr.count("\n") == 1 and str(path) in out.stderr
        assert "Traceback" not in out.stderr
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    out = cli("--checkpoint", str(foreign), "--plot", "none")
    assert out.returncode == 1 and "not a toy-GAN" in out.stderr


def test_cli_unwritable_plot(tmp_path, checkpoint):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = cli("--checkpoint", str(checkpoint), "--batches", "10", "--plot", str(blocker / "r.png"))
    assert out.returncode == 1 and "cannot write the plot" in out.stderr
    assert "Traceback" not in out.stderr


def test_transform_in_chunks_equals_one_pass(generator):
    det = anomaly.AnomalyDetector(generator)
    u = np.random.default_rng(0).random((7, 13))
    with torch.no_grad():
        whole = generator(torch.from_numpy(u.astype(np.float32).reshape(-1, 1))).numpy()
    np.testing.assert_allclose(det.transform(u, chunk=10), whole.reshape(7, 13), rtol=1e-6)
