"""Drift statistics in numpy alone: exact, linear-time, and without importing scipy.

``mlops drift`` must answer a million-row window in about a second, and ``import scipy.stats`` alone
costs 2-3 s on a small machine. So the two distributions that turn statistics into p-values are
computed here: the chi-square upper tail (regularised incomplete gamma function) and the
two-sided one-sample Kolmogorov distribution that ``scipy.stats.ks_2samp(method="asymp")`` uses
(``kstwo.sf``), following scipy's own algorithm choice (Simard & L'Ecuyer 2011: Ruben-Gambino
closed forms, the Durbin matrix, the Pelz-Good expansion and twice the exact one-sided Smirnov
tail). Tests hold every function equal to scipy, which stays the oracle; the rare region scipy
computes with Pomeranz' recursion (at most 140 effective rows) is delegated to scipy itself.

The two-sample KS statistic is exact but needs no sort of the data: values go into 32,768
equal-width bins over the reference's central range (monotone in the value, so the bins are ordered
intervals); the CDF gap is known exactly between bins and bounded inside each one, and only the
few bins whose bound could beat the best exact gap are sorted (see :func:`ks_binned`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Frequencies are floored at this value before logs are taken (an empty bin would make PSI infinite).
PSI_EPSILON = 1e-4
FINE_BINS = 1 << 15
SCIPY_ONLY_MAX_N = 140  # kstwo below this many effective rows uses Pomeranz' recursion: left to scipy


# --------------------------------------------------------------------------------------------------
# Effect sizes
# --------------------------------------------------------------------------------------------------


def psi(reference_counts: np.ndarray, current_counts: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population Stability Index over aligned bins: sum((c - r) * ln(c / r)) of floored frequencies."""
    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    if ref.sum() == 0 or cur.sum() == 0:
        return float("nan")
    r = np.maximum(ref / ref.sum(), epsilon)
    c = np.maximum(cur / cur.sum(), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Jensen-Shannon distance with natural logs, as ``scipy.spatial.distance.jensenshannon`` (and
    Evidently) compute it: 0 for identical distributions, sqrt(ln 2) ~ 0.833 for disjoint ones."""
    p = np.asarray(reference_counts, dtype=float)
    q = np.asarray(current_counts, dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / m[mask])))

    return float(math.sqrt(max((kl(p) + kl(q)) / 2, 0.0)))


# --------------------------------------------------------------------------------------------------
# Chi-square
# --------------------------------------------------------------------------------------------------


def gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (``scipy.special.gammaincc``): series below a + 1,
    Lentz's continued fraction above (Numerical Recipes 6.2), both to double precision."""
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-17:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return min(1.0, math.exp(log_prefix) * h)


def chi2_sf(statistic: float, dof: int) -> float:
    """Upper tail of the chi-square distribution (``scipy.stats.chi2.sf``)."""
    return gamma_q(dof / 2, statistic / 2)


def chi_square(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Pearson chi-square test of homogeneity on a 2 x K table (no continuity correction).

    Equal to ``scipy.stats.chi2_contingency(table, correction=False)`` after dropping empty columns.
    """
    table = np.vstack([np.asarray(reference_counts, float), np.asarray(current_counts, float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, chi2_sf(statistic, table.shape[1] - 1)


def two_proportion_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (equal to the 2 x 2 chi-square test)."""
    if n_a == 0 or n_b == 0:
        return 1.0
    pooled = (hits_a + hits_b) / (n_a + n_b)
    if pooled in (0.0, 1.0):
        return 1.0
    z = abs(hits_a / n_a - hits_b / n_b) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return math.erfc(z / math.sqrt(2))


# --------------------------------------------------------------------------------------------------
# Kolmogorov distribution (two-sided, n samples): scipy.stats.kstwo.sf
# --------------------------------------------------------------------------------------------------


def _log_factorial_over_power(n: int) -> float:
    """log(n! / n**n) by Stirling's series (as scipy's _ksstats)."""
    coefficients = [
        -2.955065359477124183e-2,
        6.4102564102564102564e-3,
        -1.9175269175269175269e-3,
        8.4175084175084175084e-4,
        -5.952380952380952381e-4,
        7.9365079365079365079e-4,
        -2.7777777777777777778e-3,
        8.3333333333333333333e-2,
    ]
    rn = 1.0 / n
    return math.log(n) / 2 - n + math.log(2 * math.pi) / 2 + rn * float(np.polyval(coefficients, rn / n))


def smirnov_sf(n: int, x: float) -> float:
    """One-sided Smirnov tail P(D+_n >= x) by the exact Birnbaum-Tingey sum, in logs, vectorised."""
    if x <= 0:
        return 1.0
    if x >= 1:
        return 0.0
    last = math.floor(n * (1 - x))
    j = np.arange(0, last + 1, dtype=float)
    keep = (x + j / n) < 1
    j = j[keep]
    if len(j) == 0:
        return 0.0
    # log C(n, j) as lgamma differences (Stirling series for large arguments, exact logs for small)
    log_choose = _log_gamma(n + 1.0) - _log_gamma(j + 1.0) - _log_gamma(n - j + 1.0)
    logs = log_choose + (n - j) * np.log1p(-x - j / n) + (j - 1) * np.log(x + j / n)
    top = float(logs.max())
    return float(min(1.0, x * math.exp(top) * np.sum(np.exp(logs - top))))


_LOG_GAMMA_SMALL = np.array([math.lgamma(v) for v in range(1, 33)])


def _log_gamma(values: np.ndarray | float) -> np.ndarray:
    """log Gamma(v) for integer-valued v >= 1, vectorised: a table below 33, Stirling above."""
    v = np.asarray(values, dtype=float)
    out = np.empty_like(v)
    small = v < 33
    out[small] = _LOG_GAMMA_SMALL[v[small].astype(np.int64) - 1]
    big = v[~small]
    inv, inv2 = 1.0 / big, 1.0 / (big * big)
    series = inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 * (1 / 1680 - inv2 * (1 / 1188)))))
    out[~small] = (big - 0.5) * np.log(big) - big + 0.5 * math.log(2 * math.pi) + series
    return out


