"""Apps named by model: their device profiles from the registered accelerator catalogue (the champion of
``cotenant-accelerators``). An app that carries its own profiles is taken as it is."""

from __future__ import annotations

from cotenant.models.accelerators import AppProfile
from cotenant.models.accelerators.profiles import DeviceKind
from cotenant.serving.models import LoadedCatalogue
from cotenant.serving.schemas import AppRequest


class NoCatalogue(LookupError):
    """No accelerator champion is loaded, and an app named its model only."""


class UnknownModel(LookupError):
    """An app names a model the catalogue does not profile (on the device kind asked)."""


def resolve_apps(
    apps: list[AppRequest], champion: LoadedCatalogue | None, kind: DeviceKind | None = None
) -> list[AppProfile]:
    """Every app with its device profiles: its own, or its model's from ``champion`` (on ``kind`` when the
    request is for one device)."""
    resolved = []
    for app in apps:
        if app.devices is not None:
            resolved.append(AppProfile.model_validate(app.model_dump()))
            continue
        if champion is None:
            raise NoCatalogue(
                f"app {app.name!r} names model {app.model!r} without device profiles, and no accelerator "
                "catalogue champion is loaded (cotenant accelerators fit registers one)"
            )
        where = f"{champion.name} version {champion.version}"
        profiles = champion.catalogue.models.get(app.model)
        if profiles is None:
            known = ", ".join(sorted(champion.catalogue.models)) or "none"
            raise UnknownModel(f"app {app.name!r}: model {app.model!r} is not in {where}; profiled: {known}")
        if kind is not None and kind not in profiles:
            raise UnknownModel(f"app {app.name!r}: model {app.model!r} has no {kind} profile in {where}")
        resolved.append(
            AppProfile.model_validate({**app.model_dump(exclude={"devices"}), "devices": profiles})
        )
    return resolved
