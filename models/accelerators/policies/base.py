"""Placement policies: each takes a cluster and an app stream (in arrival order) and returns where apps
went."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from cotenant.models.accelerators.base import MEMORY_LIMIT, NodeLoad
from cotenant.models.accelerators.profiles import AppProfile, ClusterSpec, NodeSpec
from cotenant.models.accelerators.screen import AdmissionScreen

from cotenant.registry import Registry

# Admission tests a placement answered while its caller waits may run, migrations in its simulation included:
# 13-20 us each on a node holding a few models (measured on Ibis's apps), so 3-5 s on one core. Re-using
# verdicts (`Placement.admits`), replicas of a few apps need few tests at any size (10 000 apps cycling
# Ibis's workload on 1000 nodes: 5 000-25 000); apps that all differ are screened on every node at once
# (`AdmissionScreen`) and tested only where the screen cannot tell. Nodes without a table form of their
# device model (MPS) are tested one by one: about one test per app and node (3000 on 300 nodes: 500 000 to
# 900 000, 10 s), and past the budget the request is refused (the service: 422). The exact search grows as
# nodes^apps and runs under it always.
MAX_ADMISSION_TESTS = 250_000
# Untested candidate nodes up to which an app is tested on each rather than screened: a screen costs about
# as much as this many tests whatever the number of nodes, so small clusters are only tested.
SCREEN_FROM_NODES = 16


class AdmissionBudgetExceeded(ValueError):
    """A placement ran out of admission tests (`Placement.max_admission_tests`)."""


@dataclass
class _Verdicts:
    """One app class's last admission verdict on every node, with the node's version then."""

    version: np.ndarray
    admitted: np.ndarray


@dataclass
class Placement:
    """Apps per node in placement order; `rejected` holds apps the policy refused.

    Apps join and leave through `host`, `unhost_last` and `unhost`, which keep what the policies read of each
    node in step: its admission state (`NodeLoad`) and, for every node at once, the memory its models and its
    apps' own containers take, so that a policy rules out the nodes an app cannot fit in one vector operation
    instead of one test per node. `max_admission_tests` bounds the tests `admits` runs (None: unbounded).
    """

    cluster: ClusterSpec
    hosted: dict[str, list[AppProfile]] = field(default_factory=dict)
    rejected: list[AppProfile] = field(default_factory=list)
    max_admission_tests: int | None = None
    admission_tests: int = field(default=0, init=False)
    screened: int = field(default=0, init=False)  # verdicts the screen gave without a test

    def __post_init__(self) -> None:
        given, self.hosted = self.hosted, {node.name: [] for node in self.cluster.nodes}
        nodes = self.cluster.nodes
        self._index = {node.name: position for position, node in enumerate(nodes)}
        # per node, the admission state after each app it hosts (the last is now; `unhost_last` pops it)
        self._loads = {node.name: [NodeLoad(node, self.cluster.network_ms)] for node in nodes}
        self._node_of: dict[str, str] = {}
        self._memory_mb = np.array([node.memory_mb for node in nodes], dtype=float)
        self._kinds = np.array([node.kind for node in nodes])
        self._model_memory_mb = np.zeros(len(nodes))  # one copy per model (model-driven hosting)
        self._container_memory_mb = np.zeros(len(nodes))  # one container per app (traditional hosting)
        self._holds_model: dict[str, np.ndarray] = {}  # model -> which nodes have it loaded
        self._hosted_count = np.zeros(len(nodes), dtype=np.int64)
        self._utilisation = np.zeros(len(nodes))  # the device model's, of the apps hosted
        # Admission verdicts by app class (every field but the name): a replica of a tested app gets the
        # verdict without a test until the node changes (each change raises the node's version). Kept from
        # a class's second app on, so that a stream of apps that all differ stores none.
        self._versions = np.zeros(len(nodes), dtype=np.int64)
        self._verdicts: dict[str, _Verdicts] = {}
        self._classes: dict[int, tuple[AppProfile, str]] = {}  # id(app) -> (app, its class)
        self._seen_classes: set[str] = set()
        self._screen = AdmissionScreen(self.cluster, lambda position: self.load(nodes[position]))
        for node in nodes:
            for app in given.get(node.name, []):
                self.host(node, app)

    def node_of(self, app_name: str) -> str | None:
        return self._node_of.get(app_name)

    @property
    def n_hosted(self) -> int:
        return sum(len(apps) for apps in self.hosted.values())

    def load(self, node: NodeSpec) -> NodeLoad:
        return self._loads[node.name][-1]

    def host(self, node: NodeSpec, app: AppProfile) -> None:
        self._loads[node.name].append(self.load(node).joined(app))
        self.hosted[node.name].append(app)
        self._node_of[app.name] = node.name
        self._changed(node, app, joined=True)

    def unhost_last(self, node: NodeSpec) -> None:
        """Undo the last `host` on `node` (a search backtracking)."""
        app = self.hosted[node.name].pop()
        self._loads[node.name].pop()
        del self._node_of[app.name]
        self._changed(node, app, joined=False)

    def unhost(self, node: NodeSpec, app: AppProfile) -> None:
        """Take `app` off `node` (a migration): the node's state is rebuilt from the apps left."""
        hosted = self.hosted[node.name]
        hosted.pop(next(index for index, other in enumerate(hosted) if other is app))
        loads = [NodeLoad(node, self.cluster.network_ms)]
        for other in hosted:
            loads.append(loads[-1].joined(other))
        self._loads[node.name] = loads
        del self._node_of[app.name]
        self._changed(node, app, joined=False)

    def _changed(self, node: NodeSpec, app: AppProfile, joined: bool) -> None:
        """Bring the per-node arrays in step with `node`'s apps after `app` joined or left it."""
        position, load = self._index[node.name], self.load(node)
        self._versions[position] += 1  # never back to an earlier number: an older verdict stays unread
        self._hosted_count[position] = len(self.hosted[node.name])
        self._utilisation[position] = load.utilisation
        self._model_memory_mb[position] = load.memory_mb
        if joined:
            self._container_memory_mb[position] += app.on(node.kind).memory_mb
        else:  # summed again rather than subtracted, so that backtracking restores the same float
            self._container_memory_mb[position] = sum(
                hosted.on(node.kind).memory_mb for hosted in self.hosted[node.name]
            )
        holds = self._holds_model.setdefault(app.model, np.zeros(len(self.cluster.nodes), dtype=bool))
        holds[position] = app.model in load.loads
        self._screen.changed(position)

    def admits(self, node: NodeSpec, app: AppProfile) -> bool:
        """The model-driven admission test with `app` joining `node` (`NodeLoad.admits`), or its replica's
        verdict on the node as it is."""
        if node.kind not in app.devices:
            return False
        position = self._index[node.name]
        verdicts = self._verdicts.get(self._admission_class(app))
        if verdicts is not None and verdicts.version[position] == self._versions[position]:
            return bool(verdicts.admitted[position])
        self.admission_tests += 1
        if self.max_admission_tests is not None and self.admission_tests > self.max_admission_tests:
            raise AdmissionBudgetExceeded(
                f"gave up after {self.max_admission_tests} admission tests ({self.n_hosted} apps placed and "
                f"{len(self.rejected)} refused by then, on {len(self.cluster.nodes)} nodes)"
            )
        verdict = self.load(node).admits(app)
        if verdicts is not None:
            verdicts.version[position] = self._versions[position]
            verdicts.admitted[position] = verdict
        return verdict

    def _admission_class(self, app: AppProfile) -> str:
        """What the admission test reads of `app`: all but its name (the app is kept with it, so that its
        id stays its own)."""
        known = self._classes.get(id(app))
        if known is None:
            known = self._classes[id(app)] = (app, app.model_dump_json(exclude={"name"}))
        return known[1]

    def _known_verdicts(self, app: AppProfile) -> tuple[np.ndarray, np.ndarray]:
        """Per node, whether a replica of `app` was refused, and whether admitted, by the node as it is."""
        key = self._admission_class(app)
        verdicts = self._verdicts.get(key)
        size = len(self.cluster.nodes)
        if verdicts is None:
            if key in self._seen_classes:  # the class's second app: keep its verdicts from now on
                self._verdicts[key] = _Verdicts(np.full(size, -1, dtype=np.int64), np.zeros(size, dtype=bool))
            self._seen_classes.add(key)
            return np.zeros(size, dtype=bool), np.zeros(size, dtype=bool)
        current = verdicts.version == self._versions
        return current & ~verdicts.admitted, current & verdicts.admitted

    def _memory_needed_mb(self, app: AppProfile, kind: str | None) -> np.ndarray:
        """Per node, the memory `app` brings there; infinite where it has no profile for the node's kind."""
        needed = np.full(len(self.cluster.nodes), np.inf)
        for device, profile in app.devices.items():
            if kind is None or device == kind:
                needed[self._kinds == device] = profile.memory_mb
        return needed

    def _admission_candidates(self, app: AppProfile, kind: str | None) -> tuple[np.ndarray, np.ndarray]:
        """The nodes (of `kind`) that may admit `app`, and those known to: whose memory holds it under the
        admission test's `MEMORY_LIMIT` (a copy of its model only where none is loaded; the test's first
        check, for every node at once, computed as the test computes it), less those that refused a replica
        of it as they are; and of these, those that admitted one."""
        needed = self._memory_needed_mb(app, kind)
        holds = self._holds_model.get(app.model)
        if holds is not None:
            needed = np.where(holds & np.isfinite(needed), 0.0, needed)
        refused, admitted = self._known_verdicts(app)
        fits = (self._model_memory_mb + needed <= MEMORY_LIMIT * self._memory_mb) & ~refused
        return fits, fits & admitted

    def first_admitting(
        self, app: AppProfile, kind: str | None = None, besides: str | None = None
    ) -> NodeSpec | None:
        """The first node (of `kind`, in cluster order, other than the one named `besides`) whose admission
        test `app` passes. The first candidate is tested alone (in a cluster filled front to back it is the
        node being filled, which often admits); the rest are screened at once where more than
        `SCREEN_FROM_NODES` remain, and tested where the screen cannot tell."""
        candidates, known = self._admission_candidates(app, kind)
        if besides is not None:
            candidates[self._index[besides]] = False
        positions = np.flatnonzero(candidates)
        nodes = self.cluster.nodes
        if len(positions) == 0:
            return None
        first = int(positions[0])
        if known[first] or self.admits(nodes[first], app):
            return nodes[first]
        # Up to the first candidate a replica's verdict admits (known refusals are not candidates), the
        # nodes are untested: those are screened.
        rest = positions[1:]
        stop = int(known[rest].argmax()) if known[rest].any() else len(rest)
        untested = rest[:stop]
        admits, refuses = self._screen_verdicts(app, untested)
        for index in np.flatnonzero(~refuses).tolist():  # in candidate order, past every sure refusal
            node = nodes[int(untested[index])]
            if admits[index] or self.admits(node, app):
                return node
        return nodes[int(rest[stop])] if stop < len(rest) else None

    def admitting(self, app: AppProfile) -> np.ndarray:
        """Per node, whether its admission test `app` passes (tests only where no replica's verdict holds
        and the screen, where it runs, cannot tell)."""
        candidates, admitted = self._admission_candidates(app, None)
        positions = np.flatnonzero(candidates & ~admitted)
        admits, refuses = self._screen_verdicts(app, positions)
        admitted[positions[admits]] = True
        nodes = self.cluster.nodes
        for position in positions[~admits & ~refuses].tolist():
            admitted[position] = self.admits(nodes[position], app)
        return admitted

    def _screen_verdicts(self, app: AppProfile, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`AdmissionScreen.verdicts` on the nodes at `positions` where more than `SCREEN_FROM_NODES`, counted
        (none surely admitting or refusing where fewer: they are tested)."""
        if len(positions) <= SCREEN_FROM_NODES:
            return np.zeros(len(positions), dtype=bool), np.zeros(len(positions), dtype=bool)
        admits, refuses = self._screen.verdicts(app, positions)
        decided = positions[admits | refuses]
        self.screened += len(decided)
        verdicts = self._verdicts.get(self._admission_class(app))
        if verdicts is not None:  # kept for its replicas, as a test's verdict is
            verdicts.version[decided] = self._versions[decided]
            verdicts.admitted[decided] = admits[admits | refuses]
        return admits, refuses

    def serving(self, model: str) -> np.ndarray:
        """Per node, whether `model` is loaded there."""
        holds = self._holds_model.get(model)
        return holds.copy() if holds is not None else np.zeros(len(self.cluster.nodes), dtype=bool)

    def idle(self) -> np.ndarray:
        """Per node, whether it hosts nothing."""
        return self._hosted_count == 0

    def utilisations(self) -> np.ndarray:
        """Per node, its device model's utilisation with the apps it hosts."""
        return self._utilisation.copy()

    def container_candidates(self, app: AppProfile) -> tuple[np.ndarray, np.ndarray]:
        """The positions of the nodes (in cluster order) where `app`'s own container fits beside every hosted
        app's (no shared model copies), and the memory each would have free after it."""
        free_after = self._memory_mb - (self._container_memory_mb + self._memory_needed_mb(app, None))
        fitting = np.flatnonzero(free_after >= 0)
        return fitting, free_after[fitting]


class Policy(Protocol):
    """Where each app of a stream (in arrival order) goes; `max_admission_tests` bounds the admission tests
    run (None: unbounded), past which the policy raises `AdmissionBudgetExceeded`."""

    def __call__(
        self, cluster: ClusterSpec, apps: Sequence[AppProfile], max_admission_tests: int | None = None
    ) -> Placement: ...


POLICIES: Registry[Policy] = Registry("placement policy")


def utilisation_increase(placement: Placement, node: NodeSpec, app: AppProfile) -> float:
    load = placement.load(node)
    return load.joined(app).utilisation - load.utilisation


def place_each(
    cluster: ClusterSpec,
    apps: Sequence[AppProfile],
    choose: Callable[[Placement, AppProfile], NodeSpec | None],
    max_admission_tests: int | None = None,
) -> Placement:
    """Online placement: apps arrive one by one and are never moved by the policy itself."""
    placement = Placement(cluster, max_admission_tests=max_admission_tests)
    for app in apps:
        node = choose(placement, app)
        if node is None:
            placement.rejected.append(app)
        else:
            placement.host(node, app)
    return placement
