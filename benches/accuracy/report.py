"""Turns the benchmark's JSONL into Markdown tables: one row per question, aggregate and
setting, one column per system (and variant). Lines with "system": "veil" get a column
like the peers'.

    python report.py ~/.cache/veil/accuracy/results.jsonl > report.md
"""

import json
import sys
from collections import OrderedDict

ORDER = ["veil", "opendp", "pipelinedp", "tumult"]
SETTINGS = [("public", "pure"), ("public", "approx"), ("private", "pure"), ("private", "approx")]
Q_TITLES = {
    "q1": "Q1: count + sum",
    "q2": "Q2: count + sum + mean in one query",
    "q3": "Q3: mean alone",
    "q4": "Q4: median (rank error)",
}


def fmt(x):
    if x is None:
        return "–"
    if x == 0:
        return "0"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 0.01:
        return f"{x:.3f}"
    return f"{x:.2e}"


def column(line):
    v = line.get("variant", "default")
    return line["system"] if v in (None, "", "default") else f'{line["system"]} ({v})'


def main():
    path = sys.argv[1]
    lines = [json.loads(l) for l in open(path) if l.strip()]
    cols = sorted({column(l) for l in lines},
                  key=lambda c: (ORDER.index(c.split(" ")[0]) if c.split(" ")[0] in ORDER
                                 else len(ORDER), c))
    if "veil" not in cols:
        cols.insert(0, "veil")
    cell = {}
    releases = {}
    for l in lines:
        key = (l["question"], l["aggregate"], l["partitions"], l["accounting"], l["epsilon"])
        cell[key + (column(l),)] = l
        if l.get("releases"):
            releases.setdefault(column(l), set()).add(l["releases"])

    out = []
    out.append("Cells: bounded / raw. Bounded = median relative error against the system's own "
               "bounded truth (noise only); raw = against the truth on all rows with a value "
               "(bounding + clamping + noise). Median over countries and releases. Q4 is the "
               "rank error |rank − n/2| / n. Private partitions: `[k]` = countries released "
               "(median over releases; errors on released countries only). `n/a` = the "
               "system cannot run that setting (see README).")
    out.append("")
    out.append("Releases per setting: " + ", ".join(
        f"{c} {'/'.join(str(r) for r in sorted(releases[c]))}" for c in cols if c in releases))
    out.append("")
    questions = OrderedDict()
    for l in lines:
        questions.setdefault(l["question"], [])
        if l["aggregate"] not in questions[l["question"]]:
            questions[l["question"]].append(l["aggregate"])
    eps_all = sorted({l["epsilon"] for l in lines})
    for q in sorted(questions):
        out.append(f"### {Q_TITLES.get(q, q)}")
        out.append("")
        out.append("| aggregate | partitions | accounting | ε | " + " | ".join(cols) + " |")
        out.append("|---|---|---|---|" + "---|" * len(cols))
        for a in questions[q]:
            for partitions, accounting in SETTINGS:
                for eps in eps_all:
                    row = []
                    any_line = False
                    for c in cols:
                        l = cell.get((q, a, partitions, accounting, eps, c))
                        if l is None:
                            row.append("")
                            continue
                        any_line = True
                        if l.get("unsupported"):
                            row.append("n/a")
                            continue
                        s = f'{fmt(l.get("error_bounded"))} / {fmt(l.get("error_raw"))}'
                        if partitions == "private" and l.get("countries_released") is not None:
                            s += f' [{l["countries_released"]:g}]'
                        row.append(s)
                    if any_line:
                        delta = "δ=1e-6" if (partitions, accounting) != ("public", "pure") else "δ=0"
                        out.append(f"| {a} | {partitions} | {accounting} ({delta}) | {eps:g} | "
                                   + " | ".join(row) + " |")
        out.append("")
    common_groups(lines, cols, questions, out)
    out.append("### Wall time per release (s, mean over releases and settings)")
    out.append("")
    out.append("| question | " + " | ".join(cols) + " |")
    out.append("|---|" + "---|" * len(cols))
    for q in sorted(questions):
        row = []
        for c in cols:
            ts = [l["seconds_per_release"] for l in lines if l["question"] == q
                  and column(l) == c and l.get("seconds_per_release") is not None
                  and l["aggregate"] == questions[q][0]]
            row.append(f"{sum(ts) / len(ts):.2f}" if ts else "")
        out.append(f"| {q} | " + " | ".join(row) + " |")
    out.append("")
    print("\n".join(out))


def common_groups(lines, cols, questions, out):
    """With private partitions each system's error is over the countries it released, and
    a system that releases fewer (the largest) countries looks better. Where Veil and a peer
    both recorded per-country errors (`by_country`), compare them on the countries that both
    released in at least half of their releases: the median over those countries of each
    country's median error."""
    groups = {}
    for l in lines:
        if l.get("partitions") != "private" or not l.get("by_country") or not l.get("releases"):
            continue
        key = (l["question"], l["aggregate"], l["accounting"], l["epsilon"])
        groups.setdefault(key, {})[column(l)] = l

    def kept(line):
        return {c for c, (_, n) in line["by_country"].items() if 2 * n >= line["releases"]}

    def median_over(line, countries):
        errors = sorted(line["by_country"][c][0] for c in countries)
        middle = len(errors) // 2
        return errors[middle] if len(errors) % 2 else (errors[middle - 1] + errors[middle]) / 2

    rows = []
    for (q, a, accounting, eps), by_system in sorted(groups.items()):
        veil = by_system.get("veil")
        if veil is None:
            continue
        for peer in cols:
            line = by_system.get(peer)
            if peer == "veil" or line is None:
                continue
            common = kept(veil) & kept(line)
            if not common:
                continue
            ours, theirs = median_over(veil, common), median_over(line, common)
            ratio = f"{ours / theirs:.2f}" if theirs else "–"
            rows.append(f"| {q} | {a} | {accounting} | {eps:g} | {peer} | {len(common)} "
                        f"({len(kept(veil))} / {len(kept(line))}) | {fmt(ours)} | {fmt(theirs)} "
                        f"| {ratio} |")
    if not rows:
        return
    out.append("### Private partitions on the countries both release")
    out.append("")
    out.append("Veil against each peer on the countries both released in at least half of "
               "their releases (`countries`: common (Veil's / the peer's)): the median over "
               "them of each country's median bounded error (Q4: rank error). Only lines "
               "with per-country errors (`by_country`) take part.")
    out.append("")
    out.append("| question | aggregate | accounting | ε | peer | countries | veil | peer's | "
               "veil / peer |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    out.extend(rows)
    out.append("")


if __name__ == "__main__":
    main()
