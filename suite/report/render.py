"""Reports as text: the terminal summary, Markdown and self-contained HTML, from the data
suite/report/build.py collects (``summary_data``). Pure functions of that data: nothing here
reads results or the store.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from suite.report import tuning


def terminal_width() -> int | None:
    """The terminal's width, or None (no wrapping) when the output goes to a pipe or file
    and $COLUMNS does not say otherwise: lines stay whole for grep and awk."""
    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


REPORT_FILES = "report_files"


def spec_text(spec: dict[str, Any]) -> str:
    """One role's resolved spec in a line: "adam lr=0.0023 kwargs={} schedule=none
    clip_grad_norm=10 lookahead=none", every field shown (defaults too)."""
    schedule = spec.get("schedule")
    lookahead = spec.get("lookahead")
    parts = [
        f"{spec['optimizer']} lr={spec['lr']:g}",
        f"kwargs={json.dumps(spec.get('kwargs') or {}, sort_keys=True)}",
        "schedule="
        + (
            f"{schedule['name']} {json.dumps(schedule['kwargs'], sort_keys=True)}"
            if schedule
            else "none"
        ),
        f"clip_grad_norm={spec['clip_grad_norm']:g}"
        if spec.get("clip_grad_norm")
        else "clip_grad_norm=none",
        f"lookahead=k {lookahead['k']}, alpha {lookahead['alpha']:g}"
        if lookahead
        else "lookahead=none",
    ]
    return " ".join(parts)


def summary_lines(
    data: dict[str, Any],
    compared: list[dict],
    notes: dict[str, str] | None = None,
    paths: dict[str, Path] | None = None,
    width: int | None = None,
) -> list[str]:
    """The terminal summary (suite/report/build.py: print_summary): the per-arm table, what
    each metric means, the comparison (``compared``, build.comparison), the claims, the files.

    :param width: the terminal's width: the table's cells wrap to fit it (None: no wrapping).
    """
    lines: list[str] = []
    lines.append(f"\n{_title(data)}: per arm, mean [95% t CI] n over seeds")
    header, rows = _arm_rows(data)
    for row in rows:
        if notes and notes.get(row[0]):
            row[0] += f" ({notes[row[0]]})"
    lines += fitted_table(header, rows, width)
    for line in metric_meanings(data["metrics"], data.get("return_threshold")):
        lines.append(line)
    lines += comparison_lines(compared)
    if data["claims"]:
        lines.append(f"claims: {claims_summary(data)}")
        for claim in data["claims"]:
            lines.append(f"  {claim['line']}")
            if claim["verdict"] not in ("reproduced", "not-run"):
                lines.append(f"    why: {claim['reason']}")
    else:
        lines.append("claims: none documented for this experiment")
    warning = _budget_warning(data)
    if warning:
        lines.append(warning)
    if paths:
        lines.append(f"report: {paths['html']}\n        {paths['md']}\n        {paths['json']}")
    return lines


def _table_lines(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *rows]
    ]


def fitted_table(header: list[str], rows: list[list[str]], width: int | None) -> list[str]:
    """The table in blocks of columns that each fit ``width`` (None: one block), the first
    column (the arm) repeated in each: three metrics with their intervals are ~200 characters,
    and wrapped cells would tear the intervals apart."""
    groups: list[list[int]] = [[0]]
    for i in range(1, len(header)):
        trial = groups[-1] + [i]
        lines = _table_lines(*_columns(header, rows, trial))
        if width is not None and max(map(len, lines)) > width and len(groups[-1]) > 1:
            groups.append([0, i])  # a column wider than the terminal still gets a block
        else:
            groups[-1] = trial
    lines: list[str] = []
    for group in groups:
        lines += ([""] if lines else []) + _table_lines(*_columns(header, rows, group))
    return lines


def _columns(header: list[str], rows: list[list[str]], keep: list[int]):
    return [header[i] for i in keep], [[row[i] for i in keep] for row in rows]


CURVE_CAPTION = "the mean over seeds (line) and its 95% Student-t CI band"


