"""Gaussian mixtures: toy data with an exact score and an exact optimal denoiser at every noise level.

A mixture p(x0) = sum_k w_k N(x0; mu_k, Sigma_k) stays a mixture under the forward process
x_t = a_t x0 + s_t eps, with a_t = sqrt(alpha_bar_t), s_t = sqrt(1 - alpha_bar_t)  (eq-q-sample):

    q(x_t) = sum_k w_k N(x_t; a_t mu_k, C_k),   C_k = a_t^2 Sigma_k + s_t^2 I          (eq-gmm-noised)
    r_k(x_t) = w_k N(x_t; a_t mu_k, C_k) / q(x_t)          posterior responsibility of component k
    E[x0  | x_t] = sum_k r_k (mu_k + a_t Sigma_k C_k^{-1} (x_t - a_t mu_k))            (eq-gmm-x0)
    E[eps | x_t] = sum_k r_k  s_t C_k^{-1} (x_t - a_t mu_k)                           (eq-gmm-eps)
    grad log q(x_t) = -sum_k r_k C_k^{-1} (x_t - a_t mu_k) = -E[eps | x_t] / s_t      (eq-score-eps)
    E[x0 | x_t] = (x_t + s_t^2 grad log q(x_t)) / a_t          (Tweedie's formula, eq-tweedie)

E[eps | x_t] is the minimiser of L_simple at step t, so it is the "oracle model": a perfect
network. Samplers driven by it show pure discretisation error, free of model error. Every
component is handled in its own eigenbasis (Sigma_k = U_k diag(lam_k) U_k^T, so that
C_k = U_k diag(a_t^2 lam_k + s_t^2) U_k^T): no matrix is inverted. All arithmetic is float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from .._checks import check_float, check_int, check_tensor, check_timesteps
from ..core.schedules import Schedule, check_schedule


class MixturePosterior(NamedTuple):
    """Exact quantities of q(x0 | x_t) for a Gaussian mixture, each (B, D) except resp (B, K)."""

    resp: Tensor     # r_k(x_t), posterior probability of each component
    x0_hat: Tensor   # E[x0 | x_t], the optimal (MMSE) x0 predictor        (eq-gmm-x0)
    eps_hat: Tensor  # E[eps | x_t], the optimal (MMSE) eps predictor      (eq-gmm-eps)
    score: Tensor    # grad_x log q(x_t)                                   (eq-score-eps)


class Estimate(NamedTuple):
    """A Monte Carlo estimate and its standard error; float(estimate) gives the value."""

    value: float
    stderr: float

    def __float__(self) -> float:
        return self.value


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """p(x) = sum_k weights[k] N(x; means[k], covs[k]) in D dimensions, stored as float64."""

    weights: Tensor  # (K,) mixture weights w_k, positive, summing to 1
    means: Tensor    # (K, D) component means mu_k
    covs: Tensor     # (K, D, D) component covariances Sigma_k, symmetric positive definite
    lam: Tensor = field(init=False, repr=False)  # (K, D) eigenvalues of Sigma_k
    U: Tensor = field(init=False, repr=False)    # (K, D, D) eigenvectors of Sigma_k (columns)
    diagonal: bool = field(init=False, repr=False)  # every Sigma_k diagonal: U = I, rotations skipped

    def __post_init__(self):
        w = check_tensor("weights", torch.as_tensor(self.weights, dtype=torch.float64))
        mu = check_tensor("means", torch.as_tensor(self.means, dtype=torch.float64), min_dim=2)
        cov = check_tensor("covs", torch.as_tensor(self.covs, dtype=torch.float64), min_dim=3)
        K, D = mu.shape[0], mu.shape[-1]
        if w.shape != (K,) or mu.shape != (K, D) or cov.shape != (K, D, D):
            raise ValueError(f"need weights (K,), means (K, D), covs (K, D, D); got {tuple(w.shape)}, "
                             f"{tuple(mu.shape)}, {tuple(cov.shape)}")
        if bool((w <= 0).any()) or abs(float(w.sum()) - 1.0) > 1e-6:
            raise ValueError(f"weights must be positive and sum to 1, got {w.tolist()}")
        if not torch.allclose(cov, cov.transpose(-1, -2), rtol=1e-10, atol=1e-12):
            raise ValueError("covs must be symmetric")
        diagonal = bool((cov == torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1))).all())
        if diagonal:  # the eigenbasis is the standard one (and eigh would only permute it)
            lam, U = cov.diagonal(dim1=-2, dim2=-1).clone(), torch.eye(D, dtype=torch.float64).expand(K, D, D).clone()
        else:
            lam, U = torch.linalg.eigh(cov)  # (K, D), (K, D, D)
        if bool((lam <= 0).any()):
            raise ValueError(f"covs must be positive definite, got smallest eigenvalue {float(lam.min()):.3g}")
        for name, value in (("weights", w / w.sum()), ("means", mu), ("covs", cov), ("lam", lam), ("U", U)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "diagonal", diagonal)

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.K}, D={self.D})"

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def single(cls, mean, cov) -> "GaussianMixture":
        """One Gaussian N(mean, cov): the case where E[x0 | x_t] is linear in x_t."""
        mean = torch.as_tensor(mean, dtype=torch.float64)
        cov = torch.as_tensor(cov, dtype=torch.float64)
        return cls(torch.ones(1), mean[None], cov[None])

    @classmethod
    def isotropic(cls, means, std: float, weights=None) -> "GaussianMixture":
        """Components N(mu_k, std^2 I) at the given (K, D) means, equal weights unless given."""
        std = check_float("std", std, low=0.0, low_open=True)
        means = torch.as_tensor(means, dtype=torch.float64)
        K, D = means.shape
        weights = torch.full((K,), 1.0 / K) if weights is None else weights
        return cls(weights, means, std**2 * torch.eye(D, dtype=torch.float64).expand(K, D, D).clone())

    @classmethod
    def eight_gaussians(cls, radius: float = 2.0, std: float = 0.1) -> "GaussianMixture":
        """Eight equal components on a circle of the given radius (a classic 2-D toy)."""
        radius = check_float("radius", radius, low=0.0, low_open=True)
        angle = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return cls.isotropic(radius * torch.stack([angle.cos(), angle.sin()], 1), std)  # (8, 2)

    @classmethod
    def grid(cls, n: int = 5, spacing: float = 1.0, std: float = 0.05) -> "GaussianMixture":
        """n x n equal components on a square grid centred at 0 (n = 5: the "25 Gaussians")."""
        n = check_int("n", n, low=1)
        spacing = check_float("spacing", spacing, low=0.0, low_open=True)
        ticks = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * spacing
        gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
        return cls.isotropic(torch.stack([gx.flatten(), gy.flatten()], 1), std)  # (n*n, 2)

    # ----------------------------------------------------------------------------- the clean mixture
    @property
    def K(self) -> int:
        """Number of components."""
        return self.weights.shape[0]

    @property
    def D(self) -> int:
        """Dimension of x."""
        return self.means.shape[1]

    @property
    def mean(self) -> Tensor:
        """E[x] = sum_k w_k mu_k, shape (D,)."""
        return self.weights @ self.means

    @property
    def cov(self) -> Tensor:
        """Cov[x] = sum_k w_k (Sigma_k + mu_k mu_k^T) - E[x] E[x]^T, shape (D, D)."""
        second = torch.einsum("k,kij->ij", self.weights, self.covs + self.means[:, :, None] * self.means[:, None, :])
        return second - torch.outer(self.mean, self.mean)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n independent draws, shape (n, D), float64: pick k ~ w, then mu_k + U_k sqrt(lam_k) z."""
        n = check_int("n", n, low=1)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        z = torch.randn(n, self.D, generator=generator, dtype=torch.float64)
        return self.means[k] + torch.einsum("nij,nj->ni", self.U[k], self.lam[k].sqrt() * z)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) for x of shape (B, D), returned as (B,)."""
        log_joint, _, _, _ = self._components(self._check_x(x), 1.0, 0.0)
        return torch.logsumexp(log_joint, dim=1).to(x.dtype)

    def score(self, x: Tensor) -> Tensor:
        """grad_x log p(x) for x of shape (B, D) (exact, no autograd)."""
        x = self._check_x(x)
        return self._posterior(x, torch.ones(()), torch.zeros(())).score.to(x.dtype)

    # ----------------------------------------------------------------------------- under the forward process
    def noised(self, alpha_bar_t) -> "GaussianMixture":
        """The marginal q(x_t) for a scalar alpha_bar_t in (0, 1]  (eq-gmm-noised)."""
        ab = check_float("alpha_bar_t", float(alpha_bar_t), low=0.0, high=1.0, low_open=True)
        eye = torch.eye(self.D, dtype=torch.float64)
        return GaussianMixture(self.weights, math.sqrt(ab) * self.means, ab * self.covs + (1.0 - ab) * eye)

    def smoothed(self, sigma: float) -> "GaussianMixture":
        """p convolved with N(0, sigma^2 I): the law of x + sigma z, the noise model of NCSN
        (Song & Ermon 2019) and of the variance-exploding SDE."""
        sigma = check_float("sigma", sigma, low=0.0)
        return GaussianMixture(self.weights, self.means, self.covs + sigma**2 * torch.eye(self.D, dtype=torch.float64))

    def posterior(self, x_t: Tensor, alpha_bar_t) -> MixturePosterior:
        """Exact r_k, E[x0 | x_t], E[eps | x_t] and score at x_t (B, D) for
        x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps  (eq-gmm-x0, eq-gmm-eps, eq-score-eps).

        alpha_bar_t is a number or a (B,) tensor in [0, 1]; alpha_bar_t = 1 (t = 0) gives
        x0_hat = x_t and eps_hat = 0. Outputs have x_t's dtype and device.
        """
        x = self._check_x(x_t, "x_t")
        if isinstance(alpha_bar_t, bool) or not isinstance(alpha_bar_t, (int, float, Tensor)):
            raise TypeError(f"alpha_bar_t must be a number or a tensor, got {type(alpha_bar_t).__name__}")
        ab = torch.as_tensor(alpha_bar_t, dtype=torch.float64, device=x.device)
        if ab.dim() > 1 or (ab.dim() == 1 and ab.shape[0] != x.shape[0]):
            raise ValueError(f"alpha_bar_t must be a number or have shape ({x.shape[0]},), got {tuple(ab.shape)}")
        if not bool(((ab >= 0) & (ab <= 1)).all()):
            raise ValueError("alpha_bar_t must lie in [0, 1]")
        post = self._posterior(x, ab.sqrt(), (1.0 - ab).sqrt())
        return MixturePosterior(*(v.to(x_t.dtype) for v in post))

    def oracle(self, sched: Schedule) -> "MixtureOracle":
        """The exact optimal eps predictor as a model: oracle(x_t, t) -> E[eps | x_t]."""
        return MixtureOracle(self, check_schedule(sched))

    def bayes_floor(self, sched: Schedule, n: int, generator: torch.Generator | None = None,
                    reduction: str = "mean") -> Estimate:
        """The smallest value L_simple can reach: E_{t, x0, eps} ||eps - E[eps | x_t]||^2, t ~ U{1..T}
        (eq-bayes-floor; any eps-predictor's L_simple is this plus its mean squared distance to E[eps | x_t]).

        Monte Carlo over (t, x0, eps) with n draws. Each draw contributes its exact conditional
        error E[||eps - E[eps|x_t]||^2 | x_t] = tr Cov[eps | x_t] (Rao-Blackwell: same mean as the
        plain squared error, lower variance); for the mixture
        tr Cov[eps | x_t] = sum_k r_k (tr Cov_k + ||m_k||^2) - ||sum_k r_k m_k||^2 with
        m_k = s_t C_k^{-1}(x_t - a_t mu_k) and Cov_k = I - s_t^2 C_k^{-1}.
        reduction="mean" divides by D (as F.mse_loss does), "sum" gives the squared norm.
        """
        check_schedule(sched)
        n = check_int("n", n, low=2)
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        t = torch.randint(1, sched.T + 1, (n,), generator=generator)
        x0 = self.sample(n, generator)
        eps = torch.randn(n, self.D, generator=generator, dtype=torch.float64)
        a_t, s_t = sched.alpha_bar[t].sqrt(), (1.0 - sched.alpha_bar[t]).sqrt()  # (n,)
        x_t = a_t[:, None] * x0 + s_t[:, None] * eps  # eq-q-sample
        log_joint, y, d, _ = self._components(x_t, a_t, s_t)
        r = (log_joint - torch.logsumexp(log_joint, 1, keepdim=True)).exp()  # (n, K)
        m = s_t[:, None, None] * y / d                                 # (n, K, D) m_k in eigenbasis k
        tr_cov = (1.0 - s_t[:, None, None] ** 2 / d).sum(-1)           # (n, K)
        m_bar = (r[:, :, None] * self._rotate(m)).sum(1)               # (n, D) E[eps | x_t]
        err = (r * (tr_cov + (m**2).sum(-1))).sum(1) - (m_bar**2).sum(1)  # (n,)
        err = err / (self.D if reduction == "mean" else 1)
        return Estimate(float(err.mean()), float(err.std() / math.sqrt(n)))

    # ----------------------------------------------------------------------------- internals
    def _check_x(self, x: Tensor, name: str = "x") -> Tensor:
        check_tensor(name, x, min_dim=2)
        if x.dim() != 2 or x.shape[1] != self.D:
            raise ValueError(f"{name} must have shape (B, {self.D}), got {tuple(x.shape)}")
        return x.to(torch.float64)

    def _rotate(self, v: Tensor) -> Tensor:
        """U_k v_k for v of shape (B, K, D): from each component's eigenbasis back to x's axes."""
        return v if self.diagonal else torch.einsum("kij,bkj->bki", self.U.to(v.device), v)

    def _components(self, x: Tensor, a_t, s_t):
        """Per-component terms for x = a_t x0 + s_t eps (a_t, s_t numbers or (B,) tensors).

        Returns log(w_k N(x; a_t mu_k, C_k)) (B, K), y = U_k^T (x - a_t mu_k) (B, K, D),
        the eigenvalues d of C_k (B, K, D) and a_t shaped (B or 1, 1, 1).
        """
        a = torch.as_tensor(a_t, dtype=torch.float64, device=x.device).reshape(-1, 1, 1)
        s = torch.as_tensor(s_t, dtype=torch.float64, device=x.device).reshape(-1, 1, 1)
        mu, U, lam = self.means.to(x.device), self.U.to(x.device), self.lam.to(x.device)
        diff = x[:, None, :] - a * mu[None]                                 # (B, K, D)
        y = diff if self.diagonal else torch.einsum("kji,bkj->bki", U, diff)  # U_k^T diff
        d = a**2 * lam[None] + s**2                                        # (B, K, D)
        log_normal = -0.5 * ((y**2 / d).sum(-1) + d.log().sum(-1) + self.D * math.log(2 * math.pi))
        return self.weights.to(x.device).log()[None] + log_normal, y, d, a

    def _posterior(self, x: Tensor, a_t: Tensor, s_t: Tensor) -> MixturePosterior:
        log_joint, y, d, a = self._components(x, a_t, s_t)
        s = s_t.reshape(-1, 1, 1)
        r = (log_joint - torch.logsumexp(log_joint, 1, keepdim=True)).exp()  # (B, K), log-sum-exp
        lam = self.lam.to(x.device)

        def mix(v):  # sum_k r_k U_k v_k, back from each eigenbasis: (B, K, D) -> (B, D)
            return (r[:, :, None] * self._rotate(v)).sum(1)

        x0_hat = r @ self.means.to(x.device) + a[:, :, 0] * mix(lam[None] * y / d)  # eq-gmm-x0
        score = -mix(y / d)                                                          # eq-score-eps
        eps_hat = -s[:, :, 0] * score                                                # eq-gmm-eps
        return MixturePosterior(r, x0_hat, eps_hat, score)


@dataclass(frozen=True, eq=False)
class MixtureOracle:
    """A perfect eps-prediction "network" for a Gaussian mixture: model(x_t, t) = E[eps | x_t]."""

    gmm: GaussianMixture  # the data distribution q(x0)
    sched: Schedule       # the forward process that defines x_t

    def __post_init__(self):
        if not isinstance(self.gmm, GaussianMixture):
            raise TypeError(f"gmm must be a GaussianMixture, got {type(self.gmm).__name__}")
        check_schedule(self.sched)

    def __call__(self, x_t: Tensor, t) -> Tensor:
        """x_t (B, D), t an int or (B,) long tensor in [0, T] -> eps_hat (B, D) in x_t's dtype."""
        t = check_timesteps("t", t, self.sched.T)
        return self.gmm.posterior(x_t, self.sched.alpha_bar.to(x_t.device)[t.to(x_t.device)]).eps_hat