def _kolmogorov_durbin_cdf(n: int, d: float) -> float:
    """P(D_n <= d) by the Durbin matrix (Marsaglia, Tsang & Wang 2003), as scipy's _kolmogn_DMTW."""
    nd = n * d
    if d >= 1.0:
        return 1.0
    if nd <= 0.5:
        return 0.0
    k = math.ceil(nd)
    h = k - nd
    m = 2 * k - 1
    big, small = 2.0**128, 2.0**-128
    matrix = np.zeros([m, m])
    steps = np.arange(1, m + 1)
    v = 1.0 - h**steps
    w = np.empty(m)
    fac = 1.0
    for j in steps:
        w[j - 1] = fac
        fac /= j
        v[j - 1] *= fac
    tt = max(2 * h - 1.0, 0) ** m - 2 * h**m
    v[-1] = (1.0 + tt) * fac
    for i in range(1, m):
        matrix[i - 1 :, i] = w[: m - i + 1]
    matrix[:, 0] = v
    matrix[-1, :] = np.flip(v, axis=0)
    power = np.eye(m)
    remaining, exponent, matrix_exponent = n, 0, 0
    while remaining > 0:
        if remaining % 2:
            power = power @ matrix
            exponent += matrix_exponent
        matrix = matrix @ matrix
        matrix_exponent *= 2
        if abs(matrix[k - 1, k - 1]) > big:
            matrix /= big
            matrix_exponent += 128
        remaining //= 2
    p = float(power[k - 1, k - 1])
    for i in range(1, n + 1):
        p = i * p / n
        if abs(p) < small:
            p *= big
            exponent -= 128
    if exponent:
        p = math.ldexp(p, exponent)
    return min(max(p, 0.0), 1.0)


