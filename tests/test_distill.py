"""Progressive distillation (training/distill.py) and rectified flow (training/rectified_flow.py, sampling/flow.py)."""
import copy

import pytest
import torch

import diffusion_lite as dl

SCHED = dl.Schedule.linear(T=100, beta_1=1e-3, beta_T=0.2)
GMM = dl.GaussianMixture.isotropic([[-1.0, 0.0], [1.0, 0.5]], 0.3)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_student_grid_nests_in_the_teacher_grid():
    for N, S in [(8, 4), (8, 2), (16, 8), (64, 1), (12, 3)]:
        teacher, student = dl.student_grid(1000, N, S)
        assert teacher[0] == 1000 and teacher[-1] == 0 and student[-1] == 0
        assert len(teacher) == N + 1 and len(student) == S + 1
        assert torch.equal(teacher[:: N // S], student)
        assert torch.equal(student[:-1], dl.timesteps(1000, S))  # what sample_ddim(steps=S) visits


def test_student_steps_must_divide_teacher_steps():
    with pytest.raises(ValueError, match=r"^student_steps must divide teacher_steps \(8\).*got 3"):
        dl.student_grid(1000, 8, 3)
    student = dl.MLPDenoiser(dl.MLPConfig(dim=2, hidden=8, depth=1))
    with pytest.raises(ValueError, match=r"^student_steps must divide teacher_steps \(6\).*got 4"):
        dl.distill(student, GMM.oracle(SCHED), GMM.sample(10, _gen(0)).float(), SCHED, 6, 4,
                   dl.DistillConfig(steps=1), progress=False)
    with pytest.raises(ValueError, match=r"^teacher_steps \(12\) must be divisible by 2\^rounds = 8"):
        dl.progressive_distillation(GMM.oracle(SCHED), student, GMM.sample(10, _gen(0)).float(), SCHED, 12, 3)


@pytest.mark.parametrize("N, S", [(8, 4), (8, 2), (4, 1)])
def test_one_ddim_step_to_the_target_lands_where_the_teacher_does(N, S):
    """eq-distill-target is exact: DDIM with the eps implied by x0_target reproduces the teacher's r steps."""
    teacher = GMM.oracle(SCHED)
    grid, _ = dl.student_grid(SCHED.T, N, S)
    r = N // S
    k = torch.arange(S).repeat(4)                                    # every student step, 4 points each
    t, t_pp = grid[r * k], grid[r * (k + 1)]
    x0 = GMM.sample(len(k), _gen(1))
    z_t = dl.q_sample(x0, t, torch.randn(x0.shape, generator=_gen(2), dtype=x0.dtype), SCHED)
    x0_target, z_pp = dl.distill_target(teacher, z_t, k, grid, r, SCHED)
    # the teacher's r steps, written out with the public sampler step
    z = z_t
    for j in range(r):
        z = dl.ddim_step(teacher(z, grid[r * k + j]), grid[r * k + j], grid[r * k + j + 1], z, SCHED).x_prev
    torch.testing.assert_close(z_pp, z)
    # one student step from t with eps = eps_from_x0(x0_target) lands on z_pp
    last = t_pp == 0
    eps = dl.eps_from_x0(x0_target, t, z_t, SCHED)
    one = dl.ddim_step(eps, t, t_pp, z_t, SCHED).x_prev
    torch.testing.assert_close(one, z_pp, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(x0_target[last], z_pp[last])       # at t'' = 0 the target is the sample


def test_a_round_halves_the_steps_and_matches_the_two_step_target():
    torch.manual_seed(0)
    teacher = GMM.oracle(SCHED)
    student = dl.MLPDenoiser(dl.MLPConfig(dim=2, hidden=64, depth=3, time_embed_dim=32))
    data = GMM.sample(4096, _gen(3)).float()
    grid, _ = dl.student_grid(SCHED.T, 8, 4)
    k = torch.randint(4, (2048,), generator=_gen(4))
    x0 = GMM.sample(2048, _gen(5)).float()
    t = grid[2 * k]
    z_t = dl.q_sample(x0, t, torch.randn(x0.shape, generator=_gen(6)), SCHED)
    _, z_pp = dl.distill_target(teacher, z_t, k, grid, 2, SCHED)

    def gap(model):
        with torch.no_grad():
            one = dl.ddim_step(model(z_t, t), t, grid[2 * (k + 1)], z_t, SCHED).x_prev
        return float((one - z_pp).pow(2).sum(1).mean())

    before = gap(student)
    out = dl.distill(student, teacher, data, SCHED, 8, config=dl.DistillConfig(steps=600, batch_size=256, lr=1e-2),
                     progress=False)
    after = gap(out.student)
    assert out.teacher_steps == 8 and out.student_steps == 4 and len(out.history) == 600
    spread = float(z_pp.var(0).sum())                                # size of the target's variation
    assert after < 0.02 * spread, f"student one-step vs teacher two-step gap {after:.4f} (spread {spread:.3f})"
    assert after < 0.05 * before
    # and as a sampler: 4 student steps from the same x_T land where 8 teacher steps land
    x_T = torch.randn(1000, 2, generator=_gen(7))
    with torch.no_grad():
        x_s = dl.sample_ddim(out.student, SCHED, x_T, 4).x0
    x_t8 = dl.sample_ddim(teacher, SCHED, x_T, 8).x0
    x_t4 = dl.sample_ddim(teacher, SCHED, x_T, 4).x0
    d_student = float((x_s - x_t8).norm(dim=1).mean())
    assert d_student < 0.5 * float((x_t4 - x_t8).norm(dim=1).mean())  # closer to teacher-8 than teacher-4 is


def test_progressive_distillation_rounds_chain():
    torch.manual_seed(0)
    student = dl.MLPDenoiser(dl.MLPConfig(dim=2, hidden=16, depth=1, time_embed_dim=8))
    before = copy.deepcopy(student.state_dict())
    outs = dl.progressive_distillation(GMM.oracle(SCHED), student, GMM.sample(256, _gen(8)).float(), SCHED, 8, 3,
                                       dl.DistillConfig(steps=5, batch_size=16), progress=False)
    assert [(o.teacher_steps, o.student_steps) for o in outs] == [(8, 4), (4, 2), (2, 1)]
    assert len({id(o.student) for o in outs}) == 3  # each round trains its own copy
    assert any(not torch.equal(before[n], p) for n, p in outs[0].student.state_dict().items())


def test_flow_euler_is_exact_for_a_constant_velocity():
    x = torch.randn(5, 3, generator=_gen(9))
    c = torch.tensor([1.0, -2.0, 0.5])
    out = dl.sample_flow(lambda x, s: c.expand_as(x), x, steps=7, return_trajectory=True)
    torch.testing.assert_close(out.x0, x + c)
    assert out.nfe == 7 and out.trajectory.shape == (8, 5, 3)


def test_rectified_flow_learns_a_straight_coupling():
    """Pairs x_data = x_noise + c: the velocity is c everywhere, so one Euler step is exact once it is learned."""
    torch.manual_seed(0)
    c = torch.tensor([2.0, -1.0])
    x_noise = torch.randn(2048, 2, generator=_gen(10))
    v = dl.MLPDenoiser(dl.MLPConfig(dim=2, hidden=32, depth=2, time_embed_dim=16))
    out = dl.train_rectified_flow(v, x_noise, x_noise + c, dl.DistillConfig(steps=300, batch_size=256, lr=3e-3),
                                  progress=False)
    x = torch.randn(500, 2, generator=_gen(11))
    with torch.no_grad():
        err = float((dl.sample_flow(out.student, x, 1).x0 - (x + c)).norm(dim=1).mean())
    assert err < 0.1, f"one Euler step misses the straight path by {err:.3f}"
    assert out.history[-1] < 0.1 * out.history[0]


def test_distill_weight_turns_the_x0_error_into_the_step_output_error():
    """omega_t |x0_hat - x0_target|^2 = |z_t''(student step) - z_t''(target step)|^2 for any x0_hat (eq-distill-loss)."""
    t, t_pp = torch.tensor([100, 60, 20]), torch.tensor([60, 20, 0])
    z_t = torch.randn(3, 2, generator=_gen(12), dtype=torch.float64)
    x0_a, x0_b = torch.randn(3, 2, generator=_gen(13), dtype=torch.float64), torch.randn(3, 2, generator=_gen(14), dtype=torch.float64)
    step = lambda x0: dl.ddim_step(dl.eps_from_x0(x0, t, z_t, SCHED), t, t_pp, z_t, SCHED).x_prev  # noqa: E731
    lhs = dl.distill_weight(t, t_pp, SCHED) * (x0_a - x0_b).pow(2).sum(1)
    torch.testing.assert_close(lhs, (step(x0_a) - step(x0_b)).pow(2).sum(1))
