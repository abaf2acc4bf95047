"""Every public function rejects bad input with a ValueError/TypeError that names the argument.

One table, one row per bad input: (public name, exception type, regex the message must match, call).
The regex starts with (or contains) the argument's name, and where the message says what was
accepted or what was got, the regex checks that too. A final test keeps the table from shrinking,
and another checks that every public callable in `diffusion_lite.__all__` has at least one row.

Devices: with no second device at hand, tensors on the "meta" device (shape only, no data) stand
in for "another device", e.g. cuda while the rest is on the CPU.
"""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

import pytest
import torch
from torch import nn

import diffusion_lite as dl
from diffusion_lite.training import recipes

NAN, INF = float("nan"), float("inf")



# ----------------------------------------------------------------------------------- fixtures
S = dl.Schedule.linear(T=10, beta_1=1e-3, beta_T=0.2)       # T = 10: t must be in [0, 10] or [1, 10]
S1 = dl.Schedule.linear(T=1)
X = torch.full((2, 3), 0.5)                                 # (B, D) float32 data
X_NAN = torch.tensor([[0.5, NAN, 0.5], [0.5, 0.5, 0.5]])
X_INF = torch.tensor([[0.5, INF, 0.5], [0.5, 0.5, 0.5]])
META = torch.empty(2, 3, device="meta")                     # "on another device"
P2 = torch.zeros(4, 2)                                      # 2-D points for the MLP / mixture
IMG = torch.zeros(2, 1, 8, 8)                               # images for the tiny U-Net
DIGITS, DIGIT_LABELS = torch.zeros(4, 1, 28, 28), torch.arange(4)
FEATS = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
GMM = dl.GaussianMixture.isotropic([[0.0, 0.0], [1.0, 1.0]], 0.5)
ORACLE = GMM.oracle(S)
DS = dl.ImageDataset(images=torch.zeros(4, 1, 8, 8), labels=torch.arange(4), classes=tuple("abcd"),
                     name="toy", split="test")
NOWHERE = Path(tempfile.gettempdir()) / "diffusion_lite_no_such_folder" / "none.pt"
UNET_CFG = dl.UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(), attention_heads=2)
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(0)
    MLP = dl.MLPDenoiser(dl.MLPConfig(dim=2, hidden=8, depth=1, time_embed_dim=4))
    UNET = dl.UNet(UNET_CFG)
    UNET_CLS = dl.UNet(dataclasses.replace(UNET_CFG, num_classes=3))
    UNET_PATCH = dl.UNet(dataclasses.replace(UNET_CFG, patch_size=2))
    JUDGE = dl.MNISTJudge(dl.JudgeConfig.tiny())


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def zero_model(x_t, t):
    return torch.zeros_like(x_t)


