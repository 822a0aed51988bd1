"""Edge fleet sizing's building blocks: fleets of the named kind and size, apps taking a registered
catalogue's profiles for the models it has, and a sizing a memory-only policy gets wrong on a Coral."""

from __future__ import annotations

from cotenant.models.accelerators import load_apps
from cotenant.models.accelerators.profiles import DeviceProfile, ProfileCatalogue, ibis_data_dir
from cotenant.models.accelerators.simulator import SimulationConfig
from cotenant.planning.edge import NODE_MEMORY_MB, fleet, size_fleet, with_catalogue


def test_fleets_and_catalogue_profiles() -> None:
    cluster = fleet("tpu", 3)
    assert [n.name for n in cluster.nodes] == ["tpu-00", "tpu-01", "tpu-02"]
    assert {n.memory_mb for n in cluster.nodes} == {NODE_MEMORY_MB["tpu"]}
    apps = load_apps(ibis_data_dir() / "edgetpu_workload1.yaml").apps
    model = apps[0].model
    fitted = DeviceProfile(service_ms=7.5, memory_mb=120.0, switch_overhead_ms=3.0)
    catalogue = ProfileCatalogue(models={model: {"tpu": fitted}})
    updated, from_catalogue = with_catalogue(apps, catalogue)
    assert from_catalogue == [a.name for a in apps if a.model == model]
    for before, after in zip(apps, updated, strict=True):
        expected = fitted if before.model == model else before.devices["tpu"]
        assert after.devices["tpu"] == expected
    assert with_catalogue(apps, None) == (apps, [])


def test_memory_only_packing_overloads_a_coral_that_admission_control_spreads() -> None:
    apps = load_apps(ibis_data_dir() / "edgetpu_workload1.yaml").apps[:4]
    simulation = SimulationConfig(horizon_s=120.0, max_horizon_s=240.0, seed=1)
    packed = size_fleet("tpu", "first_fit", apps, 4, simulation)
    assert packed.by_rule == 1  # four apps' memory fits one Coral
    admitted = size_fleet("tpu", "depth_first", apps, 4, simulation)
    assert admitted.violations_at_rule == 0 and admitted.zero_violation == admitted.by_rule
    assert packed.zero_violation is None or packed.zero_violation >= admitted.zero_violation
