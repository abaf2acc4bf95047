"""Same seed, same CPU -> bit-identical results; another seed -> other results (GUIDE section 8).

Samplers take their randomness from an explicit torch.Generator, so two calls with generators
seeded alike must agree bit for bit - whatever the global RNG holds - and a different seed must
change the output (otherwise the seed would not be driving anything and the first check would
prove nothing). Training is seeded by TrainConfig.seed.

tests/test_train.py already covers: same seed -> same loss history for the MLP, and an exact
resume after a clean stop for a class-conditional U-Net. Here: the context-conditioned U-Net
(cross-attention, dropout, condition dropout), and a resume after a *crash* in the middle of a
run (the last periodic checkpoint is older than the crash) for a v-prediction MLP.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

import diffusion_lite as dl

S = dl.Schedule.linear(T=50, beta_1=1e-3, beta_T=0.2)
GMM = dl.GaussianMixture.eight_gaussians(radius=1.5, std=0.2)
SHAPE = (6, 2)



def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_mlp(seed: int = 0) -> dl.MLPDenoiser:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return dl.MLPDenoiser(dl.MLPConfig(dim=2, hidden=16, depth=2, time_embed_dim=8)).eval()


MODELS = {"mlp": tiny_mlp, "oracle": lambda: GMM.oracle(S)}
SAMPLERS = {  # each draws x_T ~ N(0, I) from the generator (a shape is passed), then samples
    "ddpm": lambda m, g: dl.sample_ddpm(m, S, SHAPE, generator=g),
    "ddpm_10_steps": lambda m, g: dl.sample_ddpm(m, S, SHAPE, 10, variance="beta", generator=g),
    "ddim_eta_0.5": lambda m, g: dl.sample_ddim(m, S, SHAPE, 10, eta=0.5, generator=g),
    "dpm_solver_pp_2m": lambda m, g: dl.sample_dpm_solver_pp_2m(m, S, SHAPE, 8, generator=g),
    "heun": lambda m, g: dl.sample_heun(m, S, SHAPE, 5, generator=g),
    "sample(method=ddim)": lambda m, g: dl.sample(m, S, SHAPE, 10, method="ddim", eta=1.0, generator=g),
}


def run(fn, seed: int, global_seed: int) -> torch.Tensor:
    """fn(generator) under a given global RNG state: the result must not depend on the latter."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(global_seed)
        return fn(gen(seed))


def assert_seed_drives(fn) -> None:
    a = run(fn, seed=0, global_seed=1)
    b = run(fn, seed=0, global_seed=2)  # other global RNG state: the explicit generator decides
    c = run(fn, seed=1, global_seed=1)
    assert torch.isfinite(a).all()
    assert torch.equal(a, b), "same seed, different samples"
    assert not torch.equal(a, c), "another seed gave the same samples: the generator is not used"


@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("model", list(MODELS))
def test_samplers_are_bit_identical_for_the_same_seed(model, sampler):
    m = MODELS[model]()
    assert_seed_drives(lambda g: SAMPLERS[sampler](m, g).x0)


def test_sampling_from_a_given_x_T_is_bit_identical():
    """x_T passed in, noise drawn inside the DDPM steps: the trajectory repeats exactly too."""
    m = tiny_mlp()
    x_T = torch.randn(SHAPE, generator=gen(5))
    assert_seed_drives(lambda g: dl.sample_ddpm(m, S, x_T, 10, generator=g, return_trajectory=True).trajectory)


def _mlp_score(m):
    """The score a noise predictor implies at t = 1 (eq-score-eps)."""
    return lambda x: dl.score_from_eps(m(x, 1), 1, x, S)


@pytest.mark.parametrize("model", ["mlp", "oracle"])
def test_langevin_is_bit_identical_for_the_same_seed(model):
    score = GMM.score if model == "oracle" else _mlp_score(tiny_mlp())
    x = torch.zeros(SHAPE)
    assert_seed_drives(lambda g: dl.langevin(score, x, 0.01, 20, generator=g).x0)


