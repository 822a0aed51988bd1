"""Packing a lab directory into the bundled format, its card, and ``cotenant datasets info``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from cotenant.datasets import load_source
from cotenant.datasets.cli import app
from cotenant.datasets.pack import FLOAT64_BUDGET_BYTES
from cotenant.datasets.sources.bundled import BUNDLED_DIR, is_packed
from typer.testing import CliRunner


def test_pack_writes_table_and_card(lab_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundled"
    result = CliRunner().invoke(app, ["pack", str(lab_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "runs.parquet",
        "telemetry.parquet",
        "profiles.parquet",
        "meta.json",
        "records.parquet",  # every lab record: the noise floor can be recomputed from the shipped data
        "CARD.md",
    }
    packed = load_source(f"bundled:{out}")
    original = load_source(lab_dir)
    assert packed.meta["source"] == "bundled"
    assert packed.runs.drop("source").equals(original.runs.drop("source"))
    assert packed.telemetry.equals(original.telemetry)
    records = packed.extras["records"]
    assert set(records["kind"]) >= {"solo", "corun"}
    from cotenant.datasets.lab.labels import noise_floor

    assert noise_floor(records).median_abs_deviation == pytest.approx(0.0192, abs=5e-5)
    card = (out / "CARD.md").read_text()
    for fact in (
        "labelled co-runs: 3",
        "cores",
        "kernel",
        "noise floor: solo-vs-solo |1 - P| median 1.92 pp",
        "| (0.4, 0.5] | 1 |",
        "| cpu_usage_seconds_per_second | cpu |",
        "name: tiny",
    ):
        assert fact in card
    assert str(lab_dir.parent) not in card  # no paths of the packing machine


def test_pack_too_big_is_refused(lab_dir: Path, tmp_path: Path) -> None:
    from cotenant.datasets.pack import pack

    with pytest.raises(ValueError, match="exceeds"):
        pack(lab_dir, tmp_path / "out", size_limit=1000)


def test_pack_past_the_float64_budget_stores_compact(
    lab_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cotenant.datasets import pack as packing
    from cotenant.datasets.table import RunTable

    full, _ = packing.pack(lab_dir, tmp_path / "float64")
    monkeypatch.setattr(packing, "FLOAT64_BUDGET_BYTES", 1000)
    packing.pack(lab_dir, tmp_path / "float32")
    stored = pl.read_parquet(tmp_path / "float32" / "telemetry.parquet")
    assert pl.Float32 in stored.dtypes and pl.Float64 not in stored.dtypes
    assert (
        "metrics stored as Float32 rounded to 16 significant bits"
        in (tmp_path / "float32" / "CARD.md").read_text()
    )
    loaded = RunTable.load(tmp_path / "float32").telemetry
    metrics = [c for c, t in full.telemetry.schema.items() if t == pl.Float64]
    assert metrics and all(loaded.schema[c] == pl.Float64 for c in metrics)  # loaded back as Float64
    exact = full.telemetry.select(metrics).to_numpy()
    # rounded to 16 significant bits: within 2**-16 of each value, nulls and zeros exact
    assert np.allclose(loaded.select(metrics).to_numpy(), exact, rtol=2.0**-16, atol=0, equal_nan=True)


def test_info_prints_apps_labels_and_noise(lab_dir: Path) -> None:
    result = CliRunner().invoke(app, ["info", str(lab_dir)])
    assert result.exit_code == 0, result.output
    for text in ("alpha", "beta", "3 labelled runs", "(0.4, 0.5]", "noise floor", "median 1.92 pp"):
        assert text in result.output
    missing = CliRunner().invoke(app, ["info", "no-such-source"])
    assert missing.exit_code == 1 and "neither a source name" in missing.output


@pytest.mark.skipif(not is_packed(), reason="datasets/bundled is packed by the lead from the real lab run")
def test_bundled_loads_without_download() -> None:
    table = load_source("bundled")
    assert table.runs["application"].n_unique() >= 8
    assert table.runs.height >= 300
    assert (BUNDLED_DIR / "CARD.md").is_file()
    assert sum(p.stat().st_size for p in BUNDLED_DIR.iterdir()) <= FLOAT64_BUDGET_BYTES
    # every neighbour of every co-run is known to the placement models by its solo profile
    runs = table.runs
    assert runs.filter(pl.col("neighbour_profiles").list.len() != pl.col("n_neighbours")).is_empty()
    assert runs["target_profile"].null_count() == 0


def test_the_card_carries_the_labs_sessions_and_its_operators_notes(lab_dir: Path, tmp_path: Path) -> None:
    (lab_dir / "sessions.jsonl").write_text(
        '{"plan": "tiny", "started_at": "2026-11-29T17:00:00+00:00"}\n'
        '{"plan": "tiny", "started_at": "2026-11-30T01:27:35+00:00"}\n'
    )
    (lab_dir / "NOTES.md").write_text("After 98 runs, 12 runs were removed from the journal and redone.\n")
    out = tmp_path / "bundled"
    result = CliRunner().invoke(app, ["pack", str(lab_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    card = (out / "CARD.md").read_text()
    assert (
        "2 lab sessions (starts and resumes of the campaign), the first started 2026-11-29T17:00:00+00:00"
        in card
    )
    assert "## Lab notes\n\nAfter 98 runs, 12 runs were removed from the journal and redone." in card
    (lab_dir / "NOTES.md").unlink()
    (lab_dir / "sessions.jsonl").write_text('{"plan": "tiny", "started_at": "2026-11-29T17:00:00+00:00"}\n')
    again = CliRunner().invoke(app, ["pack", str(lab_dir), "--out", str(tmp_path / "plain")])
    plain = (tmp_path / "plain" / "CARD.md").read_text()
    assert again.exit_code == 0 and "## Lab notes" not in plain
    # one session is one start time, not a range from it to itself
    assert "- 1 lab session, started 2026-11-29T17:00:00+00:00\n" in plain


def test_several_campaigns_pack_as_one_each_labelled_against_its_own_solos(tmp_path: Path) -> None:
    """Two campaigns: every run kept under its campaign's prefix with the label its own solos gave it; a
    configuration both measured keeps the first campaign's profile; the noise floor covers both campaigns'
    solos; the card names both and carries each one's notes."""
    import json

    from labdir_fixture import write_lab_dir

    first, second = write_lab_dir(tmp_path / "spring"), write_lab_dir(tmp_path / "autumn")
    lines = (second / "runs.jsonl").read_text().splitlines()
    slower = []
    for line in lines:  # the second campaign's machine runs alpha 10% slower, solos and co-runs alike
        record = json.loads(line)
        if record["application"] == "alpha":
            record["performance"] *= 0.9
        slower.append(json.dumps(record))
    (second / "runs.jsonl").write_text("\n".join(slower) + "\n")
    (second / "NOTES.md").write_text("Measured on the autumn machine.\n")
    out = tmp_path / "bundled"
    result = CliRunner().invoke(app, ["pack", str(first), str(second), "--out", str(out)])
    assert result.exit_code == 0, result.output
    packed, alone = load_source(f"bundled:{out}"), load_source(first)
    assert packed.runs.height == 2 * alone.runs.height
    labels = dict(zip(packed.runs["run_id"], packed.runs["label"], strict=True))
    for run_id, label in zip(alone.runs["run_id"], alone.runs["label"], strict=True):
        # the same label in both: each campaign's co-runs against its own (equally slower) solos
        assert labels[f"spring/{run_id}"] == pytest.approx(label)
        assert labels[f"autumn/{run_id}"] == pytest.approx(label)
    assert sorted(packed.profiles["profile_id"].unique()) == sorted(alone.profiles["profile_id"].unique())
    noise = packed.meta["noise_floor"]
    assert noise["n_solo_pairs"] == 2 * alone.meta["noise_floor"]["n_solo_pairs"]
    assert noise["median_abs_deviation"] == pytest.approx(alone.meta["noise_floor"]["median_abs_deviation"])
    card = (out / "CARD.md").read_text()
    assert "cotenant datasets pack spring autumn --out bundled" in card
    assert "### autumn\n\nMeasured on the autumn machine." in card
    same = CliRunner().invoke(app, ["pack", str(first), str(first), "--out", str(tmp_path / "twice")])
    assert same.exit_code == 2 and "distinct names" in same.output