def _kolmogorov_pelz_good_cdf(n: int, x: float) -> float:
    """Pelz-Good (1976) asymptotic expansion of P(D_n <= x), as scipy's _kolmogn_PelzGood."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    pi2, pi4, pi6 = math.pi**2, math.pi**4, math.pi**6
    z = math.sqrt(n) * x
    z2, z3, z4, z6 = z**2, z**3, z**4, z**6
    qlog = -pi2 / 8 / z2
    if qlog < -708:
        return 0.0
    q = math.exp(qlog)
    k1a, k1b = -z2, pi2 / 4
    k2a = 6 * z6 + 2 * z4
    k2b = (2 * z4 - 5 * z2) * pi2 / 4
    k2c = pi4 * (1 - 2 * z2) / 16
    k3d = pi6 * (5 - 30 * z2) / 64
    k3c = pi4 * (-60 * z2 + 212 * z4) / 16
    k3b = pi2 * (135 * z4 - 96 * z6) / 4
    k3a = -30 * z6 - 90 * z**8
    terms = np.zeros(4)
    top = math.ceil(16 * z / math.pi)
    for k in range(top, 0, -1):
        m = 2 * k - 1
        m2, m4, m6 = m**2, m**4, m**6
        terms *= q ** (8 * k)
        terms += np.array(
            [1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6]
        )
    terms *= q * math.sqrt(2 * math.pi)
    terms /= np.array([z, 6 * z4, 72 * z**7, 6480 * z**10])
    q = math.exp(-pi2 / 2 / z2)
    ks = np.arange(top, 0, -1)
    k2 = ks**2
    powers = q**k2
    terms[2] += np.sum(k2 * powers) * pi2 * math.sqrt(2 * math.pi) / (-36 * z3)
    s3 = math.sqrt(3) * z
    kpi = math.pi * ks
    terms[3] += np.sum((s3 + kpi) * (s3 - kpi) * k2 * powers) * pi2 * math.sqrt(2 * math.pi) / (216 * z6)
    terms /= np.power(n * 1.0, np.arange(4) / 2.0)
    return float(np.sum(terms))


def kolmogorov_sf(n: int, x: float) -> float:
    """P(D_n >= x) for the two-sided one-sample KS statistic: ``scipy.stats.kstwo.sf(x, n)``."""
    if n <= 0 or math.isnan(x):
        return float("nan")
    if x >= 1.0:
        return 0.0
    if x <= 0.0:
        return 1.0
    t = n * x
    if t <= 1.0:  # Ruben-Gambino
        if t <= 0.5:
            return 1.0
        if n <= SCIPY_ONLY_MAX_N:
            cdf = float(np.prod(np.arange(1, n + 1) * (1.0 / n) * (2 * t - 1)))
        else:
            cdf = math.exp(_log_factorial_over_power(n) + n * math.log(2 * t - 1))
        return min(max(1.0 - cdf, 0.0), 1.0)
    if t >= n - 1:  # Ruben-Gambino
        return min(max(2 * (1.0 - x) ** n, 0.0), 1.0)
    if x >= 0.5:
        return min(2 * smirnov_sf(n, x), 1.0)
    if n <= SCIPY_ONLY_MAX_N:
        from scipy.stats import kstwo

        return float(kstwo.sf(x, n))
    nx2 = t * x
    if nx2 >= 370.0:
        return 0.0
    if nx2 >= 2.2:
        return min(2 * smirnov_sf(n, x), 1.0)
    if n <= 100_000 and n * x**1.5 <= 1.4:
        cdf = _kolmogorov_durbin_cdf(n, x)
    else:
        cdf = _kolmogorov_pelz_good_cdf(n, x)
    return min(max(1.0 - cdf, 0.0), 1.0)


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """Two-sided asymptotic p-value of the two-sample KS test, as ``ks_2samp(method="asymp")``."""
    if n == 0 or m == 0 or math.isnan(statistic):
        return float("nan")
    big, small = max(n, m), min(n, m)
    return kolmogorov_sf(round(big * small / (big + small)), statistic)


def ks_sorted(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> tuple[float, float]:
    """Two-sample KS on already sorted, NaN-free arrays: (statistic, asymptotic two-sided p-value).

    The empirical CDFs only step at sample points, so the largest gap is found at the last copy of
    each distinct value of either sample; each CDF there is a position in its own sorted array.
    Matches ``scipy.stats.ks_2samp(a, b, method="asymp")``.
    """
    n, m = len(reference_sorted), len(current_sorted)
    if n == 0 or m == 0:
        return float("nan"), float("nan")
    zeros = np.zeros(1, dtype=np.int64)
    statistic = _largest_gap(reference_sorted, current_sorted, n, m, zeros, zeros, None)
    return statistic, ks_p_value(statistic, n, m)


def _largest_gap(
    ref_sorted: np.ndarray,
    cur_sorted: np.ndarray,
    n: int,
    m: int,
    ref_below: np.ndarray,
    cur_below: np.ndarray,
    bin_of,
) -> float:
    """Largest |F_ref - F_cur| at the sample points of two sorted arrays. ``ref_below[b]`` and
    ``cur_below[b]`` count each sample's values outside the arrays that lie below bin ``b``
    (``bin_of(values)``); both are zero when the arrays are the whole samples."""
    gaps = [0.0]
    for own, other, own_n, other_n, own_below, other_below in (
        (ref_sorted, cur_sorted, n, m, ref_below, cur_below),
        (cur_sorted, ref_sorted, m, n, cur_below, ref_below),
    ):
        if len(own) == 0:
            continue
        last = np.flatnonzero(np.append(own[1:] != own[:-1], True))  # last index of each distinct value
        values = own[last]
        bins = bin_of(values) if bin_of is not None else np.zeros(len(values), dtype=np.int64)
        own_cdf = (last + 1 + own_below[bins]) / own_n
        other_cdf = (np.searchsorted(other, values, side="right") + other_below[bins]) / other_n
        gaps.append(float(np.max(np.abs(own_cdf - other_cdf))))
    return max(gaps)


# --------------------------------------------------------------------------------------------------
# One numeric column: every statistic from one binning pass per side
# --------------------------------------------------------------------------------------------------


def quantile_edges(reference_sorted: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at reference quantiles; repeated values collapse, so a discrete feature gets
    one bin per distinct value rather than empty bins."""
    if len(reference_sorted) == 0:
        return np.array([])
    positions = (np.arange(1, bins) * len(reference_sorted)) // bins
    edges = np.unique(reference_sorted[np.clip(positions, 0, len(reference_sorted) - 1)])
    return edges[edges < reference_sorted[-1]]  # no bin above the reference maximum: it would be empty


