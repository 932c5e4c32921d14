"""How far below an even split of ε can a count's error go, released next to a sum and a mean?

    python3 -m venv /tmp/floor && /tmp/floor/bin/pip install numpy scipy highspy
    /tmp/floor/bin/python count_floor.py                  # the lattice LP, ε = 0.5 (25 s)
    /tmp/floor/bin/python count_floor.py --eps 0.25       # finer, closer to the continuum (6 min)
    /tmp/floor/bin/python count_floor.py --eps 1.25 --rows 5 --h 50   # 5 rows per unit (36 min)
    /tmp/floor/bin/python count_floor.py --continuum      # the flat-segment family, continuous (20 s)

One group, one privacy unit moving a count by k rows (1 ≤ |k| ≤ L) and the centred sum of
values in [0, 100] by σ, |σ| ≤ 50·|k|: the "bow-tie" of moves. Every additive ε-DP noise law
for the pair (count, centred sum) is a point of a linear program on a lattice (count on the
integers, centred sum on multiples of h): p(z) ≤ e^ε·p(z + v) for every move v. The outputs'
errors are the count's |X|, the sum's |Y + 50·X| (sum = centred sum + 50·count) and the mean's
numerator |Y + 30·X| (values averaging 20, as on the benchmark file: mean − 50 = −30).

The even split (PipelineDP's and OpenDP's design: a Laplace count and a Laplace centred sum,
each at ε/2) is the reference; the joint law is Veil's draw (`veil-core`
`JointLaplaceMechanism`, exp(−ε·max(|x|/L, |y|/50L))). The LP answers: with the sum's and the
mean's median errors held at the joint law's, how small can the count's median error be? And
with them at 0.8 of the split's? A median constraint is linear: P(|W| ≤ t) ≥ 1/2; the script
maximises P(|X| ≤ t) under it and bisects on t. Medians are taken with each lattice atom
spread uniformly over its cell (X + U(−½, ½), Y + h·U(−½, ½)), a continuous proxy, so that
lattice steps of one row do not hide the differences.

The optima it finds are, up to a lattice staircase, the "flat-segment" laws
exp(−ε·max(|x|/L, (|y| − W)₊/50L)): the box-norm distance to the segment {0}×[−W, W], which
is ε-DP for every W (a distance to a set is 1-Lipschitz in the norm, and every move has box
norm at most 1). `--continuum` tabulates that family by Monte Carlo.
"""

import argparse
import math
import time

import numpy as np

SUM, MEAN = 50.0, 30.0  # the sum's error is Y + 50·X, the mean numerator's Y + 30·X


class Lattice:
    """The box |x| ≤ tail·(split's count scale), |y| ≤ tail·(split's sum scale), on steps 1 × h.
    Laws are centrally symmetric (p(z) = p(−z): the moves and the errors are), so a law is
    stored on one representative of each pair {z, −z}."""

    def __init__(self, eps, rows, h, tail):
        self.eps, self.rows, self.h = eps, rows, h
        xmax = math.ceil(tail * rows / (eps / 2))
        jmax = math.ceil(tail * 50 * rows / (eps / 2) / h)
        self.nx, self.ny = 2 * xmax + 1, 2 * jmax + 1
        ix, jy = np.meshgrid(np.arange(self.nx), np.arange(self.ny), indexing="ij")
        self.x = (ix - xmax).ravel().astype(float)
        self.y = ((jy - jmax) * h).ravel().astype(float)
        n = self.nx * self.ny
        flat = np.arange(n)
        self.rep = np.minimum(flat, n - 1 - flat)  # z and −z share a representative
        self.reps = (n + 1) // 2
        self.mult = np.full(self.reps, 2.0)
        self.mult[-1] = 1.0  # the centre is its own mirror

    def moves(self):
        for k in range(1, self.rows + 1):
            reach = int(math.floor(50 * k / self.h + 1e-9))
            for j in range(-reach, reach + 1):
                yield k, j
                yield -k, -j

    def dp_pairs(self):
        """(rep(z), rep(z + v)) over every move v with both points in the box."""
        index = np.arange(self.nx * self.ny).reshape(self.nx, self.ny)
        keys = []
        for k, j in self.moves():
            a = index[max(0, -k) : self.nx - max(0, k), max(0, -j) : self.ny - max(0, j)]
            b = index[max(0, k) : self.nx - max(0, -k), max(0, j) : self.ny - max(0, -j)]
            ra, rb = self.rep[a.ravel()], self.rep[b.ravel()]
            keep = ra != rb
            keys.append(ra[keep].astype(np.int64) * self.reps + rb[keep])
        keys = np.unique(np.concatenate(keys))
        return keys // self.reps, keys % self.reps

    def law(self, exponent):
        """The law ∝ exp(−exponent) over the box, on representatives."""
        weight = np.exp(-(exponent - exponent.min()))
        return (weight / weight.sum())[: self.reps].copy()

    def split(self):
        e, r = self.eps / 2, self.rows
        return self.law(e * np.abs(self.x) / r + e * np.abs(self.y) / (50 * r))

    def joint(self):
        e, r = self.eps, self.rows
        return self.law(e * np.maximum(np.abs(self.x) / r, np.abs(self.y) / (50 * r)))

    def flat_segment(self, w):
        e, r = self.eps, self.rows
        half = w * 50 * r / e
        excess = np.maximum(np.abs(self.y) - half, 0.0)
        return self.law(e * np.maximum(np.abs(self.x) / r, excess / (50 * r)))

    def dp_violation(self, law):
        """max log p(z)/p(z + v) − ε over the moves (≤ 0 up to rounding for an ε-DP law)."""
        a, b = self.dp_pairs()
        law = np.maximum(law, 1e-300)
        return float(np.max(np.log(law[a]) - np.log(law[b])) - self.eps)

    def within(self, coefficient, t):
        """Per representative: P(|W| ≤ t) with the atom spread over its cell, W = X
        (coefficient None) or Y + coefficient·X."""
        r = np.arange(self.reps)
        if coefficient is None:
            w, w1, w2 = self.x[r], 1.0, 0.0
        else:
            w, w1, w2 = self.y[r] + coefficient * self.x[r], abs(coefficient), self.h
        return spread_cdf(t - w, w1, w2) - spread_cdf(-t - w, w1, w2)

    def median(self, law, coefficient):
        """The median of |W| under `law` (atoms spread over their cells), by bisection."""
        low, high = 0.0, float(np.abs(self.y).max() + 60 * np.abs(self.x).max())
        for _ in range(60):
            middle = 0.5 * (low + high)
            if (self.mult * self.within(coefficient, middle)) @ law < 0.5:
                low = middle
            else:
                high = middle
        return high

    def medians(self, law):
        return np.array([self.median(law, c) for c in (None, SUM, MEAN)])


