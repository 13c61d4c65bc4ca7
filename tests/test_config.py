"""Tests for srgan_edu.config: presets, overrides with type conversion, argparse, round trips."""

import argparse
import dataclasses
import json
import typing

import pytest

from srgan_edu import config as cfg
from srgan_edu.config import (
    PRESETS,
    ConfigError,
    TrainConfig,
    add_config_arguments,
    apply_overrides,
    config_from_args,
    diff,
    from_dict,
    get_preset,
    to_dict,
)
from srgan_edu.degrade import METHODS
from srgan_edu.models import UPSAMPLERS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train")
    parser.add_argument("--preset", default="smoke")
    return add_config_arguments(parser)


# --- presets ---------------------------------------------------------------------------------


def test_presets_exist_are_valid_and_distinct():
    assert set(PRESETS) == {"smoke", "laptop", "paper"}
    dicts = {name: to_dict(get_preset(name)) for name in PRESETS}
    assert dicts["smoke"] != dicts["laptop"] != dicts["paper"] != dicts["smoke"]
    for name, config in PRESETS.items():
        assert isinstance(config, TrainConfig)
        # re-validating from plain values succeeds: every preset passes __post_init__
        assert from_dict(to_dict(config)) == config, name


def test_paper_preset_pins_the_papers_schedule():
    """Ledig et al. Sec. 3.2 / 4: every number of the paper's training recipe."""
    p = get_preset("paper")
    assert (p.scale, p.hr_crop, p.batch_size) == (4, 96, 16)
    assert (p.n_blocks, p.channels, p.upsampler) == (16, 64, "subpixel")
    assert (p.d_channels, p.d_dense) == (64, 1024)
    assert (p.lr, p.beta1, p.beta2) == (1e-4, 0.9, 0.999)
    assert p.srresnet_steps == 1_000_000
    assert p.srgan_steps == 200_000
    assert p.lr_decay_step == 100_000 and p.lr_decay_factor == pytest.approx(0.1)
    assert p.lr * p.lr_decay_factor == pytest.approx(1e-5)  # 1e5 updates at 1e-4, 1e5 at 1e-5
    assert p.srgan_steps - p.lr_decay_step == 100_000
    assert p.content == "vgg54" and p.vgg_weights == "imagenet"
    assert p.adv_weight == 1e-3
    assert p.vgg_rescale == pytest.approx(1 / 12.75)
    assert p.degradation == "bicubic" and p.phase == "both"
    assert p == TrainConfig()  # the dataclass defaults are the paper's


def test_smoke_and_laptop_are_small_and_fit_their_data():
    smoke, laptop, paper = (get_preset(n) for n in ("smoke", "laptop", "paper"))
    assert smoke.data is None and smoke.vgg_weights == "random" and smoke.num_workers == 0
    assert smoke.srresnet_steps + smoke.srgan_steps <= 10
    assert smoke.lr_decay_step < smoke.srgan_steps  # the decay is exercised in CI
    assert laptop.hr_crop <= 88 and laptop.hr_crop % laptop.scale == 0  # 89x109 CelebA faces
    for small in (smoke, laptop):
        assert small.n_blocks < paper.n_blocks and small.channels < paper.channels
        assert small.hr_crop < paper.hr_crop
        assert small.srresnet_steps < paper.srresnet_steps


def test_get_preset_returns_a_copy_and_rejects_unknown_names():
    a = get_preset("smoke")
    a.batch_size = 99
    assert get_preset("smoke").batch_size == PRESETS["smoke"].batch_size != 99
    with pytest.raises(ConfigError, match="smoke, laptop, paper") as err:
        get_preset("lapotp")
    assert "'laptop'" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_literal_choices_match_the_library():
    hints = typing.get_type_hints(TrainConfig)
    assert typing.get_args(hints["upsampler"]) == UPSAMPLERS
    assert typing.get_args(hints["degradation"]) == METHODS


def test_every_field_has_help():
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help"), f.name


# --- overrides -------------------------------------------------------------------------------


def test_overrides_convert_strings_by_field_type():
    base = get_preset("smoke")
    c = apply_overrides(
        base,
        {
            "hr-crop": "48",
            "srresnet_steps": "1e5",
            "srgan_steps": "1_000",
            "lr": "2e-4",
            "vgg_rescale": "1/12.75",
            "compile": "yes",
            "content": "MSE",
            "data": "/tmp/faces",
            "device": "cuda:1",
        },
    )
    assert c.hr_crop == 48 and isinstance(c.hr_crop, int)
    assert c.srresnet_steps == 100_000 and isinstance(c.srresnet_steps, int)
    assert c.srgan_steps == 1000
    assert c.lr == 2e-4 and c.vgg_rescale == pytest.approx(1 / 12.75)
    assert c.compile is True and c.content == "mse"
    assert c.data == "/tmp/faces" and c.device == "cuda:1"
    assert base.hr_crop == 32  # the input is not modified
    assert diff(base, c)["hr_crop"] == (32, 48)


@pytest.mark.parametrize(
    "text,expected",
    [("true", True), ("1", True), ("Yes", True), ("false", False), ("0", False), ("no", False)],
)
def test_bool_spellings(text, expected):
    assert apply_overrides(get_preset("smoke"), {"compile": text}).compile is expected


def test_optional_fields_accept_none_and_typed_values_pass_through():
    c = apply_overrides(get_preset("smoke"), {"data": "/x", "device": "cpu"})
    c = apply_overrides(c, {"data": "none", "device": "auto"})
    assert c.data is None and c.device is None
    c = apply_overrides(c, {"batch_size": 8, "lr": 1, "compile": True})
    assert c.batch_size == 8 and c.lr == 1.0 and isinstance(c.lr, float) and c.compile is True


