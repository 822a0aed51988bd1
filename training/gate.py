"""The promotion gate: a model may become champion only if it beats the references by a stated margin on the
validation programs of its split (programs it never trained on, inside its training programs): promotion is a
choice, and choices never look at the test programs, which are read once, to report. A split without
validation programs is judged on its test programs, and the verdict says so.

The references, measured on exactly those runs (``references.py``):
- the constant: always answer the training runs' mean P;
- the utilisation heuristic (where the table has CPU-demand profiles and the host's cores): P from the
  tenants' summed CPU demand, what load-aware schedulers do (``GATE_HEURISTICS``). It judges both tasks: a
  monitoring model that reads the co-run's telemetry must still answer better than the tenants' solo demands
  alone would.

A model passes when its MAE is at most ``(1 - margin)`` times each reference's. One that does not is
registered (its figures stay in MLflow, tagged with the reason) but never made champion; with no champion the
service says so and scores neutrally.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from cotenant.datasets.splits import Split
from cotenant.datasets.table import RunTable
from cotenant.training.references import CPU_DEMAND_METRIC, Law, utilisation_predictions

# The no-learning answers a model must beat by the margin, by reference name: the proportional share
# load-aware scorers compute. The stronger fair share and, for monitoring, the solo-relative heuristic
# (references.py) are reported beside every evaluation but not gated. The solo-relative heuristic is a
# servable model instead (``solo-relative``), a candidate beside the learned ones (``cotenant.up.CHAMPIONS``):
# where nothing learned beats it on validation programs, it is champion. Placement has no such candidate: a
# split on which no placement candidate beats the proportional share by the margin leaves placement without a
# champion, and the service answers it 503 (the extender neutrally), saying why.
GATE_HEURISTICS: dict[str, Law] = {"utilisation": "proportional"}


@dataclass(frozen=True)
class GateResult:
    passed: bool
    model_mae_pp: float
    margin: float  # TrainConfig.gate_margin
    references_pp: dict[str, float] = field(default_factory=dict)  # reference -> MAE on the same runs
    judged_on: str = "validation"  # the programs judged: "validation", or "test" when the split has none

    @property
    def reason(self) -> str:
        shown = ", ".join(f"{name} {mae:.2f} pp" for name, mae in self.references_pp.items())
        verdict = "passes" if self.passed else "fails"
        return (
            f"{verdict} the promotion gate: MAE {self.model_mae_pp:.2f} pp on {self.judged_on} programs vs "
            f"{shown} (must be <= {1 - self.margin:.2f} x each)"
        )

    def tags(self, enforced: bool = True) -> dict[str, str]:
        """MLflow version tags; ``gate`` is ``failed`` only where the failure refuses the version."""
        verdict = "passed" if self.passed else ("failed" if enforced else "failed-not-enforced")
        return {"gate": verdict, "gate_reason": self.reason[:4000]}


def promotion_gate(
    table: RunTable,
    split: Split,
    test_runs: list[str],
    predicted_median: np.ndarray,
    labels: np.ndarray,
    margin: float,
    judged_on: str = "validation",
) -> GateResult:
    """The gate on the runs ``test_runs`` (in the order of the predictions): a split's validation runs, or
    its test runs where it has none (``judged_on`` says which)."""
    model_mae = float(np.mean(np.abs(predicted_median - labels)) * 100)
    train_labels = table.runs.filter(pl.col("run_id").is_in(split.train_runs))["label"].to_numpy()
    references = {"constant": float(np.mean(np.abs(labels - train_labels.mean())) * 100)}
    cores = table.host_cores
    passed_heuristics = True
    if cores and CPU_DEMAND_METRIC in table.profile_metrics:
        for reference, law in GATE_HEURISTICS.items():
            heuristic = dict(utilisation_predictions(table, cores, law).iter_rows())
            covered = np.array([run in heuristic for run in test_runs], dtype=bool)
            if not covered.any():
                continue
            predicted = np.array([heuristic[run] for run, ok in zip(test_runs, covered, strict=True) if ok])
            references[reference] = float(np.mean(np.abs(predicted - labels[covered])) * 100)
            # Compared on the same runs: the model's MAE where the heuristic has an answer too.
            model_on_covered = float(np.mean(np.abs(predicted_median[covered] - labels[covered])) * 100)
            passed_heuristics &= model_on_covered <= (1 - margin) * references[reference]
    passed = model_mae <= (1 - margin) * references["constant"] and passed_heuristics
    return GateResult(bool(passed and np.isfinite(model_mae)), model_mae, margin, references, judged_on)