def spread_cdf(t, w1, w2):
    """CDF at t of U(−w1/2, w1/2) + U(−w2/2, w2/2) (w2 may be 0)."""
    if w2 < 1e-12:
        return np.clip((t + w1 / 2) / w1, 0.0, 1.0)

    def g(s):
        s = np.maximum(s, 0.0)
        return 0.5 * s * s

    a, b = w1 / 2, w2 / 2
    return (g(t + a + b) - g(t + a - b) - g(t - a + b) + g(t - a - b)) / (w1 * w2)


class Program:
    """max P(|X| ≤ t) over ε-DP laws, with P(|Y + 50X| ≤ t_sum) ≥ ½ and P(|Y + 30X| ≤ t_mean) ≥ ½.

    The primal has about twenty times more rows (moves) than columns, which HiGHS solves
    slowly; its explicit dual is passed instead and solved with primal simplex, warm-started
    from one t to the next, and the law is read off the dual's row duals. Variables are
    scaled by a reference law s (q = s·u), each DP row by 1/s, so that the solver's absolute
    tolerances act as relative ones on the density ratios."""

    def __init__(self, lattice, t_sum, t_mean):
        import highspy
        import scipy.sparse as sparse

        self.lattice, self.highspy = lattice, highspy
        a, b = lattice.dp_pairs()
        s = np.maximum(lattice.split(), lattice.joint())
        self.s = s / (lattice.mult @ s)
        self.ms = lattice.mult * self.s
        ratio = math.exp(lattice.eps) * self.s[b] / self.s[a]
        n, m = lattice.reps, len(a)
        # Two median rows, written as −P(|W| ≤ t) ≤ −½.
        extra = np.array(
            [-self.ms * lattice.within(SUM, t_sum), -self.ms * lattice.within(MEAN, t_mean)]
        )
        dual = sparse.hstack(
            [
                sparse.csc_matrix(
                    (
                        np.concatenate([np.ones(m), -ratio]),
                        (np.concatenate([a, b]), np.concatenate([np.arange(m)] * 2)),
                    ),
                    shape=(n, m),
                ),
                sparse.csc_matrix(extra.T),
                sparse.csc_matrix(-self.ms[:, None]),
            ],
            format="csc",
        )
        columns = m + 3
        program = highspy.HighsLp()
        program.num_col_, program.num_row_ = columns, n
        lower = np.zeros(columns)
        lower[-1] = -highspy.kHighsInf
        cost = np.zeros(columns)
        cost[m : m + 2] = 0.5  # −(−½) for each median row
        cost[-1] = 1.0
        program.col_lower_, program.col_upper_ = lower, np.full(columns, highspy.kHighsInf)
        program.col_cost_ = cost
        program.row_lower_, program.row_upper_ = np.zeros(n), np.full(n, highspy.kHighsInf)
        program.sense_ = highspy.ObjSense.kMaximize
        program.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        program.a_matrix_.start_ = dual.indptr
        program.a_matrix_.index_ = dual.indices
        program.a_matrix_.value_ = dual.data
        self.solver = highspy.Highs()
        self.solver.setOptionValue("output_flag", False)
        self.solver.setOptionValue("simplex_strategy", 4)  # primal simplex
        self.solver.setOptionValue("primal_feasibility_tolerance", 1e-10)
        self.solver.setOptionValue("dual_feasibility_tolerance", 1e-10)
        self.solver.passModel(program)

    def best(self, t):
        """The law with the largest P(|X| ≤ t) under the median rows, and that probability
        (None if no law meets them)."""
        lattice, solver = self.lattice, self.solver
        gain = self.ms * lattice.within(None, t)
        rows = np.arange(lattice.reps, dtype=np.int32)
        solver.changeRowsBounds(lattice.reps, rows, gain, np.full(lattice.reps, self.highspy.kHighsInf))
        solver.run()
        if "Optimal" not in str(solver.getModelStatus()):
            return None, None
        duals = np.asarray(solver.getSolution().row_dual)
        if duals.sum() < 0:
            duals = -duals
        law = np.maximum(duals, 0.0) * self.s
        law /= lattice.mult @ law
        return law, float((lattice.mult * lattice.within(None, t)) @ law)

    def smallest_median_count(self, start):
        """The smallest t with P(|X| ≤ t) ≥ ½ under the median rows, by bisection from
        [0, start], and the law that reaches it."""
        low, high, found = 0.0, start, None
        for _ in range(12):
            middle = 0.5 * (low + high)
            law, p = self.best(middle)
            if p is not None and p >= 0.5 - 1e-9:
                high, found = middle, law
            else:
                low = middle
        return high, found


