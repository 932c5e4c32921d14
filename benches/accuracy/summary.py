"""Veil against the best peer over every cell of the accuracy table.

    python3 summary.py RESULTS.md veil.jsonl [more-veil.jsonl ...]

Takes the peers' bounded errors from the recorded tables of RESULTS.md (every peer
column, `n/a` and blanks skipped) and Veil's from the harness's JSONL lines (default
variant only; a later file's line replaces an earlier one's). Prints the median of Veil /
best peer, the cells at or below 1 and at or below 0.8, then every cell above 1.
"""

import json
import re
import statistics
import sys


def peers_of(path):
    """{(question, aggregate, partitions, accounting, ε): (best bounded error, peer)}."""
    best_of = {}
    question, columns = None, None
    for line in open(path):
        heading = re.match(r"### (Q\d)", line)
        if heading:
            question = heading.group(1).lower()
            continue
        if line.startswith("| aggregate |"):
            columns = [cell.strip() for cell in line.strip().strip("|").split("|")]
            continue
        if not (question and columns and line.startswith("| ")) or line.startswith("|---"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != len(columns):
            continue
        key = (question, cells[0], cells[1], cells[2].split(" ")[0], float(cells[3]))
        best = None
        for peer, value in zip(columns[5:], cells[5:]):
            if not value or value == "n/a":
                continue
            bounded = float(value.split("/")[0].strip())
            if best is None or bounded < best[0]:
                best = (bounded, peer)
        best_of[key] = best
    return best_of


def veil_of(paths):
    errors = {}
    for path in paths:
        for line in open(path):
            if not line.strip():
                continue
            cell = json.loads(line)
            if cell.get("variant") not in (None, "", "default"):
                continue
            key = (cell["question"], cell["aggregate"], cell["partitions"],
                   cell["accounting"], float(cell["epsilon"]))
            errors[key] = cell["error_bounded"]
    return errors


def main():
    peers = peers_of(sys.argv[1])
    veil = veil_of(sys.argv[2:])
    rows = []
    for key, best in sorted(peers.items()):
        if best is None or key not in veil:
            continue
        rows.append((key, veil[key], best, veil[key] / best[0]))
    ratios = [row[3] for row in rows]
    print(f"cells {len(ratios)}, median Veil / best peer {statistics.median(ratios):.3f}, "
          f"at or below 1: {sum(r <= 1 for r in ratios)}, at or below 0.8: "
          f"{sum(r <= 0.8 for r in ratios)}")
    for key, error, (best, peer), ratio in rows:
        if ratio > 1:
            print(f"  {' '.join(map(str, key))}: Veil {error:.4g}, {peer} {best:.4g}, {ratio:.2f}x")


if __name__ == "__main__":
    main()