def test_unknown_override_suggests_the_closest_field():
    with pytest.raises(ConfigError) as err:
        apply_overrides(get_preset("smoke"), {"hr_crp": "64"})
    assert "hr_crp" in str(err.value) and "'hr_crop'" in str(err.value)
    with pytest.raises(ConfigError, match="'batch_size'"):
        apply_overrides(get_preset("smoke"), {"batch-sise": "8"})
    with pytest.raises(ConfigError, match="valid fields: phase, scale"):
        apply_overrides(get_preset("smoke"), {"zzzzzz": "1"})


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("batch_size", "eight", "an integer"),
        ("batch_size", "1.5", "a whole number"),
        ("srgan_steps", "1.5e0", "an integer"),
        ("lr", "fast", "a number"),
        ("compile", "maybe", "true or false"),
        ("data", 3, "a string or 'none'"),
        ("batch_size", True, "an integer"),
    ],
)
def test_mistyped_values_name_field_type_and_value(key, value, expected):
    with pytest.raises(ConfigError) as err:
        apply_overrides(get_preset("smoke"), {key: value})
    message = str(err.value)
    assert key in message and expected in message and repr(value) in message


def test_bad_choice_suggests_a_valid_one():
    with pytest.raises(ConfigError) as err:
        apply_overrides(get_preset("smoke"), {"content": "vgg45"})
    message = str(err.value)
    assert "one of 'vgg54', 'vgg22', 'mse'" in message and "did you mean 'vgg54'" in message


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes,expected",
    [
        ({"hr_crop": 30}, "hr_crop must be divisible by scale=4"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"scale": 5, "hr_crop": 40}, "scale must be one of"),
        ({"hr_crop": 8}, "hr_crop must be at least 16"),
        ({"lr": 0.0}, "lr must be a positive number"),
        ({"beta1": 1.0}, "beta1 must be in [0, 1)"),
        ({"lr_decay_factor": 2.0}, "lr_decay_factor must be in (0, 1]"),
        ({"srgan_steps": 0}, "phase='both' needs srgan_steps >= 1"),
        ({"val_every": -1}, "val_every must be 0"),
        ({"num_workers": -1}, "num_workers must be 0 or more"),
        ({"keep_last": 0}, "keep_last must be a positive integer"),
        ({"device": "tpu"}, "device must be"),
        ({"phase": "gan"}, "phase (--phase) expects one of"),
        ({"scale": "4"}, "scale (--scale) expects an integer"),
    ],
)
def test_validation_errors_are_clear(changes, expected):
    with pytest.raises(ConfigError) as err:
        dataclasses.replace(get_preset("smoke"), **changes)
    assert expected in str(err.value)


def test_phase_only_needs_its_own_steps():
    c = apply_overrides(get_preset("smoke"), {"phase": "srresnet", "srgan_steps": "0"})
    assert c.srgan_steps == 0
    with pytest.raises(ConfigError, match="needs srresnet_steps >= 1"):
        apply_overrides(c, {"srresnet_steps": "0"})


# --- argparse --------------------------------------------------------------------------------


def test_argparse_overrides_only_given_options():
    parser = _parser()
    args = parser.parse_args(
        "--preset laptop --hr-crop 48 --lr 3e-4 --compile --data none --content mse".split()
    )
    c = config_from_args(args, args.preset)
    laptop = get_preset("laptop")
    assert diff(laptop, c) == {
        "hr_crop": (64, 48),
        "lr": (1e-4, 3e-4),
        "compile": (False, True),
    } | {"content": ("vgg22", "mse")}
    assert config_from_args(parser.parse_args([]), "smoke") == get_preset("smoke")
    args = parser.parse_args(["--compile", "false", "--srresnet-steps", "2e3"])
    c = config_from_args(args, "smoke")
    assert c.compile is False and c.srresnet_steps == 2000


def test_argparse_help_lists_every_field_with_its_help(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in out
    assert "paper: 1/12.75" in out and "{vgg54,vgg22,mse}" in out


def test_argparse_type_error_surfaces_as_config_error():
    args = _parser().parse_args(["--batch-size", "lots"])
    with pytest.raises(ConfigError, match=r"batch_size \(--batch-size\) expects an integer"):
        config_from_args(args, "smoke")


# --- checkpoints -----------------------------------------------------------------------------


def test_to_dict_from_dict_round_trip_through_json():
    for name in PRESETS:
        c = apply_overrides(get_preset(name), {"data": "/data/celeba", "device": "cpu"})
        d = to_dict(c)
        assert all(v is None or type(v) in (str, int, float, bool) for v in d.values())
        assert from_dict(json.loads(json.dumps(d))) == c


def test_from_dict_rejects_unknown_keys_and_fills_missing_ones():
    d = to_dict(get_preset("smoke"))
    d["n_block"] = 2
    with pytest.raises(ConfigError, match="'n_blocks'"):
        from_dict(d)
    partial = {"hr_crop": 64, "channels": 8}
    c = from_dict(partial)
    assert (c.hr_crop, c.channels, c.n_blocks) == (64, 8, TrainConfig().n_blocks)


def test_diff_lists_only_changed_fields():
    a, b = get_preset("smoke"), get_preset("smoke")
    assert diff(a, b) == {}
    b = apply_overrides(b, {"scale": "2", "seed": "7"})
    assert diff(a, b) == {"scale": (4, 2), "seed": (0, 7)}
    assert set(diff(get_preset("smoke"), get_preset("paper"))) <= set(cfg._field_names())
