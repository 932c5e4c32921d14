"""How far below the exponential mechanism can a DP median's rank error go?

    python3 quantile_floor.py

Near the median of a group dense in values, a candidate's utility is minus its distance in
rank to the target, and the exponential mechanism over a fine grid (or Smith's continuous
one, Tumult's) chooses a rank error distributed as Laplace(b), b = 2Δ/ε (Δ = the utility's
sensitivity: max_rows/2 for the median). Permute-and-flip over candidates spaced s rows
apart in rank (offset uniform) does better only when s is comparable to b. This prints,
for each spacing, the median and mean rank error over b, exactly: permute-and-flip picks
candidate j with probability ∫₀¹ p_j Π_{k≠j}(1 − p_k t) dt (candidates visited in order of
independent uniform arrival times), p_j = exp(−(|d_j| − min|d|)/b).
"""

import math


def permute_and_flip(spacing, offset, reach=40.0, steps=400):
    """[(|d_j|, P(j))] for candidates at offset + k·spacing (in units of b)."""
    count = int(reach / spacing) + 2
    distances = [abs(offset + k * spacing) for k in range(-count, count + 1)]
    best = min(distances)
    accept = [math.exp(-(d - best)) for d in distances]
    chosen = [0.0] * len(distances)
    # Midpoint rule on t in [0, 1]; the integrand is a smooth polynomial in t.
    for step in range(steps):
        t = (step + 0.5) / steps
        logs = [math.log1p(-p * t) if p * t < 1 else -math.inf for p in accept]
        total = sum(x for x in logs if x > -math.inf)
        for j, p in enumerate(accept):
            if p * t >= 1:
                rest = sum(x for i, x in enumerate(logs) if i != j)
            else:
                rest = total - logs[j]
            chosen[j] += p * math.exp(rest) / steps
    return list(zip(distances, chosen))


def error_stats(spacing, offsets=24):
    """Median and mean |rank error| / b, the offset uniform over one spacing."""
    mass = []
    for i in range(offsets):
        for distance, p in permute_and_flip(spacing, spacing * (i + 0.5) / offsets):
            mass.append((distance, p / offsets))
    mass.sort()
    total = sum(p for _, p in mass)
    mean = sum(d * p for d, p in mass) / total
    running = 0.0
    for distance, p in mass:
        running += p
        if running >= total / 2:
            return distance, mean
    return mass[-1][0], mean


def main():
    print("continuous exponential mechanism: median |error|/b = ln 2 = 0.693, mean = 1")
    print("| spacing s/b | permute-and-flip median / EM | mean / EM |")
    print("|---|---|---|")
    for spacing in (0.05, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0):
        median, mean = error_stats(spacing)
        print(f"| {spacing:g} | {median / math.log(2):.2f} | {mean:.2f} |")


if __name__ == "__main__":
    main()