def test_pooled_campaigns_read_rates_against_their_own_campaigns_profile(tmp_path: Path) -> None:
    """Two campaigns on machines of different speed (the second does every kind of work at half the rate,
    solos and co-runs alike): each co-run's rates relative to the solo profile are read against its own
    campaign's profile, so the two campaigns' co-runs read the same ratios, those of either campaign alone;
    against the first campaign's profile the second's would read the machines' difference as a slowdown."""
    import numpy as np
    from cotenant.collectors.ratios import CPU_RATE
    from cotenant.datasets.table import VS_SOLO
    from labdir_fixture import write_lab_dir

    def with_work_rate(root: Path, scale: float) -> Path:
        for part in (root / "telemetry" / "table=cgroup").glob("*.parquet"):
            frame = pl.read_parquet(part).rename({"cpu_usage_seconds_per_second": CPU_RATE})
            frame.with_columns(pl.col(CPU_RATE) * scale).write_parquet(part)
        return root

    fast = with_work_rate(write_lab_dir(tmp_path / "fast"), 1.0)
    slow = with_work_rate(write_lab_dir(tmp_path / "slow"), 0.5)
    out = tmp_path / "pooled"
    result = CliRunner().invoke(app, ["pack", str(fast), str(slow), "--out", str(out)])
    assert result.exit_code == 0, result.output
    column = VS_SOLO + CPU_RATE

    def mean_ratios(table_source: str | Path, prefix: str = "") -> dict[str, float]:
        table = load_source(table_source)
        means = table.telemetry.group_by("run_id").agg(pl.col(column).mean())
        return {str(run).removeprefix(prefix): float(v) for run, v in means.iter_rows()}

    alone = mean_ratios(fast)
    assert set(alone) == {"r0006", "r0007", "r0008"} and all(np.isfinite(list(alone.values())))
    assert mean_ratios(slow) == pytest.approx(alone)
    pooled = mean_ratios(f"bundled:{out}")
    for run_id, ratio in alone.items():
        assert pooled[f"fast/{run_id}"] == pytest.approx(ratio)
        assert pooled[f"slow/{run_id}"] == pytest.approx(ratio)  # not half of it


