"""Reports: claims with verdicts, per-arm metrics with CIs, learning curves, samples, provenance.

``python -m suite report EXPERIMENT --budget quick`` writes, next to the runs
(``results/EXPERIMENT/BUDGET/``)::

    report.md            the report in Markdown (images as files beside it)
    report.html          the same, self-contained: every image embedded as a data URI
    report.json          the data both are made from (what ``--json`` prints)
    report_files/*.png   learning curves: per arm, the mean over seeds with a 95% CI band

and prints the per-arm table and one line per claim. ``report --all`` does this for every
experiment and budget with results, and writes ``results/index.md`` / ``index.html`` listing
every experiment with its claims.

A report reads only ``result.json`` files, and only those of the current config: a run whose
task or optimizer settings differ from the experiment as loaded now (another ``--set``, an
edited file) is not mixed in. Every seed run with this config counts, including seeds added by
``run --until-decided``.

Diverged runs are never dropped. Per-arm metrics are computed over the runs that finished
(``done``), and each arm's count of diverged runs stands beside them. Claims count diverged runs
as failures at the worst finite value observed (see ``suite/claims.py``).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from suite.claims import ClaimOutcome, evaluate_claim
from suite.result import Result
from suite.stats import bootstrap_ci, summarize

REPORT_FILES = "report_files"
CURVE_POINTS = 200  # a curve is drawn at most at this many steps
CURVE_RESAMPLES = 1000  # bootstrap replicates per step for the CI band
DIVERGED_NOTE = (
    "Per-arm metrics are over the runs that finished; diverged runs are counted beside them. "
    "In claims, a diverged run counts as a failure: it enters at the worst finite value of the "
    "metric observed in either arm. Censored runs (threshold never reached) enter at the step "
    "budget, a lower bound. Failed runs (crashes) are left out and counted."
)


# --------------------------------------------------------------------------------------------
# Which results, and what they say
# --------------------------------------------------------------------------------------------


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(experiment) -> str:
    """A hash of everything that defines the runs but the seed: trainer, task and arms."""
    data = {
        "trainer": experiment.trainer,
        "task": asdict(experiment.task),
        "arms": {
            arm: {role: spec.to_dict() for role, spec in specs.items()}
            for arm, specs in experiment.arms.items()
        },
    }
    return hashlib.sha256(_canonical(data).encode()).hexdigest()[:16]


def select_results(experiment, store) -> list[Result]:
    """The experiment's results at its budget whose arm config equals the current one."""
    from suite.runner import expand

    wanted = {}
    for run in expand(experiment):
        wanted[run.arm] = _canonical({"task": run.task, "optimizers": run.optimizers})
    selected = []
    for r in store.results(experiment.name, experiment.budget):
        key = _canonical({"task": r.task, "optimizers": r.optimizers})
        if wanted.get(r.arm) == key:
            selected.append(r)
    return selected


def claim_outcomes(experiment, results: list[Result]) -> list[ClaimOutcome]:
    """Every claim of the experiment judged at its budget."""
    return [evaluate_claim(claim, results, experiment.budget) for claim in experiment.claims]


def _metric_stats(results: list[Result], name: str) -> dict[str, Any]:
    """Mean, median, IQM, std and 95% CI of one metric over the runs that finished."""
    values = np.array([r.metrics[name] for r in results if name in r.metrics], dtype=float)
    n_nonfinite = int(np.count_nonzero(~np.isfinite(values)))
    values = values[np.isfinite(values)]
    summary = summarize(values)
    low, high = bootstrap_ci(values)
    out = {
        "mean": summary.mean,
        "median": summary.median,
        "iqm": summary.iqm,
        "std": summary.std,
        "ci_low": low,
        "ci_high": high,
        "n": int(values.size),
        "n_nonfinite": n_nonfinite,
    }
    if name.endswith("steps_to_threshold"):
        reached = name[: -len("steps_to_threshold")] + "reached_threshold"
        out["n_censored"] = sum(r.metrics.get(reached) == 0.0 for r in results)
    return out