def counts_in_bins(sorted_values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Counts in (-inf, e1], (e1, e2], ..., (ek, inf) for a sorted array: k + 1 binary searches."""
    cuts = np.searchsorted(sorted_values, inner_edges, side="right")
    return np.diff(np.concatenate([[0], cuts, [len(sorted_values)]]))


@dataclass(frozen=True)
class NumericComparison:
    """What a numeric column's verdict and report need, computed without sorting the data."""

    ks_statistic: float
    ks_p_value: float
    reference_counts: np.ndarray  # on the reference-quantile (PSI) bins
    current_counts: np.ndarray
    display_edges: np.ndarray  # equal-width bins over the reference range, for the sparkline
    display_reference: np.ndarray
    display_current: np.ndarray


class _Binning:
    """Equal-width fine bins over the reference's central range; outliers go to the end bins.

    ``floor((x - low) * scale)`` then clipping is monotone in x, so bin b's values are all below bin
    b + 1's: each bin is an interval of the real line, whatever rounding does at its edges."""

    def __init__(self, reference: np.ndarray, bins: int = FINE_BINS):
        sample = reference
        if len(reference) > 20_000:
            sample = reference[np.random.default_rng(0).integers(0, len(reference), 20_000)]
        low, high = np.quantile(sample, [0.0005, 0.9995]) if len(sample) else (0.0, 1.0)
        # few distinct values (counts, codes, rounded amounts): look for one-value bins
        self.discrete = len(sample) > 0 and len(np.unique(sample)) <= len(sample) // 2
        if not np.isfinite(low) or not np.isfinite(high) or high <= low:
            low, high = (float(low), float(low) + 1.0) if np.isfinite(low) else (0.0, 1.0)
        self.low, self.scale, self.bins = float(low), (bins - 2) / (float(high) - float(low)), bins

    def __call__(self, values: np.ndarray) -> np.ndarray:
        # bin = trunc(clip((x - low) * scale + 1, 0, bins - 1)): four passes, monotone in x
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.multiply(values, self.scale)
            scaled += 1.0 - self.low * self.scale
            np.clip(scaled, 0.0, self.bins - 1.0, out=scaled)  # also tames +-inf
        return scaled.astype(np.int64)


def compare_numeric_arrays(reference: np.ndarray, current: np.ndarray, bins: int) -> NumericComparison:
    """KS (exact statistic, scipy's asymptotic p-value), PSI-bin counts and the display histogram of
    two NaN-free float arrays, in O(n): one pass bins each side, then only the fine bins that can
    hold the KS maximum, or a reference quantile, are sorted."""
    n, m = len(reference), len(current)
    empty = np.zeros(0)
    if n == 0:
        return NumericComparison(float("nan"), float("nan"), empty, empty, empty, empty, empty)
    binning = _Binning(reference)
    ref_bin, cur_bin = binning(reference), binning(current)
    b = binning.bins
    ref_counts, cur_counts = np.bincount(ref_bin, minlength=b), np.bincount(cur_bin, minlength=b)
    # "point" bins hold one distinct value on both sides: their CDFs jump once, at that value.
    # Looked for when the reference sample repeats values; for continuous data every bin counts
    # as mixed (still exact: a mixed bin is only sorted when its bound could beat the best gap).
    representative = np.full(b, np.nan)
    if binning.discrete:
        representative[cur_bin] = current
        representative[ref_bin] = reference
        mixed = np.zeros(b, dtype=bool)
        mixed[ref_bin[reference != representative[ref_bin]]] = True
        mixed[cur_bin[current != representative[cur_bin]]] = True
    else:
        mixed = np.ones(b, dtype=bool)
    ref_cum, cur_cum = np.cumsum(ref_counts), np.cumsum(cur_counts)
    ref_prev, cur_prev = ref_cum - ref_counts, cur_cum - cur_counts

    # reference quantiles: the bin of each rank; a mixed bin must be sorted to find the value
    positions = np.clip((np.arange(1, bins) * n) // bins, 0, n - 1)
    quantile_bin = np.searchsorted(ref_cum, positions, side="right")
    wanted = np.zeros(b, dtype=bool)
    wanted[quantile_bin] = True

    if m:
        exact = float(np.max(np.abs(ref_cum / n - cur_cum / m)))
        bound = np.maximum(ref_cum / n - cur_prev / m, cur_cum / m - ref_prev / n)
        candidates = mixed & (bound > exact)
    else:
        exact, candidates = float("nan"), np.zeros(b, dtype=bool)
    extract = candidates | (wanted & mixed)
    ref_part = np.sort(reference[extract[ref_bin]]) if extract.any() else empty
    cur_part = np.sort(current[extract[cur_bin]]) if extract.any() and m else empty

    if m:
        in_candidates = candidates[binning(ref_part)] if len(ref_part) else np.zeros(0, dtype=bool)
        in_candidates_cur = candidates[binning(cur_part)] if len(cur_part) else np.zeros(0, dtype=bool)
        # gaps only at candidate bins' values (the others are bounded by ``exact``); the offsets
        # count every value below, extracted or not, so sort only the candidates' values
        statistic = max(
            exact,
            _largest_gap(
                ref_part[in_candidates],
                cur_part[in_candidates_cur],
                n,
                m,
                np.cumsum(np.where(candidates, 0, ref_counts)) - np.where(candidates, 0, ref_counts),
                np.cumsum(np.where(candidates, 0, cur_counts)) - np.where(candidates, 0, cur_counts),
                binning,
            ),
        )
        p_value = ks_p_value(statistic, n, m)
    else:
        statistic, p_value = float("nan"), float("nan")

    # the quantile values themselves: a point bin's value, or a position in the sorted extract
    quantiles = np.empty(len(positions))
    part_bins = binning(ref_part) if len(ref_part) else np.zeros(0, dtype=np.int64)
    for i, (position, bin_index) in enumerate(zip(positions, quantile_bin, strict=True)):
        if not mixed[bin_index]:
            quantiles[i] = representative[bin_index]
        else:
            start = np.searchsorted(part_bins, bin_index, side="left")
            quantiles[i] = ref_part[start + position - ref_prev[bin_index]]
    edges = np.unique(quantiles)
    ref_max = float(reference.max())
    edges = edges[edges < ref_max]
    ref_psi = _counts_at_edges(edges, binning, ref_cum, ref_prev, mixed, ref_part, n)
    cur_psi = _counts_at_edges(edges, binning, cur_cum, cur_prev, mixed, cur_part, m)

    low = float(reference.min())
    high = ref_max if ref_max > low else low + 1.0
    display_edges = np.linspace(low, high, 13)
    return NumericComparison(
        statistic,
        p_value,
        ref_psi,
        cur_psi,
        display_edges,
        _display_counts(display_edges, binning, ref_counts),
        _display_counts(display_edges, binning, cur_counts),
    )


def _counts_at_edges(
    edges: np.ndarray,
    binning: _Binning,
    cum: np.ndarray,
    prev: np.ndarray,
    mixed: np.ndarray,
    part: np.ndarray,
    total: int,
) -> np.ndarray:
    """Counts in (-inf, e1], ..., (ek, inf) from the fine-bin counts; a mixed fine bin that holds an
    edge is resolved from its sorted values (``part`` holds every value of such bins)."""
    if len(edges) == 0:
        return np.array([total])
    edge_bins = binning(edges)
    at_or_below = np.where(
        mixed[edge_bins],
        prev[edge_bins] + _within(part, binning, edge_bins, edges),
        cum[edge_bins],
    )
    return np.diff(np.concatenate([[0], at_or_below, [total]]))


def _within(part: np.ndarray, binning: _Binning, edge_bins: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """For each edge: how many values of its own fine bin are at or below it (``part`` is sorted)."""
    if len(part) == 0:
        return np.zeros(len(edges), dtype=np.int64)
    part_bins = binning(part)
    starts = np.searchsorted(part_bins, edge_bins, side="left")
    return np.searchsorted(part, edges, side="right") - starts


def _display_counts(edges: np.ndarray, binning: _Binning, fine_counts: np.ndarray) -> np.ndarray:
    """The 12 display bins summed from fine bins by their centre (display only; outliers in the end bins)."""
    centres = binning.low + (np.arange(binning.bins) - 0.5) / binning.scale
    which = np.clip(np.searchsorted(edges[1:-1], centres, side="left"), 0, len(edges) - 2)
    return np.bincount(which, weights=fine_counts, minlength=len(edges) - 1)


# --------------------------------------------------------------------------------------------------
# Family-wise error control
# --------------------------------------------------------------------------------------------------


def adjust_p_values(p_values: list[float], method: str) -> list[float]:
    """Family-wise adjusted p-values: ``holm`` (step-down), ``bonferroni`` or ``none``.

    A hypothesis is rejected at level alpha iff its adjusted p-value is below alpha; either method
    keeps the probability of any false alarm across the family at or below alpha."""
    values = np.array([1.0 if p is None or math.isnan(p) else float(p) for p in p_values])
    k = len(values)
    if k == 0 or method == "none":
        return values.tolist()
    if method == "bonferroni":
        return np.minimum(values * k, 1.0).tolist()
    if method != "holm":
        raise ValueError(f"unknown correction {method!r}")
    order = np.argsort(values, kind="stable")
    stepped = np.maximum.accumulate(values[order] * (k - np.arange(k)))
    adjusted = np.empty(k)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.tolist()
