"""The report's "Tuned at an equal budget" section: two verdicts per claim, the arms as
documented and as tuned, each arm's trials, and a sensitivity figure per arm.

suite/report/build.py calls :func:`tuning_section` while it writes a report (the data goes into
``report.json`` under ``tuning``) and :func:`markdown` / :func:`html_parts` while it renders it;
``suite run --tuned`` and ``suite report`` print :func:`print_tuning`. An experiment without a
``tuning`` section gets none of this. What is tuned and how is suite/tuning.py.

The documented verdict is the claim judged on the documented arms' runs; the tuned verdict is the
same claim judged with the others (suite.judge.evaluate.evaluate_claims) on the ``ARM@tuned``
runs, renamed to the claim's arm names, at the same evaluation seeds and budget. An arm without a search enters with
its documented runs, and the section says it had 0 trials.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from suite.errors import ConfigError
from suite.result import Result

FIGURE_DIR = "report_files"


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def metric_stats(results: list[Result], arm: str, metric: str) -> dict[str, Any]:
    """Mean and 95% Student-t CI of ``metric`` over ``arm``'s runs with a finite value; diverged
    (or NaN), failed and censored runs are counted beside it (suite/judge/runs.py)."""
    from suite.judge.metrics import run_scales
    from suite.judge.runs import is_censored, run_class
    from suite.judge.stats import mean_t_ci

    mine = [r for r in results if r.arm == arm]
    classes = [run_class(r, metric) for r in mine]
    finished = [r for r, kind in zip(mine, classes, strict=True) if kind == "finished"]
    values = np.array([float(r.metrics[metric]) for r in finished], dtype=float)
    interval = mean_t_ci(values)
    low, high = interval.ci_low, interval.ci_high
    return {
        "mean": _finite(float(values.mean())) if values.size else None,
        "ci_low": _finite(low),
        "ci_high": _finite(high),
        "n": int(values.size),
        "n_runs": len(mine),
        "n_diverged": classes.count("diverged"),
        "n_failed": classes.count("failed"),
        "n_censored": sum(is_censored(r, metric) for r in finished),
        "scales": run_scales(finished, metric),
    }


def _best(rows: list[dict[str, Any]], key: str, metric: str, direction: str) -> str | None:
    """The arm(s) with the best mean of ``metric`` in ``rows[i][key]``, "a = b" on a tie (None
    if no arm has a value). A best mean, not a significant difference: see the CIs. In the
    tuned column an arm without a search stands as documented, and is named "(not tuned)"."""
    scored = {r["arm"]: r[key][metric]["mean"] for r in rows if r[key][metric]["mean"] is not None}
    if not scored:
        return None
    if len({tuple(r[key][metric].get("scales", ())) for r in rows if r["arm"] in scored}) > 1:
        return "none: the arms' runs are on different scales"
    pick = max if direction == "higher" else min
    top = pick(scored.values())
    untuned = {r["arm"] for r in rows if key == "tuned" and not r["trials"]}
    return " = ".join(
        arm + (" (not tuned)" if arm in untuned else "")
        for arm, value in scored.items()
        if value == top
    )


def tuning_section(
    experiment, store, directory: Path, files: str = FIGURE_DIR
) -> dict[str, Any] | None:
    """The section's data (strict JSON), with the sensitivity figures written under
    ``directory/files``; None for an experiment without a ``tuning`` section."""
    from suite import tuning
    from suite.config import select_results
    from suite.judge.evaluate import evaluate_claims

    if not tuning.has_tuning(experiment):
        return None
    try:
        plan = tuning.build_plan(experiment)
    except ConfigError:  # --set task.* leaves no valid trial at the tuning tier: none ran
        plan = tuning.build_plan(experiment, with_set=False)
        return {"not_run": True, "budget_text": budget_text(plan.counts), "budget": plan.budget}
    trial_results = tuning.trial_results(experiment, plan, store)
    if not trial_results:
        return {"not_run": True, "budget_text": budget_text(plan.counts), "budget": plan.budget}
    selection = tuning.select(plan, trial_results)
    documented = select_results(experiment, store)
    tuned = tuning.tuned_results(experiment, plan, selection, store, documented)
    metrics = list(experiment.metrics) or [plan.metric]
    arms = []
    for arm in experiment.arms:
        chosen = selection.get(arm)
        names = list(plan.spaces.get(arm, {}))
        same = chosen is not None and tuning.selected_documented(experiment, chosen)
        arms.append(
            {
                "arm": arm,
                "tuned_arm": tuning.tuned_name(arm) if chosen and not same else arm,
                "selected_documented": same,
                "trials": len(plan.trials.get(arm, [])),
                "documented_settings": tuning.documented_settings(experiment.arms[arm], names),
                "selected": chosen.selected.to_dict() if chosen and chosen.selected else None,
                "complete": chosen.complete if chosen else True,
                "scores": [s.to_dict() for s in chosen.scores] if chosen else [],
                "at_edge": at_edge(chosen) if chosen else [],
                "documented": {m: metric_stats(documented, arm, m) for m in metrics},
                "tuned": {m: metric_stats(tuned, arm, m) for m in metrics},
            }
        )
    # Each comparison is a family of its own: labels at the Holm level when it tests several.
    claims = [
        {"id": claim.id, "documented": d.to_dict(), "tuned": t.to_dict()}
        for claim, d, t in zip(
            experiment.claims,
            evaluate_claims(experiment.claims, documented, experiment.budget_label),
            evaluate_claims(experiment.claims, tuned, experiment.budget_label),
            strict=True,
        )
    ]
    data = {
        "budget": plan.budget,
        "evaluation_budget": experiment.budget,
        "seeds": plan.seeds,
        "evaluation_seeds": list(experiment.seeds),
        "metric": plan.metric,
        "direction": plan.direction,
        "rule": plan.section.select.rule,
        "trials_per_arm": plan.counts,
        "equal_budget": plan.equal_budget,
        "budget_text": budget_text(plan.counts),
        "trial_task_changes": plan.section.task,
        "arms": arms,
        "claims": claims,
        "best": {
            "documented": _best(arms, "documented", plan.metric, plan.direction),
            "tuned": _best(arms, "tuned", plan.metric, plan.direction),
        },
    }
    data["figures"] = plot_sensitivity(data, plan, directory / files)
    return data


def at_edge(chosen) -> list[str]:
    """The numeric settings whose selected value is the smallest or largest tried: the best may
    lie outside the searched range (widen it)."""
    if chosen.selected is None:
        return []
    edge = []
    for name, value in chosen.selected.trial.settings.items():
        tried = [s.trial.settings[name] for s in chosen.scores]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in tried)
        if numeric and len(set(tried)) > 1 and value in (min(tried), max(tried)):
            edge.append(name)
    return edge


def budget_text(counts: dict[str, int]) -> str:
    """'an equal budget of 5 trials' or 'unequal budgets: adam 5, sgd 8 trials'."""
    if len(set(counts.values())) == 1:
        return f"an equal budget of {next(iter(counts.values()))} trials"
    return "unequal budgets: " + ", ".join(f"{a} {n}" for a, n in counts.items()) + " trials"


# --------------------------------------------------------------------------------------------
# Sensitivity figures: the metric against the tuned setting, per arm
# --------------------------------------------------------------------------------------------


def _panels(arm_row: dict[str, Any]) -> list[list[str]]:
    """Searched settings grouped into panels: settings with equal values in every trial (tied
    grid spaces, e.g. both networks' lr) share one panel."""
    scores = arm_row["scores"]
    names = list(scores[0]["settings"]) if scores else []
    groups: list[list[str]] = []
    for name in names:
        column = [s["settings"][name] for s in scores]
        for group in groups:
            if [s["settings"][group[0]] for s in scores] == column:
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "arm"


def plot_sensitivity(data: dict[str, Any], plan, out_dir: Path) -> dict[str, str]:
    """One PNG per searched arm: the selection metric (mean and range over tuning seeds)
    against each searched setting; bad trials as red crosses, the selected one as a star, the
    documented setting as a dashed line.

    :returns: {arm: PNG path relative to ``out_dir.parent``}.
    """
    from matplotlib.figure import Figure  # the Agg canvas, without pyplot's global state

    files = {}
    for row in data["arms"]:
        panels = _panels(row)
        if not panels or not any(s["n_missing"] == 0 for s in row["scores"]):
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        figure = Figure(figsize=(4.2 * len(panels), 3.4), dpi=100, layout="constrained")
        axes_list = figure.subplots(1, len(panels), squeeze=False)[0]
        for axes, group in zip(axes_list, panels, strict=True):
            _panel(axes, row, group, plan.spaces[row["arm"]][group[0]], data)
        path = out_dir / f"sensitivity_{_slug(row['arm'])}.png"
        figure.savefig(path)
        files[row["arm"]] = str(path.relative_to(out_dir.parent))
    return files


def _panel(axes, row: dict[str, Any], group: list[str], space, data: dict[str, Any]) -> None:
    scores = [s for s in row["scores"] if s["n_missing"] == 0]
    raw_x = [s["settings"][group[0]] for s in scores]
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw_x)
    x = np.array(raw_x, dtype=float) if numeric else np.arange(len(raw_x), dtype=float)
    good = [s for s in scores if s["n_bad"] == 0 and s["mean"] is not None]
    finite = [s["mean"] for s in scores if s["mean"] is not None]
    floor = min(finite) if finite else 0.0
    for s, xi in zip(scores, x, strict=True):
        y = s["mean"] if s["mean"] is not None else floor
        if s in good:
            low, high = (y if v is None else v for v in seed_range(s))
            axes.errorbar(xi, y, yerr=[[y - low], [high - y]], fmt="o", color="C0", capsize=3)
        else:
            axes.plot(xi, y, "x", color="C3", markersize=9)
    order = np.argsort(x)
    line = [(x[i], scores[i]["mean"]) for i in order if scores[i] in good]
    if line:
        axes.plot(*zip(*line, strict=True), "-", color="C0", alpha=0.5)
    selected = row["selected"]
    if selected is not None and selected["mean"] is not None:
        xs = x[[s["name"] for s in scores].index(selected["name"])]
        axes.plot(xs, selected["mean"], "*", color="C2", markersize=16, label="selected")
    documented = row["documented_settings"].get(group[0])
    if numeric and isinstance(documented, (int, float)):
        axes.axvline(documented, color="0.4", linestyle="--", label="documented")
    if numeric and space.log_scale:
        axes.set_xscale("log")
    if not numeric:
        axes.set_xticks(x, [str(v) for v in raw_x], rotation=30, fontsize=7)
    axes.set_xlabel(" = ".join(group))
    axes.set_ylabel(data["metric"])
    n_seeds = len(data["seeds"])
    axes.set_title(
        f"{row['arm']}: {len(scores)} trials x {n_seeds} tuning seeds\n"
        f"mean, range over seeds; x: a seed diverged/failed/collapsed",
        fontsize=9,
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}" if abs(x) >= 1.0e4 else f"{x:.4g}"  # steps as whole numbers