def lattice_study(args):
    began = time.time()
    lattice = Lattice(args.eps, args.rows, args.h, args.tail)
    split, joint = lattice.split(), lattice.joint()
    reference = lattice.medians(split)
    print(
        f"ε = {args.eps}, L = {args.rows} rows, sum step h = {args.h}: "
        f"{lattice.nx} × {lattice.ny} lattice, {lattice.reps} variables"
    )
    print("\nMedian |error| over the even split's (count / sum / mean):\n")
    print("| law | count | sum | mean | max log-ratio − ε |\n|---|---|---|---|---|")

    def row(name, law, medians=None):
        medians = lattice.medians(law) if medians is None else medians
        ratios = " | ".join(f"{v:.3f}" for v in medians / reference)
        print(f"| {name} | {ratios} | {lattice.dp_violation(law):.1e} |", flush=True)

    row("even split (Laplace at ε/2 each)", split, reference)
    joint_medians = lattice.medians(joint)
    row("joint (Veil's draw)", joint, joint_medians)
    for w in (0.25, 0.5, 0.75, 1.0):
        row(f"flat segment, W = {w}·50L/ε", lattice.flat_segment(w))
    for name, t_sum, t_mean in (
        ("sum and mean at the joint law's", joint_medians[1], joint_medians[2]),
        ("sum and mean at 0.8 of the split's", 0.8 * reference[1], 0.8 * reference[2]),
    ):
        program = Program(lattice, t_sum, t_mean)
        _, law = program.smallest_median_count(1.2 * reference[0])
        if law is None:
            print(f"| LP, {name}: no law found | | | | |")
        else:
            row(f"LP: smallest count, {name}", law)
    print(f"\n({time.time() - began:.0f} s)")


def continuum_study(samples=4_000_000, seed=7):
    """The flat-segment family with continuous noise (the ε → 0 limit of the lattice), at
    ε = 1 and L = 1 (the ratios do not depend on either). A draw: with probability
    π = 2W/(2W + 200) (the strip's mass 4W against the box law's 400), X ~ Laplace(1) and
    Y uniform on [−W, W]; otherwise the joint law's draw R·(U₁, 50·U₂), R ~ Gamma(3),
    U uniform on the square, with Y pushed out by W."""
    rng = np.random.default_rng(seed)

    def errors(x, y):
        return np.array([np.median(np.abs(v)) for v in (x, y + SUM * x, y + MEAN * x)])

    reference = errors(rng.laplace(0, 2, samples), rng.laplace(0, 100, samples))
    print("Median |error| over the even split's, continuous noise:\n")
    print("| W (in 50L/ε) | count | sum | mean |\n|---|---|---|---|")
    for w in (0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0):
        half = 50 * w
        radius = rng.gamma(3, 1.0, samples)
        u = rng.uniform(-1, 1, (2, samples))
        x, y = radius * u[0], 50 * radius * u[1]
        y = y + half * np.sign(y)
        strip = rng.random(samples) < 2 * half / (2 * half + 200)
        x[strip] = rng.laplace(0, 1, strip.sum())
        y[strip] = rng.uniform(-half, half, strip.sum())
        ratios = errors(x, y) / reference
        print(f"| {w} | " + " | ".join(f"{v:.3f}" for v in ratios) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eps", type=float, default=0.5, help="ε of the pair, in one group")
    parser.add_argument("--rows", type=int, default=1, help="L: the most rows one unit adds to the group")
    parser.add_argument("--h", type=float, default=25.0, help="the centred sum's lattice step")
    parser.add_argument(
        "--tail", type=float, default=9.3, help="the box's half-width, in the split law's scales"
    )
    parser.add_argument(
        "--continuum", action="store_true", help="tabulate the flat-segment family, continuous"
    )
    args = parser.parse_args()
    if args.continuum:
        continuum_study()
    else:
        lattice_study(args)


if __name__ == "__main__":
    main()
