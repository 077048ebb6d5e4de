"""The harness's outputs: ``report.md`` (tables and plain verdicts), ``results.json`` and plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from adass_ray.data.io import atomic_write_bytes, write_json
from adass_ray.harness.methods import OURS


def _pm(mean: float, std: float, digits: int = 4) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def ci_text(d: dict[str, float] | None, digits: int = 4, scale: float = 1.0) -> str:
    """A paired difference (:func:`~adass_ray.harness.stats.paired`) as ``+m [lo, hi]``, plus its
    verdict when it has one; ``—`` when there is none."""
    if not d or math.isnan(d["mean"]):
        return "—"
    if math.isnan(d["lo"]):
        return f"{d['mean'] * scale:+.{digits}f}"
    return (
        f"{d['mean'] * scale:+.{digits}f} [{d['lo'] * scale:+.{digits}f}, "
        f"{d['hi'] * scale:+.{digits}f}] {d.get('verdict', '')}"
    ).rstrip()


def _tau(x: float) -> str:
    return "undefined (ties)" if x is None or math.isnan(x) else f"{x:.3f}"


def verdict(rows: list[dict[str, Any]]) -> str:
    """One plain sentence per budget: which baselines ours beats, ties or loses to (paired
    95 % interval of the test-AUC difference over seeds)."""
    groups: dict[str, list[str]] = {"ahead": [], "tie": [], "behind": [], "n/a": []}
    for r in rows:
        if r["method"] == OURS or r["group"] != "baseline" or "vs_ours_auc" not in r:
            continue
        groups[r["vs_ours_auc"]["verdict"]].append(r["method"])
    parts = []
    if groups["behind"]:
        parts.append(f"AdaS&S is **behind** {', '.join(groups['behind'])}")
    if groups["tie"]:
        parts.append(f"ties (inside the noise) with {', '.join(groups['tie'])}")
    if groups["ahead"]:
        parts.append(f"is ahead of {', '.join(groups['ahead'])}")
    if not parts:
        return "not retrained: no test-AUC comparison (see the Q_B percentiles)."
    return "; ".join(parts) + " (paired 95 % interval of the test-AUC difference over seeds)."


def render_markdown(res: dict[str, Any]) -> str:
    """The report as markdown tables (what ``report.md`` holds)."""
    lines = [
        f"# Evaluation report: {res['dataset']}",
        "",
        f"Data: `{res['data']}` (rows {res['rows']}); budgets as ratios of uniform-"
        f"{res['d_base']} = {res['uniform_cost']:,} params; seeds {res['seeds']}; "
        f"{'QUICK settings (smoke only, not results)' if res['quick'] else 'full settings'};"
        f" {res['seconds'] / 60:.1f} min.",
        "",
    ]
    rk = res["ranking"] or {"seed_tau": math.nan, "variants": []}
    lines += [
        "## Noise floor",
        "",
        (f"- Kendall τ between two stand-alone seeds over the {len(res['panel'])}-"
         f"architecture panel: {_tau(rk['seed_tau'])} (the ceiling of any ranking check).")
        if res["ranking"] else "- Ranking noise floor: not measured (no retraining here).",
        *[
            f"- budget {p['spec']}: paired-bootstrap SE of a Q_B difference between two "
            f"selections: {p['bootstrap_se']:.4f} AUC"
            for p in res["budgets"]
        ],
        "",
    ]
    for p in res["budgets"]:
        pop = (
            "every architecture of the three smallest sizes within the budget"
            if p["exhaustive"]
            else "seeded random feasible architectures"
        )
        pop += "; \"random\": 2,000 random architectures over every size, repaired to B"
        lines += [
            f"## Budget {p['spec']} ({p['budget']:,} params)",
            "",
            f"Q_B percentile: against {p['population']:,} {pop}, all scored on the "
            "reference (adaptive) supernet's selection half.",
            "",
        ]
        if p["single_architecture"]:
            lines += [
                "**The feasible space has one architecture at this budget: every method "
                "returns it, and no comparison here means anything.**",
                "",
            ]
        lines += [
            "| method | emb. params | cost/B | test AUC | Δ AUC ours − it [95 % CI] | "
            "Q_B (ref.) | Δ Q_B ours − it [95 % CI] | Q_B pct small / random | evals | "
            "stability agr. / τ |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in p["methods"]:
            st = r["stability"]
            stab = "—" if st is None else f"{st['agreement']:.2f} / {_tau(st['kendall_tau'])}"
            if r["rule"]:
                stab = "fixed rule"
            evals = (
                "—"
                if not r["evaluations"]
                else f"{sum(r['evaluations']) / len(r['evaluations']):.0f}"
            )
            lines.append(
                f"| {r['method']} | {r['embedding_params_mean']:,.0f} | "
                f"{r['cost_ratio_mean']:.2f} | {_pm(r['test_auc_mean'], r['test_auc_std'])} | "
                f"{ci_text(r.get('vs_ours_auc'))} | "
                f"{_pm(r['quality_b_ref_mean'], r['quality_b_ref_std'])} | "
                f"{ci_text(r.get('vs_ours_qb'))} | {r['percentile_mean']:.1f} / "
                f"{r['percentile_random_mean']:.1f} | {evals} | {stab} |"
            )
        lines += ["", "Verdict: " + verdict(p["methods"]), ""]
        floor = next((r for r in p["methods"] if r.get("kind") == "linear"), None)
        if floor is not None:
            lines += [
                f"Linear floor (one-hot logistic regression, same split): validation AUC "
                f"{_pm(floor['val_auc_mean'], floor['val_auc_std'])}, test AUC "
                f"{_pm(floor['test_auc_mean'], floor['test_auc_std'])}.",
                "",
            ]
    for message in res.get("floor_warnings", []):
        lines += [f"**Warning:** {message}", ""]
    lines += [
        "## Front over the budgets",
        "",
        "Hypervolume of each method's (embedding params, mean test AUC) points over the "
        "budgets, normalised by the uniform cost (larger is better).",
        "",
        "| method | hypervolume |",
        "|---|---|",
    ]
    for name, hv in sorted(res["hypervolume"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {hv:.5f} |")
    lines += [
        "",
        "## Ranking consistency",
        "",
        "Kendall τ between each supernet's Q_B and the stand-alone test AUC (mean of two "
        "seeds) over the panel; compare with the seed-to-seed τ above.",
        "",
        "| supernet sampler / layout | Kendall τ | supernet mean val AUC | train s |",
        "|---|---|---|---|",
    ]
    for r in rk["variants"]:
        lines.append(
            f"| {r['variant']} | {_tau(r['kendall_tau'])} | "
            f"{r['supernet_val_auc']:.4f} | {r['supernet_seconds']:.0f} |"
        )
    if res.get("planted"):
        pl = res["planted"]
        lines += [
            "",
            "## Planted structure (synthetic)",
            "",
            f"Informative: {', '.join(pl['informative'])}; noise: {', '.join(pl['noise'])}.",
            "",
            "| method @ budget | informative > noise (means), every seed | "
            "every informative > every noise, every seed |",
            "|---|---|---|",
        ]
        for m, v in pl["methods"].items():
            lines.append(
                f"| {m} | {'yes' if v['mean_larger_every_seed'] else '**no**'} | "
                f"{'yes' if v['strict_every_seed'] else 'no'} |"
            )
    lines += [
        "",
        "## Sizes per method, budget and seed",
        "",
        "| budget | method | seed | " + " | ".join(res["fields"]) + " |",
        "|---|---|---|" + "---|" * len(res["fields"]),
    ]
    for p in res["budgets"]:
        for r in p["methods"]:
            for s, sz in zip(res["seeds"], r["sizes"], strict=True):
                lines.append(
                    f"| {p['spec']} | {r['method']} | {s} | " + " | ".join(map(str, sz)) + " |"
                )
    lines.append("")
    return "\n".join(lines)


def write_outputs(out: Path, res: dict[str, Any]) -> None:
    """``results.json``, ``report.md``, ``auc_vs_params.png`` and ``sizes_heatmap.png``."""
    from adass_ray.plots import scatter_methods_png, size_heatmap_png

    write_json(out / "results.json", res)
    atomic_write_bytes(out / "report.md", render_markdown(res).encode("utf-8"))
    rows = [
        {**r, "method": f"{r['method']} @ {p['spec']}"}
        for p in res["budgets"]
        for r in p["methods"]
        if r.get("kind", "fixed") == "fixed"  # the floor has no params to place (see report.md)
    ]
    scatter_methods_png(
        out / "auc_vs_params.png",
        rows,
        title=f"{res['dataset']}: test AUC vs embedding params ({len(res['seeds'])} seeds)",
    )
    heat = {
        f"{r['method'][:24]} @{p['spec']} s{s}": sz
        for p in res["budgets"]
        for r in p["methods"]
        if not r["rule"]
        for s, sz in zip(res["seeds"], r["sizes"], strict=True)
    }
    size_heatmap_png(
        out / "sizes_heatmap.png",
        res["fields"],
        heat,
        title=f"{res['dataset']}: sizes per field, method, budget and seed",
    )
