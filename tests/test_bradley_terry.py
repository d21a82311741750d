"""Bradley-Terry fits against choix (the reference), tie modes, priors, uncertainty, the CSV reader.

All data sets are small (tens of GIFs, a few hundred comparisons) so the suite stays fast on
a shared 2-core machine; choix's pure-Python loops are fine at this size.
"""

from __future__ import annotations

import gzip

import choix
import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import spearmanr

from scorer.emotions import N_EMOTIONS, NAMES
from training import bradley_terry as bt
from training import bt_csv


def simulate(n: int, m: int, seed: int, tie_rate: float = 0.0, spread: float = 1.0):
    """m comparisons among n items drawn from BT (ties at random with tie_rate)."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, spread, n)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    a_wins = rng.random(m) < 1 / (1 + np.exp(theta[b] - theta[a]))
    winners = np.where(a_wins, a, b)
    losers = np.where(a_wins, b, a)
    ties = rng.random(m) < tie_rate
    return theta, winners, losers, ties


def with_extremes(n: int, m: int, seed: int):
    """Data where item n is never beaten and item n+1 never wins (n + 2 items in all)."""
    _, w, lo, _ = simulate(n, m, seed)
    rng = np.random.default_rng(seed + 1)
    k = 12
    opp = rng.integers(0, n, k)
    w = np.concatenate([w, np.full(k, n), opp])
    lo = np.concatenate([lo, opp, np.full(k, n + 1)])
    return n + 2, w, lo


def centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean()


# --- against choix ---------------------------------------------------------------------


def test_newton_matches_choix_mm_with_gamma_prior() -> None:
    n, w, lo = with_extremes(30, 400, seed=1)
    ref = choix.mm_pairwise(n, list(zip(w, lo, strict=True)), alpha=0.1, tol=1e-10)
    res = bt.fit(bt.aggregate(n, w, lo), ties="drop", alpha=0.1)
    assert res.converged
    assert np.allclose(res.theta.mean(), 0.0, atol=1e-12)
    assert np.max(np.abs(res.theta - centred(ref))) < 1e-4
    assert np.all(np.isfinite(res.theta))
    assert res.theta.argmax() == n - 2 and res.theta.argmin() == n - 1  # unbeaten / winless


def test_mm_reproduces_choix_iterate_for_iterate() -> None:
    n, w, lo = with_extremes(25, 300, seed=2)
    data = list(zip(w, lo, strict=True))
    ref = choix.mm_pairwise(n, data, alpha=0.1)
    res = bt.fit(bt.aggregate(n, w, lo), ties="drop", alpha=0.1, method="mm", max_iter=10000)
    assert res.converged
    assert np.max(np.abs(res.theta - centred(ref))) < 1e-9
    # The same update and stopping rule: one iteration fewer or more would move ~tol.
    one_fewer = bt.fit(bt.aggregate(n, w, lo), ties="drop", alpha=0.1, method="mm",
                       max_iter=res.iterations - 1)
    assert not one_fewer.converged


def test_newton_matches_choix_opt_with_l2_prior() -> None:
    _, w, lo, _ = simulate(30, 400, seed=3)
    ref = choix.opt_pairwise(30, list(zip(w, lo, strict=True)), alpha=0.05, tol=1e-10)
    # choix.opt minimises -loglik + alpha * |theta|^2: a Gaussian prior of strength 2 * alpha.
    res = bt.fit(bt.aggregate(30, w, lo), ties="drop", alpha=0.0, prior_strength=0.1)
    assert np.max(np.abs(res.theta - centred(ref))) < 1e-4


def test_half_ties_match_choix_with_each_tie_as_two_results() -> None:
    # choix has no ties; its author's advice is a tie = a>b plus b>a. That is our "half" rule
    # with every tie counted twice (weight 2).
    _, w, lo, ties = simulate(20, 300, seed=4, tie_rate=0.3)
    data = [(a, b) for a, b, t in zip(w, lo, ties, strict=True) if not t]
    data += [pair for a, b, t in zip(w, lo, ties, strict=True) if t for pair in ((a, b), (b, a))]
    ref = choix.mm_pairwise(20, data, alpha=0.1, tol=1e-10)
    weights = np.where(ties, 2.0, 1.0)
    res = bt.fit(bt.aggregate(20, w, lo, ties, weights), ties="half", alpha=0.1)
    assert np.max(np.abs(res.theta - centred(ref))) < 1e-4


# --- tie modes ---------------------------------------------------------------------------


def test_drop_ignores_ties_and_half_uses_them() -> None:
    _, w, lo, ties = simulate(20, 300, seed=5, tie_rate=0.4)
    all_rows = bt.aggregate(20, w, lo, ties)
    decisive = bt.aggregate(20, w[~ties], lo[~ties])
    dropped = bt.fit(all_rows, ties="drop")
    assert np.allclose(dropped.theta, bt.fit(decisive, ties="drop").theta, atol=1e-9)
    half = bt.fit(all_rows, ties="half")
    assert np.max(np.abs(half.theta - dropped.theta)) > 1e-3
    # Ties pull strengths together: the half-win fit is less spread out.
    assert half.theta.std() < dropped.theta.std()


def davidson_objective(x: np.ndarray, data: bt.PairData, alpha: float) -> float:
    """Negative Davidson log-posterior written out independently of the module."""
    theta, log_nu = x[:-1], x[-1]
    pu, pv = np.exp(theta[data.left]), np.exp(theta[data.right])
    tie = np.exp(log_nu) * np.sqrt(pu * pv)
    den = pu + pv + tie
    ll = (data.wins_left * np.log(pu / den) + data.wins_right * np.log(pv / den)
          + data.ties * np.log(tie / den)).sum()
    return -(ll + alpha * np.sum(theta - np.exp(theta)))


def test_davidson_reaches_the_davidson_optimum_and_recovers_nu() -> None:
    rng = np.random.default_rng(6)
    n, m, nu_true = 15, 3000, 0.8
    theta = rng.normal(0, 1, n)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    pa, pb = np.exp(theta[a]), np.exp(theta[b])
    tie = nu_true * np.sqrt(pa * pb)
    r = rng.random(m) * (pa + pb + tie)
    winners = np.where(r < pa, a, b)
    losers = np.where(r < pa, b, a)
    ties = r >= pa + pb
    data = bt.aggregate(n, winners, losers, ties)
    res = bt.fit(data, ties="davidson", alpha=0.1)
    assert res.converged and res.nu is not None
    assert abs(res.nu - nu_true) < 0.15
    ref = minimize(davidson_objective, np.zeros(n + 1), args=(data, 0.1), method="L-BFGS-B",
                   options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 5000})
    assert np.max(np.abs(res.theta - centred(ref.x[:-1]))) < 1e-3
    assert abs(np.log(res.nu) - ref.x[-1]) < 1e-3
    assert spearmanr(res.theta, theta).statistic > 0.9


# --- priors, uncertainty, warm starts ---------------------------------------------------------


def test_prior_holds_few_votes_and_many_votes_override_it() -> None:
    rng = np.random.default_rng(7)
    n = 12
    truth = np.linspace(-1.5, 1.5, n)
    prior_mean = np.zeros(n)
    prior_mean[0] = 2.0  # the scorer thinks item 0 is the best; the votes say the worst

    def votes(m: int):
        a = rng.integers(0, n, m)
        b = (a + rng.integers(1, n, m)) % n
        win = rng.random(m) < 1 / (1 + np.exp(truth[b] - truth[a]))
        return np.where(win, a, b), np.where(win, b, a)

    few_w, few_l = votes(20)
    few = bt.fit(bt.aggregate(n, few_w, few_l), prior_mean=prior_mean, prior_strength=2.0)
    many_w, many_l = votes(20000)
    many = bt.fit(bt.aggregate(n, many_w, many_l), prior_mean=prior_mean, prior_strength=2.0)
    data_only = bt.fit(bt.aggregate(n, many_w, many_l), alpha=0.1)
    few_data_only = bt.fit(bt.aggregate(n, few_w, few_l), alpha=0.1)
    assert few.theta[0] > 0.5 > few_data_only.theta[0] + 1  # stays on the prior's side
    assert many.theta[0] < -1.0  # the votes win
    # With the prior, theta is on the prior's scale (not centred); compare shapes centred.
    assert np.max(np.abs(centred(many.theta) - data_only.theta)) < 0.1
    # A GIF with no prediction (NaN) has no Gaussian prior.
    pm = prior_mean.copy()
    pm[1:] = np.nan
    part = bt.fit(bt.aggregate(n, few_w, few_l), prior_mean=pm, prior_strength=2.0)
    assert part.theta[0] > 1.0 and np.all(np.isfinite(part.theta))


def test_se_shrinks_with_more_data_and_neumann_is_close_to_exact() -> None:
    _, w, lo, _ = simulate(40, 600, seed=8)
    small = bt.aggregate(40, w, lo)
    big = bt.aggregate(40, w, lo, weights=np.full(len(w), 4.0))  # the same votes, 4x over
    se_small = bt.fit(small, ties="drop").se
    se_big = bt.fit(big, ties="drop").se
    assert np.all(se_big < se_small)
    assert 0.4 < np.median(se_big / se_small) < 0.6  # ~1/sqrt(4)
    exact = bt.fit(small, ties="drop", se_method="exact").se
    assert np.max(np.abs(se_small / exact - 1)) < 0.06
    # A GIF never compared keeps the prior's width.
    res = bt.fit(bt.aggregate(41, w, lo), ties="drop", alpha=0.1)
    assert res.se[40] > 2 * res.se[:40].max()
    assert res.n_compared[40] == 0


def test_warm_start_gives_the_same_answer() -> None:
    _, w, lo, ties = simulate(50, 800, seed=9, tie_rate=0.2)
    cut = 760  # 5% more votes arrive
    old = bt.fit(bt.aggregate(50, w[:cut], lo[:cut], ties[:cut]))
    data = bt.aggregate(50, w, lo, ties)
    cold = bt.fit(data)
    warm = bt.fit(data, theta0=old.theta)
    assert warm.converged
    assert np.max(np.abs(warm.theta - cold.theta)) < 1e-6
    assert warm.iterations <= cold.iterations
    mm_warm = bt.fit(data, method="mm", theta0=old.theta, max_iter=10000)
    assert np.max(np.abs(mm_warm.theta - cold.theta)) < 1e-4


def test_unbeaten_and_winless_items_stay_finite_in_every_mode() -> None:
    n, w, lo = with_extremes(10, 80, seed=10)
    data = bt.aggregate(n, w, lo)
    for ties in bt.TIES:
        for method in ("newton", "mm"):
            if method == "mm" and ties == "davidson":
                continue
            res = bt.fit(data, ties=ties, method=method, max_iter=10000)
            assert res.converged
            assert np.all(np.isfinite(res.theta)) and np.all(np.isfinite(res.se))
            assert res.theta.argmax() == n - 2 and res.theta.argmin() == n - 1
            assert np.all(np.isfinite(bt.minmax_scale(res.theta)))


def test_fit_all_fits_each_emotion_on_its_own() -> None:
    rng = np.random.default_rng(11)
    n = 15
    emo, win, los = [], [], []
    for e in (0, 4, 16):
        _, w, lo, _ = simulate(n, 120, seed=20 + e)
        emo.append(np.full(len(w), e))
        win.append(w)
        los.append(lo)
    emotion, winners, losers = map(np.concatenate, (emo, win, los))
    prior = rng.random((n, N_EMOTIONS))
    results = bt.fit_all(n, emotion, winners, losers, ties="drop", alpha=0.1)
    assert len(results) == N_EMOTIONS
    for e in (0, 4, 16):
        one = bt.fit(bt.aggregate(n, winners[emotion == e], losers[emotion == e]), ties="drop")
        assert np.allclose(results[e].theta, one.theta, atol=1e-9)
    assert np.all(results[1].n_compared == 0) and np.allclose(results[1].theta, 0)
    with_prior = bt.fit_all(n, emotion, winners, losers, prior_mean=bt.prediction_to_prior(prior),
                            prior_strength=5.0)
    assert np.allclose(with_prior[1].theta, bt.prediction_to_prior(prior)[:, 1], atol=0.05)


def test_bad_arguments_are_refused() -> None:
    data = bt.aggregate(3, np.array([0, 1]), np.array([1, 2]))
    with pytest.raises(ValueError, match="ties"):
        bt.fit(data, ties="maybe")
    with pytest.raises(ValueError, match="prior is required"):
        bt.fit(data, alpha=0.0)
    with pytest.raises(ValueError, match="mm"):
        bt.fit(data, ties="davidson", method="mm")
    with pytest.raises(ValueError, match="indices"):
        bt.aggregate(3, np.array([0, 3]), np.array([1, 2]))
    with pytest.raises(ValueError, match="weights"):
        bt.aggregate(3, np.array([0]), np.array([1]), weights=np.array([-1.0]))


# --- scales --------------------------------------------------------------------------------


def test_scales_keep_the_order_and_map_to_unit_interval() -> None:
    theta = np.random.default_rng(12).normal(0, 1.3, 500)
    for s in (bt.minmax_scale(theta), bt.robust_scale(theta)):
        assert s.min() >= 0 and s.max() <= 1
        assert np.all(np.diff(s[np.argsort(theta)]) >= 0)
    mm = bt.minmax_scale(theta)
    assert mm.min() == 0 and mm.max() == 1
    rs = bt.robust_scale(theta)
    lo, hi = np.quantile(rs, [0.02, 0.98])
    assert abs(lo - 0.05) < 2e-3 and abs(hi - 0.95) < 2e-3
    # With se, uncertain GIFs are pulled toward the middle, certain ones keep their place.
    se = np.full(500, 0.05)
    se[0] = 5.0
    shrunk = bt.robust_scale(theta, se)
    assert abs(shrunk[0] - np.median(shrunk)) < 0.02
    assert abs(shrunk[1] - rs[1]) < 0.02
    # prediction_to_prior inverts robust_scale given the same anchors.
    centre, spread = bt.robust_scale_params(theta)
    back = bt.prediction_to_prior(rs, centre, spread, eps=1e-12)
    assert np.allclose(back, theta, atol=1e-6)
    assert np.allclose(bt.logit(bt.expit(theta)), theta)
    assert np.all(bt.minmax_scale(np.ones(3)) == 0.5)


def test_robust_scale_ignores_a_jump_of_the_most_extreme_gif() -> None:
    # Min-max is set by the two least certain GIFs: when one of them jumps, every score moves.
    # The robust anchors are percentiles, so the others stay put. (The stability under 5%
    # more votes at GIFGIF scale is measured in benchmarks/bench_bt.py.)
    theta = np.random.default_rng(13).normal(0, 1, 400)
    jumped = theta.copy()
    jumped[theta.argmax()] += 3.0
    others = np.arange(400) != theta.argmax()
    move_mm = np.abs(bt.minmax_scale(jumped) - bt.minmax_scale(theta))[others]
    move_rs = np.abs(bt.robust_scale(jumped) - bt.robust_scale(theta))[others]
    assert move_mm.max() > 0.1
    assert move_rs.max() < 1e-12


# --- the GIFGIF CSV reader -------------------------------------------------------------------


BAD_CSV = (
    "\ufeffchoice,metric,left,right\r\n"  # a BOM, CRLF and a reordered header
    "left,happiness,aaa,bbb\r\n"
    "right,happiness,aaa,ccc\r\n"
    "neither,sadness,bbb,ccc\r\n"
    "LEFT, Happiness ,ccc,aaa\r\n"  # case and spaces are forgiven
    "left,happiness,,bbb\r\n"  # empty id
    "right,sadness,aaa,\r\n"  # empty id
    "left,sympathy,aaa,bbb\r\n"  # not one of the 17
    "left,happiness,aaa\r\n"  # 3 fields
    "left,happiness,aaa,bbb,extra\r\n"  # 5 fields
    "\r\n"  # blank: not a row
    "left,fear,aaa,aaa\r\n"  # a GIF against itself
    '"right","fear","a,b","bbb"\r\n'  # quoted, with a comma inside an id
    "left,fear," + "x" * 300 + ",bbb\r\n"  # an id over 256 bytes
    "skip,anger,ddd,aaa"  # no final newline; any other choice is "neither"
)


def check_bad_csv(data: bt_csv.GifgifData) -> None:
    assert data.rows == 14
    assert data.skipped == {"malformed": 3, "unknown_emotion": 1, "empty_id": 2, "same_gif": 1}
    assert data.unknown_emotions == {"sympathy": 1}
    assert data.kept == 7
    assert set(data.gif_ids) == {"aaa", "bbb", "ccc", "a,b", "ddd"}
    ids = data.gif_ids
    rows = {(NAMES[e], ids[a], ids[b], int(c))
            for e, a, b, c in zip(data.emotion, data.left, data.right, data.choice, strict=True)}
    assert rows == {
        ("happiness", "aaa", "bbb", bt_csv.LEFT), ("happiness", "aaa", "ccc", bt_csv.RIGHT),
        ("sadness", "bbb", "ccc", bt_csv.NEITHER), ("happiness", "ccc", "aaa", bt_csv.LEFT),
        ("fear", "a,b", "bbb", bt_csv.RIGHT), ("anger", "ddd", "aaa", bt_csv.NEITHER),
        ("surprise", "aaa", "ddd", bt_csv.LEFT),
    }


def test_csv_reader_counts_and_skips_bad_rows(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    body = BAD_CSV.replace("skip,anger", "left,surprise,aaa,ddd\r\nskip,anger")
    path.write_bytes(body.encode() + b"\nleft,happiness,\xff\xfe,bbb")  # not UTF-8
    data = bt.read_gifgif_csv(path)
    data.rows -= 1  # the extra non-UTF-8 row is malformed
    data.skipped["malformed"] -= 1
    check_bad_csv(data)
    # Small blocks (lines split across reads) and gzip give the same result.
    for p, block in ((path, 37), (tmp_path / "bad.csv.gz", 1 << 20)):
        if p.suffix == ".gz":
            p.write_bytes(gzip.compress(path.read_bytes()))
        again = bt.read_gifgif_csv(p, block_size=block)
        again.rows -= 1
        again.skipped["malformed"] -= 1
        check_bad_csv(again)
    _, winners, losers, ties = data.comparisons()
    ids = data.gif_ids
    assert ids[winners[1]] == "ccc" and ids[losers[1]] == "aaa"  # "right" won
    assert ties.sum() == 2


def test_csv_without_header_and_empty_file(tmp_path) -> None:
    path = tmp_path / "noheader.csv"
    path.write_text("happiness,aaa,bbb,left\nfear,bbb,aaa,right\n")
    data = bt.read_gifgif_csv(path)
    assert data.rows == 2 and data.kept == 2
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert bt.read_gifgif_csv(empty).rows == 0
    junk = tmp_path / "junk.csv"
    junk.write_bytes(bytes(range(256)) * 4)
    out = bt.read_gifgif_csv(junk)
    assert out.kept == 0 and out.rows == sum(out.skipped.values())


@pytest.mark.parametrize("prior", [False, True])
def test_full_step_certificate_only_accepts_steps_armijo_accepts(prior: bool) -> None:
    """`_full_step_decreases` lets Newton skip the log-likelihood; it must never pass a step
    that the Armijo test on the actual objective would reject (and must pass some)."""
    rng = np.random.default_rng(11)
    n, m = 60, 900
    w = rng.integers(0, n, m)
    lo = (w + rng.integers(1, n, m)) % n
    data = bt.aggregate(n, w, lo, rng.random(m) < 0.15)
    mean = rng.normal(size=n) if prior else None
    model = bt._Model(data, "half", 0.1, mean, 0.5 if prior else 0.0)
    hess = bt._UpperHessian(n, model.u, model.v)
    optimum = bt.fit(data, ties="half", alpha=0.1, prior_mean=mean,
                     prior_strength=0.5 if prior else 0.0).theta
    certified = 0
    for trial in range(400):
        theta = optimum + rng.normal(scale=10.0 ** rng.uniform(-2, 0.3), size=n)
        f, g, curv, pdiag = model.value_grad(theta)
        hess.assemble(curv, pdiag)
        # Newton-like steps (the certificate's use) at sizes from tiny to beyond its range
        # limit, and random descent directions taken to 1-2.2 times the minimiser of the
        # quadratic model, where Armijo's test is borderline on the true objective.
        if trial % 2:
            step = bt._pcg(hess, -g, 1.0 / hess.diag, 1e-10, 500)
            step *= 10.0 ** rng.uniform(-3, 0.5)
        else:
            step = -g * rng.uniform(0.1, 1.0, n)
            t_min = -float(g @ step) / float(step @ (hess @ step))
            step *= t_min * rng.uniform(1.0, 2.2)
        slope = float(g @ step)
        curvature = float(step @ (hess @ step))
        if bt._full_step_decreases(step, slope, curvature):
            certified += 1
            f_new = model.value_grad(theta + step)[0]
            assert f_new <= f + bt.ARMIJO * slope + 1e-9 * abs(f)
    assert certified > 50
