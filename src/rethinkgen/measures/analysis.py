"""The test of a measure: how well it ranks the generalization gaps of a population of runs.

- ``kendall_tau``: Kendall's rank correlation (tau-b, ties counted as in scipy.stats.kendalltau).
- ``granulated_tau``: Jiang et al. 2019's granulated coefficient Ψ: for each hyperparameter axis i, ψ_i is
  the mean of tau over the groups of runs that agree on every other setting (seeds included) and differ
  only along axis i; Ψ is the mean of ψ_i over the axes. Groups with fewer than two runs or with an
  undefined tau (every measure or every gap equal) are left out of the means.

The axes are the settings that vary across the runs (seeds and the settings that do not define a run
aside); settings that always vary together, e.g. a model and its default learning rate, form one axis.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from rethinkgen.config import NOT_HASHED

NOT_AXES = set(NOT_HASHED) | {"seed", "randomization_seed", "init_seed", "order_seed", "measures"}


@dataclass
class Correlation:
    """A Kendall rank correlation between a measure and the generalization gap.

    Args:
        tau: the correlation; None where it is undefined.
        runs: the runs behind it.
    """

    tau: float | None   # None where undefined
    runs: int           # the runs behind it

    def __str__(self) -> str:
        return "-" if self.tau is None else f"{self.tau:+.3f} ({self.runs})"


@dataclass
class MeasureAnalysis:
    """How well one measure ranks runs by their generalization gap.

    Args:
        measure: the measure's name.
        kind: its family.
        overall: the correlation over all runs.
        granulated: the mean correlation over runs that differ in one setting only.
        axes: that correlation per setting.
    """

    measure: str
    kind: str
    overall: Correlation
    granulated: Correlation
    axes: dict[str, Correlation] = field(default_factory=dict)


def kendall_tau(x, y) -> float | None:
    """Kendall's tau-b of two equally long sequences; None if fewer than two values or either is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"kendall_tau needs sequences of equal length, got {len(x)} and {len(y)}")
    upper = np.triu_indices(len(x), k=1)
    sx = np.sign(x[:, None] - x[None, :])[upper]
    sy = np.sign(y[:, None] - y[None, :])[upper]
    denominator = math.sqrt(float(np.sum(sx != 0)) * float(np.sum(sy != 0)))
    return float(np.sum(sx * sy) / denominator) if denominator else None


def _value_key(value) -> str:
    return json.dumps(value, sort_keys=True)


def hyperparameter_axes(configs: list[dict]) -> dict[str, list[str]]:
    """{axis name: its setting names} for the settings that vary across ``configs``."""
    keys = sorted({k for c in configs for k in c} - NOT_AXES)
    partitions: dict[tuple, list[str]] = defaultdict(list)
    for key in keys:
        labels, partition = {}, []
        for config in configs:
            partition.append(labels.setdefault(_value_key(config.get(key)), len(labels)))
        if len(labels) > 1:
            partitions[tuple(partition)].append(key)
    return {"+".join(names): names for names in partitions.values()}


def granulated_tau(values, gaps, configs: list[dict], axes: dict[str, list[str]]) -> tuple[Correlation, dict]:
    """(Ψ, {axis: ψ_axis}) for measure ``values`` against ``gaps`` of runs with settings ``configs``."""
    per_axis, behind = {}, set()
    for axis, names in axes.items():
        groups: dict[str, list[int]] = defaultdict(list)
        for i, config in enumerate(configs):
            rest = {k: v for k, v in config.items() if k not in names and k not in NOT_HASHED and k != "measures"}
            groups[_value_key(rest)].append(i)
        taus, runs = [], set()
        for members in groups.values():
            tau = kendall_tau([values[i] for i in members], [gaps[i] for i in members]) if len(members) > 1 else None
            if tau is not None:
                taus.append(tau)
                runs.update(members)
        per_axis[axis] = Correlation(sum(taus) / len(taus) if taus else None, len(runs))
        behind |= runs
    defined = [c.tau for c in per_axis.values() if c.tau is not None]
    return Correlation(sum(defined) / len(defined) if defined else None, len(behind)), per_axis


def analyse(records: list[dict], names: list[str], kinds: dict[str, str] | None = None) -> tuple[dict, list]:
    """Each measure's overall and granulated tau with the gap, best granulated first.

    ``records`` are dicts with ``config``, ``gap`` and ``measures`` ({name: value}); a run without a
    value for a measure (or without a gap) is left out of that measure's figures only.
    """
    axes = hyperparameter_axes([r["config"] for r in records])
    rows = []
    for name in names:
        used = [r for r in records if r["gap"] is not None and r["measures"].get(name) is not None]
        values, gaps = [r["measures"][name] for r in used], [r["gap"] for r in used]
        overall = Correlation(kendall_tau(values, gaps) if len(used) > 1 else None, len(used))
        granulated, per_axis = granulated_tau(values, gaps, [r["config"] for r in used], axes)
        rows.append(MeasureAnalysis(name, (kinds or {}).get(name, ""), overall, granulated, per_axis))
    rows.sort(key=lambda row: (row.granulated.tau is None, -(row.granulated.tau or 0),
                               row.overall.tau is None, -(row.overall.tau or 0)))
    return axes, rows


def table(axes: dict, rows: list[MeasureAnalysis]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows for printing: tau and number of runs behind each figure."""
    headers = ["measure", "kind", "tau (runs)", "granulated (runs)"] + [f"{axis} (runs)" for axis in axes]
    return headers, [[row.measure, row.kind, str(row.overall), str(row.granulated)]
                     + [str(row.axes[axis]) for axis in axes] for row in rows]
