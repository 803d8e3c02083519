"""Length statistics of the MLPerf data sets in validation/inference/datasets/ (see its README for sources).

    python scripts/dataset_lengths.py

Prints, per data set: samples, mean input length, mean output length, the coefficient of variation of the output
lengths (population standard deviation / mean: ``serving.output_len_cv`` in the serving specs), the mean decode
context that the serving model computes from them (``input_len + output_len (1 + cv^2) / 2``,
trainsim.inference.spec.ServingPart.decode_context) and the exact token-weighted mean context over every decode step,
``sum_i L_i (in_i + L_i / 2) / sum_i L_i`` (which also carries the input/output covariance the model leaves out).
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainsim.inference.spec import ServingPart  # noqa: E402

DATA = ROOT / "validation" / "inference" / "datasets"


def stats(path: Path) -> dict:
    """Mean input, mean output, output CV, modelled and exact token-weighted decode context of one CSV."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    i = np.array([float(r["input_length"]) for r in rows])
    o = np.array([float(r["output_length"]) for r in rows])
    cv = float(o.std() / o.mean())
    part = ServingPart(input_len=int(round(i.mean())), output_len=int(round(o.mean())), output_len_cv=cv)
    return {"samples": len(rows), "mean_input": float(i.mean()), "mean_output": float(o.mean()), "output_cv": cv,
            "model_context": part.decode_context, "exact_context": float(np.sum(o * (i + o / 2)) / np.sum(o))}


def main() -> None:
    for path in sorted(DATA.glob("*.csv")):
        s = stats(path)
        print(f"{path.name}: {s['samples']} samples, mean input {s['mean_input']:.1f}, mean output "
              f"{s['mean_output']:.1f}, output CV {s['output_cv']:.3f}; mean decode context: model "
              f"{s['model_context']}, exact {s['exact_context']:.0f}")


if __name__ == "__main__":
    main()
