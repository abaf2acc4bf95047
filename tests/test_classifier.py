"""The MNIST judge: it reads real digits, rejects garbage (garbage.py), and reports class shares correctly."""
from types import SimpleNamespace

import pytest
import torch

from diffusion_lite.eval import judge as clf
from diffusion_lite.eval.judge import (REJECT, JudgeConfig, JudgeReport, MNISTJudge, judge, load_or_train_judge,
                                       random_shift, train_judge)
from diffusion_lite.data.datasets import load_dataset
from diffusion_lite.eval.garbage import GARBAGE_KINDS, garbage

TINY = JudgeConfig.tiny()
N_FRESH = 500  # garbage images per kind in the rejection test


@pytest.fixture(scope="module")
def split(data_dir):
    """The MNIST test split cut into 9,000 training and 1,000 held-out digits."""
    ds = load_dataset("mnist", split="test", root=data_dir, download=False, progress=False)
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(123))
    tr, te = perm[:9000], perm[9000:]
    return ds.images[tr], ds.labels[tr], ds.images[te], ds.labels[te]


@pytest.fixture(scope="module")
def trained(split):
    """A tiny judge trained on the 9,000 digits (the one slow step of this file, ~8 s CPU)."""
    x_tr, y_tr, _, _ = split
    return train_judge(x_tr, y_tr, TINY, progress=False)


# ------------------------------------------------------------------------- the trained judge
def test_judge_reads_held_out_digits(trained, split):
    _, _, x_te, y_te = split
    report = judge(trained, x_te)
    accuracy = float((report.predicted == y_te).double().mean())
    assert accuracy >= 0.95, f"held-out accuracy {accuracy:.3f}"
    assert report.confident_fraction >= 0.80, report.to_markdown()
    assert report.reject_fraction <= 0.02, report.to_markdown()
    # the test split is roughly balanced (each digit 8.9-11.4 %), so the confident digits must be
    assert report.balanced and report.classes_present == tuple(range(10)), report.to_markdown()


@pytest.mark.parametrize("kind", GARBAGE_KINDS)
def test_judge_rejects_fresh_garbage(trained, split, kind):
    """Garbage made from held-out digits with a seed the training never used: hardly ever a
    confident digit (a plain CNN is >= 0.9 sure of a digit on clamped noise, GUIDE §4)."""
    _, _, x_te, y_te = split
    bad = garbage(N_FRESH, x_te, torch.Generator().manual_seed(2024), kinds=kind, labels=y_te)
    report = judge(trained, bad)
    assert report.confident_fraction <= 0.10, f"{kind}: {report.to_markdown()}"
    assert report.reject_fraction >= 0.5, f"{kind}: {report.to_markdown()}"


def test_features_shape_and_eval_mode(trained, split):
    x = split[2][:7]
    assert trained.features(x).shape == (7, TINY.hidden)
    assert trained(x).shape == (7, REJECT + 1)
    trained.train()
    judge(trained, x)
    assert trained.training, "judge must restore the model's training mode"
    trained.eval()


# ------------------------------------------------------------------------- reports
def _probs(classes, confidence):
    """Softmax-like rows: `confidence` on the given class, the rest spread evenly."""
    classes = torch.as_tensor(classes)
    p = torch.full((len(classes), REJECT + 1), 0.0)
    p[:] = (1 - torch.as_tensor(confidence, dtype=torch.float32)).reshape(-1, 1) / REJECT
    p[torch.arange(len(classes)), classes] = torch.as_tensor(confidence, dtype=torch.float32)
    return p


def test_report_fractions_and_shares():
    # 50 confident digits (5 of each), 30 rejected, 20 unsure digits (p = 0.5)
    classes = list(range(10)) * 5 + [REJECT] * 30 + [3] * 20
    conf = [0.95] * 50 + [0.99] * 30 + [0.5] * 20
    r = JudgeReport.from_probs(_probs(classes, conf), threshold=0.9)
    assert r.confident_fraction == pytest.approx(0.5)
    assert r.reject_fraction == pytest.approx(0.3)
    torch.testing.assert_close(r.class_shares, torch.full((10,), 0.1, dtype=torch.float64))
    assert r.classes_present == tuple(range(10)) and r.balanced
    assert "50.0% confident digits" in r.to_markdown() and str(r) == r.to_markdown()