def test_annealed_langevin_is_bit_identical_for_the_same_seed():
    x = torch.zeros(SHAPE)
    score = lambda y, sigma: GMM.smoothed(sigma).score(y)  # noqa: E731
    assert_seed_drives(lambda g: dl.annealed_langevin(score, x, [1.0, 0.5, 0.2], 5, 1e-3, generator=g,
                                                      denoise=True).x0)


def test_gmm_draws_are_bit_identical_for_the_same_seed():
    assert_seed_drives(lambda g: GMM.sample(16, g))


# ------------------------------------------------------------------------------------ training
def train_with(model, data, config, **kwargs) -> dl.TrainResult:
    return dl.train(model, data, S, config, progress=False, **kwargs)


def context_unet(seed: int = 0) -> dl.UNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return dl.UNet(dl.UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,),
                                     attention_heads=2, cond_dim=4, dropout=0.1))


def test_context_unet_training_is_bit_identical_for_the_same_seed():
    """Cross-attention U-Net, dropout (global RNG) and condition dropout (batch generator)."""
    data = torch.rand(12, 1, 8, 8, generator=gen(3)) * 2 - 1
    context = torch.randn(12, 3, 4, generator=gen(4))  # (N, L, cond_dim)
    config = dl.TrainConfig(steps=8, batch_size=4, lr=1e-3, warmup_steps=2, p_uncond=0.3, ema_decay=0.9)

    def fit(seed: int, global_seed: int) -> dl.TrainResult:
        model = context_unet()
        torch.manual_seed(global_seed)  # the caller's RNG must not matter: train seeds its own
        return train_with(model, data, dataclasses.replace(config, seed=seed), cond=context)

    with torch.random.fork_rng(devices=[]):
        a, b, c = fit(0, 1), fit(0, 2), fit(1, 1)
    assert a.history == b.history and len(a.history) == 8
    assert all(torch.equal(p, q) for p, q in zip(a.ema_model.state_dict().values(),
                                                  b.ema_model.state_dict().values()))
    assert a.history != c.history


class SimulatedCrash(Exception):
    pass


class CrashingMLP(dl.MLPDenoiser):
    """An MLPDenoiser that raises after `crash_after` forward passes (None: never)."""

    def __init__(self, config, crash_after: int | None = None):
        super().__init__(config)
        self.crash_after, self.calls = crash_after, 0

    def forward(self, x_t, t, cond=None):
        self.calls += 1
        if self.crash_after is not None and self.calls > self.crash_after:
            raise SimulatedCrash(f"crash in forward pass {self.calls}")
        return super().forward(x_t, t, cond)


def crashing_mlp(seed: int, crash_after: int | None = None) -> CrashingMLP:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CrashingMLP(dl.MLPConfig(dim=2, hidden=16, depth=2, time_embed_dim=8), crash_after)


def test_resume_after_a_crash_reproduces_the_uninterrupted_run(tmp_path):
    """v-prediction MLP, checkpoints every 4 steps, a crash in step 11: the file holds step 8, and
    resuming from it repeats steps 9-20 of the uninterrupted run bit for bit."""
    data = GMM.sample(64, gen(6)).float()
    config = dl.TrainConfig(steps=20, batch_size=8, lr=3e-3, warmup_steps=3, grad_clip=None, weight_decay=1e-2,
                            ema_decay=0.8, prediction="v", checkpoint_every=4)
    straight = crashing_mlp(seed=0)
    full = train_with(straight, data, config)

    path = tmp_path / "run.pt"
    with pytest.raises(SimulatedCrash):
        train_with(crashing_mlp(seed=0, crash_after=10), data, config, checkpoint_path=path)
    state, _ = dl.load_checkpoint(path)
    assert state["step"] == 8 and state["history"] == full.history[:8]

    resumed = crashing_mlp(seed=7)  # other initial weights: everything must come from the checkpoint
    second = train_with(resumed, data, config, checkpoint_path=path)
    assert second.resumed_from == 8
    assert second.history == full.history
    for name, p in straight.state_dict().items():
        assert torch.equal(p, resumed.state_dict()[name]), name
    for name, p in full.ema_model.state_dict().items():
        assert torch.equal(p, second.ema_model.state_dict()[name]), name
    assert sorted(f.name for f in tmp_path.iterdir()) == ["run.pt"]  # no lock or temp file left by the crash
