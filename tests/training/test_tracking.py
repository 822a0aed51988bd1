"""A real sqlite MLflow store: registration and the champion/challenger alias rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cotenant.training.tracking import apply_alias_rules
from mlflow import MlflowClient


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrating a fresh sqlite store takes seconds: do it once and copy it per test."""
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def client(migrated_db: Path, tmp_path: Path) -> MlflowClient:
    db = tmp_path / "mlflow.db"
    shutil.copy(migrated_db, db)
    return MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")


def _version(client: MlflowClient, name: str) -> str:
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name)
    return str(
        client.create_model_version(
            name, source=client.tracking_uri.replace("sqlite:///", "file://").rsplit("/", 1)[0]
        ).version
    )


def test_champion_moves_only_when_beaten_on_the_same_evaluation(client: MlflowClient) -> None:
    name = "cotenant-monitoring"
    first = _version(client, name)
    assert apply_alias_rules(client, name, first, "digestA:apps-seed0", 8.0, None) == "champion"
    worse = _version(client, name)
    assert apply_alias_rules(client, name, worse, "digestA:apps-seed0", 9.0, None) == "challenger"
    assert str(client.get_model_version_by_alias(name, "champion").version) == first
    other_data = _version(client, name)
    # Better number, but on another evaluation: not comparable, so it cannot take the title.
    assert apply_alias_rules(client, name, other_data, "digestB:apps-seed0", 1.0, None) == "challenger"
    better = _version(client, name)
    assert apply_alias_rules(client, name, better, "digestA:apps-seed0", 7.5, None) == "champion"
    assert str(client.get_model_version_by_alias(name, "champion").version) == better
    assert str(client.get_model_version_by_alias(name, "challenger").version) == other_data


def test_champion_rescored_on_the_new_evaluation(client: MlflowClient) -> None:
    name = "cotenant-placement"
    first = _version(client, name)
    apply_alias_rules(client, name, first, "old", 5.0, None)
    second = _version(client, name)
    scored: list[str] = []

    def score(champion: object) -> float:
        scored.append(str(champion.version))  # type: ignore[attr-defined]
        return 12.0

    assert apply_alias_rules(client, name, second, "new", 10.0, score) == "champion"
    assert scored == [first]
    tags = client.get_model_version(name, second).tags
    assert tags["mae_pp"] == "10.000000" and tags["champion_mae_pp_same_evaluation"] == "12.000000"


def test_a_champion_this_code_cannot_load_is_replaced_and_the_reason_kept(client: MlflowClient) -> None:
    name = "cotenant-placement"
    old = _version(client, name)
    apply_alias_rules(client, name, old, "digestA:apps-seed0", 5.0, None)
    new = _version(client, name)

    def unloadable(champion: object) -> float:
        raise ValueError("PlacementConfig: extra inputs are not permitted (input_clip)")

    assert apply_alias_rules(client, name, new, "digestA:apps-seed0", 9.0, unloadable) == "champion"
    assert str(client.get_model_version_by_alias(name, "champion").version) == new
    reason = client.get_model_version(name, new).tags["replaced_unloadable_champion"]
    assert f"v{old}" in reason and "input_clip" in reason


def test_other_errors_while_rescoring_the_champion_are_not_swallowed(client: MlflowClient) -> None:
    name = "cotenant-monitoring"
    apply_alias_rules(client, name, _version(client, name), "k", 5.0, None)

    def broken(champion: object) -> float:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        apply_alias_rules(client, name, _version(client, name), "k", 4.0, broken)


def test_promotion_compares_validation_figures_and_the_card_keeps_the_held_out_one(
    client: MlflowClient,
) -> None:
    """What promotion compares (validation programs) and what the card states (test programs) differ: a
    version better on the test programs but worse on validation does not take the title."""
    name = "cotenant-monitoring"
    first = _version(client, name)
    assert apply_alias_rules(client, name, first, "k", 6.0, None, held_out_mae=9.0) == "champion"
    tags = client.get_model_version(name, first).tags
    assert (tags["promotion_mae_pp"], tags["mae_pp"]) == ("6.000000", "9.000000")
    second = _version(client, name)
    assert apply_alias_rules(client, name, second, "k", 7.0, None, held_out_mae=5.0) == "challenger"
    assert str(client.get_model_version_by_alias(name, "champion").version) == first


def test_a_champion_of_the_same_split_is_compared_by_its_judged_figure(client: MlflowClient) -> None:
    """Re-scored on the split it was trained on, a champion that stopped early answers the validation half its
    stopping read, a figure flattered against every newcomer's; its own judged figure is compared instead,
    and it is still loaded (one this code cannot load is replaced)."""
    name = "cotenant-monitoring"
    first = _version(client, name)
    apply_alias_rules(client, name, first, "digestA:programs-fold0", 8.0, None)
    loaded: list[str] = []

    def flattering(champion: object) -> float:
        loaded.append(str(champion.version))  # type: ignore[attr-defined]
        return 3.0

    second = _version(client, name)
    assert apply_alias_rules(client, name, second, "digestA:programs-fold0", 7.5, flattering) == "champion"
    assert loaded == [first]
    assert client.get_model_version(name, second).tags["champion_mae_pp_same_evaluation"] == "8.000000"
    # On another split the champion has no figure of its own: it is re-scored there.
    third = _version(client, name)
    assert apply_alias_rules(client, name, third, "digestA:programs-fold1", 7.0, flattering) == "challenger"
    assert loaded == [first, second]