DIVERGED_NOTE = (
    "Per-arm metrics are over the runs that finished; diverged runs are counted beside them. "
    "In claims, a diverged run counts as a failure: it enters at the metric's floor (or, where "
    "the metric declares none, the worst finite value observed in either arm), and the verdict "
    "with diverged runs ranked last (P(A better than B)) is shown beside it when it differs. "
    "Runs a trainer marks degenerate (a collapsed GAN) keep their value and are counted. "
    "Censored runs (threshold never reached) enter at the step budget, so their mean is a "
    "restricted mean; censoring limits the verdicts that can stand. Failed runs (crashes) are "
    "left out and counted."
)


def _num(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "-"
    if math.isfinite(x) and 10**digits <= abs(x) < 1e12:
        return f"{x:.0f}"  # 30000, not 3e+04: an exponent hides the value
    return f"{x:.{digits}g}"


def _metric_cell(m: dict[str, Any] | None, threshold: float | None = None) -> str:
    if not m or not m["n"]:
        return "-"
    if "n_censored" in m:  # steps: whole numbers, and whether the threshold was reached at all
        text = f"{_int(m['mean'])} [{_int(m['ci_low'])}, {_int(m['ci_high'])}] n={m['n']}"
        if m["n_censored"]:
            level = f"{threshold:g}" if threshold is not None else "the threshold"
            text += f"; censored: never reached {level} in {m['n_censored']}/{m['n']}"
        return text
    text = f"{_num(m['mean'])} [{_num(m['ci_low'])}, {_num(m['ci_high'])}] n={m['n']}"
    if m.get("mixed_scales"):
        text += f"; mixed scales: {', '.join(m['mixed_scales'])}"
    return text


def _int(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


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
                *(
                    _metric_cell(arm["metrics"].get(name), data.get("return_threshold"))
                    for name in metrics
                ),
                _num(arm["wall_time_s"], 3),
                _num(arm["peak_rss_mb"], 4),
            ]
        )
    return header, rows


def _title(data: dict[str, Any]) -> str:
    if data.get("task_overrides"):
        changed = " changed by --set"
    elif data.get("changes"):
        changed = ", not the file's configuration"
    else:
        changed = ""
    return f"{data['experiment']} [{data['budget']} budget{changed}]"


def _budget_warning(data: dict[str, Any]) -> str | None:
    if data["budget"] == "smoke":
        return "smoke budget: a wiring check, not a measurement; no conclusion should be drawn."
    if data.get("task_overrides"):
        return (
            f"settings changed from the file's {data['budget']} budget by --set "
            f"{', '.join(data['task_overrides'])}: the verdicts are at these settings, not at the "
            f"documented {data['budget']} budget."
        )
    if data.get("changes"):
        return (
            f"not the file's documented configuration ({', '.join(data['changes'])}): this "
            "report is written beside the documented report, which it leaves as it was."
        )
    return None


# What the metrics the trainers record mean (by the last part of their name), for a newcomer.
METRIC_MEANINGS = {
    "return_final": "mean greedy evaluation return over the last final_evals evaluations",
    "return_auc": "mean evaluation return over the whole run (area under the curve / steps)",
    "episode_return_auc": "mean training return over the whole run (area under the curve of "
    "the last 100 training episodes' mean return, from step 0, / steps): how fast an arm learns",
    "steps_to_threshold": "environment steps until the evaluation return first reached "
    "{threshold} (a run that never did enters at the step budget: censored)",
    "reached_threshold": "1 if the evaluation return reached {threshold}, else 0",
    "episode_length": "mean evaluation episode length in steps",
    "collapsed": "1 if the generator's samples at the last evaluation were (near-)constant "
    "(per-pixel std below 0.02 across or within samples), else 0; the arm's mean is its collapse "
    "rate",
    "classes_classifier": "effective number of classes among the last evaluation's samples "
    "(exp of the entropy of their predicted classes): 10 = spread evenly over CIFAR-10's classes, "
    "1 = all in one class (mode collapse onto a class; higher = fewer modes dropped)",
    "early_generator_loss_change": "mean absolute change of the generator's loss from one step "
    "to the next over the first 20% of generator steps (loss units per step; higher = the loss "
    "oscillates more early on)",
    "early_discriminator_loss_change": "mean absolute change of the discriminator's loss from "
    "one step to the next over the first 20% of generator steps (loss units per step; higher = "
    "the loss oscillates more early on)",
    "early_discriminator_accuracy": "mean accuracy of the discriminator on its own batches (real "
    "images with D(x) > 0.5, generated ones with D(G(z)) < 0.5) over the first 20% of generator "
    "steps, in [0, 1]; near 1 = the discriminator won early (early convergence)",
}