def _cell(m: dict[str, Any]) -> str:
    if not m["n_runs"]:
        return "not run"
    text = f"{_num(m['mean'])} [{_num(m['ci_low'])}, {_num(m['ci_high'])}] n={m['n']}"
    if m["n_diverged"] or m["n_failed"]:
        text += f"; {m['n_diverged']} diverged, {m['n_failed']} failed"
    if m.get("n_censored"):
        text += f"; {m['n_censored']} censored (never reached the threshold)"
    return text


def _settings(settings: dict[str, Any] | None) -> str:
    from suite.tuning import settings_text

    return settings_text(settings) if settings else "-"


def intro(t: dict[str, Any]) -> str:
    unequal = "" if t["equal_budget"] else " (the arms' budgets differ: see above)"
    return (
        f"Each searched arm had {t['budget_text']}{unequal} at the {t['budget']} budget on "
        f"tuning seeds {t['seeds']}; the trial with the best {t['metric']} ({t['direction']} is "
        f"better, {t['rule']} over tuning seeds; a trial with a diverged, failed or collapsed "
        f"seed loses) ran on the evaluation seeds {t['evaluation_seeds']} at the "
        f"{t['evaluation_budget']} budget as ARM@tuned. Selection never saw the evaluation "
        "seeds. Arms with 0 trials keep their documented settings."
    )


