"""The training loop: determinism, exact resume, learning, EMA, clear failures."""
import pytest
import torch
from torch import nn

from diffusion_lite.checkpoint import load_checkpoint
from diffusion_lite.nets.mlp import MLPConfig, MLPDenoiser
from diffusion_lite.core.schedules import Schedule
from diffusion_lite.training.train import TrainConfig, learning_rate, loss_weight, train, update_ema
from diffusion_lite import UNet, UNetConfig

SCHED = Schedule.linear(T=100, beta_1=1e-3, beta_T=0.2)
TOY = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]).repeat(16, 1)  # (64, 2): 4 points



def mlp(seed=0) -> MLPDenoiser:
    torch.manual_seed(seed)
    return MLPDenoiser(MLPConfig(dim=2, hidden=32, depth=2, time_embed_dim=16))


def tiny_unet(seed=0) -> UNet:
    torch.manual_seed(seed)
    return UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), attention_heads=2,
                           num_classes=3, dropout=0.1))


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_same_seed_same_history_bitwise():
    config = TrainConfig(steps=25, batch_size=16, lr=1e-3, warmup_steps=5)
    a = train(mlp(), TOY, SCHED, config, progress=False)
    b = train(mlp(), TOY, SCHED, config, progress=False)
    assert a.history == b.history and len(a.history) == 25 and a.steps_done == 25
    c = train(mlp(), TOY, SCHED, TrainConfig(steps=25, batch_size=16, lr=1e-3, warmup_steps=5, seed=1),
              progress=False)
    assert c.history != a.history  # the seed does drive the batches, t and eps


def test_callers_rng_is_untouched():
    model = mlp()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train(model, TOY, SCHED, TrainConfig(steps=3, batch_size=4), progress=False)
    assert torch.equal(torch.get_rng_state(), before)


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    """20 steps straight == 10 steps, stop, resume for 10: same losses, weights and EMA, bit for bit.

    Class-conditional U-Net with label dropout (batch generator) and dropout (global RNG)."""
    data = torch.rand(12, 1, 8, 8) * 2 - 1
    labels = torch.arange(12) % 3
    config = TrainConfig(steps=20, batch_size=4, lr=1e-3, warmup_steps=4, p_uncond=0.3, ema_decay=0.9,
                         checkpoint_every=5)
    straight = tiny_unet()
    full = train(straight, data, SCHED, config, cond=labels, progress=False)

    path = tmp_path / "run.pt"
    first = train(tiny_unet(), data, SCHED, TrainConfig(**{**config.__dict__, "steps": 10}), cond=labels,
                  checkpoint_path=path, progress=False)
    assert first.history == full.history[:10]
    resumed_model = tiny_unet(seed=99)  # other initial weights: everything must come from the checkpoint
    second = train(resumed_model, data, SCHED, config, cond=labels, checkpoint_path=path, progress=False)
    assert second.resumed_from == 10
    assert second.history == full.history
    assert same_weights(resumed_model, straight)
    assert same_weights(second.ema_model, full.ema_model)
    assert not same_weights(second.ema_model, resumed_model)  # EMA is a separate, lagging copy

    state, meta = load_checkpoint(path)
    assert state["step"] == 20 and state["history"] == full.history and meta["config"]["steps"] == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no temp or lock files left

    # a finished checkpoint is just loaded: no training, same result
    again = train(tiny_unet(seed=5), data, SCHED, config, cond=labels, checkpoint_path=path, progress=False)
    assert again.history == full.history and again.resumed_from == 20
    assert same_weights(again.ema_model, full.ema_model)


def test_resume_refuses_a_different_config(tmp_path):
    path = tmp_path / "run.pt"
    train(mlp(), TOY, SCHED, TrainConfig(steps=3, batch_size=4), checkpoint_path=path, progress=False)
    with pytest.raises(ValueError, match=r"cannot resume .*\['lr'\].*resume=False"):
        train(mlp(), TOY, SCHED, TrainConfig(steps=6, batch_size=4, lr=1e-3), checkpoint_path=path, progress=False)
    fresh = train(mlp(), TOY, SCHED, TrainConfig(steps=6, batch_size=4, lr=1e-3), checkpoint_path=path,
                  resume=False, progress=False)
    assert fresh.resumed_from == 0 and len(fresh.history) == 6