# Metrics where lower is better, recognized by name when no claim gives the direction.
LOWER_IS_BETTER = ("steps_to_threshold", "loss", "fid", "nll", "error", "time")


def metric_meanings(metrics: list[str], threshold: float | None = None) -> list[str]:
    """One line per metric whose meaning is known, e.g. "eval/return_final: mean greedy ..."."""
    lines = []
    for name in metrics:
        meaning = METRIC_MEANINGS.get(name.rsplit("/", 1)[-1])
        if meaning:
            shown = f"{threshold:g}" if threshold is not None else "return_threshold"
            lines.append(f"  {name}: {meaning.format(threshold=shown)}")
    return (["metrics:", *lines]) if lines else []


def _signed(x: float, integer: bool) -> str:
    return f"{x:+.0f}" if integer or 1e4 <= abs(x) < 1e12 else f"{x:+.4g}"


def _finite(x: float | None) -> bool:
    """A number to show: the report's JSON holds NaN (no interval below 2 seeds) as null."""
    return x is not None and math.isfinite(x)


def comparison_parts(c: dict) -> tuple[str, list[str], str | None]:
    """One metric's comparison (build.comparison) as text: the heading, one line per other
    arm, and the winner line (None when the arms are compared against a chosen reference)."""
    metric, base = c["metric"], c["reference"]
    integer = metric.endswith("steps_to_threshold")
    # Across scales no arm is best: the others are only set beside it.
    mixed = any(r.get("not_comparable") for r in c["rows"])
    named = "reference" if base != c["best"] or mixed else "best"
    head = (
        f"comparison on {metric} ({c['direction']} is better): {named}: {base}, "
        f"mean {_num(c['means'][base])}"
    )
    rows = []
    for row in c["rows"]:
        arm, n = row["arm"], row["n"]
        if row.get("not_comparable"):
            scales = "; ".join(f"{a}: {', '.join(v)}" for a, v in row["not_comparable"].items())
            rows.append(f"{arm} - {base}: not comparable, measured on different scales ({scales})")
            continue
        if not _finite(row["ci_low"]):
            verdict = f"not distinguishable at n = {n} (an interval needs 2 seeds)"
        elif row["distinguishable"]:
            better = row["difference"] > 0 if c["direction"] == "higher" else row["difference"] < 0
            verdict = f"{arm if better else base} better"
        else:
            verdict = f"not distinguishable at n = {n}"
        ci = (
            f" (95% CI {_signed(row['ci_low'], integer)} to {_signed(row['ci_high'], integer)}"
            f", {'paired' if row['paired'] else 'unpaired'})"
            if _finite(row["ci_low"])
            else ""
        )
        p_better = f"{row['p_better']:.2f}" if _finite(row["p_better"]) else "-"
        rows.append(
            f"{arm} - {base}: {_signed(row['difference'], integer)}{ci}, "
            f"P({arm} better) = {p_better}: {verdict}"
        )
    winner = winner_line(c) if c["rows"] and base == c["best"] else None
    return head, rows, winner


def comparison_lines(compared: list[dict]) -> list[str]:
    """The comparison as text: the winner, then one line per other arm."""
    lines = []
    for c in compared:
        head, rows, winner = comparison_parts(c)
        lines += [head, *(f"  {row}" for row in rows)]
        if winner:
            lines.append(f"  {winner}")
    return lines


