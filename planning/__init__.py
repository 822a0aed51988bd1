"""What-if planning for capacity planners: consolidation (how many workloads fit on H hosts at an SLO),
rescheduling (which tenants to move, and how few moves are enough). The notebooks under ``notebooks/`` set
parameters, call these and plot; the logic and its tests live here."""

from cotenant.planning.consolidation import (
    POLICIES,
    Capacity,
    HostPlan,
    Outcome,
    Request,
    SweepPoint,
    greedy_surprises,
    hosts_lower_bound,
    outcome,
    place_stream,
    sweep,
)
from cotenant.planning.rescheduling import (
    Fleet,
    Move,
    Plan,
    Planner,
    State,
    Value,
    exact_plans,
    exact_state_bound,
    greedy_plan,
    moved,
)
from cotenant.planning.scoring import ALONE, PlacementScorer, PredictorScorer

__all__ = [
    "ALONE",
    "POLICIES",
    "Capacity",
    "Fleet",
    "HostPlan",
    "Move",
    "Outcome",
    "PlacementScorer",
    "Plan",
    "Planner",
    "PredictorScorer",
    "Request",
    "State",
    "SweepPoint",
    "Value",
    "exact_plans",
    "exact_state_bound",
    "greedy_plan",
    "greedy_surprises",
    "hosts_lower_bound",
    "moved",
    "outcome",
    "place_stream",
    "sweep",
]
