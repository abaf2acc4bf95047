"""The denoisers: shapes, gradient flow, the time embedding, conditioning, input checks, receptive field."""
import math

import pytest
import torch

from diffusion_lite.nets.embeddings import timestep_embedding
from diffusion_lite.nets.mlp import MLPConfig, MLPDenoiser
from diffusion_lite import UNet, UNetConfig, count_parameters, unet_block_report

TINY = dict(base_channels=8, channel_mults=(1, 2, 2), attention_levels=(2,), attention_heads=2)
COND_KINDS = {
    "none": ({}, None),
    "classes": ({"num_classes": 10}, lambda B: torch.arange(B) % 11),  # 10 = the null label
    "context": ({"cond_dim": 6}, lambda B: torch.randn(B, 3, 6)),      # a sequence of L = 3 tokens
    "vector": ({"cond_dim": 6}, lambda B: torch.randn(B, 6)),          # one token, (B, cond_dim)
}



def tiny_unet(**kwargs) -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(**{**TINY, **kwargs}))


def assert_all_grads(model: torch.nn.Module) -> None:
    dead = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not dead, f"parameters without gradient: {dead}"


# ------------------------------------------------------------------------------------ MLP
def test_mlp_shape_and_gradients():
    torch.manual_seed(0)
    model = MLPDenoiser(MLPConfig(dim=3, hidden=16, depth=3, time_embed_dim=8))
    x_t = torch.randn(5, 3)
    eps_hat = model(x_t, torch.tensor([1, 2, 3, 4, 5]))
    assert eps_hat.shape == x_t.shape
    eps_hat.pow(2).sum().backward()
    assert_all_grads(model)
    assert model(x_t, 7).shape == x_t.shape  # one int t for the whole batch


def test_mlp_rejects_bad_inputs():
    model = MLPDenoiser(MLPConfig(dim=2, hidden=8, depth=1))
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, 2\)"):
        model(torch.randn(4, 3), 1)
    with pytest.raises(ValueError, match=r"t must be an int or have shape \(4,\)"):
        model(torch.randn(4, 2), torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="t must be >= 0"):
        model(torch.randn(4, 2), -1)
    with pytest.raises(TypeError, match="t must"):
        model(torch.randn(4, 2), "5")
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randn(4, 2), 1, cond=torch.zeros(4))
    with pytest.raises(ValueError, match="depth"):
        MLPConfig(depth=0)


# ------------------------------------------------------------------------------------ time embedding
def test_timestep_embedding_matches_closed_form_and_diffusers():
    t = torch.arange(0, 1001)
    emb = timestep_embedding(t, 32)
    # each (cos, sin) pair has unit norm, so ||emb(t)||^2 = dim / 2 for every t
    torch.testing.assert_close(emb.pow(2).sum(1), torch.full((1001,), 16.0))
    assert torch.cdist(emb, emb).add(torch.eye(1001) * 1e9).min() > 1e-3  # every t gets its own vector
    from diffusers.models.embeddings import get_timestep_embedding  # independent implementation
    theirs = get_timestep_embedding(t, 32, flip_sin_to_cos=True, downscale_freq_shift=0)
    torch.testing.assert_close(emb, theirs)
    assert timestep_embedding(t[:3], 7).shape == (3, 7)  # odd widths are padded with a zero column


def test_unet_output_depends_on_t():
    model = tiny_unet().eval()
    x_t = torch.randn(1, 1, 28, 28).expand(4, -1, -1, -1)
    with torch.no_grad():
        out = model(x_t, torch.tensor([1, 2, 500, 1000]))
    diffs = [float((out[i] - out[j]).abs().max()) for i in range(4) for j in range(i + 1, 4)]
    assert min(diffs) > 0


# ------------------------------------------------------------------------------------ U-Net
@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("kind", sorted(COND_KINDS))
def test_unet_output_shape(size, kind):
    extra, make_cond = COND_KINDS[kind]
    model = tiny_unet(**extra)
    x_t = torch.randn(3, 1, size, size)
    cond = None if make_cond is None else make_cond(3)
    assert model(x_t, torch.tensor([1, 50, 999]), cond).shape == x_t.shape
    if make_cond is not None:  # conditional models also run unconditionally (cond=None: the null condition)
        assert model(x_t, 5).shape == x_t.shape