def _arm_summary(arm: str, specs: dict, results: list[Result]) -> dict[str, Any]:
    mine = sorted((r for r in results if r.arm == arm), key=lambda r: r.seed)
    finished = [r for r in mine if r.status in ("done", "diverged")]
    done = [r for r in mine if r.status == "done"]
    names = sorted({name for r in done for name in r.metrics})
    gpu = [r.peak_gpu_mb for r in finished if r.peak_gpu_mb is not None]
    return {
        "name": arm,
        "optimizers": {role: spec.to_dict() for role, spec in specs.items()},
        "seeds": [r.seed for r in mine],
        "n_runs": len(finished),
        "n_done": len(done),
        "n_diverged": sum(r.status == "diverged" for r in mine),
        "diverged_at_steps": [r.diverged_at_step for r in mine if r.status == "diverged"],
        "n_failed": sum(r.status == "failed" for r in mine),
        "metrics": {name: _metric_stats(done, name) for name in names},
        "wall_time_s": float(np.mean([r.wall_time_s for r in finished])) if finished else None,
        "wall_time_total_s": float(sum(r.wall_time_s for r in finished)),
        "peak_rss_mb": max((r.peak_rss_mb for r in finished), default=None),
        "peak_gpu_mb": max(gpu) if gpu else None,
    }


def reproduction_card(experiment, results: list[Result]) -> dict[str, Any]:
    """What it takes to reproduce the report: commit, packages, hardware, config, seeds, and the
    metric settings the trainers recorded in ``Result.details``."""
    envs = [r.environment for r in results if r.environment]
    commits = sorted(
        {
            f"{(e.get('git') or {}).get('commit') or 'unknown'}"
            + (" (uncommitted changes)" if (e.get("git") or {}).get("dirty") else "")
            for e in envs
        }
    )
    packages: dict[str, list[str]] = {}
    for e in envs:
        for name, version in (e.get("packages") or {}).items():
            packages.setdefault(name, [])
            if version not in packages[name]:
                packages[name].append(version)
    hardware = []
    for e in envs:
        if e.get("hardware") and e["hardware"] not in hardware:
            hardware.append(e["hardware"])
    settings: dict[str, list[Any]] = {}
    for r in results:
        for key, value in r.details.items():
            settings.setdefault(key, [])
            if value not in settings[key]:
                settings[key].append(value)
    seeds = sorted({r.seed for r in results})
    target = experiment.name if experiment.path.parent.name == "configs" else str(experiment.path)
    seed_arg = (
        f" --seeds {len(seeds)}" if seeds and seeds == list(range(len(seeds))) else ""
    )  # a seed list that is not 0..N-1 comes from the file
    return {
        "command": f"python -m suite run {target} --budget {experiment.budget}{seed_arg}",
        "git_commit": commits,
        "packages": {k: v[0] if len(v) == 1 else v for k, v in packages.items()},
        "hardware": hardware,
        "devices": sorted({r.device for r in results}),
        "config_hash": config_hash(experiment),
        "seeds": {arm: sorted(r.seed for r in results if r.arm == arm) for arm in experiment.arms},
        "run_ids": sorted(r.run_id for r in results),
        "metric_settings": {k: v[0] if len(v) == 1 else v for k, v in settings.items()},
    }


# --------------------------------------------------------------------------------------------
# Learning curves and sample grids
# --------------------------------------------------------------------------------------------


def curve_band(
    curves: list[list[list[float]]], points: int = CURVE_POINTS, seed: int = 0
) -> dict[str, np.ndarray]:
    """Mean over seeds and a 95% bootstrap CI band, on a common step grid.

    :param curves: one curve per seed, each a list of [step, value]; seeds may log at different
        steps and end early (a diverged run): each is interpolated within its own range only.
    :param points: at most this many grid steps (the union of logged steps, thinned evenly).
    :param seed: bootstrap seed.
    :returns: ``steps``, ``mean``, ``low``, ``high``, ``n`` (seeds with a value at each step),
        arrays of shape (n_steps,).
    """
    arrays = [np.asarray(c, dtype=float).reshape(-1, 2) for c in curves if len(c)]
    empty = np.zeros(0)
    if not arrays:
        return {"steps": empty, "mean": empty, "low": empty, "high": empty, "n": empty}
    steps = np.unique(np.concatenate([a[:, 0] for a in arrays]))
    if steps.size > points:
        steps = steps[np.linspace(0, steps.size - 1, points).round().astype(int)]
    grid = np.full((len(arrays), steps.size), np.nan)
    for i, a in enumerate(arrays):
        a = a[np.argsort(a[:, 0], kind="stable")]
        inside = (steps >= a[0, 0]) & (steps <= a[-1, 0])
        grid[i, inside] = np.interp(steps[inside], a[:, 0], a[:, 1])
    mean, low, high, n = (np.full(steps.size, np.nan) for _ in range(4))
    for j in range(steps.size):
        column = grid[:, j][np.isfinite(grid[:, j])]
        n[j] = column.size
        if column.size:
            mean[j] = column.mean()
            low[j], high[j] = bootstrap_ci(column, n_resamples=CURVE_RESAMPLES, seed=seed)
    return {"steps": steps, "mean": mean, "low": low, "high": high, "n": n}


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "curve"


