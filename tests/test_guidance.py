"""Classifier-free guidance (eq-cfg): its limits, the batched pass, the interval, bad input."""
import pytest
import torch

import diffusion_lite as dl


def class_unet(seed=0):
    torch.manual_seed(seed)
    cfg = dl.UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), num_classes=3, groups=4,
                        zero_init=False)
    return dl.UNet(cfg).eval()


X = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
T = torch.full((4,), 7)
Y = torch.tensor([0, 1, 2, 1])
NULL = torch.full((4,), 3)


@torch.no_grad()
def test_w0_is_unconditional_and_w1_conditional():
    net = class_unet()
    cond, uncond = net(X, T, Y), net(X, T, NULL)
    assert (cond - uncond).abs().max() > 1e-3  # the labels matter, so the limits below can fail
    torch.testing.assert_close(dl.classifier_free_guidance(net, 0.0)(X, T, Y), uncond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dl.classifier_free_guidance(net, 1.0)(X, T, Y), cond, atol=1e-5, rtol=1e-5)
    w = 3.0  # eq-cfg from two separate passes
    torch.testing.assert_close(dl.classifier_free_guidance(net, w)(X, T, Y), uncond + w * (cond - uncond),
                               atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_one_batched_forward_pass():
    net, calls = class_unet(), []
    net.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    dl.classifier_free_guidance(net, 2.0)(X, T, Y)
    assert calls == [8]  # one pass on 2B, not two passes on B


@torch.no_grad()
def test_explicit_null_cond_equals_the_models_own():
    net = class_unet()
    torch.testing.assert_close(dl.classifier_free_guidance(net, 2.0, null_cond=NULL)(X, T, Y),
                               dl.classifier_free_guidance(net, 2.0)(X, T, Y))


@torch.no_grad()
def test_interval_guides_only_inside():
    net = class_unet()
    inside = dl.classifier_free_guidance(net, 4.0, interval=(5, 9))
    outside = dl.classifier_free_guidance(net, 4.0, interval=(8, 9))
    torch.testing.assert_close(inside(X, T, Y), dl.classifier_free_guidance(net, 4.0)(X, T, Y))
    torch.testing.assert_close(outside(X, T, Y), net(X, T, Y))  # t = 7 outside [8, 9]: conditional
    mixed_t = torch.tensor([7, 8, 9, 2])
    expect = torch.stack([net(X, mixed_t, Y)[0], *dl.classifier_free_guidance(net, 4.0)(X, mixed_t, Y)[1:3],
                          net(X, mixed_t, Y)[3]])
    torch.testing.assert_close(outside(X, mixed_t, Y), expect, atol=1e-5, rtol=1e-5)


def test_every_sampler_takes_a_guided_model():
    net, sched = class_unet(), dl.Schedule.linear(T=20)
    guided = dl.classifier_free_guidance(net, 2.0)
    for method in dl.SAMPLERS:
        out = dl.sample(guided, sched, (4, 1, 8, 8), 3, method=method, cond=Y,
                        generator=torch.Generator().manual_seed(0))
        assert out.x0.shape == (4, 1, 8, 8) and torch.isfinite(out.x0).all()


def test_guided_model_needs_a_condition():
    with pytest.raises(ValueError, match="needs a condition"):
        dl.classifier_free_guidance(class_unet(), 2.0)(X, T)