def test_a_packed_campaign_packs_again_with_a_lab_directory(tmp_path: Path) -> None:
    """A campaign whose lab directory is gone packs from its packed dataset: the same runs, labels, profiles
    and noise floor as from its directory, its own provenance (machine, notes) kept, the floor also per
    campaign on the card."""
    import json

    from labdir_fixture import write_lab_dir

    first, second = write_lab_dir(tmp_path / "spring"), write_lab_dir(tmp_path / "autumn")
    (first / "NOTES.md").write_text("Measured on the spring machine.\n")
    records = [json.loads(line) for line in (first / "runs.jsonl").read_text().splitlines()]
    for record in records:  # spring's r0006 names its adjacent reference: alpha's first solo (100, not 102)
        if record["run_id"] == "r0006":
            record["references"] = ["r0001"]
    (first / "runs.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    kept = tmp_path / "kept" / "spring"
    assert CliRunner().invoke(app, ["pack", str(first), "--out", str(kept)]).exit_code == 0
    meta = json.loads((kept / "meta.json").read_text())
    meta["meta"]["machine"] = {"cores": 64, "cpu_model": "the spring machine"}
    (kept / "meta.json").write_text(json.dumps(meta))
    from_dirs, from_packed = tmp_path / "from-dirs", tmp_path / "from-packed"
    for sources, out in (([first, second], from_dirs), ([kept, second], from_packed)):
        result = CliRunner().invoke(app, ["pack", *map(str, sources), "--out", str(out)])
        assert result.exit_code == 0, result.output
    expected, packed = load_source(f"bundled:{from_dirs}"), load_source(f"bundled:{from_packed}")
    assert packed.runs.sort("run_id")["label"].to_list() == pytest.approx(
        expected.runs.sort("run_id")["label"].to_list()
    )
    assert packed.runs["run_id"].sort().to_list() == expected.runs["run_id"].sort().to_list()
    labels = dict(zip(packed.runs["run_id"], packed.runs["label"], strict=True))
    assert labels["spring/r0006"] == pytest.approx(51 / 100) and labels["autumn/r0006"] == pytest.approx(
        51 / 102
    )
    references = packed.extras["records"].filter(pl.col("references").list.len() > 0)
    assert references.select("run_id", "references").rows() == [("spring/r0006", ["spring/r0001"])]
    assert packed.telemetry.height == expected.telemetry.height
    assert sorted(packed.profiles["profile_id"].unique()) == sorted(expected.profiles["profile_id"].unique())
    for key in ("n_solo_pairs", "median_abs_deviation", "p90_abs_deviation"):
        assert packed.meta["noise_floor"][key] == pytest.approx(expected.meta["noise_floor"][key])
    by_campaign = packed.meta["noise_floor"]["by_campaign"]
    assert set(by_campaign) == {"spring", "autumn"}
    assert (
        sum(floor["n_solo_pairs"] for floor in by_campaign.values())
        == packed.meta["noise_floor"]["n_solo_pairs"]
    )
    card = (from_packed / "CARD.md").read_text()
    assert "- campaign `spring`: machine cores 64, cpu_model the spring machine" in card
    assert "### spring\n\nMeasured on the spring machine." in card
    info = CliRunner().invoke(app, ["info", f"bundled:{from_packed}"])
    assert info.exit_code == 0 and "campaign spring: solo-vs-solo" in info.output, info.output
    neither = CliRunner().invoke(
        app, ["pack", str(tmp_path / "kept"), str(second), "--out", str(tmp_path / "x")]
    )
    assert neither.exit_code == 2 and "neither a lab directory" in neither.output


def test_pooled_campaigns_keep_the_cores_of_the_node_each_run_measured(tmp_path: Path) -> None:
    """A campaign pinned to one CPU (``host_cpus``: its records say ``host_cores``) pooled with one packed on
    a 64-core machine: each run keeps its own node's size, whatever machine packs the pool."""
    import json

    from labdir_fixture import write_lab_dir

    first, second = write_lab_dir(tmp_path / "big"), write_lab_dir(tmp_path / "pinned")
    records = [json.loads(line) for line in (second / "runs.jsonl").read_text().splitlines()]
    (second / "runs.jsonl").write_text("".join(json.dumps({**r, "host_cores": 1}) + "\n" for r in records))
    kept = tmp_path / "kept" / "big"
    assert CliRunner().invoke(app, ["pack", str(first), "--out", str(kept)]).exit_code == 0
    meta = json.loads((kept / "meta.json").read_text())
    meta["meta"]["machine"] = {"cores": 64, "cpu_model": "the big machine"}
    (kept / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / "pooled"
    result = CliRunner().invoke(app, ["pack", str(kept), str(second), "--out", str(out)])
    assert result.exit_code == 0, result.output
    pooled = load_source(f"bundled:{out}")
    cores = dict(zip(pooled.runs["run_id"], pooled.run_cores(), strict=True))
    assert {cores[r] for r in cores if r.startswith("big/")} == {64.0}
    assert {cores[r] for r in cores if r.startswith("pinned/")} == {1.0}
    assert set(pooled.extras["records"].filter(pl.col("campaign") == "pinned")["host_cores"]) == {1}
    half = pooled.runs.height // 2
    card = (out / "CARD.md").read_text()
    nodes = f"- nodes (co-runs per number of cores of the node they measured): {{'1': {half}, '64': {half}}}"
    assert nodes in card


def test_pooled_campaigns_link_a_neighbour_to_its_profile_measured_in_another_part(tmp_path: Path) -> None:
    """A plan measured in parts takes each configuration's solos where it is a target: a part whose
    neighbour (the cache aggressor) was profiled only in the other part sees it once the parts are pooled,
    and the card counts the co-runs still without a neighbour's profile."""
    import json

    from labdir_fixture import write_lab_dir

    first, second = write_lab_dir(tmp_path / "part1"), write_lab_dir(tmp_path / "part2")
    records = [json.loads(line) for line in (second / "runs.jsonl").read_text().splitlines()]
    kept = [r for r in records if r["kind"] != "neighbour_solo"]  # part 2 never profiled the aggressor
    (second / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    alone = load_source(second)
    linked = dict(zip(alone.runs["run_id"], alone.runs["neighbour_profiles"].to_list(), strict=True))
    assert linked["r0006"] == [] and linked["r0007"] == ["alpha/static/l1"]
    for sources, out, unprofiled in (([second], "alone", 2), ([first, second], "pooled", 0)):
        result = CliRunner().invoke(app, ["pack", *map(str, sources), "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
        card = (tmp_path / out / "CARD.md").read_text()
        counted = f"no solo profile (placement models see fewer neighbours): {unprofiled}"
        assert counted in card
    pooled = load_source(f"bundled:{tmp_path / 'pooled'}")
    linked = dict(zip(pooled.runs["run_id"], pooled.runs["neighbour_profiles"].to_list(), strict=True))
    assert linked["part2/r0006"] == ["stress-cache/l2"]
    assert linked["part2/r0007"] == ["stress-cache/l2", "alpha/static/l1"]
    assert linked["part2/r0008"] == [] and linked["part1/r0006"] == ["stress-cache/l2"]