def not_run_text(data: dict[str, Any]) -> str:
    t = data["tuning"]
    return (
        f"This experiment tunes its arms at {t['budget_text']} ({t['budget']} budget); no trial "
        f"has run yet: python -m suite run {data['experiment']} --budget {data['budget']} --tuned"
    )


def comparison_tables(t: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows): the arms as documented, the arms tuned, the claims twice."""
    metrics = list(t["arms"][0]["documented"]) if t["arms"] else []
    doc = [[a["arm"], _settings(a["documented_settings"]) or "-"] for a in t["arms"]]
    for row, a in zip(doc, t["arms"], strict=True):
        row += [_cell(a["documented"][m]) for m in metrics]
    tuned = []
    for a in t["arms"]:
        if not a["trials"]:
            setting = "documented (0 trials)"
        elif a["selected"] is None:
            setting = "tuning unfinished"
        else:
            setting = f"{_settings(a['selected']['settings'])} ({a['selected']['name']})"
            if a["selected_documented"]:
                setting += ", the documented setting: its runs"
        tuned.append([a["tuned_arm"], setting, *(_cell(a["tuned"][m]) for m in metrics)])
    tables = [
        ("As documented", ["arm", "searched settings", *metrics], doc),
        (f"Tuned at {t['budget_text']}", ["arm", "selected settings", *metrics], tuned),
    ]
    if t["claims"]:
        header = ["claim", "claimed", "as documented: measured", "verdict"]
        header += [f"tuned at {t['budget_text']}: measured", "verdict"]
        rows = [
            [
                c["id"],
                c["documented"]["claimed"],
                c["documented"]["measured_text"],
                c["documented"]["verdict"],
                c["tuned"]["measured_text"],
                c["tuned"]["verdict"],
            ]
            for c in t["claims"]
        ]
        tables.insert(0, ("Claims: as documented and tuned", header, rows))
    return tables


def seed_range(score: dict[str, Any]) -> tuple[float | None, float | None]:
    """The lowest and highest value over a trial's tuning seeds. Not a confidence interval:
    with the 2 tuning seeds of a typical search, a percentile bootstrap of the mean is exactly
    this range and covers the true mean far less often than its nominal 95%."""
    values = score.get("values") or []
    return (min(values), max(values)) if values else (None, None)


def trial_rows(a: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["trial", "settings", "mean [min, max] over tuning seeds", "bad seeds", "selected"]
    chosen = a["selected"]["name"] if a["selected"] else None
    rows = [
        [
            s["name"],
            _settings(s["settings"]),
            f"{_num(s['mean'])} [{', '.join(_num(x) for x in seed_range(s))}]",
            str(s["n_bad"]) + (f" ({s['n_missing']} not run)" if s["n_missing"] else ""),
            "yes" if s["name"] == chosen else "",
        ]
        for s in a["scores"]
    ]
    return header, rows


def edge_text(a: dict[str, Any]) -> str:
    return (
        f"Note: the selected {', '.join(a['at_edge'])} is at the edge of the searched range; "
        "the best setting may lie beyond it."
    )


def best_line(t: dict[str, Any]) -> str:
    best = t["best"]
    return (
        f"Best mean {t['metric']} ({t['direction']} is better; see the CIs): as documented "
        f"{best['documented'] or 'n/a'}; tuned at {t['budget_text']} {best['tuned'] or 'n/a'}."
    )


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def esc(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]


def markdown(data: dict[str, Any]) -> list[str]:
    """The section in Markdown (no lines when the experiment has no tuning)."""
    t = data.get("tuning")
    if not t:
        return []
    lines = ["", f"## Tuned at {t['budget_text']}", ""]
    if t.get("not_run"):
        return [*lines, not_run_text(data), ""]
    lines += [intro(t), ""]
    for title, header, rows in comparison_tables(t):
        lines += [f"### {title}", "", *_md_table(header, rows), ""]
    lines += [best_line(t), ""]
    for a in t["arms"]:
        if not a["trials"]:
            continue
        lines += [f"### Trials: {a['arm']}", "", *_md_table(*trial_rows(a)), ""]
        if a["at_edge"]:
            lines += [edge_text(a), ""]
        if a["arm"] in t["figures"]:
            lines += [f"![sensitivity {a['arm']}]({t['figures'][a['arm']]})", ""]
    return lines


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_parts(data: dict[str, Any], directory: Path) -> list[str]:
    """The section as HTML, figures embedded as data URIs (no parts without tuning)."""
    import base64

    t = data.get("tuning")
    if not t:
        return []
    e = html.escape
    parts = [f'<section id="tuning"><h2>{e("Tuned at " + t["budget_text"])}</h2>']
    if t.get("not_run"):
        return [*parts, f"<p>{e(not_run_text(data))}</p></section>"]
    parts.append(f"<p>{e(intro(t))}</p>")
    for title, header, rows in comparison_tables(t):
        parts.append(f"<h3>{e(title)}</h3>{_html_table(header, rows)}")
    parts.append(f"<p>{e(best_line(t))}</p>")
    for a in t["arms"]:
        if not a["trials"]:
            continue
        parts.append(f"<h3>{e('Trials: ' + a['arm'])}</h3>{_html_table(*trial_rows(a))}")
        if a["at_edge"]:
            parts.append(f"<p>{e(edge_text(a))}</p>")
        if a["arm"] in t["figures"]:
            png = (directory / t["figures"][a["arm"]]).read_bytes()
            uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            parts.append(
                f'<figure><img src="{uri}" alt="{e("sensitivity " + a["arm"])}">'
                f"<figcaption>{e(a['arm'])}: {e(t['metric'])} against the tuned setting"
                "</figcaption></figure>"
            )
    parts.append("</section>")
    return parts


def print_tuning(data: dict[str, Any]) -> None:
    """The tuned comparison on the terminal (nothing without a tuning section or its runs)."""
    t = data.get("tuning")
    if not t or t.get("not_run") or not any(a["selected"] for a in t["arms"]):
        return
    print(f"\ntuned at {t['budget_text']} ({t['budget']} budget, tuning seeds {t['seeds']}):")
    for title, header, rows in comparison_tables(t):
        print(f"{title}:")
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        for row in rows:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(best_line(t))
    for a in t["arms"]:
        if a["at_edge"]:
            print(f"{a['arm']}: {edge_text(a)}")