def test_learning_rate_warmup_then_cosine_decay():
    flat = TrainConfig(steps=100, lr=1e-3, warmup_steps=10)
    cos = TrainConfig(steps=100, lr=1e-3, warmup_steps=10, lr_decay="cosine")
    for c in (flat, cos):  # the same linear warm-up: lr * s / warmup
        assert [learning_rate(c, s) for s in (1, 5, 10)] == pytest.approx([1e-4, 5e-4, 1e-3])
    assert all(learning_rate(flat, s) == 1e-3 for s in range(10, 101))
    decay = [learning_rate(cos, s) for s in range(10, 101)]
    assert all(a > b for a, b in zip(decay, decay[1:]))  # strictly decreasing after warm-up
    assert learning_rate(cos, 55) == pytest.approx(0.5e-3)  # half-way through the decay: half the peak
    assert learning_rate(cos, 100) == pytest.approx(0.0, abs=1e-15)  # reaches 0 at the last step


def test_cosine_decay_resume_needs_the_same_total_steps(tmp_path):
    """With a cosine decay the lr depends on `steps`, so a checkpoint continues only the same run."""
    path = tmp_path / "run.pt"
    config = TrainConfig(steps=12, batch_size=4, warmup_steps=2, lr_decay="cosine")
    train(mlp(), TOY, SCHED, TrainConfig(**{**config.__dict__, "steps": 6}), checkpoint_path=path, progress=False)
    with pytest.raises(ValueError, match=r"cannot resume .*\['steps'\]"):
        train(mlp(), TOY, SCHED, config, checkpoint_path=path, progress=False)
    # (without a decay, growing `steps` continues a run: see test_resume_reproduces_the_uninterrupted_run)
    resumed = train(mlp(), TOY, SCHED, config, checkpoint_path=path, resume=False, progress=False)
    assert resumed.resumed_from == 0 and len(resumed.history) == 12


def test_min_snr_weights():
    """w_t = min(SNR, gamma) / SNR for eps; the v-loss weight gives the same objective in eps terms."""
    t = torch.arange(1, SCHED.T + 1)
    snr = SCHED.snr[t]
    assert loss_weight(TrainConfig(), t, SCHED) is None  # L_simple: uniform
    w = loss_weight(TrainConfig(min_snr_gamma=5.0), t, SCHED).double()
    noisy = snr <= 5.0
    assert noisy.any() and (~noisy).any()  # the test schedule has both kinds of t
    assert torch.allclose(w[noisy], torch.ones_like(w[noisy]))
    assert torch.allclose(w[~noisy], 5.0 / snr[~noisy], rtol=1e-6)
    w_v = loss_weight(TrainConfig(min_snr_gamma=5.0, prediction="v"), t, SCHED).double()
    # ||v - v_hat||^2 = (SNR + 1) / SNR * ||eps - eps_hat||^2, so w_v * (SNR + 1) / SNR must equal w
    assert torch.allclose(w_v * (snr + 1) / snr, w, rtol=1e-6)


def test_min_snr_training_learns_and_differs_from_l_simple():
    plain = train(mlp(), TOY, SCHED, TrainConfig(steps=60, batch_size=32, lr=3e-3, warmup_steps=5), progress=False)
    weighted = train(mlp(), TOY, SCHED, TrainConfig(steps=60, batch_size=32, lr=3e-3, warmup_steps=5,
                                                    min_snr_gamma=1.0), progress=False)
    assert weighted.history != plain.history  # same batches, other weights
    assert sum(weighted.history[-10:]) < sum(weighted.history[:10])  # and it still learns


def test_adam_beta2_reaches_the_optimizer(tmp_path):
    config = TrainConfig(steps=20, batch_size=16, lr=3e-3, warmup_steps=2)
    default = train(mlp(), TOY, SCHED, config, progress=False)
    fast = train(mlp(), TOY, SCHED, TrainConfig(**{**config.__dict__, "adam_beta2": 0.9}),
                 checkpoint_path=tmp_path / "b2.pt", progress=False)
    assert load_checkpoint(tmp_path / "b2.pt")[0]["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.9)
    assert default.history[0] == fast.history[0] and default.history != fast.history  # same start, other steps


def test_channels_last_same_maths_other_layout(tmp_path):
    """NHWC training follows the NCHW run up to float rounding, is itself deterministic, and saves
    weights a fresh (NCHW) model loads."""
    def unet(seed=0):  # no dropout: its masks would be drawn in another memory order
        torch.manual_seed(seed)
        return UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), attention_heads=2))

    data = torch.rand(12, 1, 8, 8) * 2 - 1
    config = TrainConfig(steps=6, batch_size=4, lr=1e-3, warmup_steps=2)
    nchw = train(unet(), data, SCHED, config, progress=False)
    cl_config = TrainConfig(**{**config.__dict__, "channels_last": True})
    model = unet()
    nhwc = train(model, data, SCHED, cl_config, checkpoint_path=tmp_path / "cl.pt", progress=False)
    again = train(unet(), data, SCHED, cl_config, progress=False)
    assert model.stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert nhwc.history == again.history  # deterministic in its own layout
    assert nhwc.history == pytest.approx(nchw.history, rel=1e-4)  # and the same maths
    fresh = unet(seed=9)
    fresh.load_state_dict(load_checkpoint(tmp_path / "cl.pt")[0]["model"])
    assert same_weights(fresh, model)


def test_loss_decreases_on_toy_data():
    """Four points: after training, eps is far more predictable than at the start (loss ~ 1)."""
    result = train(mlp(), TOY, SCHED, TrainConfig(steps=300, batch_size=64, lr=3e-3, warmup_steps=20),
                   progress=False)
    first, last = result.history[:20], result.history[-50:]
    assert sum(last) / len(last) < 0.6 * sum(first) / len(first)


def test_v_prediction_runs_and_differs():
    config = TrainConfig(steps=5, batch_size=8)
    eps = train(mlp(), TOY, SCHED, config, progress=False).history
    v = train(mlp(), TOY, SCHED, TrainConfig(steps=5, batch_size=8, prediction="v"), progress=False).history
    assert len(v) == 5 and v != eps


def test_update_ema_closed_form():
    ema, model = nn.Linear(2, 2), nn.Linear(2, 2)
    old = [p.detach().clone() for p in ema.parameters()]
    update_ema(ema, model, 0.9)
    for e, o, p in zip(ema.parameters(), old, model.parameters()):
        torch.testing.assert_close(e, 0.9 * o + 0.1 * p)


class Overflowing(nn.Module):
    """Predicts 1e30 * x_t: its squared error overflows float32 at the first step."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x_t, t):
        return self.w * x_t * 1e30


def test_non_finite_loss_stops_with_advice():
    with pytest.raises(RuntimeError, match=r"loss is inf at step 1.*learning rate.*amp.*data spans"):
        train(Overflowing(), TOY, SCHED, TrainConfig(steps=5, batch_size=4), progress=False)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="prediction"):
        TrainConfig(prediction="x0")
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(amp="fp8")
    with pytest.raises(ValueError, match="p_uncond > 0 needs cond"):
        train(mlp(), TOY, SCHED, TrainConfig(steps=2, p_uncond=0.1), progress=False)
    with pytest.raises(ValueError, match="cond must be a tensor with one row per data sample"):
        train(tiny_unet(), torch.zeros(4, 1, 8, 8), SCHED, TrainConfig(steps=2), cond=torch.zeros(3), progress=False)
    with pytest.raises(ValueError, match="data contains NaN"):
        train(mlp(), torch.full((4, 2), float("nan")), SCHED, TrainConfig(steps=2), progress=False)
    with pytest.raises(TypeError, match="sched must be"):
        train(mlp(), TOY, "linear", TrainConfig(steps=2), progress=False)


def test_history_is_one_float_per_step_whatever_log_every():
    """Losses stay on the device and are read every log_every steps: the history must not change."""
    config = TrainConfig(steps=23, batch_size=4, lr=1e-3, warmup_steps=4, p_uncond=0.3, ema_decay=0.9)
    data, labels = torch.rand(12, 1, 8, 8) * 2 - 1, torch.arange(12) % 3
    runs = [train(tiny_unet(), data, SCHED, TrainConfig(**{**config.__dict__, "log_every": k}), cond=labels,
                  progress=False) for k in (1, 50, 7)]
    assert runs[0].history == runs[1].history == runs[2].history and len(runs[0].history) == 23
    assert all(type(v) is float for v in runs[1].history)
    assert same_weights(runs[0].ema_model, runs[1].ema_model)


def test_data_placement_and_optimizer_choice_leave_the_cpu_numbers_alone():
    base = train(mlp(), TOY, SCHED, TrainConfig(steps=12, batch_size=8), progress=False)
    for where in ("always", "never"):
        other = train(mlp(), TOY, SCHED, TrainConfig(steps=12, batch_size=8, data_on_device=where), progress=False)
        assert other.history == base.history
    with pytest.raises(ValueError, match="data_on_device must be"):
        TrainConfig(data_on_device="gpu")


def test_new_fields_at_their_defaults_keep_the_cache_keys():
    """Fields added after models were cached stay out of the key at their defaults."""
    from diffusion_lite.checkpoint import config_key
    import dataclasses
    new = [f.name for f in dataclasses.fields(TrainConfig) if not f.metadata.get("key_if_default", True)]
    assert {"compile", "data_on_device", "edm_p_mean", "edm_p_std"} <= set(new)
    assert config_key(TrainConfig()) != config_key(TrainConfig(compile=True))
    assert config_key(TrainConfig()) != config_key(TrainConfig(edm_p_std=1.0))


def test_stop_at_checkpoints_one_run_with_its_cosine_schedule(tmp_path):
    config = TrainConfig(steps=20, batch_size=8, lr=1e-3, warmup_steps=2, lr_decay="cosine", log_every=6)
    full = train(mlp(), TOY, SCHED, config, progress=False)
    path = tmp_path / "run.pt"
    for stop in (5, 9, 20):
        model = mlp() if stop == 5 else mlp(seed=stop)  # resumed legs take everything from the checkpoint
        part = train(model, TOY, SCHED, config, checkpoint_path=path, stop_at=stop, progress=False)
        assert part.history == full.history[:stop] and load_checkpoint(path)[0]["step"] == stop
    assert same_weights(part.ema_model, full.ema_model)
    with pytest.raises(ValueError, match=r"stop_at must be in \[1, 20\]"):
        train(mlp(), TOY, SCHED, config, stop_at=21, progress=False)


class LateOverflow(nn.Module):
    """Finite for the first three calls, then inf: the read every log_every steps must name the step."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.calls = 0

    def forward(self, x_t, t):
        self.calls += 1
        return self.w * x_t * (1e30 if self.calls > 3 else 1.0)


def test_non_finite_loss_is_found_at_the_next_read_and_named():
    with pytest.raises(RuntimeError, match=r"loss is inf at step 4 .*every log_every=5 steps.*steps 1-5"):
        train(LateOverflow(), TOY, SCHED, TrainConfig(steps=12, batch_size=4, log_every=5), progress=False)


def _has_c_compiler() -> bool:
    import shutil
    return any(shutil.which(cc) for cc in ("cc", "gcc", "clang"))


@pytest.mark.skipif(not _has_c_compiler(), reason="torch.compile on the CPU needs a C compiler")
def test_compile_gives_the_same_losses_to_tolerance():
    config = TrainConfig(steps=6, batch_size=16, lr=1e-3, warmup_steps=2)
    eager = train(mlp(), TOY, SCHED, config, progress=False)
    compiled = train(mlp(), TOY, SCHED, TrainConfig(**{**config.__dict__, "compile": True}), progress=False)
    assert compiled.history == pytest.approx(eager.history, rel=1e-4, abs=1e-6)
