"""How reliably the 1-D GAN converges: KS statistics over seeds, recipe against plain training.

    python bench/toy_gan_convergence.py [--seeds 10]

For each seed: the KS statistic D and p-value of 1000 generated samples against N(0, 1) (the
issue's measure), the KS distance of G's whole output law (200k samples) to N(0, 1) and to the
1000 observed points, and the anomaly detector's false-alarm rate at n = 100. Two floors put the
numbers in context: the observed sample's own D against N(0, 1), and the D of 1000 draws from the
observed points (a perfect copy of the data). Writes bench/results/toy_gan_convergence.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from machine import write_result
from scipy import stats

from toy_gan.anomaly import run as anomaly_run
from toy_gan.gan import GANConfig, sample_data, train_gan

RECIPES = {
    # The seed's plain set-up: no weight averaging, 2000 steps, batch 64, Adam 1e-3.
    "plain": dict(ema=0.0, steps=2000, batch_size=64, lr_g=1e-3, lr_d=1e-3),
    # The library's default recipe (GANConfig()).
    "recipe": {},
}


def summary(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {
        "median": round(float(np.median(v)), 4),
        "mean": round(float(v.mean()), 4),
        "min": round(float(v.min()), 4),
        "max": round(float(v.max()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    floors = {"data_vs_normal": [], "bootstrap_vs_normal": []}
    for s in seeds:
        data = sample_data(1000, s).squeeze(1).numpy()
        floors["data_vs_normal"].append(stats.kstest(data, "norm").statistic)
        boot = np.random.default_rng(10_000 + s).choice(data, 1000)
        floors["bootstrap_vs_normal"].append(stats.kstest(boot, "norm").statistic)
    result = {
        "seeds": seeds,
        "floors": {
            k: {"per_seed": np.round(v, 4).tolist(), **summary(v)} for k, v in floors.items()
        },
        "recipes": {},
    }
    for name, overrides in RECIPES.items():
        config = GANConfig(**overrides)
        rows = {
            k: []
            for k in (
                "d1000",
                "p1000",
                "population_vs_normal",
                "population_vs_data",
                "false_alarm_normal",
                "false_alarm_calibrated",
                "train_seconds",
            )
        }
        for s in seeds:
            start = time.perf_counter()
            r = train_gan(config, seed=s)
            rows["train_seconds"].append(time.perf_counter() - start)
            ks = stats.kstest(r.sample(1000, seed=10_000 + s), "norm")
            rows["d1000"].append(ks.statistic)
            rows["p1000"].append(ks.pvalue)
            big = r.sample(200_000, seed=1)
            rows["population_vs_normal"].append(stats.kstest(big, "norm").statistic)
            rows["population_vs_data"].append(
                stats.ks_2samp(big, r.data.squeeze(1).numpy()).statistic
            )
            for ref, key in (
                ("normal", "false_alarm_normal"),
                ("generator", "false_alarm_calibrated"),
            ):
                rep = anomaly_run(generator=r.generator, batches=1000, seed=s, reference=ref)
                rows[key].append(rep.false_alarm_rate)
            print(
                f"{name:7s} seed {s}: D={rows['d1000'][-1]:.4f} p={rows['p1000'][-1]:.3f} "
                f"pop-vs-N={rows['population_vs_normal'][-1]:.4f} "
                f"FAR={rows['false_alarm_normal'][-1]:.3f}/"
                f"{rows['false_alarm_calibrated'][-1]:.3f} "
                f"({rows['train_seconds'][-1]:.1f} s)",
                flush=True,
            )
        result["recipes"][name] = {
            "config": vars(config) | {"seed": "per seed"},
            **{k: {"per_seed": np.round(v, 4).tolist(), **summary(v)} for k, v in rows.items()},
            "fraction_p_above_0.05": float(np.mean(np.asarray(rows["p1000"]) > 0.05)),
        }
    path = write_result("toy_gan_convergence", result)
    for name, rec in result["recipes"].items():
        print(
            f"{name}: D1000 median {rec['d1000']['median']} max {rec['d1000']['max']}; "
            f"population-vs-N median {rec['population_vs_normal']['median']} "
            f"max {rec['population_vs_normal']['max']}; p>0.05 in "
            f"{rec['fraction_p_above_0.05']:.0%} of seeds"
        )
    print(f"floors: {result['floors']} -> {path}")


if __name__ == "__main__":
    main()