def plot_curves(results: list[Result], arms: list[str], out_dir: Path) -> dict[str, str]:
    """One PNG per curve name: each arm's mean over seeds with its 95% CI band.

    :returns: {curve name: PNG path relative to ``out_dir.parent``}.
    """
    from matplotlib.figure import Figure  # the Agg canvas, without pyplot's global state

    names = sorted({name for r in results for name in r.curves})
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in names:
        figure = Figure(figsize=(7, 3.8), dpi=100, layout="constrained")
        axes = figure.subplots()
        for i, arm in enumerate(arms):
            mine = [r for r in results if r.arm == arm and r.curves.get(name)]
            if not mine:
                continue
            band = curve_band([r.curves[name] for r in mine])
            diverged = sum(r.status == "diverged" for r in mine)
            color = f"C{i % 10}"
            label = f"{arm} (n={len(mine)}, {diverged} diverged)"
            axes.plot(band["steps"], band["mean"], color=color, label=label)
            axes.fill_between(band["steps"], band["low"], band["high"], color=color, alpha=0.2)
        axes.set_xlabel("step")
        axes.set_ylabel(name)
        axes.set_title(f"{name}: mean over seeds, 95% bootstrap CI band", fontsize=10)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        path = out_dir / f"curve_{_slug(name)}.png"
        figure.savefig(path)
        files[name] = str(path.relative_to(out_dir.parent))
    return files


def sample_grids(results: list[Result], arms: list[str], report_dir: Path) -> list[dict]:
    """Per arm, the PNG artifacts (sample grids) of its lowest-seed finished run.

    :returns: [{arm, seed, name, path}], path relative to ``report_dir`` (the budget directory,
        which holds ``ARM/seedN-RUNID/``).
    """
    found = []
    for arm in arms:
        mine = sorted(
            (r for r in results if r.arm == arm and r.status == "done" and r.artifacts),
            key=lambda r: r.seed,
        )
        if not mine:
            continue
        r = mine[0]
        for name, relative in sorted(r.artifacts.items()):
            path = report_dir / arm / f"seed{r.seed}-{r.run_id}" / relative
            if path.suffix.lower() == ".png" and path.is_file():
                found.append(
                    {
                        "arm": arm,
                        "seed": r.seed,
                        "name": name,
                        "path": str(path.relative_to(report_dir)),
                    }
                )
    return found


# --------------------------------------------------------------------------------------------
# The report's data
# --------------------------------------------------------------------------------------------


def _json_safe(obj: Any) -> Any:
    """NaN/inf -> None, tuples -> lists, numpy scalars -> Python, so the JSON is strict."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def report_dir(experiment, store) -> Path:
    return Path(store.root) / experiment.name / experiment.budget


def summary_data(experiment, store, results: list[Result] | None = None) -> dict[str, Any]:
    """Everything a report shows, as plain data (strict JSON: NaN as null)."""
    if results is None:
        results = select_results(experiment, store)
    arms = [_arm_summary(arm, specs, results) for arm, specs in experiment.arms.items()]
    return _json_safe(
        {
            "experiment": experiment.name,
            "budget": experiment.budget,
            "description": experiment.description,
            "seeds": sorted({r.seed for r in results}) or experiment.seeds,
            "metrics": experiment.metrics,
            "arms": arms,
            "claims": [o.to_dict() for o in claim_outcomes(experiment, results)],
            "diverged_note": DIVERGED_NOTE,
            "reproduction": reproduction_card(experiment, results),
        }
    )


def write_report(experiment, store) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write report.md, report.html, report.json and the PNGs; return the data and the paths."""
    results = select_results(experiment, store)
    data = summary_data(experiment, store, results)
    directory = report_dir(experiment, store)
    directory.mkdir(parents=True, exist_ok=True)
    arms = list(experiment.arms)
    data["curves"] = plot_curves(results, arms, directory / REPORT_FILES)
    data["samples"] = sample_grids(results, arms, directory)
    paths = {
        "md": directory / "report.md",
        "html": directory / "report.html",
        "json": directory / "report.json",
    }
    data["files"] = {k: str(v) for k, v in paths.items()}
    paths["md"].write_text(render_markdown(data), encoding="utf-8")
    paths["html"].write_text(render_html(data, directory), encoding="utf-8")
    paths["json"].write_text(json.dumps(data, indent=2, allow_nan=False), encoding="utf-8")
    return data, paths


