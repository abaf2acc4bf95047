"""Chapter 14's metrics: judge-feature FID and FID_inf, KID's standard error, precision/recall,
density/coverage, the Inception Score, 2-D distances with their floor, and mode coverage.
FID and KID are checked against torchmetrics fed the same features."""
import math

import pytest
import torch
from torch import nn

import diffusion_lite as dl


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


class _Identity(nn.Module):
    """A torchmetrics 'feature extractor' that hands back the features it is given."""
    num_features = 6

    def forward(self, x):
        return x


# ------------------------------------------------------------------ against torchmetrics
def test_fid_matches_torchmetrics_on_the_same_features():
    tm = pytest.importorskip("torchmetrics.image.fid")
    g = _gen(0)
    real = torch.randn(400, 6, generator=g, dtype=torch.float64)
    fake = 0.8 * torch.randn(300, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g,
                                                                                  dtype=torch.float64) + 0.3
    metric = tm.FrechetInceptionDistance(feature=_Identity(), normalize=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    ours = dl.fid_from_features(fake, real, allow_singular=False)
    assert ours > 1.0
    assert ours == pytest.approx(float(metric.compute()), rel=1e-6)


def test_kid_matches_torchmetrics_on_the_full_sets():
    """subset_size = N: every subset is the whole set, so both compute the same U-statistic."""
    tm = pytest.importorskip("torchmetrics.image.kid")
    g = _gen(1)
    real = torch.randn(120, 6, generator=g, dtype=torch.float64)
    fake = torch.randn(120, 6, generator=g, dtype=torch.float64) * 1.3 + 0.2
    metric = tm.KernelInceptionDistance(feature=_Identity(), subsets=2, subset_size=120, normalize=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    tm_mean, _ = metric.compute()
    ours = dl.kid(fake, real, subsets=2, subset_size=120, generator=_gen(2))
    assert ours.mean > 0.01
    assert ours.mean == pytest.approx(float(tm_mean), rel=1e-6)


# ------------------------------------------------------------------ Fréchet distance
def test_fid_is_symmetric_order_invariant_and_zero_on_identical_sets():
    g = _gen(3)
    a, b = torch.randn(200, 5, generator=g), torch.randn(150, 5, generator=g) + 0.5
    assert dl.fid_from_features(a, b) == pytest.approx(dl.fid_from_features(b, a), rel=1e-9)
    assert dl.fid_from_features(a[torch.randperm(200, generator=g)], b) == pytest.approx(
        dl.fid_from_features(a, b), rel=1e-9)
    assert dl.fid_from_features(a, a) < 1e-9


def test_fid_matches_the_gaussian_closed_form_for_large_samples():
    """N(0, I) vs N(m, s^2 I) in D dims: ||m||^2 + D (1 - s)^2; with N = 20k the estimate is close."""
    g, D, s = _gen(4), 4, 2.0
    m = torch.tensor([1.0, -1.0, 0.5, 0.0], dtype=torch.float64)
    a = torch.randn(20_000, D, generator=g, dtype=torch.float64)
    b = m + s * torch.randn(20_000, D, generator=g, dtype=torch.float64)
    exact = float(m.square().sum()) + D * (1 - s) ** 2
    assert dl.fid_from_features(a, b) == pytest.approx(exact, rel=0.03)


def test_fid_infinity_recovers_the_large_sample_value():
    """FID_N = FID_inf + c / N: the intercept from small N is close to FID at a huge N, and the
    small-N FIDs themselves are biased above it."""
    g, D = _gen(5), 8
    real = torch.randn(20_000, D, generator=g, dtype=torch.float64)
    fake = 1.2 * torch.randn(6_000, D, generator=g, dtype=torch.float64) + 0.2
    exact = D * 0.2 ** 2 + D * 0.2 ** 2                       # ||m||^2 + D (1 - s)^2
    fit = dl.fid_infinity(fake, real, sizes=(50, 100, 200, 400), repeats=20, generator=_gen(6))
    assert fit.slope > 0 and min(fit.values) > exact
    assert abs(fit.fid_inf - exact) < 0.3 * (fit.values[0] - exact)


def test_judge_fid_refuses_fewer_samples_than_features():
    judge = dl.MNISTJudge(dl.JudgeConfig.tiny())               # 64 features
    x = torch.rand(40, 1, 28, 28, generator=_gen(7)) * 2 - 1
    with pytest.raises(ValueError, match="more samples than dimensions"):
        dl.judge_fid(judge, x, x)
    assert dl.classifier_fid(judge, x, x) == pytest.approx(0.0, abs=1e-6)   # lenient default


# ------------------------------------------------------------------ KID standard error
def test_kid_stderr_matches_the_spread_over_fresh_sample_sets():
    """The standard error claims the spread of the KID mean over independent sample sets."""
    means, errs = [], []
    for seed in range(30):
        g = _gen(100 + seed)
        a, b = torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g) * 1.2
        k = dl.kid(a, b, subsets=20, subset_size=50, generator=g)
        means.append(k.mean), errs.append(k.stderr)
    spread = float(torch.tensor(means).std())
    assert 0.5 < sum(errs) / len(errs) / spread < 2.0


# ------------------------------------------------------------------ precision / recall, density / coverage
def test_manifold_metrics_on_equal_and_collapsed_sets():
    g = _gen(8)
    real, fake = torch.randn(600, 2, generator=g), torch.randn(600, 2, generator=g)
    pr, dc = dl.precision_recall(real, fake), dl.density_coverage(real, fake)
    assert pr.precision > 0.85 and pr.recall > 0.85 and 0.8 < dc.density < 1.2 and dc.coverage > 0.85
    collapsed = 0.05 * torch.randn(600, 2, generator=g)          # all samples near one point
    pr, dc = dl.precision_recall(real, collapsed), dl.density_coverage(real, collapsed)
    assert pr.precision > 0.95 and pr.recall < 0.2 and dc.coverage < 0.2
    far = torch.randn(600, 2, generator=g) + 10.0
    assert dl.precision_recall(real, far) == (0.0, 0.0) and dl.density_coverage(real, far) == (0.0, 0.0)


def test_precision_and_recall_swap_when_the_sets_swap_and_ignore_order():
    g = _gen(9)
    a, b = torch.randn(300, 3, generator=g), 1.5 * torch.randn(300, 3, generator=g)
    ab, ba = dl.precision_recall(a, b), dl.precision_recall(b, a)
    assert ab.precision == ba.recall and ab.recall == ba.precision
    perm = torch.randperm(300, generator=g)
    assert dl.precision_recall(a[perm], b) == ab and dl.density_coverage(a, b[perm]) == dl.density_coverage(a, b)


def test_knn_radii_brute_force():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    torch.testing.assert_close(dl.knn_radii(x, 1), torch.tensor([1.0, 1.0, 2.0, 4.0], dtype=torch.float64))
    torch.testing.assert_close(dl.knn_radii(x, 2), torch.tensor([3.0, 2.0, 3.0, 6.0], dtype=torch.float64))


# ------------------------------------------------------------------ Inception Score
def test_inception_score_limits():
    C = 10
    one_hot_all_classes = torch.eye(C).repeat(20, 1)             # each sample sure, classes balanced
    assert dl.inception_score(one_hot_all_classes, splits=1).mean == pytest.approx(C, rel=1e-9)
    same = torch.eye(C)[[3] * 200]                               # all sure of the same class
    assert dl.inception_score(same, splits=2).mean == pytest.approx(1.0, rel=1e-9)
    uniform = torch.full((200, C), 1.0 / C)                      # nobody sure
    assert dl.inception_score(uniform, splits=4).mean == pytest.approx(1.0, rel=1e-9)
    perm = torch.randperm(200, generator=_gen(10))
    mixed = torch.softmax(torch.randn(200, C, generator=_gen(11)) * 3, 1)
    assert dl.inception_score(mixed[perm], 1).mean == pytest.approx(dl.inception_score(mixed, 1).mean)
    judge = dl.MNISTJudge(dl.JudgeConfig.tiny())
    s = dl.judge_inception_score(judge, torch.rand(30, 1, 28, 28, generator=_gen(12)), splits=3)
    assert 1.0 <= s.mean <= 11.0


# ------------------------------------------------------------------ 2-D distances and mode coverage
def test_2d_distances_floor_and_symmetry():
    gmm = dl.GaussianMixture.eight_gaussians()
    g = _gen(13)
    draw = lambda n: gmm.sample(n, generator=g)                  # noqa: E731
    x, y = draw(500), draw(500)
    assert dl.energy_distance(x, y) == pytest.approx(dl.energy_distance(y, x), rel=1e-9)
    assert dl.sliced_wasserstein(x, x, generator=_gen(1)) == 0.0
    floor = dl.distance_floor(dl.energy_distance, draw, 500, repeats=10)
    assert abs(floor.mean) < 3 * floor.std                       # unbiased: floor centred on 0
    collapsed = gmm.means[[0, 1]].repeat(250, 1) + 0.1 * torch.randn(500, 2, generator=g, dtype=torch.float64)
    assert dl.energy_distance(collapsed, y) > floor.mean + 10 * floor.std
    sw_floor = dl.distance_floor(lambda a, b: dl.sliced_wasserstein(a, b, generator=_gen(2)), draw, 500, 10)
    assert sw_floor.mean > 0 and dl.sliced_wasserstein(collapsed, y, generator=_gen(2)) > sw_floor.mean + 5 * sw_floor.std


def test_mode_coverage_counts_modes_and_shares():
    gmm = dl.GaussianMixture.eight_gaussians()
    x = gmm.sample(4000, generator=_gen(14))
    cov = dl.mode_coverage(x, gmm.means, std=0.1)
    assert cov.modes_covered == 8 and cov.off_mode < 0.01
    assert all(abs(s - 1 / 8) < 0.03 for s in cov.shares)
    three = x[torch.cdist(x, gmm.means).argmin(1) < 3]
    far = torch.full((50, 2), 10.0, dtype=torch.float64)
    cov = dl.mode_coverage(torch.cat([three, far]), gmm.means, std=0.1)
    beyond = int((torch.cdist(three, gmm.means).min(1).values > 0.3).sum())   # true tails past 3 std
    assert cov.modes_covered == 3 and cov.off_mode == pytest.approx((beyond + 50) / (len(three) + 50))
