"""The Python application workloads (pyprograms.py): parsers on captured real outputs, and real short runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cotenant.datasets.lab.workloads import pyprograms
from cotenant.datasets.lab.workloads.base import ParseError, WorkContext
from cotenant.datasets.lab.workloads.numpy_blas import NumpyBlas
from cotenant.datasets.lab.workloads.numpy_gather import NumpyGather
from cotenant.datasets.lab.workloads.numpy_stream import NumpyStream
from cotenant.datasets.lab.workloads.pandas_analytics import PandasAnalytics
from cotenant.datasets.lab.workloads.polars_analytics import PolarsAnalytics
from cotenant.datasets.lab.workloads.python_json import PythonJson
from cotenant.datasets.lab.workloads.scipy_dijkstra import ScipyDijkstra
from cotenant.datasets.lab.workloads.scipy_pagerank import ScipyPagerank
from cotenant.datasets.lab.workloads.sklearn_forest import SklearnForest
from cotenant.datasets.lab.workloads.torch_inference import TorchInference
from cotenant.datasets.lab.workloads.torch_training import TorchTraining

parse_polars_analytics = PolarsAnalytics().parse
parse_torch_inference = TorchInference().parse
parse_torch_training = TorchTraining().parse
parse_numpy_blas = NumpyBlas().parse
parse_numpy_stream = NumpyStream().parse
parse_numpy_gather = NumpyGather().parse
parse_scipy_pagerank = ScipyPagerank().parse
parse_python_json = PythonJson().parse
parse_sklearn_forest = SklearnForest().parse
parse_pandas_analytics = PandasAnalytics().parse
parse_scipy_dijkstra = ScipyDijkstra().parse

CAPTURED = Path(__file__).parent / "captured"
PARSERS = [
    parse_polars_analytics,
    parse_torch_inference,
    parse_torch_training,
    parse_numpy_blas,
    parse_numpy_stream,
    parse_numpy_gather,
    parse_scipy_pagerank,
    parse_python_json,
    parse_sklearn_forest,
    parse_pandas_analytics,
    parse_scipy_dijkstra,
]


def captured(name: str) -> str:
    return (CAPTURED / name).read_text(errors="replace")


@pytest.mark.parametrize(
    ("parser", "file", "expected"),
    [
        (parse_polars_analytics, "pyprograms_analytics_1.txt", 70.001278),
        (parse_polars_analytics, "pyprograms_analytics_2.txt", 54.548941),
        (parse_torch_inference, "pyprograms_torch_inference_1.txt", 61.803224),
        (parse_torch_inference, "pyprograms_torch_inference_2.txt", 33.419901),
        (parse_torch_training, "pyprograms_torch_training_1.txt", 759.272949),
        (parse_torch_training, "pyprograms_torch_training_2.txt", 411.877258),
        (parse_numpy_blas, "pyprograms_numpy_blas_1.txt", 41.266454),
        (parse_numpy_blas, "pyprograms_numpy_blas_2.txt", 37.715719),
        # captured beside a running evaluation (niced), so well under the machine's bandwidth
        (parse_numpy_stream, "pyprograms_numpy_stream_1.txt", 1.104557),
        (parse_numpy_stream, "pyprograms_numpy_stream_2.txt", 2.313383),
        (parse_numpy_gather, "pyprograms_numpy_gather_1.txt", 89.144324),
        (parse_numpy_gather, "pyprograms_numpy_gather_2.txt", 171.174350),
        (parse_scipy_pagerank, "pyprograms_scipy_pagerank_1.txt", 385.868190),
        (parse_scipy_pagerank, "pyprograms_scipy_pagerank_2.txt", 799.502912),
        (parse_python_json, "pyprograms_python_json_1.txt", 55024.439198),
        (parse_python_json, "pyprograms_python_json_2.txt", 99986.460633),
        (parse_sklearn_forest, "pyprograms_sklearn_forest_1.txt", 4.119550),
        (parse_sklearn_forest, "pyprograms_sklearn_forest_2.txt", 7.309438),
        (parse_pandas_analytics, "pyprograms_pandas_analytics_1.txt", 8.166264),
        (parse_pandas_analytics, "pyprograms_pandas_analytics_2.txt", 15.578812),
        (parse_scipy_dijkstra, "pyprograms_scipy_dijkstra_1.txt", 16.384156),
        (parse_scipy_dijkstra, "pyprograms_scipy_dijkstra_2.txt", 35.764339),
    ],
)
def test_parser_reads_the_rate(parser, file: str, expected: float) -> None:
    assert parser(captured(file)) == pytest.approx(expected)


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize(
    "output",
    [
        "",
        "Traceback (most recent call last):\n  ...\nMemoryError\n",
        "pyprograms: program=analytics threads=1 iterations=0 units=0.000 unit=queries\n",  # cut short
    ],
)
def test_parser_raises_without_a_rate(parser, output: str) -> None:
    with pytest.raises(ParseError):
        parser(output)


def test_parser_reads_only_its_own_program() -> None:
    # A log holding another program's result line (a shared log, a wrong workload) is not a rate.
    with pytest.raises(ParseError):
        parse_torch_training(captured("pyprograms_torch_inference_1.txt"))
    with pytest.raises(ParseError):
        parse_numpy_blas(captured("pyprograms_analytics_1.txt"))
    with pytest.raises(ParseError):
        parse_numpy_stream(captured("pyprograms_numpy_blas_1.txt"))
    with pytest.raises(ParseError):
        parse_numpy_gather(captured("pyprograms_numpy_stream_1.txt"))
    with pytest.raises(ParseError):
        parse_scipy_pagerank(captured("pyprograms_numpy_gather_1.txt"))
    with pytest.raises(ParseError):
        parse_python_json(captured("pyprograms_scipy_pagerank_1.txt"))
    with pytest.raises(ParseError):
        parse_sklearn_forest(captured("pyprograms_python_json_1.txt"))
    with pytest.raises(ParseError):
        parse_pandas_analytics(captured("pyprograms_analytics_1.txt"))  # Polars' line, not pandas'
    with pytest.raises(ParseError):
        parse_polars_analytics(captured("pyprograms_pandas_analytics_1.txt"))
    with pytest.raises(ParseError):
        parse_scipy_dijkstra(captured("pyprograms_scipy_pagerank_1.txt"))


@pytest.mark.parametrize(
    ("size", "first", "end"), [(1000, 0, 1000), (1000, 0, 333), (1000, 333, 1000), (7, 2, 5)]
)
def test_triad_computes_its_slice_and_leaves_the_rest(size: int, first: int, end: int) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    b, c = rng.standard_normal(size), rng.standard_normal(size)
    a = np.full(size, np.nan)
    pyprograms.triad(a, b, c, 3.0, first, end, np.empty(64))  # blocks that do not divide the slice
    np.testing.assert_allclose(a[first:end], b[first:end] + 3.0 * c[first:end])
    assert np.isnan(a[:first]).all() and np.isnan(a[end:]).all()


def test_gather_looks_up_each_index_into_its_own_slice() -> None:
    import numpy as np

    table = np.arange(100, dtype=np.float64) * 0.5
    indices = np.array([99, 0, 7, 7, 42])
    out = np.full(8, np.nan)
    pyprograms.gather(table, indices, out[2:7])
    np.testing.assert_array_equal(out[2:7], [49.5, 0.0, 3.5, 3.5, 21.0])
    assert np.isnan(out[:2]).all() and np.isnan(out[7:]).all()


def test_pagerank_graph_links_every_edge_once_weighted_by_its_source() -> None:
    import numpy as np

    nodes, edges = 1000, 20_000
    matrix = pyprograms.pagerank_graph(nodes, edges)
    assert matrix.shape == (nodes, nodes) and matrix.nnz == edges
    # Each source's links weigh 1 / its out-degree: every column with links sums to 1 (the rank it gives
    # away is the rank it has), so a step keeps the total rank.
    column_sums = np.asarray(matrix.sum(axis=0)).ravel()
    linked = column_sums > 0
    np.testing.assert_allclose(column_sums[linked], 1.0)
    # Skewed: the most-linked tenth of the nodes is the source of far more than a tenth of the links.
    out_degree = np.sort(np.bincount(matrix.indices, minlength=nodes))[::-1]
    assert out_degree[: nodes // 10].sum() > 0.4 * out_degree.sum()
    assert (pyprograms.pagerank_graph(nodes, edges) != matrix).nnz == 0  # the same graph on every call


def test_pagerank_step_keeps_the_total_rank() -> None:
    import numpy as np

    nodes = 500
    matrix = pyprograms.pagerank_graph(nodes, 10_000)
    rank = np.full(nodes, 1.0 / nodes)
    out = np.empty(nodes)
    dangling = 1.0 - np.asarray(matrix.sum(axis=0)).ravel()  # 1 for a node with no links out, else 0
    pyprograms.pagerank_step(matrix, rank, out, (1.0 - pyprograms.PAGERANK_DAMPING) / nodes)
    lost = pyprograms.PAGERANK_DAMPING * float(dangling @ rank)
    assert out.sum() == pytest.approx(1.0 - lost)
    teleport = (1.0 - pyprograms.PAGERANK_DAMPING) / nodes
    np.testing.assert_allclose(out, pyprograms.PAGERANK_DAMPING * (matrix @ rank) + teleport)


def test_dijkstra_graph_is_fixed_mostly_local_and_searched_whole() -> None:
    import numpy as np
    from scipy.sparse import csgraph

    nodes = 4096
    graph = pyprograms.dijkstra_graph(nodes)
    assert graph.shape == (nodes, nodes) and (pyprograms.dijkstra_graph(nodes) != graph).nnz == 0
    out_degree = np.diff(graph.indptr)
    degree = pyprograms.DIJKSTRA_DEGREE
    assert out_degree.min() >= degree - 2 and out_degree.max() == degree
    assert (out_degree == degree).mean() > 0.95
    assert graph.data.min() >= 1.0
    sources = np.repeat(np.arange(nodes), out_degree)
    ahead = (graph.indices - sources) % nodes
    local = (ahead > 0) & (ahead < pyprograms.DIJKSTRA_LOCAL_SPAN)
    assert 0.8 < local.mean() < 0.95  # seven in eight local, and a far link lands near by chance rarely
    # One search reaches (nearly) every node, so every source's search scans the whole graph's links.
    distances = csgraph.dijkstra(graph, directed=True, indices=0)
    assert np.isfinite(distances).mean() > 0.99


def test_pandas_answers_the_queries_polars_answers(context: WorkContext) -> None:
    # The two analytics programs ask the same questions of the same tables; their answers must agree, or one
    # of them measures other work.
    import numpy as np

    data = PolarsAnalytics().data(context)
    polars = [query.collect().to_pandas() for query in pyprograms.polars_queries(data)]
    pandas = [query() for query in pyprograms.pandas_queries(data)]
    pandas[0] = pandas[0].reset_index()  # Q1's groups are pandas' index, Polars' columns
    for ours, theirs in zip(polars, pandas, strict=True):
        assert list(ours.columns) == list(theirs.columns) and len(ours) == len(theirs) > 0
        for column in ours.columns:
            mine, other = ours[column].to_numpy(), theirs[column].to_numpy()
            if np.issubdtype(mine.dtype, np.floating):
                np.testing.assert_allclose(mine, other.astype(float), rtol=1e-9)
            else:
                assert [str(value)[:10] for value in mine] == [str(value)[:10] for value in other], column
    # Q1's groups: (A, F), (N, O), (R, F); Q3's top ten; Q6's one sum.
    assert len(polars[0]) == 3 and len(polars[1]) == 10 and polars[2]["revenue"][0] > 0


def test_json_orders_are_fixed_and_answered_with_their_totals() -> None:
    import json

    orders = pyprograms.json_orders(50)
    assert orders == pyprograms.json_orders(50) and len(set(orders)) == 50
    order = json.loads(orders[7])
    answer = json.loads(pyprograms.answer_order(orders[7]))
    discount = 0.9 if order["customer"]["tier"] == "enterprise" else 1.0
    expected = sum(item["quantity"] * item["price"] for item in order["items"]) * discount
    assert answer["id"] == 7 and answer["total"] == pytest.approx(round(expected, 2))
    assert answer["quantity"] == sum(item["quantity"] for item in order["items"])
    assert answer["tags"] == sorted(set(order["customer"]["tags"]))
    assert pyprograms.answer_orders(orders) == 50


def test_forest_table_is_fixed_and_learnable() -> None:
    import numpy as np

    table, labels = pyprograms.forest_table(2000, 8)
    again, labels_again = pyprograms.forest_table(2000, 8)
    assert table.dtype == np.float32 and table.shape == (2000, 8)
    assert np.array_equal(table, again) and np.array_equal(labels, labels_again)
    assert 0.3 < labels.mean() < 0.7  # both classes, so trees split
    # A tree of the program's kind fits its table far better than chance and is the same tree for a seed.
    tree = pyprograms.fit_tree(table, labels, seed=3)
    assert (tree.predict(table) == labels).mean() > 0.9 and tree.get_depth() > 5
    features = tree.tree_.feature
    np.testing.assert_array_equal(features, pyprograms.fit_tree(table, labels, seed=3).tree_.feature)
    assert not np.array_equal(features, pyprograms.fit_tree(table, labels, seed=4).tree_.feature)


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> WorkContext:
    root = tmp_path_factory.mktemp("pyprograms")
    scratch = root / "scratch"
    scratch.mkdir()
    PolarsAnalytics().prepare(scratch)
    return WorkContext(scratch=scratch, role_dir=root / "role", runtime_dir=root / "run")


@pytest.mark.parametrize(
    "workload",
    [
        PolarsAnalytics,
        TorchInference,
        TorchTraining,
        NumpyBlas,
        NumpyStream,
        NumpyGather,
        ScipyPagerank,
        PythonJson,
        SklearnForest,
        PandasAnalytics,
        ScipyDijkstra,
    ],
)
def test_program_runs_and_its_rate_parses(workload, context: WorkContext) -> None:
    instance = workload()
    done = subprocess.run(
        instance.phase_command(1, 2, context), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert instance.parse(done.stdout + done.stderr) > 0


def test_prepare_reuses_the_tables(context: WorkContext) -> None:
    tables = sorted(context.scratch.glob("*/*.parquet"))
    stamps = [path.stat().st_mtime_ns for path in tables]
    PolarsAnalytics().prepare(context.scratch)
    assert len(tables) == 3
    assert [path.stat().st_mtime_ns for path in sorted(context.scratch.glob("*/*.parquet"))] == stamps