# --------------------------------------------------------------------------------------------
# Text: terminal, Markdown, HTML
# --------------------------------------------------------------------------------------------


def _num(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _metric_cell(m: dict[str, Any] | None) -> str:
    if not m or not m["n"]:
        return "-"
    text = f"{_num(m['mean'])} [{_num(m['ci_low'])}, {_num(m['ci_high'])}] n={m['n']}"
    if m.get("n_censored"):
        text += f", {m['n_censored']} censored"
    return text


def _shown_metrics(data: dict[str, Any]) -> list[str]:
    return data["metrics"] or sorted({m for a in data["arms"] for m in a["metrics"]})


def _arm_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    metrics = _shown_metrics(data)
    header = ["arm", "runs", "diverged", "failed", *metrics, "wall time (s)", "peak RSS (MB)"]
    rows = []
    for arm in data["arms"]:
        rows.append(
            [
                arm["name"],
                str(arm["n_runs"]),
                str(arm["n_diverged"]),
                str(arm["n_failed"]),
                *(_metric_cell(arm["metrics"].get(name)) for name in metrics),
                _num(arm["wall_time_s"], 3),
                _num(arm["peak_rss_mb"], 4),
            ]
        )
    return header, rows


def _title(data: dict[str, Any]) -> str:
    return f"{data['experiment']} [{data['budget']} budget]"


def _smoke_warning(data: dict[str, Any]) -> str | None:
    if data["budget"] != "smoke":
        return None
    return "smoke budget: a wiring check, not a measurement; no conclusion should be drawn."


def print_summary(experiment, store, data: dict[str, Any] | None = None) -> None:
    """The per-arm table (mean [95% CI] n over seeds) and one line per claim."""
    data = data or summary_data(experiment, store)
    print(f"\n{_title(data)}: per arm, mean [95% bootstrap CI] n over seeds")
    header, rows = _arm_rows(data)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if data["claims"]:
        print("claims:")
        for claim in data["claims"]:
            print(f"  {claim['line']}")
    else:
        print("claims: none documented for this experiment")
    warning = _smoke_warning(data)
    if warning:
        print(warning)


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return lines


def _claim_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "claim",
        "claimed",
        "measured (proxy): mean and 95% CI, n, budget",
        "published full-budget reference",
        "verdict",
    ]
    rows = []
    for c in data["claims"]:
        verdict = c["verdict"]
        if c["value_check"]:
            verdict += f"; value {c['value_check']['claimed']}: {c['value_check']['verdict']}"
        refs = "; ".join(f"{r['value']:g} ({r['what']}, {r['source']})" for r in c["references"])
        measured = f"{c['measured_text']}; {c['budget']} budget"
        if c["units"]:
            measured += f" [{c['units']}]"
        rows.append([c["id"], c["claimed"], measured, refs or "none found", verdict])
    return header, rows


