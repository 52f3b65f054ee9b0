"""python -m training graph-gcn | graph-gcn-deep: the depth study, and the two models it serves.

Trains GCNs at every depth of gcn.DEPTHS, plain and residual, on the same graphs; measures test
accuracy and oversmoothing for each; serves the best by validation accuracy (graph-gcn) and the
deepest plain one (graph-gcn-deep). Both cards carry the whole study and its chart, depth.png.
"""

import functools
import json
from dataclasses import asdict
from pathlib import Path

from training import gcn, graph_charts, graph_export, graphs, writer
from training.export import count_parameters

SERVED = {"graph-gcn": "best", "graph-gcn-deep": "deepest plain"}


@functools.cache
def study(quick: bool) -> dict:
    """Every depth, plain and residual: {config name: (config, net, curves, metrics)}."""
    # --quick (tests): a few graphs, the shallowest and deepest networks, one epoch.
    train_graphs, val_graphs = graphs.split("train", 20 if quick else None), graphs.split("val", 10 if quick else None)
    test_graphs, karate = graphs.split("test", 10 if quick else None), graphs.karate()
    results = {}
    for residual in (False, True):
        for depth in (gcn.DEPTHS[0], gcn.DEPTHS[-1]) if quick else gcn.DEPTHS:
            cfg = gcn.Config(depth, residual)
            net, curves, info = gcn.train(cfg, train_graphs, val_graphs, quick)
            metrics = {**gcn.evaluate(net, test_graphs, karate), **info}
            print(f"  {cfg.name} ({info['training_time_s']:.0f} s): val {info['val_accuracy']:.3f}, test {metrics['test_accuracy']:.3f}, "
                  f"cosine {metrics['cosine_similarity']:.3f}, energy {metrics['dirichlet_energy']:.4f}", flush=True)
            results[cfg.name] = (cfg, net, curves, metrics)
    return results


def chosen(results: dict, which: str) -> str:
    """The config name served as `which`: the best validation accuracy, or the deepest plain."""
    if which == "best":
        return max(results, key=lambda k: results[k][3]["val_accuracy"])
    return gcn.Config(max(gcn.DEPTHS), residual=False).name


def table(results: dict) -> dict:
    """{"plain": {depth: metrics}, "residual": {...}} with numbers rounded for the card."""
    out: dict = {"plain": {}, "residual": {}}
    for cfg, _, _, m in results.values():
        out["residual" if cfg.residual else "plain"][str(cfg.depth)] = {
            k: round(v, 5) for k, v in m.items() if k != "training_time_s"}
    return out


def main(name: str, output: Path, version: int | None = None, quick: bool = False) -> Path:
    results = study(quick)
    served = chosen(results, SERVED[name])
    cfg, net, curves, metrics = results[served]
    vdir = writer.version_dir(output, name, version)
    parity = graph_export.export_verified(net, vdir / "model.onnx")

    karate, example = graphs.karate(), graph_export.example_graph()
    kind = f"{'residual' if cfg.residual else 'plain'} GCN, {cfg.depth} graph convolution{'s' * (cfg.depth > 1)}"
    writer.write_configs(vdir, {
        "task": "node-classification",
        "description": f"Node classifier ({kind}, hidden width {cfg.hidden}) on stochastic block "
                       "model graphs: each node's community from its features and its neighbours'.",
        "graphs": {"model": "model.onnx"},
        "labels": graphs.LABELS,
    })
    study_table = table(results)
    card_metrics = {
        **{k: metrics[k] for k in ("test_accuracy", "val_accuracy", "karate_accuracy",
                                   "cosine_similarity", "dirichlet_energy")},
        "served": served,
        "best": chosen(results, "best"),
        "deepest_plain": chosen(results, "deepest plain"),
        "depth_study": study_table,
    }
    body = writer.card(
        vdir, task="node-classification", family="graph network: " + kind,
        dataset=graphs.describe(), metrics=card_metrics, parity={"model.onnx": parity},
        parameters=count_parameters(net), training_time_s=metrics["training_time_s"], seed=cfg.seed,
        hyperparameters={**asdict(cfg), "depths": list(gcn.DEPTHS)}, quick=quick)
    # Shown by the playground: drawn and classified live by both served models.
    body["graphs"] = {"karate": karate.as_json(), "generated": example.as_json()}
    # No paths of this machine in a committed card: the command as anyone would type it.
    body["command"] = f"python -m training {name}" + (" --quick" if quick else "")
    body.pop("argv", None)
    (vdir / "card.json").write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    graph_charts.depth_png(vdir / "depth.png", study_table, served)
    writer.loss_png(vdir / "loss.png", curves)
    return vdir