def test_report_balance_limits():
    def report(counts):
        classes = [c for c, k in enumerate(counts) for _ in range(k)]
        return JudgeReport.from_probs(_probs(classes, [0.99] * len(classes)))

    # exactly at the limits: 4 % and 20 % are allowed
    edge = report([4, 20, 10, 10, 10, 10, 10, 10, 10, 6])
    assert edge.class_shares[0] == pytest.approx(0.04) and edge.class_shares[1] == pytest.approx(0.2)
    assert edge.balanced
    assert not report([3, 21, 10, 10, 10, 10, 10, 10, 10, 6]).balanced      # one too rare, one too common
    assert not report([4, 21, 10, 10, 10, 10, 10, 10, 10, 5]).balanced      # one class > 20 %
    missing = report([0, 12, 11, 11, 11, 11, 11, 11, 11, 11])
    assert not missing.balanced and missing.classes_present == tuple(range(1, 10))
    nothing = JudgeReport.from_probs(_probs([REJECT] * 5, [0.99] * 5))
    assert nothing.confident_fraction == 0 and not nothing.balanced
    assert float(nothing.class_shares.sum()) == 0 and nothing.classes_present == ()


def test_report_rejects_bad_input():
    with pytest.raises(ValueError, match="probs"):
        JudgeReport.from_probs(torch.rand(4, 10))
    with pytest.raises(ValueError, match="softmax probabilities"):
        JudgeReport.from_probs(torch.randn(4, REJECT + 1))                 # logits, not probabilities
    with pytest.raises(ValueError, match="threshold"):
        JudgeReport.from_probs(_probs([1, 2], [0.9, 0.9]), threshold=1.5)
    with pytest.raises(ValueError, match="x must have"):
        judge(MNISTJudge(TINY), torch.zeros(2, 28, 28))


# ------------------------------------------------------------------------- garbage and shifts
def test_garbage_range_shape_and_determinism():
    real = torch.rand(50, 1, 28, 28) * 2 - 1
    labels = torch.arange(50) % 10
    for kind in GARBAGE_KINDS:
        a = garbage(16, real, torch.Generator().manual_seed(5), kinds=kind, labels=labels)
        b = garbage(16, real, torch.Generator().manual_seed(5), kinds=kind, labels=labels)
        assert a.shape == (16, 1, 28, 28) and float(a.min()) >= -1 and float(a.max()) <= 1, kind
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="kinds"):
        garbage(4, real, torch.Generator(), kinds=("static",))
    with pytest.raises(ValueError, match="weights"):
        garbage(4, real, torch.Generator(), kinds=("gaussian", "blur"), weights=(1.0,))
    with pytest.raises(ValueError, match="real_images"):
        garbage(4, real[:, 0], torch.Generator())


def test_shuffle_keeps_the_pixels():
    """Shuffling 7x7 patches only moves pixels: the sorted pixel values are unchanged."""
    real = torch.rand(1, 1, 28, 28) * 2 - 1
    out = garbage(3, real, torch.Generator().manual_seed(0), kinds="shuffle")
    for img in out:
        torch.testing.assert_close(img.flatten().sort().values, real.flatten().sort().values)
        assert not torch.equal(img, real[0])


def test_random_shift_moves_a_dot_by_at_most_max_shift():
    x = torch.full((400, 1, 28, 28), -1.0)
    x[:, 0, 14, 14] = 1.0
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    rows, cols = (y[:, 0] == 1).nonzero()[:, 1:].T
    assert len(rows) == 400                                           # every dot survives once
    assert set((rows - 14).tolist()) == set(range(-2, 3)) == set((cols - 14).tolist())
    torch.testing.assert_close(random_shift(x, 0, torch.Generator()), x)


# ------------------------------------------------------------------------- training and cache
def _micro(images=64, steps=3):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(images, 1, 28, 28, generator=g) * 2 - 1
    return x, torch.arange(images) % 10, JudgeConfig.tiny(steps=steps, batch=16)


def test_training_is_seeded_and_leaves_global_rng_alone():
    x, y, config = _micro()
    state = torch.get_rng_state()
    a = train_judge(x, y, config, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    b = train_judge(x, y, config, progress=False)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_training_rejects_bad_arguments():
    x, y, config = _micro()
    with pytest.raises(ValueError, match="labels"):
        train_judge(x, y + 5, config, progress=False)
    with pytest.raises(ValueError, match="labels"):
        train_judge(x, y[:10], config, progress=False)
    with pytest.raises(ValueError, match="images"):
        train_judge(x[:, :, :14], y, config, progress=False)
    with pytest.raises(ValueError, match="garbage_weights"):
        train_judge(x, y, JudgeConfig.tiny(garbage_weights=(1.0, 2.0)), progress=False)


def test_load_or_train_judge_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DL_CACHE_DIR", str(tmp_path))
    x, y, config = _micro()
    data = SimpleNamespace(images=x, labels=y)
    first = load_or_train_judge(data, config, progress=False)
    assert len(list(tmp_path.glob("mnist-judge-*.pt"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("a cached judge must not be trained again")

    monkeypatch.setattr(clf, "train_judge", no_training)
    again = load_or_train_judge(data, config, progress=False)
    for (name, p), q in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(p, q), name
    assert not again.training
    with pytest.raises(AssertionError, match="trained again"):      # other data: a new key
        load_or_train_judge(SimpleNamespace(images=x.flip(0), labels=y), config, progress=False)