COMPARISON_NOTE = (
    "Each arm against the best arm (or the chosen reference) on the claims' metrics and the "
    "experiment's first metric: mean(arm) - mean(best) with a 95% Student-t interval (paired "
    "over shared seeds, Welch's otherwise). Not distinguishable means the interval contains "
    "0: add seeds before reading a winner into it. P(A better) is the chance that a random seed "
    "of A beats a random seed of the other arm."
)


def winner_line(c: dict) -> str:
    """Who won on one metric's comparison, or that no arm is distinguishable."""
    best = c["best"]
    if any(r.get("not_comparable") for r in c["rows"]):
        return f"winner on {c['metric']}: none; the arms' runs are on different scales"
    beaten = [r for r in c["rows"] if r["distinguishable"]]
    if len(beaten) == len(c["rows"]):
        return f"winner on {c['metric']}: {best}, ahead of every other arm"
    if beaten:
        others = ", ".join(r["arm"] for r in c["rows"] if not r["distinguishable"])
        return f"winner on {c['metric']}: none; {best} leads, not distinguishable from {others}"
    n = min(r["n"] for r in c["rows"])
    return f"winner on {c['metric']}: none; no arm is distinguishable from {best} at n = {n}"


def _comparison_markdown(compared: list[dict]) -> list[str]:
    lines = ["", "## Comparison between arms", "", COMPARISON_NOTE, ""]
    if not compared:
        return [*lines, "No arm has a finished run with these metrics: nothing to compare."]
    for c in compared:
        head, rows, winner = comparison_parts(c)
        lines += [head, ""] + [f"- {_md_escape(row)}" for row in rows]
        lines += [f"- **{_md_escape(winner)}**"] if winner else []
        lines += [] if rows else ["- (one arm with runs: nothing to compare)"]
        lines.append("")
    return lines[:-1]


def _comparison_html(compared: list[dict]) -> str:
    parts = ['<section id="comparison"><h2>Comparison between arms</h2>']
    parts.append(f"<p>{_e(COMPARISON_NOTE)}</p>")
    if not compared:
        parts.append("<p>No arm has a finished run with these metrics: nothing to compare.</p>")
    for c in compared:
        head, rows, winner = comparison_parts(c)
        items = [f"<li>{_e(row)}</li>" for row in rows]
        items += [f'<li class="winner"><strong>{_e(winner)}</strong></li>'] if winner else []
        items += [] if rows else ["<li>(one arm with runs: nothing to compare)</li>"]
        parts.append(f"<p>{_e(head)}</p><ul>{''.join(items)}</ul>")
    parts.append("</section>")
    return "".join(parts)


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return lines


def claims_summary(data: dict[str, Any]) -> str:
    """How many claims were tested, the family-wise correction, and the sequential design."""
    claims = data["claims"]
    tested = [c for c in claims if c.get("p_value") is not None]
    text = (
        f"{len(claims)} claim(s), {len(tested)} tested with a p-value; Holm-adjusted p "
        "(Holm 1979) controls the family-wise error over the claims tested"
    )
    design = data.get("sequential")
    if design and design.get("applies"):
        text += (
            f"; seeds added until decided (run --until-decided): look {design['look']} of "
            f"{design['looks_planned']} planned, each at alpha / {design['looks_planned']} "
            "(Bonferroni over looks)"
        )
    elif design:
        text += "; a recorded --until-decided design does not match these seeds and was not used"
    return text


def _p_text(p: float | None) -> str:
    return "-" if p is None else ("<0.001" if p < 0.001 else f"{p:.3g}")