def test_unet_rgb_and_out_channels():
    model = tiny_unet(in_channels=3, out_channels=6, channel_mults=(1, 2), attention_levels=(1,))
    assert model(torch.randn(2, 3, 32, 32), 3).shape == (2, 6, 32, 32)


def test_unet_patch_size_is_a_unet_on_patches():
    """eq-patchify: UNet(patch_size=p)(x) = pixel_shuffle(U(pixel_unshuffle(x))), U a UNet on C p^2 channels."""
    model = tiny_unet(in_channels=3, patch_size=2, channel_mults=(1, 2), attention_levels=(1,))
    inner = tiny_unet(in_channels=12, channel_mults=(1, 2), attention_levels=(1,))
    inner.load_state_dict(model.state_dict())  # the same layers: only the stem's and the output's widths change
    x_t = torch.randn(2, 3, 28, 28)
    t = torch.tensor([4, 400])
    with torch.no_grad():
        out = model(x_t, t)
        patches = x_t.reshape(2, 3, 14, 2, 14, 2).permute(0, 1, 3, 5, 2, 4).reshape(2, 12, 14, 14)  # written out
        expected = inner(patches, t).reshape(2, 3, 2, 2, 14, 14).permute(0, 1, 4, 2, 5, 3).reshape(2, 3, 28, 28)
    assert out.shape == x_t.shape
    torch.testing.assert_close(out, expected)
    assert count_parameters(model) == count_parameters(inner)


@pytest.mark.parametrize("kind", sorted(COND_KINDS))
def test_unet_gradients_reach_every_parameter(kind):
    extra, make_cond = COND_KINDS[kind]
    model = tiny_unet(**extra)
    x_t = torch.randn(4, 1, 28, 28)
    loss = model(x_t, torch.tensor([3, 30, 300, 900]), None if make_cond is None else make_cond(4)).pow(2).mean()
    if extra.get("cond_dim"):
        loss = loss + model(x_t, 7).pow(2).mean()  # the learned null context is used only without cond
    loss.backward()
    assert_all_grads(model)


@pytest.mark.parametrize("kind", sorted(COND_KINDS))
def test_unet_zero_init_zeroes_exactly_the_branch_outputs(kind):
    """zero_init starts the last conv of every residual branch, the attention output projections and the
    output conv at zero (the net predicts eps_hat = 0); every other weight is drawn as without it."""
    extra, make_cond = COND_KINDS[kind]
    plain, zeroed = tiny_unet(**extra), tiny_unet(zero_init=True, **extra)
    changed = {n for (n, a), b in zip(plain.named_parameters(), zeroed.parameters()) if not torch.equal(a, b)}
    ends = (".conv2.weight", ".conv2.bias", ".proj.weight", ".proj.bias", ".proj_cross.weight", ".proj_cross.bias")
    expected = {n for n, _ in plain.named_parameters() if n.endswith(ends) or n.startswith("out.2.")}
    assert changed == expected and all(not bool(p.any()) for n, p in zeroed.named_parameters() if n in expected)
    x_t = torch.randn(3, 1, 28, 28)
    assert not bool(zeroed(x_t, torch.tensor([1, 50, 999]), None if make_cond is None else make_cond(3)).any())


def test_unet_zero_init_still_trains_every_parameter():
    """At zero the first gradients reach only the output conv; a few AdamW steps later every weight has moved."""
    model = tiny_unet(zero_init=True)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x_t, eps, t = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28), torch.tensor([3, 30, 300, 900])
    for _ in range(4):
        opt.zero_grad()
        (model(x_t, t) - eps).pow(2).mean().backward()
        opt.step()
    still = [n for n, p in model.named_parameters() if torch.equal(p, start[n])]
    assert not still, f"parameters that never moved: {still}"


