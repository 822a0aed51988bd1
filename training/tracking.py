"""MLflow tracking and registry: log a fit, log the predictor as a models-from-code pyfunc, apply alias rules.

Alias rule: ``champion`` moves to a new version only when it beats the current champion on the same evaluation
(same data digest and split, the champion re-scored on it now); otherwise the new version is ``challenger``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The registered model of each task: the one definition of these names (serving, the main job, notebooks
# and benchmarks import it).
REGISTERED = {
    "monitoring": "cotenant-monitoring",
    "placement": "cotenant-placement",
    "accelerators": "cotenant-accelerators",  # a device-profile catalogue (training/accelerators.py)
}
CHAMPION_ALIAS = "champion"


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a local sqlite store live beside it (``<dir>/mlartifacts``); MLflow's own default is
    ``./mlruns`` under whatever directory the process started in, which a later run from elsewhere loses."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None  # a tracking server or file store decides for itself
    return (Path(tracking_uri.removeprefix(prefix)).resolve().parent / "mlartifacts").as_uri()


def use_experiment(name: str, tracking_uri: str) -> None:
    """Point MLflow at ``tracking_uri`` and select experiment ``name`` (created with artifacts beside a
    local store."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if client.get_experiment_by_name(name) is None:
        client.create_experiment(name, artifact_location=artifact_location(tracking_uri))
    mlflow.set_experiment(name)


def pyfunc_code_path() -> Path:
    import cotenant.models.mlflow_pyfunc as code

    return Path(code.__file__)


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "request")]),
        outputs=Schema(
            [
                ColSpec("double", "p"),
                ColSpec("double", "lower"),
                ColSpec("double", "upper"),
                ColSpec("string", "drivers"),
            ]
        ),
    )


def log_dataset(table: Any, digest: str, name: str) -> None:
    """Lineage: the source and the digest of the RunTable the model was trained on."""
    import mlflow
    from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]

    source = LocalArtifactDatasetSource(str(table.meta.get("path", table.meta.get("source", name))))
    dataset = mlflow.data.from_polars(  # type: ignore[attr-defined]
        table.runs, source=source, name=name, digest=digest[:36]
    )
    mlflow.log_input(dataset, context="training")


def log_predictor(predictor: Any, task: str) -> tuple[str, str]:
    """Save the artifact, log it as a pyfunc model in the active run, register it; -> (name, version)."""
    import mlflow

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch) / "predictor"
        predictor.save(directory)
        info = mlflow.pyfunc.log_model(
            name="predictor",
            python_model=str(pyfunc_code_path()),
            artifacts={"predictor": str(directory)},
            signature=signature(),
            pip_requirements=["cotenant"],
        )
    name = REGISTERED[task]
    version = mlflow.register_model(info.model_uri, name)
    return name, str(version.version)


def apply_alias_rules(
    client: Any,
    name: str,
    version: str,
    evaluation_key: str,
    mae: float,
    score_champion: Callable[[Any], float] | None,
    gate: dict[str, str] | None = None,
    held_out_mae: float | None = None,
) -> str:
    """Set ``champion`` or ``challenger`` on ``version``; returns the alias given, or ``REJECTED`` (no alias)
    when ``gate`` (``GateResult.tags``) says it failed the promotion gate. ``mae`` is what promotion compares
    (on validation programs, tag ``promotion_mae_pp``); ``held_out_mae`` the test programs' figure for the
    card (tag ``mae_pp``; ``mae`` when not given). ``score_champion`` loads the current champion's predictor
    and scores it on the same runs as ``mae``; a champion of the same evaluation key is compared by the
    figure stored when it was judged there (loaded all the same: one this code cannot load is replaced), and
    so is every champion when ``score_champion`` is None."""
    client.set_model_version_tag(name, version, "evaluation", evaluation_key)
    client.set_model_version_tag(name, version, "promotion_mae_pp", f"{mae:.6f}")
    card_mae = mae if held_out_mae is None else held_out_mae
    client.set_model_version_tag(name, version, "mae_pp", f"{card_mae:.6f}")
    for key, value in (gate or {}).items():
        client.set_model_version_tag(name, version, key, value)
    if gate is not None and gate.get("gate") == "failed":
        return REJECTED
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except Exception:  # no champion yet: the first model is it
        champion = None
    if champion is None:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        return CHAMPION_ALIAS
    measured_here = champion.tags.get("evaluation") == evaluation_key and "promotion_mae_pp" in champion.tags
    if score_champion is not None:
        try:
            champion_mae = score_champion(champion)
        except (ValueError, TypeError, KeyError, FileNotFoundError) as error:
            # Written by an incompatible version of the code (or its files are gone): this code cannot serve
            # it either, so keeping it as champion would leave the service without a model.
            import logging

            reason = f"v{champion.version} cannot be loaded by this code: {type(error).__name__}: {error}"
            logging.getLogger(__name__).warning("%s champion %s; promoting v%s", name, reason, version)
            client.set_model_version_tag(name, version, "replaced_unloadable_champion", reason[:4000])
            client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
            return CHAMPION_ALIAS
        if measured_here:
            # Trained on this very split, it was judged on these runs as every candidate is, each answered by
            # a model that had not read it (one stopped early: half of them by its twin). Re-scored, it would
            # answer the half its early stopping read itself, a figure no newcomer's is measured like.
            champion_mae = float(champion.tags["promotion_mae_pp"])
    elif champion.tags.get("evaluation") == evaluation_key:
        champion_mae = float(champion.tags.get("promotion_mae_pp", champion.tags.get("mae_pp", "inf")))
    else:
        champion_mae = float("inf")  # never measured here: cannot claim it is better
        client.set_registered_model_alias(name, "challenger", version)
        return "challenger"
    client.set_model_version_tag(name, version, "champion_mae_pp_same_evaluation", f"{champion_mae:.6f}")
    if mae < champion_mae:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        return CHAMPION_ALIAS
    client.set_registered_model_alias(name, "challenger", version)
    return "challenger"


# What ``apply_alias_rules`` returns for a version that failed the promotion gate: it gets no alias.
REJECTED = "rejected"


def version_by_alias(client: Any, name: str, alias: str = CHAMPION_ALIAS) -> Any | None:
    """The registered version under ``alias``, or None while the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:  # the registered model or the alias does not exist yet
        return None


def download_registered(client: Any, name: str, version: str, tracking_uri: str) -> Path:
    """A registered version's files, downloaded to a new folder. The source is resolved through ``client``: a
    bare ``models:/`` URI would go to the process-wide registry, which training may have pointed elsewhere."""
    import mlflow.artifacts

    target = tempfile.mkdtemp(prefix=f"cotenant-{name}-v{version}-")
    source = client.get_model_version_download_uri(name, version)
    return Path(
        mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=target, tracking_uri=tracking_uri)
    )


def load_registered_predictor(client: Any, name: str, version: str, tracking_uri: str) -> Any:
    from cotenant.models.predictor import Predictor

    local = download_registered(client, name, version, tracking_uri)
    found = sorted(local.rglob("predictor.json"), key=lambda p: len(p.parts))
    if not found:
        raise FileNotFoundError(f"models:/{name}/{version} holds no predictor.json")
    return Predictor.load(found[0].parent)
