"""Figures of dependency structure: a DAG laid out by topological layer."""

import math

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402

__all__ = ["layered_layout", "draw_dag"]


def layered_layout(graph: nx.DiGraph) -> dict:
    r"""Positions {node: (x, y)}: x is the node's topological layer (the longest path from a root),
    nodes of a layer stacked along y. A graph without edges is laid out on a square grid."""
    layers = [sorted(layer, key=list(graph.nodes).index) for layer in nx.topological_generations(graph)]
    if len(layers) == 1:  # no edges: a grid reads better than one tall column
        width = math.ceil(math.sqrt(len(layers[0])))
        return {v: (i % width, -(i // width)) for i, v in enumerate(layers[0])}
    return {v: (x, (len(layer) - 1) / 2 - j) for x, layer in enumerate(layers) for j, v in enumerate(layer)}


def draw_dag(
    graph: nx.DiGraph,
    ax=None,
    title: str | None = None,
    node_color: str = "#cfe2f3",
    labels: bool | None = None,
):
    r"""Draws a DAG on ``ax`` (a new figure if None): nodes by topological layer, arrows curved so that
    edges skipping layers stay visible.

    Arguments:
        graph: any ``networkx.DiGraph`` without cycles (a Bayes net's, or a model's ``graph()``).
        title: the axes title.
        labels: draw node names (default: when there are at most 40 nodes).

    Returns:
        the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    n = graph.number_of_nodes()
    pos = layered_layout(graph)
    labels = n <= 40 if labels is None else labels
    size = max(30, 600 / max(1, math.sqrt(n)))
    nx.draw_networkx_nodes(
        graph, pos, ax=ax, node_size=size, node_color=node_color, edgecolors="#3d6b99", linewidths=0.8
    )
    near = [(u, v) for u, v in graph.edges if abs(pos[v][0] - pos[u][0]) <= 1]
    far = [(u, v) for u, v in graph.edges if abs(pos[v][0] - pos[u][0]) > 1]
    for edges, rad in ((near, 0.0), (far, -0.35)):  # edges that skip layers arc above the others
        if edges:
            nx.draw_networkx_edges(
                graph,
                pos,
                edgelist=edges,
                ax=ax,
                node_size=size,
                arrows=True,
                arrowsize=8,
                width=0.6,
                edge_color="#555555",
                connectionstyle=f"arc3,rad={rad}",
            )
    if labels:
        nx.draw_networkx_labels(graph, pos, ax=ax, font_size=7 if n > 12 else 9)
    xs, ys = [p[0] for p in pos.values()], [p[1] for p in pos.values()]
    lift = max((0.18 * abs(pos[v][0] - pos[u][0]) for u, v in far), default=0.0)  # room for the arcs
    ax.set_xlim(min(xs, default=0) - 0.6, max(xs, default=0) + 0.6)
    ax.set_ylim(min(ys, default=0) - 0.6, max(ys, default=0) + 0.6 + lift)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax
