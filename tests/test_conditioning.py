"""Chapter 10: conditional training passes labels, the noisy classifier, classifier guidance (eq-cg), metrics."""
import dataclasses
import math

import pytest
import torch

import diffusion_lite as dl
from diffusion_lite.training import recipes

SCHED = dl.Schedule.linear(50)


def tiny_classifier(seed=0, num_classes=3):
    torch.manual_seed(seed)
    return dl.NoisyClassifier(dl.NoisyClassifierConfig(num_classes=num_classes, widths=(4, 8), emb_dim=8, groups=2))


class Spy(torch.nn.Module):
    """A 'conditional model' that records the conditions the trainer gives it."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)
        self.num_classes, self.seen = num_classes, []

    def drop_cond(self, cond, drop):
        return torch.where(drop, torch.full_like(cond, self.num_classes), cond)

    def forward(self, x_t, t, cond=None):
        self.seen.append(cond.clone())
        return self.lin(x_t[..., None]).squeeze(-1)


def test_trainer_passes_each_samples_label():
    data = torch.arange(16.0)[:, None].repeat(1, 2) / 16  # (16, 2); sample i has label i % 4
    labels = torch.arange(16) % 4
    spy = Spy()
    dl.train(spy, data, SCHED, dl.TrainConfig(steps=5, batch_size=8, warmup_steps=0), cond=labels, progress=False)
    seen = torch.cat(spy.seen)
    assert len(seen) == 40 and set(seen.tolist()) <= {0, 1, 2, 3} and len(set(seen.tolist())) > 1


def test_label_dropout_replaces_the_share_p_uncond_by_the_null_label():
    labels = torch.zeros(64, dtype=torch.long)
    spy = Spy()
    dl.train(spy, torch.randn(64, 2), SCHED, dl.TrainConfig(steps=50, batch_size=64, warmup_steps=0, p_uncond=0.3),
             cond=labels, progress=False)
    null_share = float((torch.cat(spy.seen) == 4).double().mean())
    assert abs(null_share - 0.3) < 0.03  # 3200 Bernoulli(0.3) draws: sd 0.008


def test_cond_recipe_is_conditional_and_keyed_apart():
    for p in ("smoke", "cpu", "gpu"):
        r, u = dl.mnist_cond_recipe(p), dl.mnist_ddpm_recipe(p)
        assert r.unet.num_classes == 10 and r.train.p_uncond > 0 and r.kind != u.kind
        assert dataclasses.replace(r, kind=u.kind, unet=u.unet, train=u.train) == u  # only those differ
    ds = dl.ImageDataset(name="mnist", split="test", images=torch.zeros(3, 1, 28, 28), labels=torch.zeros(3, dtype=torch.long),
                         classes=tuple(str(i) for i in range(10)))
    assert recipes.checkpoint_path(dl.mnist_cond_recipe("smoke"), ds) != recipes.checkpoint_path(
        dl.mnist_ddpm_recipe("smoke"), ds)


def test_noisy_classifier_shapes_and_time_dependence():
    net = tiny_classifier().eval()
    x = torch.randn(5, 1, 12, 12)
    out1, out2 = net(x, torch.full((5,), 3)), net(x, 40)
    assert out1.shape == (5, 3) and (out1 - out2).abs().max() > 1e-4


def test_a_step_along_the_gradient_raises_log_p():
    net = tiny_classifier(1).eval()
    x, t, y = torch.randn(6, 1, 12, 12, generator=torch.Generator().manual_seed(2)), torch.full((6,), 20), \
        torch.tensor([0, 1, 2, 0, 1, 2])
    log_p, grad = dl.classifier_log_prob_grad(net, x, t, y)
    expect = net(x, t).log_softmax(1)[torch.arange(6), y]
    torch.testing.assert_close(log_p, expect.detach())
    log_p_up, _ = dl.classifier_log_prob_grad(net, x + 1e-3 * grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1),
                                              t, y)
    assert bool((log_p_up > log_p).all())
    # the gradient equals the directional derivative by central differences (float64)
    net64, x64, d = net.double(), x.double(), torch.randn(x.shape, dtype=torch.float64)
    _, grad64 = dl.classifier_log_prob_grad(net64, x64, t, y)
    h = 1e-4
    fd = (dl.classifier_log_prob_grad(net64, x64 + h * d, t, y)[0]
          - dl.classifier_log_prob_grad(net64, x64 - h * d, t, y)[0]) / (2 * h)
    torch.testing.assert_close(fd, (grad64 * d).flatten(1).sum(1), atol=1e-6, rtol=1e-5)


def test_classifier_guidance_formula_and_limits():
    net, clf = lambda x, t: 0.1 * x, tiny_classifier(3).eval()
    x, t, y = torch.randn(4, 1, 12, 12), torch.tensor([1, 10, 30, 50]), torch.tensor([2, 0, 1, 2])
    torch.testing.assert_close(dl.classifier_guidance(net, clf, SCHED, 0.0)(x, t, y), net(x, t))
    _, grad = dl.classifier_log_prob_grad(clf, x, t, y)
    s, ab = 2.5, SCHED.alpha_bar[t].float().view(-1, 1, 1, 1)
    torch.testing.assert_close(dl.classifier_guidance(net, clf, SCHED, s)(x, t, y),
                               net(x, t) - s * (1 - ab).sqrt() * grad)


def test_exact_classifier_guidance_on_a_mixture_is_the_conditional_oracle():
    """s = 1 with the exact p(y | x_t) turns the mixture's oracle into component y's oracle (Bayes)."""
    sched = dl.Schedule.linear(100)
    gmm = dl.GaussianMixture.isotropic([[-1.0, 0.0], [1.0, 0.5], [0.0, 1.5]], std=0.3)

    def classifier(x_t, t):  # log p(y = k | x_t) = log r_k(x_t), exact
        return gmm.posterior(x_t, sched.alpha_bar[t]).resp.clamp_min(1e-300).log()

    guided = dl.classifier_guidance(gmm.oracle(sched), classifier, sched, 1.0)
    x = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for k in range(3):
        comp = dl.GaussianMixture.single(gmm.means[k], gmm.covs[k]).oracle(sched)
        for step in (5, 40, 90):
            t = torch.full((32,), step)
            torch.testing.assert_close(guided(x, t, torch.full((32,), k)), comp(x, t))


@pytest.mark.parametrize("sampler", [dl.sample_ddpm, dl.sample_ddim])
def test_classifier_guidance_runs_in_samplers_and_raises_the_requested_class(sampler):
    sched = dl.Schedule.linear(100)
    gmm = dl.GaussianMixture.isotropic([[-2.0, 0.0], [2.0, 0.0]], std=0.3)

    def classifier(x_t, t):
        return gmm.posterior(x_t, sched.alpha_bar[t]).resp.clamp_min(1e-300).log()

    y = torch.ones(400, dtype=torch.long)
    kwargs = {"steps": 20} if sampler is dl.sample_ddim else {}
    out = sampler(dl.classifier_guidance(gmm.oracle(sched), classifier, sched, 1.0), sched,
                  torch.randn(400, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)),
                  cond=y, generator=torch.Generator().manual_seed(2), **kwargs)
    x0 = out.x0 if hasattr(out, "x0") else out[0]
    assert float((x0[:, 0] > 0).double().mean()) > 0.97  # unguided: ~0.5


def test_train_noisy_classifier_learns_a_separable_task():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 2
    images = torch.where(labels.view(-1, 1, 1, 1) == 1, 0.8, -0.8) + 0.1 * torch.randn(200, 1, 8, 8, generator=g)
    net = dl.NoisyClassifier(dl.NoisyClassifierConfig(num_classes=2, widths=(4, 8), emb_dim=8, groups=2))
    hist = dl.train_noisy_classifier(net, images, labels, SCHED, dl.ClassifierTrainConfig(steps=150, batch_size=32,
                                                                                           lr=1e-2), progress=False)
    assert len(hist) == 150 and sum(hist[-20:]) / 20 < 0.7 * math.log(2)
    net.eval()
    acc = float((net(images, 1).argmax(1) == labels).double().mean())  # nearly clean: easy
    assert acc > 0.95


def test_knn_recall_limits():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(100, 5, generator=g)
    assert dl.knn_recall(a, a, k=3) == 1.0
    assert dl.knn_recall(a + 100, a, k=3) == 0.0
    collapsed = a[:1].repeat(50, 1) + 1e-3 * torch.randn(50, 5, generator=g)  # mode collapse: low recall
    assert dl.knn_recall(a, collapsed, k=3) < 0.1


def test_conditional_report_counts_confident_and_correct():
    judge = dl.MNISTJudge(dl.JudgeConfig.tiny()).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 28, 28, generator=g) * 2 - 1
    report = dl.judge(judge, x, threshold=0.0)
    labels = report.predicted.clamp(max=9)
    labels[:10] = (labels[:10] + 1) % 10  # ten requested a class the judge does not see
    labels = torch.where(torch.arange(40) < 20, labels, torch.arange(40) % 10)  # give every class samples
    real, real_labels = torch.rand(60, 1, 28, 28, generator=g) * 2 - 1, torch.arange(60) % 10
    rep = dl.conditional_report(judge, x, labels, real, real_labels, threshold=0.0, k=1)
    expect = float(((report.predicted == labels)).double().mean())
    assert rep.fidelity == pytest.approx(expect) and 0 <= rep.recall <= 1 and math.isfinite(rep.kid)


def test_bad_labels_are_rejected_by_both_guidances():
    unet = dl.UNet(dl.UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(), num_classes=3, groups=4))
    x, t = torch.randn(2, 1, 8, 8), torch.full((2,), 5)
    cfg = dl.classifier_free_guidance(unet, 2.0)
    with pytest.raises(ValueError, match=r"cond must hold class labels in \[0, 3\)"):
        cfg(x, t, torch.tensor([0, 3]))  # the null label is not a class to ask for
    with pytest.raises(TypeError, match="integer class labels"):
        cfg(x, t, torch.tensor([0.0, 1.0]))
    cg = dl.classifier_guidance(lambda x, t: x, tiny_classifier(), SCHED, 1.0)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        cg(torch.randn(2, 1, 12, 12), t, torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="needs the requested labels"):
        cg(torch.randn(2, 1, 12, 12), t)
