"""Write docs/MODELS.md: one table row per model of the repository, read from its latest card.

python -m training.model_table [--models models] [--out docs/MODELS.md]
"""

import argparse
import json
import os
from pathlib import Path

from training.judge import latest_version

ORDER = ["digits-shallow", "digits-deep", "digits-cnn", "diabetes-regressor", "digits-gan",
         "digits-vae", "digits-flow", "moons-flow", "digits-diffusion", "digits-text2img",
         "en-fr-numbers", "graph-gcn", "graph-gcn-deep"]


def _judge(v: dict) -> str:
    if "score" not in v:
        return "judge skipped"
    text = f"judge {v['score']:.3f}, min class share {v['min_class_share']:.1%}"
    if "agreement" in v:
        text += f", agreement {v['agreement']:.1%}"
    return text


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _judged(verdict: dict, threshold: float) -> bool:
    return verdict.get("score", 0) >= threshold and verdict.get("covers_all_classes", False)


def key_metrics(card: dict) -> tuple[str, str]:
    """(metrics, issue 3's bar with whether the card meets it)."""
    m, name = card["metrics"], card["name"]
    if card["task"] == "classification":
        acc = m["test_accuracy"]
        bar = f"≥ 0.98: {_met(acc >= 0.98)}" if name == "digits-cnn" else "reported"
        return f"test accuracy {acc:.4f}", bar
    if card["task"] == "regression":
        t = m["test"]
        calibrated = 0.55 <= t["within_1_std"] <= 0.8
        text = (f"test R² {t['r2']:.3f}, RMSE {t['rmse']:.1f}, NLL {t['nll']:.3f} nats, "
                f"{t['within_1_std']:.1%} within ±1 std")
        return text, f"R² ≥ 0.45: {_met(t['r2'] >= 0.45)}; ±1 std 55–80%: {_met(calibrated)}"
    if card["task"] == "gan":
        return _judge(m["judge"]), f"judge ≥ 0.80: {_met(_judged(m['judge'], 0.8))}"
    if card["task"] == "vae":
        text = f"test ELBO {m['test']['elbo_nats_per_image']:.2f} nats/image; {_judge(m['judge'])}"
        return text, f"judge ≥ 0.70: {_met(_judged(m['judge'], 0.7))}"
    if card["task"] == "flow" and "test" in m:
        t = m["test"]
        c = t["density_comparison"]
        ok = c["real_over_noise"] >= 0.99 and c["real_over_shuffled"] >= 0.99
        text = (f"test NLL {t['test_nll_bits_per_dim']:.3f} bits/dim (uniform "
                f"{t['uniform_bits_per_dim']:.3f}); real > noise {c['real_over_noise']:.1%}, "
                f"real > shuffled {c['real_over_shuffled']:.1%}")
        return text, f"≥ 99% both: {_met(ok)}"
    if card["task"] == "flow":
        return f"test NLL {m['test_nll_nats_per_point']:.3f} nats/point", "reported"
    if card["task"] == "text-to-image":  # issue 14's bar, on captions in held-out phrasings
        g = card["hyperparameters"]["guidance"]
        v = m[f"judge_guidance_{g:g}"]
        ok = (v["digit"]["agreement"] >= 0.9 and v["weight"]["agreement"] >= 0.7
              and v["slant"]["agreement"] >= 0.7 and v["covers_all_classes"])
        text = (f"held-out captions, guidance {g:g}: digit {v['digit']['agreement']:.1%}, weight "
                f"{v['weight']['agreement']:.1%}, slant {v['slant']['agreement']:.1%}, "
                f"min class share {v['min_class_share']:.1%}")
        return text, f"digit ≥ 90%, weight and slant ≥ 70%, every digit ≥ 4%: {_met(ok)}"
    if card["task"] == "translation":  # issue 13's bar
        g, s = m["greedy_num2words"], m["greedy_without_and"]
        text = (f"greedy exact match {g['exact_match']:.2%} on {m['test_numbers']:,} held-out "
                f"numbers ({s['exact_match']:.2%} without 'and'), token accuracy "
                f"{g['token_accuracy']:.2%}")
        return text, f"exact match ≥ 99%: {_met(g['exact_match'] >= 0.99)}"
    if card["task"] == "node-classification":  # issue 14's bars
        text = (f"{m['served']}: test accuracy {m['test_accuracy']:.3f} on held-out graphs, karate "
                f"{m['karate_accuracy']:.3f}; embedding cosine similarity {m['cosine_similarity']:.3f}, "
                f"Dirichlet energy {m['dirichlet_energy']:.4f}")
        if name == "graph-gcn":
            return text, f"≥ 0.90: {_met(m['test_accuracy'] >= 0.9)}"
        best = m["depth_study"][m["best"].split("-")[0]][m["best"].split("-")[1]]["test_accuracy"]
        return text, f"visibly worse than the best ({best:.3f}): {_met(m['test_accuracy'] < best - 0.3)}"
    u, c = m["judge_unconditional"], m["judge_conditional"]
    ok = _judged(u, 0.9) and c.get("agreement", 0) >= 0.9
    text = (f"unconditional {_judge(u)}; conditional (guidance "
            f"{card['hyperparameters']['guidance']}) {_judge(c)}")
    return text, f"≥ 0.90 and ≥ 90% agreement: {_met(ok)}"