def test_unet_drop_cond_replaces_with_null():
    drop = torch.tensor([True, False, True])
    labels = torch.tensor([1, 2, 3])
    torch.testing.assert_close(tiny_unet(num_classes=10).drop_cond(labels, drop), torch.tensor([10, 2, 10]))
    model = tiny_unet(cond_dim=6)
    context = torch.randn(3, 2, 6)
    out = model.drop_cond(context, drop)
    torch.testing.assert_close(out[1], context[1])
    torch.testing.assert_close(out[0], model.null_context[0].expand(2, 6))
    # attending to L copies of the null token is attending to one: dropped == unconditional
    x_t = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(x_t, 9, out)[0], model(x_t, 9)[0], rtol=1e-5, atol=1e-5)


def test_unet_rejects_bad_inputs():
    model = tiny_unet(num_classes=10)
    x_t = torch.randn(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, 1, H, W\).*in_channels=1.*\(2, 3, 28, 28\)"):
        model(torch.randn(2, 3, 28, 28), 1)
    with pytest.raises(ValueError, match=r"x_t must have shape"):
        model(torch.randn(1, 28, 28), 1)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.randn(2, 1, 30, 30), 1)
    with pytest.raises(TypeError, match="x_t must be a floating-point tensor"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.long), 1)
    with pytest.raises(TypeError, match="float64"):
        model(x_t.double(), 1)
    with pytest.raises(ValueError, match="x_t contains NaN"):
        model(torch.full((2, 1, 28, 28), math.nan), 1)
    with pytest.raises(ValueError, match=r"t must be an int or have shape \(2,\)"):
        model(x_t, torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="t must be >= 0"):
        model(x_t, torch.tensor([1, -2]))
    with pytest.raises(ValueError, match=r"labels in \[0, 10\]"):
        model(x_t, 1, torch.tensor([0, 11]))
    with pytest.raises(TypeError, match="integer class labels"):
        model(x_t, 1, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="unconditional"):
        tiny_unet()(x_t, 1, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"context of shape \(2, L, 6\)"):
        tiny_unet(cond_dim=6)(x_t, 1, torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="must divide"):
        UNetConfig(base_channels=12, groups=8)
    with pytest.raises(ValueError, match="attention_levels"):
        UNetConfig(attention_levels=(3,))
    with pytest.raises(ValueError, match="not both"):
        UNetConfig(num_classes=10, cond_dim=8)


def test_receptive_field_covers_the_image():
    """d eps_hat[centre] / d x_t is non-zero at all four corners for the default MNIST U-Net.

    Control: the first 3x3 convolution alone sees only a 3x3 patch, so the same check fails there.
    """
    torch.manual_seed(0)
    model = UNet(UNetConfig())
    x_t = torch.randn(1, 1, 28, 28, requires_grad=True)
    model(x_t, 500)[0, 0, 14, 14].backward()
    g = x_t.grad[0, 0].abs()
    corners = torch.stack([g[0, 0], g[0, -1], g[-1, 0], g[-1, -1]])
    assert bool((corners > 0).all()), corners
    x_t.grad = None
    model.stem(x_t)[0, 0, 14, 14].backward()
    assert float(x_t.grad[0, 0].abs()[[0, 0, -1, -1], [0, -1, 0, -1]].max()) == 0.0


def test_block_report_adds_up():
    model = tiny_unet(num_classes=10)
    rows = unet_block_report(model, (2, 1, 28, 28))
    blocks, total = rows[:-1], rows[-1]
    assert total["params"] == count_parameters(model)
    assert sum(r["params"] for r in blocks) == total["params"]  # every parameter lives in one block
    assert sum(r["flops"] for r in blocks) == total["flops"]    # every FLOP happens in one block
    stem = next(r for r in blocks if r["block"] == "stem")
    assert stem["flops"] == 2 * 2 * 28 * 28 * 8 * 1 * 9  # 2 * B * H * W * C_out * C_in * 3 * 3
    assert [r["output"] for r in blocks][-1] == (2, 1, 28, 28)