def with_env(name: str, value: str, fn: Callable):
    """Run fn with the environment variable set, then restore it."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        return fn()
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


class Row(NamedTuple):
    target: str                     # the public name under test
    exc: type                       # exception type expected
    match: str                      # regex the message must contain (names the argument)
    call: Callable[[], object]      # the bad call

    @property
    def id(self) -> str:
        return f"{self.target}: {self.match[:50]}"


R = Row
T_RANGE = r"^t must lie in \[0, 10\] for this schedule \(T=10\), got values"
T1_RANGE = r"^t must lie in \[1, 10\] for this schedule \(T=10\), got values"

ROWS: list[Row] = [
    # ---------------------------------------------------------------------------- schedules
    R("Schedule", ValueError, r"^T must be in \[1, inf\), got 0", lambda: dl.Schedule.linear(T=0)),
    R("Schedule", TypeError, r"^T must be an int, got float", lambda: dl.Schedule.linear(T=10.0)),
    R("Schedule", TypeError, r"^T must be an int, got bool", lambda: dl.Schedule.linear(T=True)),
    R("Schedule", ValueError, r"^beta_1 must be a finite number in \(0\.0, 1\.0\), got 0\.0",
      lambda: dl.Schedule.linear(beta_1=0.0)),
    R("Schedule", ValueError, r"^beta_T must be .*\(0\.0, 1\.0\), got 1\.0", lambda: dl.Schedule.linear(beta_T=1.0)),
    R("Schedule", ValueError, r"^beta_T must be a finite number.*got nan", lambda: dl.Schedule.linear(beta_T=NAN)),
    R("Schedule", ValueError, r"^T must be in \[1", lambda: dl.Schedule.cosine(T=-1)),
    R("Schedule", ValueError, r"^s must be .*\[0\.0, 1\.0\), got -0\.1", lambda: dl.Schedule.cosine(s=-0.1)),
    R("Schedule", ValueError, r"^max_beta must be .*got 1\.0", lambda: dl.Schedule.cosine(max_beta=1.0)),
    R("Schedule", ValueError, r"^start must be smaller than end, got start=3\.0, end=-3\.0",
      lambda: dl.Schedule.sigmoid(start=3.0, end=-3.0)),
    R("Schedule", ValueError, r"^tau must be .*\(0\.0, inf\], got 0\.0", lambda: dl.Schedule.sigmoid(tau=0.0)),
    R("Schedule", ValueError, r"schedule 'quadratic'; choose one of \['cosine', 'linear', 'sigmoid'\]",
      lambda: dl.Schedule.named("quadratic")),
    R("Schedule", ValueError, r"^T must be in \[1", lambda: dl.Schedule.named("sigmoid", T=0)),
    R("Schedule", ValueError, r"^betas\[1:\] must lie in \(0, 1\), got .*max 1\.2",
      lambda: dl.Schedule.from_betas(torch.tensor([0.1, 1.2]))),
    R("Schedule", ValueError, r"^betas must be 1-D .*got shape \(1, 2\)",
      lambda: dl.Schedule.from_betas(torch.tensor([[0.1, 0.2]]))),
    R("Schedule", ValueError, r"^betas contains NaN", lambda: dl.Schedule.from_betas(torch.tensor([0.1, NAN]))),
    R("Schedule", ValueError, r"^betas is empty", lambda: dl.Schedule.from_betas(torch.tensor([]))),
    R("Schedule", TypeError, r"^betas must be a tensor or a sequence of numbers, got str",
      lambda: dl.Schedule.from_betas("0.1, 0.2")),
    R("Schedule", TypeError, r"^alpha_bar_fn must be callable.*got str", lambda: dl.Schedule.from_alpha_bar("cosine")),
    R("Schedule", ValueError, r"^alpha_bar_fn must be strictly decreasing",
      lambda: dl.Schedule.from_alpha_bar(lambda tau: 1.0 + tau, T=5)),
    R("Schedule", ValueError, r"^alpha_bar_fn must map a \(T\+1,\) tensor",
      lambda: dl.Schedule.from_alpha_bar(lambda tau: tau[:-1], T=5)),
    R("Schedule", ValueError, r"^alpha_bar_fn must return finite values.*got values from nan",
      lambda: dl.Schedule.from_alpha_bar(lambda tau: tau * NAN, T=5)),
    R("Schedule", ValueError, r"betas\[0\] must be 0 and alpha_bar\[0\] must be 1",
      lambda: dl.Schedule(betas=S.betas + 0.01, alphas=S.alphas - 0.01, alpha_bar=S.alpha_bar)),
    R("Schedule", TypeError, r"^betas must be a torch\.Tensor, got list",
      lambda: dl.Schedule(betas=[0.0, 0.1], alphas=S.alphas, alpha_bar=S.alpha_bar)),
    R("gather", ValueError, T_RANGE + r" from 11 to 11", lambda: dl.gather(S.alpha_bar, 11, X)),
    R("gather", ValueError, r"^t has batch size 3 but the data has shape \(2, 3\)",
      lambda: dl.gather(S.alpha_bar, torch.tensor([1, 2, 3]), X)),
    R("gather", TypeError, r"^values must be a torch\.Tensor, got list", lambda: dl.gather([0.1, 0.2], 1, X)),
    R("gather", TypeError, r"^like must be a torch\.Tensor, got list", lambda: dl.gather(S.alpha_bar, 1, [1.0])),
    R("gather", TypeError, r"^sched must be a diffusion_lite\.Schedule or None, got str",
      lambda: dl.gather(S.alpha_bar, 1, X, sched="linear")),
    # ---------------------------------------------------------------------------- forward process
    R("q_step", ValueError, T1_RANGE + r" from 0", lambda: dl.q_step(X, 0, X, S)),
    R("q_step", ValueError, T1_RANGE + r" from 11", lambda: dl.q_step(X, 11, X, S)),
    R("q_step", TypeError, r"^x_prev must be a floating-point tensor, got dtype torch\.int32",
      lambda: dl.q_step(X.int(), 1, X, S)),
    R("q_step", TypeError, r"^sched must be a diffusion_lite\.Schedule, got str",
      lambda: dl.q_step(X, 1, X, "linear")),
    R("q_sample", ValueError, T_RANGE + r" from -1", lambda: dl.q_sample(X, -1, X, S)),
    R("q_sample", ValueError, T_RANGE + r" from 11", lambda: dl.q_sample(X, 11, X, S)),
    R("q_sample", TypeError, r"^t must be an int or an integer tensor, got float", lambda: dl.q_sample(X, 1.5, X, S)),
    R("q_sample", TypeError, r"^t must hold integers, got dtype torch\.float32",
      lambda: dl.q_sample(X, torch.tensor([1.0, 2.0]), X, S)),
    R("q_sample", TypeError, r"^t must hold integers, got dtype torch\.bool",
      lambda: dl.q_sample(X, torch.tensor([True, False]), X, S)),
    R("q_sample", TypeError, r"^t must be an int or an integer tensor, got bool", lambda: dl.q_sample(X, True, X, S)),
    R("q_sample", ValueError, r"^t must be a scalar or a 1-D batch.*got shape \(1, 2\)",
      lambda: dl.q_sample(X, torch.tensor([[1, 2]]), X, S)),
    R("q_sample", ValueError, r"^t is empty", lambda: dl.q_sample(X, torch.tensor([], dtype=torch.long), X, S)),
    R("q_sample", ValueError, r"^t has batch size 3 but the data has shape \(2, 3\)",
      lambda: dl.q_sample(X, torch.tensor([1, 2, 3]), X, S)),
    R("q_sample", ValueError, r"^x0 and eps must have the same shape, got \(2, 3\) and \(2, 4\)",
      lambda: dl.q_sample(X, 1, torch.zeros(2, 4), S)),
    R("q_sample", ValueError, r"^x0 contains NaN or infinite", lambda: dl.q_sample(X_NAN, 1, X, S)),
    R("q_sample", ValueError, r"^eps contains NaN or infinite", lambda: dl.q_sample(X, 1, X_INF, S)),
    R("q_sample", TypeError, r"^x0 must be a floating-point tensor, got dtype torch\.int64",
      lambda: dl.q_sample(X.long(), 1, X, S)),
    R("q_sample", TypeError, r"^x0 must be a floating-point tensor, got dtype torch\.bool",
      lambda: dl.q_sample(X.bool(), 1, X, S)),
    R("q_sample", ValueError, r"^x0 is empty \(shape \(0, 3\)\)", lambda: dl.q_sample(torch.zeros(0, 3), 1, X, S)),
    R("q_sample", ValueError, r"^x0 must have at least 1 dimension\(s\), got shape \(\)",
      lambda: dl.q_sample(torch.tensor(0.5), 1, torch.tensor(0.5), S)),
    R("q_sample", TypeError, r"^x0 must be a torch\.Tensor, got list", lambda: dl.q_sample([0.5], 1, X, S)),
    R("q_sample", ValueError, r"^x0 and eps must be on the same device, got cpu and meta",
      lambda: dl.q_sample(X, 1, META, S)),
    R("q_posterior", ValueError, T1_RANGE, lambda: dl.q_posterior(X, X, 0, S)),
    R("q_posterior", ValueError, r"^x0 and x_t must have the same shape", lambda: dl.q_posterior(X, X[:1], 1, S)),
    R("q_posterior", ValueError, r"^x0 and x_t must be on the same device, got cpu and meta",
      lambda: dl.q_posterior(X, META, 1, S)),
    R("q_posterior", TypeError, r"^sched must be a diffusion_lite\.Schedule, got NoneType",
      lambda: dl.q_posterior(X, X, 1, None)),
    # ---------------------------------------------------------------------------- parameterizations
    R("x0_from_eps", ValueError, T_RANGE, lambda: dl.x0_from_eps(X, 11, X, S)),
    R("x0_from_eps", ValueError, r"^eps contains NaN", lambda: dl.x0_from_eps(X_NAN, 1, X, S)),
    R("x0_from_eps", TypeError, r"^sched must be", lambda: dl.x0_from_eps(X, 1, X, "cosine")),
    R("eps_from_x0", ValueError, T1_RANGE + r" from 0", lambda: dl.eps_from_x0(X, 0, X, S)),
    R("score_from_eps", ValueError, T1_RANGE + r" from 0", lambda: dl.score_from_eps(X, 0, X, S)),
    R("eps_from_score", ValueError, T1_RANGE + r" from 0", lambda: dl.eps_from_score(X, 0, X, S)),
    R("v_from_eps", TypeError, r"^eps must be a floating-point tensor", lambda: dl.v_from_eps(X.int(), 1, X, S)),
    R("x0_from_v", ValueError, r"^v and x_t must have the same shape, got \(2, 4\) and \(2, 3\)",
      lambda: dl.x0_from_v(torch.zeros(2, 4), 1, X, S)),
    R("eps_from_v", ValueError, r"^v and x_t must be on the same device, got cpu and meta",
      lambda: dl.eps_from_v(X, 1, META, S)),
    # ---------------------------------------------------------------------------- ELBO
    R("gaussian_kl", ValueError, r"^var1 must be > 0 everywhere, got min -1",
      lambda: dl.gaussian_kl(X, -torch.ones(2, 3), X, torch.ones(2, 3))),
    R("gaussian_kl", TypeError, r"^var1 must be a torch\.Tensor, got float", lambda: dl.gaussian_kl(X, 1.0, X, X)),
    R("gaussian_kl", ValueError, r"must broadcast together, got shapes mean1=\(2, 3\).*mean2=\(4,\)",
      lambda: dl.gaussian_kl(X, X, torch.zeros(4), torch.ones(4))),
    R("gaussian_kl", ValueError, r"must be on the same device, got .*mean2=meta",
      lambda: dl.gaussian_kl(X, X, META, X)),
    R("prior_kl", TypeError, r"^x0 must be a floating-point tensor", lambda: dl.prior_kl(X.int(), S)),
    R("prior_kl", TypeError, r"^sched must be", lambda: dl.prior_kl(X, "linear")),
    R("ddpm_mean", ValueError, T1_RANGE + r" from 0", lambda: dl.ddpm_mean(X, 0, X, S)),
    R("ddpm_mean", ValueError, r"^eps_hat and x_t must have the same shape", lambda: dl.ddpm_mean(X[:1], 1, X, S)),
    R("vlb_term", ValueError, r"^t must lie in \[2, 10\].*decoder_nll", lambda: dl.vlb_term(X, X, X, 1, S)),
    R("vlb_term", ValueError, r"^variance must be one of \('beta_tilde', 'beta'\), got 'large'",
      lambda: dl.vlb_term(X, X, X, 2, S, variance="large")),
    R("vlb_term", ValueError, r"^x0 and x_t must have the same shape", lambda: dl.vlb_term(X, X[:1], X, 2, S)),
    R("vlb_term", TypeError, r"^t must be an int or an integer tensor, got float",
      lambda: dl.vlb_term(X, X, X, 2.0, S)),
    R("discretized_gaussian_log_prob", ValueError, r"^x0 must lie in \[-1, 1\].*got values from 2",
      lambda: dl.discretized_gaussian_log_prob(2 * torch.ones(2), torch.zeros(2), torch.ones(2))),
    R("discretized_gaussian_log_prob", ValueError, r"^var must be > 0",
      lambda: dl.discretized_gaussian_log_prob(X, X, torch.zeros(2, 3))),
    R("discretized_gaussian_log_prob", ValueError, r"^bins must be in \[2, inf\), got 1",
      lambda: dl.discretized_gaussian_log_prob(X, X, X, bins=1)),
    R("discretized_gaussian_log_prob", TypeError, r"^bins must be an int, got float",
      lambda: dl.discretized_gaussian_log_prob(X, X, X, bins=256.0)),
    R("discretized_gaussian_log_prob", ValueError, r"x0, mean, var must broadcast together, got shapes x0=\(2, 3\)",
      lambda: dl.discretized_gaussian_log_prob(X, torch.zeros(4), torch.ones(4))),
    R("decoder_nll", ValueError, r"^variance must be one of", lambda: dl.decoder_nll(X, X, X, S, variance="small")),
    R("decoder_nll", ValueError, r"variance='beta_tilde'.*needs T >= 2; got T=1", lambda: dl.decoder_nll(X, X, X, S1)),
    R("decoder_nll", ValueError, r"^bins must be in \[2", lambda: dl.decoder_nll(X, X, X, S, bins=0)),
    R("vlb_terms", TypeError, r"^model must be callable.*got str", lambda: dl.vlb_terms("unet", X, S)),
    R("vlb_terms", ValueError, T1_RANGE + r" from 0", lambda: dl.vlb_terms(zero_model, X, S, t=0)),
    R("vlb_terms", ValueError, r"^max_elements must be in \[1",
      lambda: dl.vlb_terms(zero_model, X, S, max_elements=0)),
    R("vlb_terms", ValueError, r"^variance must be one of", lambda: dl.vlb_terms(zero_model, X, S, variance="nope")),
    R("vlb_terms", ValueError, r"^model\(x_t, t\) must return eps_hat of shape \(\d+, 3\), got \(\d+, 1\)",
      lambda: dl.vlb_terms(lambda x_t, t: x_t[:, :1], X, S)),
    R("bits_per_dim", ValueError, r"^n_t must be in \[1", lambda: dl.bits_per_dim(zero_model, X, S, n_t=0)),
    R("bits_per_dim", TypeError, r"^model must be callable.*got NoneType", lambda: dl.bits_per_dim(None, X, S)),
    # ---------------------------------------------------------------------------- profiles, images, data
    R("profile", ValueError, r"^DL_PROFILE must be one of \('smoke', 'cpu', 'gpu'\), got 'fast'",
      lambda: with_env("DL_PROFILE", "fast", dl.profile)),
    R("pick", ValueError, r"^DL_PROFILE must be one of", lambda: with_env("DL_PROFILE", "laptop",
                                                                            lambda: dl.pick(smoke=1, cpu=2, gpu=3))),
    R("pick", TypeError, r"missing 1 required keyword-only argument: 'gpu'", lambda: dl.pick(smoke=1, cpu=2)),
    R("device", ValueError, r"^DL_PROFILE must be one of", lambda: with_env("DL_PROFILE", "tpu", dl.device)),
    R("demo_image", ValueError, r"demo image 'lena'; choose one of \['grace_hopper'\]", lambda: dl.demo_image("lena")),
    R("demo_image", ValueError, r"^size must be in \[8, 1024\], got 4", lambda: dl.demo_image(size=4)),
    R("demo_image", TypeError, r"^size must be an int, got float", lambda: dl.demo_image(size=64.0)),
    R("to_uint8", ValueError, r"^x must have at least 3 dimension\(s\), got shape \(2, 3\)", lambda: dl.to_uint8(X)),
    R("to_uint8", ValueError, r"^x must have 1 or 3 channels.*\(2, 8, 8\)", lambda: dl.to_uint8(torch.zeros(2, 8, 8))),
    R("to_uint8", TypeError, r"^x must be a floating-point tensor, got dtype torch\.uint8",
      lambda: dl.to_uint8(torch.zeros(1, 8, 8, dtype=torch.uint8))),
    R("load_dataset", ValueError, r"^name must be one of \('mnist', 'fashion_mnist', 'cifar10'\), got 'imagenet'",
      lambda: dl.load_dataset("imagenet")),
    R("load_dataset", ValueError, r"^split must be one of \('train', 'test'\), got 'val'",
      lambda: dl.load_dataset("mnist", split="val")),
    R("ImageDataset", ValueError, r"^n must be in \[1, 4\], got 0", lambda: DS.subset(0)),
    R("ImageDataset", ValueError, r"^n must be in \[1, 4\], got 5", lambda: DS.subset(5)),
    R("ImageDataset", TypeError, r"^generator must be a torch\.Generator or None, got int",
      lambda: DS.subset(2, generator=0)),
    R("ImageDataset", TypeError, r"^images must be a float tensor, got torch\.uint8",
      lambda: dataclasses.replace(DS, images=DS.images.to(torch.uint8))),
    R("ImageDataset", ValueError, r"^images must have shape \(N, C, H, W\), got \(4, 8, 8\)",
      lambda: dataclasses.replace(DS, images=DS.images[:, 0])),
    R("ImageDataset", ValueError, r"^labels must have shape \(4,\) to match images, got \(3,\)",
      lambda: dataclasses.replace(DS, labels=DS.labels[:3])),
    R("ImageDataset", TypeError, r"^labels must be an integer tensor, got torch\.float32",
      lambda: dataclasses.replace(DS, labels=DS.labels.float())),
    # ---------------------------------------------------------------------------- toy data
    R("swiss_roll", ValueError, r"^n must be in \[1, inf\), got 0", lambda: dl.swiss_roll(0)),
    R("swiss_roll", TypeError, r"^n must be an int, got float", lambda: dl.swiss_roll(10.0)),
    R("moons", ValueError, r"^noise must be .*\[0\.0, inf\], got -0\.1", lambda: dl.moons(5, noise=-0.1)),
    R("moons", TypeError, r"^generator must be a torch\.Generator or None, got int",
      lambda: dl.moons(5, generator=42)),
    R("checkerboard", ValueError, r"^squares must be even.*got 3", lambda: dl.checkerboard(5, squares=3)),
    R("checkerboard", ValueError, r"^squares must be in \[2, inf\), got 0", lambda: dl.checkerboard(5, squares=0)),
    R("rings", TypeError, r"^radii must be a non-empty tuple.*got \(\)", lambda: dl.rings(5, radii=())),
    R("rings", ValueError, r"^radii\[k\] must be .*got -1\.0", lambda: dl.rings(5, radii=(1.0, -1.0))),
    R("rings", ValueError, r"^noise must be a finite number.*got nan", lambda: dl.rings(5, noise=NAN)),
    # ---------------------------------------------------------------------------- networks
    R("timestep_embedding", ValueError, r"^t must be a 1-D tensor of timesteps",
      lambda: dl.timestep_embedding(torch.tensor([[1]]), 8)),
    R("timestep_embedding", ValueError, r"^dim must be in \[1, inf\), got 0",
      lambda: dl.timestep_embedding(torch.tensor([1]), 0)),
    R("timestep_embedding", ValueError, r"^max_period must be a finite number in \(1\.0, inf\], got -1\.0",
      lambda: dl.timestep_embedding(torch.tensor([1]), 8, max_period=-1.0)),
    R("timestep_embedding", ValueError, r"^t contains NaN or infinite values",
      lambda: dl.timestep_embedding(torch.tensor([NAN]), 8)),
    R("timestep_embedding", TypeError, r"^t must hold integer \(or real\) timesteps, got dtype torch\.bool",
      lambda: dl.timestep_embedding(torch.tensor([True]), 8)),
    R("MLPConfig", ValueError, r"^dim must be in \[1, inf\), got 0", lambda: dl.MLPConfig(dim=0)),
    R("MLPConfig", ValueError, r"^depth must be in \[1", lambda: dl.MLPConfig(depth=0)),
    R("MLPConfig", TypeError, r"^hidden must be an int, got float", lambda: dl.MLPConfig(hidden=2.5)),
    R("MLPConfig", ValueError, r"^time_embed_dim must be in \[2", lambda: dl.MLPConfig(time_embed_dim=1)),
    R("MLPDenoiser", TypeError, r"^config must be an MLPConfig, got UNetConfig", lambda: dl.MLPDenoiser(UNET_CFG)),
    R("MLPDenoiser", ValueError, r"^x_t must have shape \(B, 2\) for this MLPDenoiser, got \(2, 3\)",
      lambda: MLP(X, 1)),
    R("MLPDenoiser", TypeError, r"^x_t has dtype torch\.float64 but the MLPDenoiser's weights are torch\.float32",
      lambda: MLP(P2.double(), 1)),
    R("MLPDenoiser", TypeError, r"^x_t must be a floating-point tensor", lambda: MLP(P2.long(), 1)),
    R("MLPDenoiser", ValueError, r"^t must be >= 0, got a minimum of -1", lambda: MLP(P2, -1)),
    R("MLPDenoiser", ValueError, r"^t must be an int or have shape \(4,\).*got shape \(3,\)",
      lambda: MLP(P2, torch.tensor([1, 2, 3]))),
    R("MLPDenoiser", TypeError, r"^t must be an int or a tensor of timesteps, got str", lambda: MLP(P2, "1")),
    R("MLPDenoiser", TypeError, r"^t must hold integer \(or real\) timesteps, got dtype torch\.bool",
      lambda: MLP(P2, torch.ones(4, dtype=torch.bool))),
    R("MLPDenoiser", ValueError, r"^t contains NaN", lambda: MLP(P2, torch.full((4,), NAN))),
    R("MLPDenoiser", ValueError, r"MLPDenoiser is unconditional: cond must be None",
      lambda: MLP(P2, 1, torch.zeros(4, dtype=torch.long))),
    R("UNetConfig", ValueError, r"^channel_mults must list at least one level, got \(\)",
      lambda: dl.UNetConfig(channel_mults=())),
    R("UNetConfig", ValueError, r"^channel_mults entries must be in \[1, inf\), got 0",
      lambda: dl.UNetConfig(channel_mults=(1, 0))),
    R("UNetConfig", ValueError, r"^groups \(3\) and attention_heads \(4\) must divide every level's channel count",
      lambda: dl.UNetConfig(groups=3)),
    R("UNetConfig", ValueError, r"^attention_levels entries must be in \[0, 2\], got 5",
      lambda: dl.UNetConfig(attention_levels=(5,))),
    R("UNetConfig", ValueError, r"^dropout must be .*\[0\.0, 1\.0\), got 1\.0", lambda: dl.UNetConfig(dropout=1.0)),
    R("UNetConfig", ValueError, r"set num_classes .* or cond_dim .*not both",
      lambda: dl.UNetConfig(num_classes=10, cond_dim=4)),
    R("UNetConfig", ValueError, r"^in_channels must be in \[1, inf\), got 0", lambda: dl.UNetConfig(in_channels=0)),
    R("UNetConfig", ValueError, r"^patch_size must be in \[1, inf\), got 0", lambda: dl.UNetConfig(patch_size=0)),
    R("UNetConfig", TypeError, r"^patch_size must be an int, got float", lambda: dl.UNetConfig(patch_size=2.0)),
    R("UNetConfig", TypeError, r"^zero_init must be a bool, got str", lambda: dl.UNetConfig(zero_init="yes")),
    R("UNetConfig", TypeError, r"^base_channels must be an int, got float", lambda: dl.UNetConfig(base_channels=32.0)),
    R("UNet", TypeError, r"^config must be a UNetConfig, got dict", lambda: dl.UNet({"base_channels": 8})),
    R("UNet", ValueError, r"^x_t must have shape \(B, 1, H, W\) for this UNet \(in_channels=1\), got \(1, 8, 8\)",
      lambda: UNET(torch.zeros(1, 8, 8), 1)),
    R("UNet", ValueError, r"^x_t must have shape \(B, 1, H, W\).*got \(2, 3, 8, 8\)",
      lambda: UNET(torch.zeros(2, 3, 8, 8), 1)),
    R("UNet", ValueError, r"^x_t height and width must be divisible by 2.*got 7x7",
      lambda: UNET(torch.zeros(2, 1, 7, 7), 1)),
    R("UNet", ValueError, r"^x_t height and width must be divisible by 4 \(cut into patches of 2, then the U-Net "
      r"halves them 1 times\), got 6x6", lambda: UNET_PATCH(torch.zeros(2, 1, 6, 6), 1)),
    R("UNet", ValueError, r"^x_t contains NaN", lambda: UNET(torch.full((2, 1, 8, 8), NAN), 1)),
    R("UNet", ValueError, r"^t must be an int or have shape \(2,\)", lambda: UNET(IMG, torch.tensor([1, 2, 3]))),
    R("UNet", TypeError, r"^cond must be a \(B,\) tensor of integer class labels",
      lambda: UNET_CLS(IMG, 1, torch.zeros(2))),
    R("UNet", ValueError, r"^cond must hold 2 labels in \[0, 3\]", lambda: UNET_CLS(IMG, 1, torch.tensor([0, 5]))),
    R("UNet", ValueError, r"this UNet is unconditional.*cond must be None",
      lambda: UNET(IMG, 1, torch.tensor([0, 1]))),
    R("unet_block_report", TypeError, r"^model must be a UNet, got MLPDenoiser",
      lambda: dl.unet_block_report(MLP, (1, 2))),
    R("unet_block_report", ValueError, r"^x_t height and width must be divisible by 2",
      lambda: dl.unet_block_report(UNET, (1, 1, 7, 7))),
    # ---------------------------------------------------------------------------- training
    R("TrainConfig", ValueError, r"^lr must be a finite number in \(0\.0, inf\], got -0\.001",
      lambda: dl.TrainConfig(lr=-1e-3)),
    R("TrainConfig", ValueError, r"^lr must be a finite number.*got inf", lambda: dl.TrainConfig(lr=math.inf)),
    R("TrainConfig", ValueError, r"^batch_size must be in \[1, inf\), got 0", lambda: dl.TrainConfig(batch_size=0)),
    R("TrainConfig", ValueError, r"^ema_decay must be .*\[0\.0, 1\.0\), got 1\.0",
      lambda: dl.TrainConfig(ema_decay=1.0)),
    R("TrainConfig", ValueError, r"^ema_decay must be .*got -0\.1", lambda: dl.TrainConfig(ema_decay=-0.1)),
    R("TrainConfig", ValueError, r"^warmup_steps must be in \[0, inf\), got -1",
      lambda: dl.TrainConfig(warmup_steps=-1)),
    R("TrainConfig", ValueError, r"^min_snr_gamma must be a finite number in \(0.0, inf\], got 0.0",
      lambda: dl.TrainConfig(min_snr_gamma=0)),
    R("TrainConfig", ValueError, r"^lr_decay must be 'none' or 'cosine', got 'linear'",
      lambda: dl.TrainConfig(lr_decay="linear")),
    R("TrainConfig", ValueError, r"^warmup_steps must be below steps \(10\) with lr_decay='cosine', got 10",
      lambda: dl.TrainConfig(steps=10, warmup_steps=10, lr_decay="cosine")),
    R("TrainConfig", ValueError, r"^grad_clip must be .*got 0\.0", lambda: dl.TrainConfig(grad_clip=0.0)),
    R("TrainConfig", ValueError, r"^p_uncond must be .*\[0\.0, 1\.0\), got 1\.0",
      lambda: dl.TrainConfig(p_uncond=1.0)),
    R("TrainConfig", ValueError, r"^prediction must be 'eps' or 'v', got 'x0'",
      lambda: dl.TrainConfig(prediction="x0")),
    R("TrainConfig", ValueError, r"^amp must be 'auto', 'bf16' or 'off', got 'fp16'",
      lambda: dl.TrainConfig(amp="fp16")),
    R("TrainConfig", TypeError, r"^steps must be an int, got float", lambda: dl.TrainConfig(steps=10.5)),
    R("TrainConfig", ValueError, r"^seed must be in \[0, inf\), got -1", lambda: dl.TrainConfig(seed=-1)),
    R("TrainConfig", ValueError, r"^weight_decay must be .*got -1\.0", lambda: dl.TrainConfig(weight_decay=-1.0)),
    R("TrainConfig", ValueError, r"^adam_beta2 must be .*\[0\.0, 1\.0\), got 1\.0",
      lambda: dl.TrainConfig(adam_beta2=1.0)),
    R("train", TypeError, r"^model must be a torch\.nn\.Module, got str", lambda: dl.train("mlp", P2, S)),
    R("train", TypeError, r"^data must be a floating-point tensor, got dtype torch\.int64",
      lambda: dl.train(MLP, P2.long(), S, progress=False)),
    R("train", ValueError, r"^data must have at least 2 dimension\(s\), got shape \(4,\)",
      lambda: dl.train(MLP, torch.zeros(4), S, progress=False)),
    R("train", ValueError, r"^data is empty", lambda: dl.train(MLP, torch.zeros(0, 2), S, progress=False)),
    R("train", ValueError, r"^data contains NaN", lambda: dl.train(MLP, torch.full((4, 2), NAN), S, progress=False)),
    R("train", TypeError, r"^sched must be a diffusion_lite\.Schedule, got str",
      lambda: dl.train(MLP, P2, "linear", progress=False)),
    R("train", TypeError, r"^config must be a TrainConfig, got dict",
      lambda: dl.train(MLP, P2, S, {"steps": 1}, progress=False)),
    R("train", ValueError, r"^cond must be a tensor with one row per data sample \(2\)",
      lambda: dl.train(UNET_CLS, IMG, S, dl.TrainConfig(steps=1), cond=torch.tensor([0, 1, 2]), progress=False)),
    R("train", ValueError, r"^p_uncond > 0 needs cond",
      lambda: dl.train(MLP, P2, S, dl.TrainConfig(steps=1, p_uncond=0.1), progress=False)),
    # ---------------------------------------------------------------------------- checkpoints and cache
    R("cache_path", ValueError, r"^kind must be a short name .*got 'bad kind!'", lambda: dl.cache_path("bad kind!")),
    R("config_key", TypeError, r"config_parts\[0\] has a object; a cache key accepts",
      lambda: dl.config_key(object())),
    R("config_key", ValueError, r"config_parts\[0\] holds a non-finite float nan", lambda: dl.config_key(NAN)),
    R("save_checkpoint", TypeError, r"^state and meta must be dicts, got list and dict",
      lambda: dl.save_checkpoint(NOWHERE, [1], {})),
    R("save_checkpoint", TypeError, r"^state\['m'\] is a Linear",
      lambda: dl.save_checkpoint(NOWHERE, {"m": nn.Linear(1, 1)}, {})),
    R("load_checkpoint", FileNotFoundError, r"^no checkpoint at .*none\.pt", lambda: dl.load_checkpoint(NOWHERE)),
    R("cached_model", TypeError, r"^model must be a torch\.nn\.Module, got str",
      lambda: dl.cached_model("k", "model", [], lambda m: m)),
    R("cached_model", TypeError, r"^train_fn must be callable.*got NoneType",
      lambda: dl.cached_model("k", nn.Linear(1, 1), [], None)),
    R("cached_model", ValueError, r"^kind must be a short name", lambda: dl.cached_model("a/b", nn.Linear(1, 1), [],
                                                                                          lambda m: m)),
    # ---------------------------------------------------------------------------- the judge and metrics
    R("JudgeConfig", ValueError, r"^config\.lr must be .*\(0\.0, inf\], got -1\.0",
      lambda: dl.train_judge(DIGITS, DIGIT_LABELS, dl.JudgeConfig.tiny(lr=-1.0), progress=False)),
    R("JudgeConfig", ValueError, r"^config\.batch must be in \[2, inf\), got 0",
      lambda: dl.train_judge(DIGITS, DIGIT_LABELS, dl.JudgeConfig.tiny(batch=0), progress=False)),
    R("JudgeConfig", ValueError, r"^config\.garbage_fraction must be .*\[0, 1\), got 1\.0",
      lambda: dl.train_judge(DIGITS, DIGIT_LABELS, dl.JudgeConfig.tiny(garbage_fraction=1.0), progress=False)),
    R("JudgeConfig", ValueError, r"^config\.max_shift must be in \[0, inf\), got -1",
      lambda: dl.train_judge(DIGITS, DIGIT_LABELS, dl.JudgeConfig.tiny(max_shift=-1), progress=False)),
    R("MNISTJudge", TypeError, r"^config must be a JudgeConfig, got str", lambda: dl.MNISTJudge("tiny")),
    R("MNISTJudge", ValueError, r"^config\.widths must list 1 to 4 channel counts, got \(\)",
      lambda: dl.MNISTJudge(dl.JudgeConfig(widths=()))),
    R("MNISTJudge", ValueError, r"^config\.widths entries must be in \[1, inf\), got 0",
      lambda: dl.MNISTJudge(dl.JudgeConfig(widths=(8, 0)))),
    R("train_judge", ValueError, r"^images must have shape \(N, 1, 28, 28\), got \(4, 1, 14, 28\)",
      lambda: dl.train_judge(DIGITS[:, :, :14], DIGIT_LABELS, progress=False)),
    R("train_judge", ValueError, r"^labels must be an integer tensor of shape \(4,\)",
      lambda: dl.train_judge(DIGITS, DIGIT_LABELS.float(), progress=False)),
    R("train_judge", ValueError, r"^labels must be digits 0-9", lambda: dl.train_judge(DIGITS, DIGIT_LABELS + 9,
                                                                                          progress=False)),
    R("judge", TypeError, r"^model must be an MNISTJudge.*got str", lambda: dl.judge("judge", DIGITS)),
    R("judge", ValueError, r"^x must have shape \(N, 1, 28, 28\), got \(2, 1, 8, 8\)", lambda: dl.judge(JUDGE, IMG)),
    R("judge", ValueError, r"^threshold must be .*\[0, 1\], got 1\.5", lambda: dl.judge(JUDGE, DIGITS, threshold=1.5)),
    R("judge", ValueError, r"^batch must be in \[1, inf\), got 0", lambda: dl.judge(JUDGE, DIGITS, batch=0)),
    R("JudgeReport", ValueError, r"^probs must be softmax probabilities",
      lambda: dl.JudgeReport.from_probs(torch.randn(3, 11, generator=gen()))),
    R("JudgeReport", ValueError, r"^probs must have shape \(N, 11\), got \(3, 10\)",
      lambda: dl.JudgeReport.from_probs(torch.full((3, 10), 0.1))),
    R("load_or_train_judge", TypeError, r"^dataset must have \.images and \.labels.*got str",
      lambda: dl.load_or_train_judge("mnist", cache=False, progress=False)),
    R("garbage", ValueError, r"^n must be in \[1, inf\), got 0", lambda: dl.garbage(0, DIGITS, gen())),
    R("garbage", ValueError, r"^real_images must have shape \(N, 1, 28, 28\), got \(2, 1, 8, 8\)",
      lambda: dl.garbage(2, IMG, gen())),
    R("garbage", TypeError, r"^generator must be a torch\.Generator, got NoneType",
      lambda: dl.garbage(2, DIGITS, None)),
    R("garbage", ValueError, r"^kinds must be a non-empty selection of .*got \('noise',\)",
      lambda: dl.garbage(2, DIGITS, gen(), kinds=("noise",))),
    R("garbage", ValueError, r"^kinds must be a non-empty selection", lambda: dl.garbage(2, DIGITS, gen(), kinds=())),
    R("garbage", ValueError, r"^weights must be 10 non-negative numbers",
      lambda: dl.garbage(2, DIGITS, gen(), weights=[-1.0] * 10)),
    R("garbage", ValueError, r"^labels must be None or a tensor of shape \(4,\)",
      lambda: dl.garbage(2, DIGITS, gen(), labels=torch.zeros(3))),
    R("frechet_distance", ValueError, r"^cov1 must have shape \(3, 3\) to match mu1 of shape \(3,\), got \(2, 2\)",
      lambda: dl.frechet_distance(torch.zeros(3), torch.eye(2), torch.zeros(3), torch.eye(3))),
    R("frechet_distance", ValueError, r"^cov1 must be a symmetric matrix",
      lambda: dl.frechet_distance(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]), torch.zeros(2),
                                  torch.eye(2))),
    R("frechet_distance", ValueError, r"^cov2 must be positive semi-definite",
      lambda: dl.frechet_distance(torch.zeros(2), torch.eye(2), torch.zeros(2), -torch.eye(2))),
    R("frechet_distance", TypeError, r"^mu1 must be a floating-point tensor",
      lambda: dl.frechet_distance(torch.zeros(2, dtype=torch.long), torch.eye(2), torch.zeros(2), torch.eye(2))),
    R("feature_stats", ValueError, r"^features needs at least 2 rows.*got 1", lambda: dl.feature_stats(FEATS[:1])),
    R("feature_stats", ValueError, r"^features must have shape \(N, F\).*got \(2, 2, 5\)",
      lambda: dl.feature_stats(torch.zeros(2, 2, 5))),
    R("fid_from_features", ValueError, r"^features1 and features2 must have the same feature dimension, got 3 and 2",
      lambda: dl.fid_from_features(FEATS, FEATS[:, :2])),
    R("kid", ValueError, r"^subsets must be in \[2, inf\), got 1", lambda: dl.kid(FEATS, FEATS, subsets=1)),
    R("kid", ValueError, r"^subset_size must be in \[2, 20\], got 1000",
      lambda: dl.kid(FEATS, FEATS, subset_size=1000)),
    R("kid", TypeError, r"^generator must be a torch\.Generator or None, got int",
      lambda: dl.kid(FEATS, FEATS, generator=1)),
    R("judge_features", TypeError, r"^model must be a judge .*got str", lambda: dl.judge_features("judge", DIGITS)),
    R("judge_features", ValueError, r"^batch must be in \[1", lambda: dl.judge_features(JUDGE, DIGITS, batch=0)),
    R("classifier_fid", TypeError, r"^x must be a floating-point tensor",
      lambda: dl.classifier_fid(JUDGE, DIGITS.long(), DIGITS)),
    R("classifier_kid", TypeError, r"^model must be a judge", lambda: dl.classifier_kid(MLP, DIGITS, DIGITS)),
    # ---------------------------------------------------------------------------- Gaussian mixtures
    R("GaussianMixture", ValueError, r"^weights must be positive and sum to 1, got \[0\.5, 0\.6\]",
      lambda: dl.GaussianMixture(torch.tensor([0.5, 0.6], dtype=torch.float64), torch.zeros(2, 2),
                                 torch.eye(2).expand(2, 2, 2))),
    R("GaussianMixture", ValueError, r"^covs must be symmetric",
      lambda: dl.GaussianMixture(torch.ones(1), torch.zeros(1, 2), torch.tensor([[[1.0, 0.5], [0.0, 1.0]]]))),
    R("GaussianMixture", ValueError, r"^covs must be positive definite, got smallest eigenvalue -1",
      lambda: dl.GaussianMixture(torch.ones(1), torch.zeros(1, 2), -torch.eye(2)[None])),
    R("GaussianMixture", ValueError, r"need weights \(K,\), means \(K, D\), covs \(K, D, D\)",
      lambda: dl.GaussianMixture(torch.ones(1), torch.zeros(1, 3), torch.eye(2)[None])),
    R("GaussianMixture", ValueError, r"^std must be .*got 0\.0",
      lambda: dl.GaussianMixture.isotropic([[0.0, 0.0]], 0.0)),
    R("GaussianMixture", ValueError, r"^radius must be .*got -1\.0", lambda: dl.GaussianMixture.eight_gaussians(-1.0)),
    R("GaussianMixture", ValueError, r"^n must be in \[1, inf\), got 0", lambda: dl.GaussianMixture.grid(0)),
    R("GaussianMixture", ValueError, r"^n must be in \[1, inf\), got 0", lambda: GMM.sample(0)),
    R("GaussianMixture", ValueError, r"^x must have shape \(B, 2\), got \(2, 3\)", lambda: GMM.log_prob(X)),
    R("GaussianMixture", TypeError, r"^x must be a floating-point tensor", lambda: GMM.score(P2.long())),
    R("GaussianMixture", ValueError, r"^alpha_bar_t must be a finite number in \(0\.0, 1\.0\], got 0\.0",
      lambda: GMM.noised(0.0)),
    R("GaussianMixture", ValueError, r"^sigma must be .*got -1\.0", lambda: GMM.smoothed(-1.0)),
    R("GaussianMixture", ValueError, r"^alpha_bar_t must lie in \[0, 1\]", lambda: GMM.posterior(P2, 1.5)),
    R("GaussianMixture", ValueError, r"^alpha_bar_t must be a number or have shape \(4,\), got \(3,\)",
      lambda: GMM.posterior(P2, torch.full((3,), 0.5))),
    R("GaussianMixture", TypeError, r"^alpha_bar_t must be a number or a tensor, got str",
      lambda: GMM.posterior(P2, "0.5")),
    R("GaussianMixture", TypeError, r"^sched must be a diffusion_lite\.Schedule, got str",
      lambda: GMM.oracle("linear")),
    R("GaussianMixture", ValueError, r"^n must be in \[2, inf\), got 1", lambda: GMM.bayes_floor(S, 1)),
    R("GaussianMixture", ValueError, r"^reduction must be 'mean' or 'sum', got 'max'",
      lambda: GMM.bayes_floor(S, 10, reduction="max")),
    R("MixtureOracle", ValueError, T_RANGE + r" from 11", lambda: ORACLE(P2, 11)),
    R("MixtureOracle", ValueError, r"^x_t must have shape \(B, 2\), got \(2, 3\)", lambda: ORACLE(X, 1)),
    R("MixtureOracle", TypeError, r"^gmm must be a GaussianMixture, got str", lambda: dl.MixtureOracle("gmm", S)),
    R("MixtureOracle", TypeError, r"^sched must be a diffusion_lite\.Schedule, got int",
      lambda: dl.MixtureOracle(GMM, 1000)),
    # ---------------------------------------------------------------------------- discrete samplers
    R("timesteps", ValueError, r"^T must be in \[1, inf\), got 0", lambda: dl.timesteps(0, 1)),
    R("timesteps", ValueError, r"^steps must be in \[1, 10\], got 11", lambda: dl.timesteps(10, 11)),
    R("timesteps", ValueError, r"^steps must be in \[1, 10\], got 0", lambda: dl.timesteps(10, 0)),
    R("timesteps", ValueError, r"^spacing must be one of \('trailing', 'leading', 'linspace', 'quadratic'\), "
                               r"got 'cosine'", lambda: dl.timesteps(10, 5, "cosine")),
    R("timesteps", TypeError, r"^steps must be an int, got float", lambda: dl.timesteps(10, 5.0)),
    R("respace", ValueError, r"^ts, a timestep sequence, must be 1-D and strictly descending, got \[1, 5\]",
      lambda: dl.respace(S, torch.tensor([1, 5]))),
    R("respace", TypeError, r"^ts must be an int or an integer tensor, got list", lambda: dl.respace(S, [5, 1])),
    R("respace", ValueError, r"^ts must lie in \[1, 10\]", lambda: dl.respace(S, torch.tensor([10, 0]))),
    R("respace", TypeError, r"^sched must be", lambda: dl.respace("linear", torch.tensor([5, 1]))),
    R("ddpm_step", ValueError, T1_RANGE + r" from 0", lambda: dl.ddpm_step(X, 0, X, S)),
    R("ddpm_step", ValueError, r"^variance must be one of \('beta_tilde', 'beta'\), got 'fixed_large'",
      lambda: dl.ddpm_step(X, 2, X, S, variance="fixed_large")),
    R("ddpm_step", ValueError, r"^clip_x0 must be .*\(0\.0, inf\], got 0\.0",
      lambda: dl.ddpm_step(X, 2, X, S, clip_x0=0)),
    R("ddpm_step", ValueError, r"^eps_hat and x_t must have the same shape, got \(2, 4\) and \(2, 3\)",
      lambda: dl.ddpm_step(torch.zeros(2, 4), 2, X, S)),
    R("ddpm_step", ValueError, r"^eps_hat and x_t must be on the same device, got meta and cpu",
      lambda: dl.ddpm_step(META, 2, X, S)),
    R("ddpm_step", ValueError, r"^generator is on cpu but the samples are on meta",
      lambda: dl.ddpm_step(META, 2, META, S, generator=gen())),
    R("ddpm_step", TypeError, r"^generator must be a torch\.Generator or None, got str",
      lambda: dl.ddpm_step(X, 2, X, S, generator="seed")),
    R("ddpm_step", ValueError, r"^t has 3 timesteps but x_t has batch size 2",
      lambda: dl.ddpm_step(X, torch.tensor([1, 2, 3]), X, S)),
    R("ddpm_step", TypeError, r"^x_t must be a floating-point tensor", lambda: dl.ddpm_step(X, 2, X.int(), S)),
    R("ddim_variance", ValueError, r"^eta must be a finite number in \[0\.0, 1\.0\], got -0\.1",
      lambda: dl.ddim_variance(5, 2, S, eta=-0.1)),
    R("ddim_variance", ValueError, r"^eta must be .*got 1\.5", lambda: dl.ddim_variance(5, 2, S, eta=1.5)),
    R("ddim_variance", ValueError, r"^t_prev must be smaller than t, got t=2, t_prev=5",
      lambda: dl.ddim_variance(2, 5, S, 0.0)),
    R("ddim_step", ValueError, r"^t_prev must be smaller than t, got t=5, t_prev=5",
      lambda: dl.ddim_step(X, 5, 5, X, S)),
    R("ddim_step", ValueError, r"^t_prev must lie in \[0, 10\].*from -1", lambda: dl.ddim_step(X, 5, -1, X, S)),
    R("ddim_step", ValueError, r"^eta must be a finite number.*got nan", lambda: dl.ddim_step(X, 5, 2, X, S, eta=NAN)),
    R("ddim_step", ValueError, r"^t_prev has 3 timesteps but x_t has batch size 2",
      lambda: dl.ddim_step(X, 5, torch.tensor([1, 2, 3]), X, S)),
    R("ddim_step", TypeError, r"^generator must be a torch\.Generator or None, got int",
      lambda: dl.ddim_step(X, 5, 2, X, S, eta=0.5, generator=123)),
    R("ddim_step", ValueError, r"^generator is on cpu but the samples are on meta",
      lambda: dl.ddim_step(META, 5, 2, META, S, eta=0.5, generator=gen())),
    R("sample", ValueError, r"^method must be one of \('ddpm', 'ddim', 'euler', 'heun', 'dpm_solver_pp_2m'\), "
                            r"got 'plms'", lambda: dl.sample(ORACLE, S, (2, 2), 3, method="plms")),
    R("sample", TypeError, r"unexpected keyword argument 'bogus'", lambda: dl.sample(ORACLE, S, (2, 2), 3, bogus=1)),
    R("sample", ValueError, r"^eta must be .*got 2\.0", lambda: dl.sample(ORACLE, S, (2, 2), 3, eta=2.0)),
    R("sample_ddpm", TypeError, r"^model must be callable as model\(x_t, t, cond=None\), got str",
      lambda: dl.sample_ddpm("model", S, (2, 2))),
    R("sample_ddpm", ValueError, r"^steps must be in \[1, 10\], got 11",
      lambda: dl.sample_ddpm(ORACLE, S, (2, 2), 11)),
    R("sample_ddpm", ValueError, r"^steps must be in \[1, 10\], got 0", lambda: dl.sample_ddpm(ORACLE, S, (2, 2), 0)),
    R("sample_ddpm", ValueError, r"^variance must be one of", lambda: dl.sample_ddpm(ORACLE, S, (2, 2), 3, variance="x")),
    R("sample_ddpm", ValueError, r"^spacing must be one of",
      lambda: dl.sample_ddpm(ORACLE, S, (2, 2), 3, spacing="log")),
    R("sample_ddim", ValueError, r"^eta must be .*\[0\.0, 1\.0\], got -1\.0",
      lambda: dl.sample_ddim(ORACLE, S, (2, 2), 3, eta=-1.0)),
    R("sample_ddim", ValueError, r"^eta must be .*got 2\.0", lambda: dl.sample_ddim(ORACLE, S, (2, 2), 3, eta=2.0)),
    R("sample_ddim", TypeError, r"^x_T must be a tensor or a shape \(tuple of positive ints\), got \(2, 0\)",
      lambda: dl.sample_ddim(ORACLE, S, (2, 0), 3)),
    R("sample_ddim", TypeError, r"^x_T must be a tensor or a shape", lambda: dl.sample_ddim(ORACLE, S, "noise", 3)),
    R("sample_ddim", TypeError, r"^x_T must be a floating-point tensor",
      lambda: dl.sample_ddim(ORACLE, S, P2.long(), 3)),
    R("sample_ddim", ValueError, r"^x_T is empty", lambda: dl.sample_ddim(ORACLE, S, torch.zeros(0, 2), 3)),
    R("sample_ddim", ValueError, r"^x_T contains NaN", lambda: dl.sample_ddim(ORACLE, S, torch.full((2, 2), NAN), 3)),
    R("sample_ddim", ValueError, r"^steps, a timestep sequence, must be 1-D and strictly descending, got \[1, 5\]",
      lambda: dl.sample_ddim(ORACLE, S, (2, 2), torch.tensor([1, 5]))),
    R("sample_ddim", ValueError, r"^steps must lie in \[1, 10\].*from 5 to 11",
      lambda: dl.sample_ddim(ORACLE, S, (2, 2), torch.tensor([11, 5]))),
    R("sample_ddim", ValueError, r"^model\(x_t, t\) must return a tensor shaped like x_t \(2, 2\), got \(2, 1\)",
      lambda: dl.sample_ddim(lambda x_t, t: x_t[:, :1], S, (2, 2), 3)),
    R("sample_ddim", TypeError, r"^generator must be a torch\.Generator or None, got int",
      lambda: dl.sample_ddim(ORACLE, S, (2, 2), 3, generator=0)),
    R("sample_ddim", TypeError, r"^sched must be", lambda: dl.sample_ddim(ORACLE, "linear", (2, 2), 3)),
    R("ddim_invert", TypeError, r"^x0 must be a floating-point tensor",
      lambda: dl.ddim_invert(ORACLE, S, P2.long(), 3)),
    R("ddim_invert", ValueError, r"^steps must be in \[1, 10\], got 0", lambda: dl.ddim_invert(ORACLE, S, P2, 0)),
    R("ddim_invert", TypeError, r"^model must be callable", lambda: dl.ddim_invert(None, S, P2, 3)),
    R("slerp", ValueError, r"^z0 and z1 must have the same shape", lambda: dl.slerp(X, X[:1], 0.5)),
    R("slerp", ValueError, r"^alpha must be .*\[0\.0, 1\.0\], got 1\.5", lambda: dl.slerp(X, X, 1.5)),
    R("slerp", ValueError, r"^z0 and z1 must be on the same device, got cpu and meta", lambda: dl.slerp(X, META, 0.5)),
    # ---------------------------------------------------------------------------- ODE samplers, Langevin
    R("ode_sigmas", TypeError, r"^sched must be", lambda: dl.ode_sigmas("linear", torch.tensor([5, 1]))),
    R("ode_sigmas", ValueError, r"^ts must lie in \[1, 10\].*from 20 to 20",
      lambda: dl.ode_sigmas(S, torch.tensor([20]))),
    R("ode_sigmas", ValueError, r"^ts, a timestep sequence, must be 1-D and strictly descending",
      lambda: dl.ode_sigmas(S, torch.tensor([1, 5]))),
    R("sample_euler", ValueError, r"^steps must be in \[1, 10\], got 11",
      lambda: dl.sample_euler(ORACLE, S, (2, 2), 11)),
    R("sample_heun", ValueError, r"^spacing must be one of",
      lambda: dl.sample_heun(ORACLE, S, (2, 2), 3, spacing="x")),
    R("sample_heun", TypeError, r"^x_T must be a floating-point tensor",
      lambda: dl.sample_heun(ORACLE, S, P2.int(), 3)),
    R("sample_dpm_solver_pp_2m", TypeError, r"^model must be callable",
      lambda: dl.sample_dpm_solver_pp_2m("model", S, (2, 2), 3)),
    R("sample_dpm_solver_pp_2m", ValueError, r"^x_T must have at least 1 dimension",
      lambda: dl.sample_dpm_solver_pp_2m(ORACLE, S, torch.tensor(0.5), 3)),
    R("langevin", TypeError, r"^score_fn must be callable as score_fn\(x\), got str",
      lambda: dl.langevin("score", P2, 0.1, 5)),
    R("langevin", ValueError, r"^step_size must be .*\(0\.0, inf\], got 0\.0",
      lambda: dl.langevin(GMM.score, P2, 0.0, 5)),
    R("langevin", ValueError, r"^n_steps must be in \[1, inf\), got 0", lambda: dl.langevin(GMM.score, P2, 0.1, 0)),
    R("langevin", TypeError, r"^x must be a floating-point tensor", lambda: dl.langevin(GMM.score, P2.int(), 0.1, 5)),
    R("langevin", ValueError, r"^score_fn must return a tensor shaped like x \(4, 2\), got \(4, 1\)",
      lambda: dl.langevin(lambda x: x[:, :1], P2, 0.1, 5)),
    R("langevin", TypeError, r"^generator must be a torch\.Generator or None, got str",
      lambda: dl.langevin(GMM.score, P2, 0.1, 5, generator="g")),
    R("annealed_langevin", ValueError, r"^sigmas must be positive and strictly decreasing, got \[1\.0, 2\.0\]",
      lambda: dl.annealed_langevin(lambda x, s: -x, P2, [1.0, 2.0], 1, 0.1)),
    R("annealed_langevin", ValueError, r"^sigmas must be positive.*got \[1\.0, -1\.0\]",
      lambda: dl.annealed_langevin(lambda x, s: -x, P2, [1.0, -1.0], 1, 0.1)),
    R("annealed_langevin", TypeError, r"^sigmas must be a sequence or tensor of numbers, got str",
      lambda: dl.annealed_langevin(lambda x, s: -x, P2, "1, 0.1", 1, 0.1)),
    R("annealed_langevin", ValueError, r"^steps_per_level must be in \[1",
      lambda: dl.annealed_langevin(lambda x, s: -x, P2, [1.0, 0.1], 0, 0.1)),
    R("annealed_langevin", ValueError, r"^eps_step must be .*got 0\.0",
      lambda: dl.annealed_langevin(lambda x, s: -x, P2, [1.0, 0.1], 1, 0.0)),
    R("annealed_langevin", TypeError, r"^score_fn must be callable",
      lambda: dl.annealed_langevin(None, P2, [1.0], 1, 0.1)),
    # ---------------------------------------------------------------------------- shared recipes (chapter 07)
    R("mnist_ddpm_recipe", ValueError, r"^profile must be one of \('smoke', 'cpu', 'gpu'\) or None, got 'fast'",
      lambda: recipes.mnist_ddpm_recipe("fast")),
    R("mnist_judge_config", ValueError, r"^profile must be one of", lambda: recipes.mnist_judge_config("tiny")),
    R("load_mnist_judge", ValueError, r"^profile must be one of", lambda: recipes.load_mnist_judge("laptop")),
    R("load_training_data", TypeError, r"^recipe must be a Recipe, got str", lambda: recipes.load_training_data("r")),
    R("training_seconds", TypeError, r"^recipe must be a Recipe, got NoneType",
      lambda: recipes.training_seconds(None)),
    R("load_or_train_mnist_ddpm", TypeError, r"^recipe must be a Recipe or None, got str",
      lambda: recipes.load_or_train_mnist_ddpm("smoke")),
    R("load_or_train_mnist_ddpm", ValueError, r"^weights must be 'ema' or 'raw', got 'best'",
      lambda: recipes.load_or_train_mnist_ddpm(recipes.mnist_ddpm_recipe("smoke"), weights="best")),
]

# Inputs that once slipped through, fixed in unet.py, mlp.py, checkpoint.py and recipes.py.
ROWS += [
    R("count_parameters", TypeError, r"^model must be a torch\.nn\.Module", lambda: dl.count_parameters("model")),
    R("unet_block_report", TypeError, r"^x_shape must be", lambda: dl.unet_block_report(UNET, "1x1x8x8")),
    R("MLPDenoiser", ValueError, r"x_t .*device", lambda: MLP(torch.empty(4, 2, device="meta"), 1)),
    R("UNet", ValueError, r"x_t .*device", lambda: UNET(torch.empty(2, 1, 8, 8, device="meta"), 1)),
    R("load_checkpoint", TypeError, r"^path must be", lambda: dl.load_checkpoint(None)),
    R("Recipe", ValueError, r"^T must be", lambda: dataclasses.replace(recipes.mnist_ddpm_recipe("smoke"), T=0)),
    R("checkpoint_path", TypeError, r"^recipe must be a Recipe", lambda: recipes.checkpoint_path("r", DS)),
    # names made public by the package layout
    R("check_schedule", TypeError, r"^sched must be a diffusion_lite\.Schedule, got str", lambda: dl.check_schedule("S")),
    R("reverse_variance", ValueError, r"^variance must be one of \('beta_tilde', 'beta'\), got 'learned'",
      lambda: dl.reverse_variance("learned", 2, X, S)),
    R("reverse_variance", TypeError, r"^sched must be", lambda: dl.reverse_variance("beta", 2, X, None)),
    R("update_ema", TypeError, r"^ema must be a torch\.nn\.Module, got dict", lambda: dl.update_ema({}, MLP, 0.9)),
    R("update_ema", ValueError, r"^decay must be a finite number in \[0\.0, 1\.0\], got 1\.5",
      lambda: dl.update_ema(MLP, MLP, 1.5)),
    R("update_ema", ValueError, r"^ema and model must have the same parameters",
      lambda: dl.update_ema(MLP, UNET, 0.9)),
    R("learning_rate", TypeError, r"^config must be a TrainConfig, got dict", lambda: dl.learning_rate({}, 1)),
    R("learning_rate", ValueError, r"^step must be in \[1, 10\], got 11",
      lambda: dl.learning_rate(dl.TrainConfig(steps=10, warmup_steps=2), 11)),
    R("data_root", TypeError, r"^root must be a path", lambda: dl.data_root(3)),
    R("read_idx", ValueError, r"IDX", lambda: dl.read_idx(b"\x00\x00")),
    R("TimeEmbedding", ValueError, r"^sinusoid_dim must be even", lambda: dl.TimeEmbedding(7, 16)),
    R("TimeEmbedding", ValueError, r"^out_dim must be in \[1, inf\), got 0", lambda: dl.TimeEmbedding(8, 0)),
    R("ResBlock", ValueError, r"^ch_out \(12\) must be a multiple of groups \(8\)", lambda: dl.ResBlock(16, 12, 32, 8, 0.0)),
    R("ResBlock", ValueError, r"^dropout must be", lambda: dl.ResBlock(16, 16, 32, 8, 1.0)),
    R("AttentionBlock", ValueError, r"^channels \(30\) must be a multiple of heads \(4\)",
      lambda: dl.AttentionBlock(30, heads=4, groups=2)),
    R("classifier_free_guidance", TypeError, r"^model must be callable", lambda: dl.classifier_free_guidance(3, 1.0)),
    R("classifier_free_guidance", ValueError, r"^w must be a finite number", lambda: dl.classifier_free_guidance(ORACLE, NAN)),
    R("classifier_free_guidance", ValueError, r"^interval must have t_lo <= t_hi",
      lambda: dl.classifier_free_guidance(ORACLE, 2.0, interval=(5, 2))),
    R("classifier_free_guidance", TypeError, r"has no drop_cond.*pass null_cond",
      lambda: dl.classifier_free_guidance(ORACLE, 2.0)(X, torch.ones(2, dtype=torch.long), X)),
    R("AttentionBlock", TypeError, r"^heads must be an int", lambda: dl.AttentionBlock(32, heads=2.0, groups=8)),
]

# Chapters 14-15 (evaluation; GAN and VAE): metrics, their helpers, and the comparison models.
F_A, F_B = torch.randn(30, 3, generator=gen(1)), torch.randn(30, 4, generator=gen(2))
P_PROBS = torch.full((6, 3), 1 / 3)
ROWS += [
    R("judge_fid", ValueError, r"^features1 has 4 samples of dimension 64; .*more samples than dimensions",
      lambda: dl.judge_fid(JUDGE, DIGITS, DIGITS)),
    R("judge_fid", TypeError, r"^model must be a judge", lambda: dl.judge_fid(MLP, DIGITS, DIGITS)),
    R("fid_from_features", ValueError, r"^features1 and features2 must have the same feature dimension, got 3 and 4",
      lambda: dl.fid_from_features(F_A, F_B)),
    R("fid_from_features", ValueError, r"^features1 has 2 samples of dimension 3",
      lambda: dl.fid_from_features(FEATS[:2], FEATS, allow_singular=False)),
    R("fid_from_features", ValueError, r"^features2 contains NaN", lambda: dl.fid_from_features(FEATS, FEATS * NAN)),
    R("fid_infinity", ValueError, r"^sizes needs at least two different sample sizes",
      lambda: dl.fid_infinity(FEATS, FEATS, sizes=(10, 10))),
    R("fid_infinity", ValueError, r"^sizes must be in \[4, 20\], got 3", lambda: dl.fid_infinity(FEATS, FEATS, (3, 10))),
    R("fid_infinity", ValueError, r"^features_real has 3 samples", lambda: dl.fid_infinity(FEATS, FEATS[:3], (5, 10))),
    R("fid_infinity", ValueError, r"must have the same feature dimension", lambda: dl.fid_infinity(F_A, F_B, (5, 10))),
    R("precision_recall", ValueError, r"^real and fake must have the same feature dimension, got 3 and 4",
      lambda: dl.precision_recall(F_A, F_B)),
    R("precision_recall", ValueError, r"^k must be in \[1, 29\], got 30", lambda: dl.precision_recall(F_A, F_A, k=30)),
    R("precision_recall", ValueError, r"^fake contains NaN", lambda: dl.precision_recall(F_A, F_A * NAN)),
    R("density_coverage", ValueError, r"^real and fake must have shape \(N, F\)",
      lambda: dl.density_coverage(IMG, IMG)),
    R("density_coverage", TypeError, r"^k must be an int", lambda: dl.density_coverage(F_A, F_A, k=2.0)),
    R("knn_radii", ValueError, r"^k must be in \[1, 29\], got 0", lambda: dl.knn_radii(F_A, 0)),
    R("inception_score", ValueError, r"^probs must be probabilities", lambda: dl.inception_score(P_PROBS * 2)),
    R("inception_score", ValueError, r"^splits must be in \[1, 6\], got 7", lambda: dl.inception_score(P_PROBS, 7)),
    R("inception_score", ValueError, r"^probs contains NaN", lambda: dl.inception_score(P_PROBS * NAN)),
    R("judge_inception_score", TypeError, r"^judge must be an MNISTJudge", lambda: dl.judge_inception_score(3, DIGITS)),
    R("judge_inception_score", ValueError, r"^x must have at least 4 dimension", lambda: dl.judge_inception_score(JUDGE, X)),
    R("sliced_wasserstein", ValueError, r"^x and y must have the same number of points, got 4 and 2",
      lambda: dl.sliced_wasserstein(P2, P2[:2])),
    R("sliced_wasserstein", ValueError, r"^projections must be in \[1, inf\)", lambda: dl.sliced_wasserstein(P2, P2, 0)),
    R("sliced_wasserstein", ValueError, r"^x and y must be point sets", lambda: dl.sliced_wasserstein(P2, F_A[:4])),
    R("energy_distance", ValueError, r"^y contains NaN", lambda: dl.energy_distance(P2, P2 * NAN)),
    R("energy_distance", ValueError, r"^x and y need at least 2 points", lambda: dl.energy_distance(P2[:1], P2)),
    R("distance_floor", TypeError, r"^distance and draw must be callables", lambda: dl.distance_floor(3, GMM.sample, 10)),
    R("distance_floor", ValueError, r"^repeats must be in \[2, inf\)",
      lambda: dl.distance_floor(dl.energy_distance, GMM.sample, 10, repeats=1)),
    R("mode_coverage", ValueError, r"^std must be a finite number in \(0\.0, inf\]",
      lambda: dl.mode_coverage(P2, GMM.means, std=0.0)),
    R("mode_coverage", ValueError, r"^x \(N, D\) and means \(K, D\) must share D",
      lambda: dl.mode_coverage(F_A, GMM.means, std=0.1)),
    R("mode_coverage", ValueError, r"^weights must have shape \(2,\)",
      lambda: dl.mode_coverage(P2, GMM.means, std=0.1, weights=torch.ones(3))),
]

# Public names with nothing to validate (constants, exceptions, result tuples) or no arguments.
NO_ARGUMENTS = {
    "PROFILES", "GARBAGE_KINDS", "VARIANCES", "SAMPLERS",            # constants
    "CheckpointError", "DatasetNotFoundError", "DownloadError",      # exception classes
    "TrainResult", "StepOutput", "SampleOutput", "InversionOutput",  # result containers
    "KID", "Estimate", "MixturePosterior",
    "hardware", "cache_dir", "Stopwatch",                            # no arguments / any label is fine
}
NO_ARGUMENTS |= {"FIDInfinity", "PrecisionRecall", "DensityCoverage", "InceptionScore", "Floor",  # chapters 14-15
                 "ModeCoverage"}                                                          # result tuples
MIN_ROWS = 335  # the table's size when it was written: grow it, never shrink it


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_rejected_clearly(row: Row):
    with pytest.raises(row.exc, match=row.match):
        row.call()


def test_the_table_cannot_silently_shrink():
    assert len(ROWS) >= MIN_ROWS, f"the bad-input table has {len(ROWS)} rows, fewer than {MIN_ROWS}"


def test_every_public_callable_has_a_row():
    public = set(dl.__all__) | {name for name in getattr(recipes, "__all__", ())}
    covered = {r.target for r in ROWS}
    missing = sorted(public - covered - NO_ARGUMENTS)
    assert not missing, f"public names without a bad-input row in tests/test_bad_inputs.py: {missing}"