def _claim_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "claim",
        "claimed",
        "measured (proxy): estimate, CI (level, method), n, budget",
        "published full-budget reference",
        "p (Holm)",
        "verdict",
    ]
    rows = []
    for c in data["claims"]:
        verdict = c.get("verdict_text", c["verdict"])
        if c.get("looks_planned", 1) > 1:
            verdict += f" (look {c['look']} of {c['looks_planned']})"
        refs = "; ".join(f"{r['value']:g} ({r['what']}, {r['source']})" for r in c["references"])
        measured = f"{c['measured_text']}; {c['budget']} budget"
        if c["units"]:
            measured += f" [{c['units']}]"
        p = f"{_p_text(c.get('p_value'))} ({_p_text(c.get('holm_p'))})"
        rows.append([c["id"], c["claimed"], measured, refs or "none found", p, verdict])
    return header, rows


def _level(confidence: float | None) -> str:
    return "-" if confidence is None else f"{100 * confidence:.4g}%"


def _claim_details(c: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs explaining one claim under the table."""
    level = _level(c.get("confidence"))
    arms = "; ".join(
        f"{a['name']}: mean {_num(a['mean'])} [{level} CI {_num(a['ci_low'])}, "
        f"{_num(a['ci_high'])}], n={a['n']} of {a['n_runs']} runs, {a['n_diverged']} diverged, "
        f"{a.get('n_degenerate', 0)} degenerate, {a['n_censored']} censored, "
        f"{a['n_failed'] + a['n_missing']} failed"
        for a in c["arms"]
    )
    details = [
        ("statement", c["statement"]),
        ("source", c["source"] or "-"),
        ("metric", f"{c['metric']} ({c['direction']} is better); units: {c['units'] or '-'}"),
        ("claimed at", c["claimed_budget"] or "-"),
        ("arms", arms),
        (
            "interval",
            f"{c.get('method') or '-'} at {level}"
            + (", paired by seed" if c["paired"] else "")
            + f"; seeds per arm {'/'.join(str(a['n']) for a in c['arms'])}",
        ),
        ("verdict", c["reason"]),
        ("p-value (Holm-adjusted)", f"{_p_text(c.get('p_value'))} ({_p_text(c.get('holm_p'))})"),
    ]
    if c.get("looks_planned", 1) > 1:
        details.append(
            (
                "sequential",
                f"look {c['look']} of {c['looks_planned']} planned (run --until-decided); each "
                f"look judged at {level} (Bonferroni over the looks)",
            )
        )
    if c["value_check"]:
        details.append(("value check", c["value_check"]["reason"]))
    if c["p_improvement"]:
        p = c["p_improvement"]
        details.append(
            (
                "P(A better than B)",
                f"{_num(p['estimate'], 3)} [{_level(p.get('confidence'))} CI "
                f"{_num(p['ci_low'], 3)}, {_num(p['ci_high'], 3)}; {p.get('method', '')}]",
            )
        )
    if c["imputed_value"] is not None and any(a["n_diverged"] for a in c["arms"]):
        source = c.get("imputed_from") or ""
        details.append(
            (
                "diverged runs enter at",
                f"{_num(c['imputed_value'])} ({source})" if source else _num(c["imputed_value"]),
            )
        )
    if c.get("policy_verdicts"):
        details.append(
            (
                "verdict by diverged policy",
                ", ".join(f"{k}: {v}" for k, v in c["policy_verdicts"].items()),
            )
        )
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
    rows += [
        (f"arm {arm}", "; ".join(f"{role}: {spec_text(spec)}" for role, spec in roles.items()))
        for arm, roles in card.get("arms", {}).items()
    ]
    rows += [(f"setting: {k}", text(v)) for k, v in card["metric_settings"].items()]
    return rows


def render_markdown(data: dict[str, Any]) -> str:
    """The report as Markdown; images are referenced as files beside it."""
    lines = [f"# {_title(data)}", ""]
    if data["description"]:
        lines += [data["description"], ""]
    warning = _budget_warning(data)
    if warning:
        lines += [f"> **{warning}**", ""]
    lines += ["## Claims", ""]
    if data["claims"]:
        lines += [claims_summary(data) + ".", ""]
        lines += _md_table(*_claim_rows(data))
        for c in data["claims"]:
            lines += ["", f"### {c['id']}", ""]
            lines += [f"- **{label}:** {_md_escape(text)}" for label, text in _claim_details(c)]
    else:
        lines.append("No documented claims for this experiment.")
    lines += _comparison_markdown(data.get("comparison") or [])
    lines += tuning.markdown(data)  # tuned at an equal budget (suite/report/tuning.py)
    lines += ["", "## Arms", "", data["diverged_note"], ""]
    lines += _md_table(*_arm_rows(data))
    lines += ["", "## Learning curves", ""]
    if data["curves"]:
        lines += [f"Per arm: {CURVE_CAPTION}.", ""]
    lines += [f"![{name}]({path})" for name, path in data["curves"].items()] or ["No curves."]
    if data["samples"]:  # only trainers that record images (GANs, VAEs) have this section
        lines += ["", "## Samples", ""]
        lines += [
            f"**{s['arm']}** (seed {s['seed']}, {s['name']}): "
            f"![{s['arm']} {s['name']}]({s['path']})"
            for s in data["samples"]
        ]
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
.weaker, .stronger, .direction-only { color: #9a6700; }
.inconclusive, .not-run, .smoke-only { color: #555; }
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
    warning = _budget_warning(data)
    if warning:
        parts.append(f'<p class="warning">{_e(warning)}</p>')

    parts.append('<section id="claims"><h2>Claims</h2>')
    if data["claims"]:
        parts.append(f"<p>{_e(claims_summary(data))}.</p>")
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

    parts.append(_comparison_html(data.get("comparison") or []))
    parts += tuning.html_parts(data, directory)  # tuned at an equal budget
    parts.append(f'<section id="arms"><h2>Arms</h2><p>{_e(data["diverged_note"])}</p>')
    parts.append(_html_table(*_arm_rows(data)) + "</section>")

    parts.append('<section id="curves"><h2>Learning curves</h2>')
    for name, path in data["curves"].items():
        parts.append(
            f'<figure><img src="{_data_uri(directory / path)}" alt="{_e(name)}">'
            f"<figcaption>per arm: {CURVE_CAPTION}</figcaption></figure>"
        )
    if not data["curves"]:
        parts.append("<p>No curves.</p>")
    parts.append("</section>")

    if data["samples"]:  # only trainers that record images (GANs, VAEs) have this section
        parts.append(_html_samples(data["samples"], directory))

    card = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in _card_rows(data["reproduction"]))
    parts.append(f'<section id="reproduction"><h2>Reproduction card</h2><dl>{card}</dl></section>')
    return _page(_title(data), "\n".join(parts))


def _html_samples(samples: list[dict], directory: Path) -> str:
    parts = ['<section id="samples"><h2>Samples</h2>']
    for s in samples:
        parts.append(
            f'<figure><img class="sample" src="{_data_uri(directory / s["path"])}" '
            f'alt="{_e(s["name"])}">'
            f"<figcaption>{_e(s['arm'])}, seed {s['seed']}: {_e(s['name'])}</figcaption></figure>"
        )
    parts.append("</section>")
    return "".join(parts)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


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
                    c.get("verdict_text", c["verdict"]),
                ]
            )
        if not e["claims"] and not e.get("error"):
            rows.append([e["experiment"], budget, "-", "(no documented claims)", "-", "-"])
    return rows


_INDEX_HEADER = ["experiment", "budget", "claim", "statement", "measured (proxy)", "verdict"]


def _relative_link(path: str, root: Path) -> str:
    return str(Path(path).relative_to(root)) if Path(path).is_relative_to(root) else path


def index_markdown(entries: list[dict[str, Any]], root: Path) -> str:
    lines = ["# All experiments and their claims", ""]
    lines += _md_table(_INDEX_HEADER, _index_rows(entries))
    lines += ["", "## Reports", ""]
    lines += [
        f"- [{e['experiment']} ({e['budget']})]({_relative_link(e['report'], root)})"
        for e in entries
        if e.get("report")
    ] or ["No results yet."]
    return "\n".join(lines) + "\n"


def index_html(entries: list[dict[str, Any]], root: Path) -> str:
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