def _claim_details(c: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs explaining one claim under the table."""
    arms = "; ".join(
        f"{a['name']}: mean {_num(a['mean'])} [{_num(a['ci_low'])}, {_num(a['ci_high'])}], "
        f"n={a['n']} of {a['n_runs']} runs, {a['n_diverged']} diverged, "
        f"{a['n_censored']} censored, {a['n_failed'] + a['n_missing']} failed"
        for a in c["arms"]
    )
    details = [
        ("statement", c["statement"]),
        ("source", c["source"] or "-"),
        ("metric", f"{c['metric']} ({c['direction']} is better); units: {c['units'] or '-'}"),
        ("claimed at", c["claimed_budget"] or "-"),
        ("arms", arms),
        ("verdict", c["reason"]),
    ]
    if c["value_check"]:
        details.append(("value check", c["value_check"]["reason"]))
    if c["p_improvement"]:
        p = c["p_improvement"]
        details.append(
            (
                "P(A better than B)",
                f"{_num(p['estimate'], 3)} [{_num(p['ci_low'], 3)}, {_num(p['ci_high'], 3)}]",
            )
        )
    if c["imputed_value"] is not None and any(a["n_diverged"] for a in c["arms"]):
        details.append(("diverged runs enter at", _num(c["imputed_value"])))
    details.append(("fact check", c["fact_check"] or "-"))
    return details


def _card_rows(card: dict[str, Any]) -> list[tuple[str, str]]:
    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, default=str)

    rows = [
        ("command", card["command"]),
        ("git commit", ", ".join(card["git_commit"]) or "unknown"),
        ("config hash", card["config_hash"]),
        ("seeds", text(card["seeds"])),
        ("devices", ", ".join(card["devices"]) or "-"),
        ("hardware", text(card["hardware"])),
        ("packages", ", ".join(f"{k} {text(v)}" for k, v in card["packages"].items()) or "-"),
    ]
    rows += [(f"setting: {k}", text(v)) for k, v in card["metric_settings"].items()]
    return rows


def render_markdown(data: dict[str, Any]) -> str:
    """The report as Markdown; images are referenced as files beside it."""
    lines = [f"# {_title(data)}", ""]
    if data["description"]:
        lines += [data["description"], ""]
    warning = _smoke_warning(data)
    if warning:
        lines += [f"> **{warning}**", ""]
    lines += ["## Claims", ""]
    if data["claims"]:
        lines += _md_table(*_claim_rows(data))
        for c in data["claims"]:
            lines += ["", f"### {c['id']}", ""]
            lines += [f"- **{label}:** {_md_escape(text)}" for label, text in _claim_details(c)]
    else:
        lines.append("No documented claims for this experiment.")
    lines += ["", "## Arms", "", data["diverged_note"], ""]
    lines += _md_table(*_arm_rows(data))
    lines += ["", "## Learning curves", ""]
    lines += [f"![{name}]({path})" for name, path in data["curves"].items()] or ["No curves."]
    lines += ["", "## Samples", ""]
    lines += [
        f"**{s['arm']}** (seed {s['seed']}, {s['name']}): ![{s['arm']} {s['name']}]({s['path']})"
        for s in data["samples"]
    ] or ["No sample images were recorded."]
    lines += ["", "## Reproduction card", ""]
    lines += _md_table(["", ""], [[k, v] for k, v in _card_rows(data["reproduction"])])
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.warning { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.6em; }
.verdict { font-weight: bold; }
.reproduced { color: #1a7f37; } .contradicted { color: #b42318; }
.weaker, .stronger { color: #9a6700; } .inconclusive, .not-run, .smoke-only { color: #555; }
figure { display: inline-block; margin: 0.5em; }
img { max-width: 100%; }
img.sample { width: 256px; image-rendering: pixelated; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: bold; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _html_table(header: list[str], rows: list[list[str]], raw_last: bool = False) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = [f"<td>{_e(c)}</td>" for c in row]
        if raw_last:
            cells[-1] = f"<td>{row[-1]}</td>"
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(data: dict[str, Any], directory: Path) -> str:
    """The report as one self-contained HTML page: no scripts, images embedded as data URIs."""
    parts = [f"<h1>{_e(_title(data))}</h1>"]
    if data["description"]:
        parts.append(f"<p>{_e(data['description'])}</p>")
    warning = _smoke_warning(data)
    if warning:
        parts.append(f'<p class="warning">{_e(warning)}</p>')

    parts.append('<section id="claims"><h2>Claims</h2>')
    if data["claims"]:
        header, rows = _claim_rows(data)
        for row, c in zip(rows, data["claims"], strict=True):
            row[-1] = f'<span class="verdict {_e(c["verdict"])}">{_e(row[-1])}</span>'
        parts.append(_html_table(header, rows, raw_last=True))
        for c in data["claims"]:
            items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in _claim_details(c))
            parts.append(f"<h3>{_e(c['id'])}</h3><dl>{items}</dl>")
    else:
        parts.append("<p>No documented claims for this experiment.</p>")
    parts.append("</section>")

    parts.append(f'<section id="arms"><h2>Arms</h2><p>{_e(data["diverged_note"])}</p>')
    parts.append(_html_table(*_arm_rows(data)) + "</section>")

    parts.append('<section id="curves"><h2>Learning curves</h2>')
    for name, path in data["curves"].items():
        parts.append(
            f'<figure><img src="{_data_uri(directory / path)}" alt="{_e(name)}">'
            f"<figcaption>{_e(name)}: mean over seeds, 95% bootstrap CI band</figcaption></figure>"
        )
    if not data["curves"]:
        parts.append("<p>No curves.</p>")
    parts.append("</section>")

    parts.append('<section id="samples"><h2>Samples</h2>')
    for s in data["samples"]:
        parts.append(
            f'<figure><img class="sample" src="{_data_uri(directory / s["path"])}" '
            f'alt="{_e(s["name"])}">'
            f"<figcaption>{_e(s['arm'])}, seed {s['seed']}: {_e(s['name'])}</figcaption></figure>"
        )
    if not data["samples"]:
        parts.append("<p>No sample images were recorded.</p>")
    parts.append("</section>")

    card = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in _card_rows(data["reproduction"]))
    parts.append(f'<section id="reproduction"><h2>Reproduction card</h2><dl>{card}</dl></section>')
    return _page(_title(data), "\n".join(parts))


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


# --------------------------------------------------------------------------------------------
# report --all: every experiment's report, and an index of all claims
# --------------------------------------------------------------------------------------------


def write_all(store) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Report every experiment in configs/ at every budget with results, then the index.

    Experiments from other files (run by path) are listed from the report.json their last
    ``suite report PATH`` wrote. An experiment that no longer loads is listed with its error.

    :returns: the index entries and the paths of index.md / index.html.
    """
    from suite.config import BUDGETS, CONFIG_DIR, experiment_names, load_experiment, read_yaml

    root = Path(store.root)
    entries, covered = [], set()
    for name in experiment_names():
        budgets = [b for b in BUDGETS if store.rows(name, b)]
        for budget in budgets or [None]:
            entry: dict[str, Any] = {"experiment": name, "budget": budget}
            try:
                raw_budgets = read_yaml(CONFIG_DIR / f"{name}.yaml").get("budgets") or {}
                experiment = load_experiment(name, budget or next(iter(raw_budgets), "quick"))
            except Exception as error:  # noqa: BLE001 - one broken experiment must not hide the rest
                entries.append({**entry, "error": str(error), "claims": []})
                continue
            if budget is None:  # no results yet: list its claims as not run
                outcomes = claim_outcomes(experiment, [])
                claims = [o.to_dict() for o in outcomes]
                entries.append({**entry, "claims": claims})
                continue
            data, paths = write_report(experiment, store)
            covered.add((name, budget))
            entries.append({**entry, "claims": data["claims"], "report": str(paths["html"])})
    for path in sorted(root.glob("*/*/report.json")):
        name, budget = path.parent.parent.name, path.parent.name
        if (name, budget) in covered or name in {e["experiment"] for e in entries}:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        entries.append(
            {
                "experiment": name,
                "budget": budget,
                "claims": data.get("claims", []),
                "report": str(path.with_name("report.html")),
            }
        )
    paths = {"md": root / "index.md", "html": root / "index.html"}
    paths["md"].write_text(_index_markdown(entries, root), encoding="utf-8")
    paths["html"].write_text(_index_html(entries, root), encoding="utf-8")
    return entries, paths


def _index_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for e in entries:
        budget = e["budget"] or "no results"
        if e.get("error"):
            rows.append([e["experiment"], budget, "-", f"error: {e['error']}", "-", "-"])
        for c in e["claims"]:
            rows.append(
                [
                    e["experiment"],
                    budget,
                    c["id"],
                    c["statement"],
                    c.get("measured_text", "-"),
                    c["verdict"],
                ]
            )
        if not e["claims"] and not e.get("error"):
            rows.append([e["experiment"], budget, "-", "(no documented claims)", "-", "-"])
    return rows


_INDEX_HEADER = ["experiment", "budget", "claim", "statement", "measured (proxy)", "verdict"]


def _relative_link(path: str, root: Path) -> str:
    return str(Path(path).relative_to(root)) if Path(path).is_relative_to(root) else path


def _index_markdown(entries: list[dict[str, Any]], root: Path) -> str:
    lines = ["# All experiments and their claims", ""]
    lines += _md_table(_INDEX_HEADER, _index_rows(entries))
    lines += ["", "## Reports", ""]
    lines += [
        f"- [{e['experiment']} ({e['budget']})]({_relative_link(e['report'], root)})"
        for e in entries
        if e.get("report")
    ] or ["No results yet."]
    return "\n".join(lines) + "\n"


def _index_html(entries: list[dict[str, Any]], root: Path) -> str:
    links = "".join(
        f'<li><a href="{_e(_relative_link(e["report"], root))}">'
        f"{_e(e['experiment'])} ({_e(e['budget'])})</a></li>"
        for e in entries
        if e.get("report")
    )
    body = (
        "<h1>All experiments and their claims</h1>"
        f'<section id="index">{_html_table(_INDEX_HEADER, _index_rows(entries))}</section>'
        f'<section id="reports"><h2>Reports</h2><ul>{links or "<li>No results yet.</li>"}</ul>'
        "</section>"
    )
    return _page("suite: all experiments", body)