def table(models: Path, out: Path) -> str:
    rows = ["| model | family | parameters | key test metrics | issue 3 bar | pictures |",
            "|---|---|---:|---|---|---|"]
    for name in ORDER:
        vdir = latest_version(models / name)
        if vdir is None:
            continue
        card = json.loads((vdir / "card.json").read_text())
        metrics, bar = key_metrics(card)
        pictures = [f"[{p}]({os.path.relpath(vdir / p, out.parent)})"
                    for p in ("samples.png", "depth.png", "loss.png") if (vdir / p).exists()]
        rows.append(f"| `{name}` v{card['version']} | {card['family']} | {card['parameters']:,} "
                    f"| {metrics} | {bar} | {' '.join(pictures)} |")
    return "\n".join(rows)


def depth_table(models: Path) -> str:
    """Issue 14's study from graph-gcn's card: accuracy and oversmoothing against depth."""
    vdir = latest_version(models / "graph-gcn")
    if vdir is None:
        return "(no graph-gcn in the repository)"
    study = json.loads((vdir / "card.json").read_text())["metrics"]["depth_study"]
    rows = [("| depth | plain: test accuracy | cosine similarity | Dirichlet energy "
            "| residual: test accuracy | cosine similarity | Dirichlet energy |"),
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for depth in sorted(study["plain"], key=int):
        cells = [f"{study[k][depth]['test_accuracy']:.3f} | {study[k][depth]['cosine_similarity']:.3f} | "
                 f"{study[k][depth]['dirichlet_energy']:.4f}" for k in ("plain", "residual")]
        rows.append(f"| {depth} | {' | '.join(cells)} |")
    return "\n".join(rows)


def _replace(text: str, marker: str, body: str) -> str:
    """The text between <!-- marker --> and <!-- /marker --> replaced by body (kept if absent)."""
    if f"<!-- {marker} -->" not in text:
        return text
    head, rest = text.split(f"<!-- {marker} -->", 1)
    tail = rest.split(f"<!-- /{marker} -->", 1)[1]
    return f"{head}<!-- {marker} -->\n{body}\n<!-- /{marker} -->{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--out", type=Path, default=Path("docs/MODELS.md"))
    args = parser.parse_args()
    text = args.out.read_text() if args.out.exists() else "<!-- table -->\n<!-- /table -->\n"
    text = _replace(text, "table", table(args.models, args.out))
    args.out.write_text(_replace(text, "depth", depth_table(args.models)))


if __name__ == "__main__":
    main()
