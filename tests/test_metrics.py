"""Feature-space distances: Fréchet distance against closed forms and scipy, KID against a
brute-force double sum, and the classifier-feature wrappers."""
import numpy as np
import pytest
import scipy.linalg
import torch

from diffusion_lite.eval.judge import JudgeConfig, MNISTJudge
from diffusion_lite.eval.metrics import (KID, classifier_fid, classifier_kid, feature_stats, fid_from_features,
                                    frechet_distance, judge_features, kid)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _random_cov(d, g):
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


# ------------------------------------------------------------------------- Fréchet distance
def test_fd_of_identical_sets_is_zero():
    f = torch.randn(300, 16, generator=_gen())
    mu, cov = feature_stats(f)
    assert fid_from_features(f, f) <= 1e-9 * float(cov.trace())
    # also with fewer samples than features (a singular covariance)
    g = torch.randn(10, 16, generator=_gen(1))
    assert fid_from_features(g, g) <= 1e-6 * float(feature_stats(g)[1].trace())


def test_fd_diagonal_gaussians_closed_form():
    """Diagonal covariances: ||mu1 - mu2||^2 + sum(s1 + s2 - 2 sqrt(s1 s2))."""
    g = _gen(2)
    mu1, mu2 = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)
    s1, s2 = torch.rand(8, generator=g, dtype=torch.float64) + 0.1, torch.rand(8, generator=g, dtype=torch.float64) * 3
    expected = float((mu1 - mu2).square().sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum())
    assert frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(expected, rel=1e-10)
    # one dimension: (m1 - m2)^2 + (sd1 - sd2)^2
    one = frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[1.0]]))
    assert one == pytest.approx(9.0 + 1.0, rel=1e-12)


def test_fd_matches_scipy_sqrtm_and_is_symmetric():
    g = _gen(3)
    d = 12
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    c1, c2 = _random_cov(d, g), _random_cov(d, g)
    root = scipy.linalg.sqrtm(c1.numpy() @ c2.numpy()).real
    expected = float((mu1 - mu2).square().sum() + c1.trace() + c2.trace()) - 2 * np.trace(root)
    ours = frechet_distance(mu1, c1, mu2, c2)
    assert ours == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu2, c2, mu1, c1) == pytest.approx(ours, rel=1e-9)


def test_fd_translation_adds_squared_shift():
    """Shifting one feature set by c leaves its covariance unchanged and adds ||c||^2."""
    f = torch.randn(200, 6, generator=_gen(4), dtype=torch.float64)
    c = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.25, 1.5], dtype=torch.float64)
    assert fid_from_features(f, f + c) == pytest.approx(float(c.square().sum()), rel=1e-8)


def test_feature_stats_match_numpy():
    f = torch.randn(50, 5, generator=_gen(5))
    mu, cov = feature_stats(f)
    assert mu.dtype == cov.dtype == torch.float64
    np.testing.assert_allclose(mu.numpy(), f.double().numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov.numpy(), np.cov(f.double().numpy(), rowvar=False), rtol=1e-10, atol=1e-14)


def test_fd_bad_inputs():
    f = torch.randn(20, 4)
    with pytest.raises(ValueError, match="feature dimension"):
        fid_from_features(f, torch.randn(20, 5))
    with pytest.raises(ValueError, match="at least 2 rows"):
        feature_stats(f[:1])
    with pytest.raises(ValueError, match="NaN"):
        fid_from_features(f, torch.full((20, 4), float("nan")))
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        fid_from_features(f, torch.randn(20, 2, 2))
    mu, cov = feature_stats(f)
    with pytest.raises(ValueError, match="cov2 must have shape"):
        frechet_distance(mu, cov, mu, cov[:3, :3])
    with pytest.raises(ValueError, match="mu2 must have shape"):
        frechet_distance(mu, cov, mu[:3], cov)
    with pytest.raises(ValueError, match="symmetric"):
        frechet_distance(mu, cov, mu, cov + torch.triu(torch.ones(4, 4), 1))
    with pytest.raises(ValueError, match="positive semi-definite"):
        frechet_distance(mu, cov, mu, -cov)


# ------------------------------------------------------------------------- KID
def _mmd2_brute_force(x, y):
    """The unbiased MMD^2 of Bińkowski et al. (2018), written as explicit double sums."""
    x, y = x.double().tolist(), y.double().tolist()
    m, d = len(x), len(x[0])

    def k(a, b):
        return (sum(ai * bi for ai, bi in zip(a, b)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_brute_force_on_full_sets():
    """With subset_size = N every subset is a permutation of the full set: same value, std 0."""
    g = _gen(6)
    x, y = torch.randn(12, 3, generator=g), torch.randn(12, 3, generator=g) + 0.5
    result = kid(x, y, subsets=5, subset_size=12, generator=_gen(0))
    assert isinstance(result, KID)
    assert result.mean == pytest.approx(_mmd2_brute_force(x, y), rel=1e-10)
    assert result.std == pytest.approx(0.0, abs=1e-10)


def test_kid_zero_for_same_distribution_positive_for_shifted():
    g = _gen(7)
    a, b = torch.randn(600, 32, generator=g), torch.randn(600, 32, generator=g)
    same = kid(a, b, subsets=50, generator=_gen(1))
    assert same.std > 0
    assert abs(same.mean) <= 2 * same.std, same
    shifted = kid(a, b + 0.3, subsets=50, generator=_gen(1))
    assert shifted.mean > 5 * shifted.std and shifted.mean > 10 * abs(same.mean), (shifted, same)
    assert "±" in str(shifted)


def test_kid_bad_inputs():
    a = torch.randn(20, 4)
    with pytest.raises(ValueError, match="feature dimension"):
        kid(a, torch.randn(20, 3))
    with pytest.raises(ValueError, match="subset_size"):
        kid(a, torch.randn(10, 4), subset_size=11)
    with pytest.raises(ValueError, match="subsets"):
        kid(a, a, subsets=1)
    with pytest.raises(TypeError, match="generator"):
        kid(a, a, generator=0)
    with pytest.raises(ValueError, match="NaN"):
        kid(a, a.clone().fill_(float("nan")))


# ------------------------------------------------------------------------- classifier features
def test_classifier_fid_and_kid_plumbing():
    """An (untrained) judge's features: identical image sets are at distance 0, noise is not."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MNISTJudge(JudgeConfig.tiny()).eval()
    g = _gen(8)
    real = (torch.rand(64, 1, 28, 28, generator=g) < 0.2).float() * 2 - 1
    noise = torch.randn(64, 1, 28, 28, generator=g).clamp(-1, 1)
    feats = judge_features(model, real, batch=10)
    assert feats.shape == (64, JudgeConfig.tiny().hidden) and not model.training
    torch.testing.assert_close(feats, model.features(real))
    model.train()
    judge_features(model, real[:4])
    assert model.training, "judge_features must restore the model's training mode"
    model.eval()
    assert classifier_fid(model, real, real, batch=16) == pytest.approx(0.0, abs=1e-6)
    assert classifier_fid(model, noise, real) > 0
    assert classifier_kid(model, noise, real, subsets=10, generator=_gen(0)).mean > 0
