"""2-D toy distributions: seeded, right shape and dtype, and each lies where its density says."""
import math

import pytest
import torch

from diffusion_lite.data import toy

SAMPLERS = [toy.swiss_roll, toy.moons, toy.checkerboard, toy.rings]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("sample", SAMPLERS)
def test_shape_dtype_and_seeded_reproducibility(sample):
    a, b, c = sample(500, gen(1)), sample(500, gen(1)), sample(500, gen(2))
    assert a.shape == (500, 2) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.isfinite(a).all()
    assert sample(1, gen()).shape == (1, 2)


@pytest.mark.parametrize("sample", SAMPLERS)
def test_float32_even_when_default_dtype_is_float64(sample):
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert sample(10, gen()).dtype == torch.float32
    finally:
        torch.set_default_dtype(old)


@pytest.mark.parametrize("sample", SAMPLERS)
def test_rejects_bad_arguments(sample):
    with pytest.raises(ValueError, match="n must be in"):
        sample(0)
    with pytest.raises(TypeError, match="n must be an int"):
        sample(10.0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        sample(10, generator=0)


@pytest.mark.parametrize("sample", [toy.swiss_roll, toy.moons, toy.rings])
def test_noise_is_added_last_and_is_gaussian_with_std_noise(sample):
    n, noise = 20_000, 0.1
    clean, noisy = sample(n, gen(3)), sample(n, gen(3), noise=noise)
    z = ((noisy - clean) / noise).double().flatten()  # should be N(0, 1) draws
    m = z.numel()
    assert abs(z.mean()) < 5 / math.sqrt(m)  # standard error of the mean is 1 / sqrt(m)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / m)  # standard error of the variance is sqrt(2 / m)
    with pytest.raises(ValueError, match="noise"):
        sample(10, noise=-0.1)


def test_swiss_roll_radius_grows_in_proportion_to_angle():
    x = toy.swiss_roll(2000, gen()).double()
    r = x.norm(dim=1)
    theta = r * 2.25 * math.pi  # the angle the radius implies
    assert r.min() >= 2 / 3 - 1e-5 and r.max() <= 2 + 1e-5
    # the point's direction agrees with that angle: radius grows with angle along the spiral
    torch.testing.assert_close(x, torch.stack([r * torch.cos(theta), r * torch.sin(theta)], 1),
                               atol=1e-4, rtol=0)
    # angle uniform on [1.5 pi, 4.5 pi] -> radius uniform on [2/3, 2]: mean 4/3, var (4/3)^2 / 12
    assert abs(r.mean() - 4 / 3) < 5 * (4 / 3) / math.sqrt(12 * len(r))


def test_moons_lie_on_two_unit_half_circles():
    x = toy.moons(4000, gen()).double()
    up, low = torch.tensor(toy.MOON_CENTERS, dtype=torch.float64)
    d_up, d_low = (x - up).norm(dim=1), (x - low).norm(dim=1)
    on_up = (d_up - 1).abs() < 1e-5
    on_low = (d_low - 1).abs() < 1e-5
    assert (on_up | on_low).all()
    assert (x[on_up & ~on_low, 1] >= up[1] - 1e-6).all()  # upper half of the upper circle
    assert (x[on_low & ~on_up, 1] <= low[1] + 1e-6).all()  # lower half of the lower circle
    share = on_up.double().mean()  # each moon has probability 1/2
    assert abs(share - 0.5) < 5 * math.sqrt(0.25 / len(x))


@pytest.mark.parametrize("squares", [2, 4, 6])
def test_checkerboard_only_black_squares_equally_filled(squares):
    n = 12_000
    x = toy.checkerboard(n, gen(), squares=squares)
    assert (x >= -2).all() and (x < 2).all()
    cell = torch.floor((x + 2) / (4 / squares)).long()  # (n, 2) cell indices
    assert ((cell.sum(dim=1) % 2) == 0).all()  # i + j even: black cells only
    counts = torch.bincount(cell[:, 0] * squares + cell[:, 1], minlength=squares**2)
    black = counts[counts > 0]
    assert len(black) == squares**2 // 2  # every black cell is used
    p = 1 / len(black)  # uniform over black cells: binomial counts
    assert ((black - n * p).abs() < 5 * math.sqrt(n * p * (1 - p))).all()


def test_checkerboard_rejects_odd_squares():
    with pytest.raises(ValueError, match="squares must be even"):
        toy.checkerboard(10, squares=3)


def test_rings_on_given_radii_with_equal_mass():
    radii, n = (0.5, 1.0, 2.0), 9000
    r = toy.rings(n, gen(), radii=radii).double().norm(dim=1)
    dist = (r[:, None] - torch.tensor(radii, dtype=torch.float64)).abs()  # (n, 3)
    assert (dist.min(dim=1).values < 1e-5).all()
    share = torch.bincount(dist.argmin(dim=1), minlength=3).double() / n
    assert ((share - 1 / 3).abs() < 5 * math.sqrt((1 / 3) * (2 / 3) / n)).all()
    with pytest.raises(ValueError, match="radii"):
        toy.rings(10, radii=(1.0, -1.0))
