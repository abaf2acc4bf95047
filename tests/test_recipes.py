"""Shared model recipes: sizes by profile, the cache hit, the train -> test split fallback."""
import dataclasses

import pytest
import torch

import diffusion_lite as dl
from diffusion_lite.training import recipes
from diffusion_lite.data.datasets import ImageDataset


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DL_CACHE_DIR", str(tmp_path / "cache"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fake_mnist(split: str, n: int = 48) -> ImageDataset:
    g = torch.Generator().manual_seed(0 if split == "test" else 1)
    return ImageDataset(images=torch.rand(n, 1, 28, 28, generator=g) * 2 - 1, labels=torch.arange(n) % 10,
                        classes=tuple(str(d) for d in range(10)), name="mnist", split=split)


def tiny_recipe(split="train", fallback="test", steps=6) -> recipes.Recipe:
    """The smoke recipe shrunk further: a few steps of batch 4 on 48 random 28x28 images."""
    r = recipes.mnist_ddpm_recipe("smoke")
    return dataclasses.replace(r, train=dataclasses.replace(r.train, steps=steps, batch_size=4, warmup_steps=2),
                               split=split, fallback_split=fallback)


@pytest.fixture
def fake_data(monkeypatch):
    """load_dataset replaced: the test split exists, the train split 'cannot be downloaded'."""
    calls = []

    def load(name, split="train", **kwargs):
        calls.append(split)
        if split == "train":
            raise dl.DatasetNotFoundError("Could not download: no network (test)")
        return fake_mnist(split)

    monkeypatch.setattr(recipes, "load_dataset", load)
    return calls


def count_train_calls(monkeypatch) -> list:
    calls = []
    real_train = recipes.train

    def counting(*args, **kwargs):
        calls.append(kwargs.get("checkpoint_path"))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(recipes, "train", counting)
    return calls


def test_sizes_grow_with_the_profile():
    r = {p: recipes.mnist_ddpm_recipe(p) for p in dl.PROFILES}
    params = {p: dl.count_parameters(r[p].make_model()) for p in dl.PROFILES}
    assert params["smoke"] < params["cpu"] < params["gpu"]
    assert r["smoke"].unet.base_channels <= 16 and r["smoke"].train.steps <= 60       # seconds in CI
    assert r["cpu"].unet.channels == (16, 32, 64) and 2 in r["cpu"].unet.attention_levels  # attention at 7x7
    assert 0.5e6 < params["cpu"] < 1e6
    assert r["smoke"].train.steps < r["cpu"].train.steps < r["gpu"].train.steps
    # the smoke profile trains on the test split (all there is offline); cpu/gpu on train, test as fallback
    assert (r["smoke"].split, r["smoke"].fallback_split) == ("test", None)
    assert all((r[p].split, r[p].fallback_split) == ("train", "test") for p in ("cpu", "gpu"))
    assert {r[p].profile for p in dl.PROFILES} == set(dl.PROFILES)
    assert recipes.mnist_judge_config("smoke") != recipes.mnist_judge_config("cpu")
    with pytest.raises(ValueError, match="profile must be one of"):
        recipes.mnist_ddpm_recipe("laptop")


def test_make_model_is_seeded_and_leaves_the_global_rng_alone():
    r = tiny_recipe()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = r.make_model(), r.make_model()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_second_call_hits_the_cache_without_training(fake_data, monkeypatch, capsys):
    calls = count_train_calls(monkeypatch)
    r = tiny_recipe(split="test", fallback=None)
    ema1, res1, r1 = recipes.load_or_train_mnist_ddpm(r, progress=False)
    assert len(calls) == 1 and res1.resumed_from == 0 and len(res1.history) == r.train.steps
    ema2, res2, r2 = recipes.load_or_train_mnist_ddpm(r, progress=False)
    assert len(calls) == 1                                   # train was not called again
    assert res2.history == res1.history and res2.resumed_from == r.train.steps and r2 == r1
    assert all(torch.equal(x, y) for x, y in zip(ema1.state_dict().values(), ema2.state_dict().values()))
    raw, _, _ = recipes.load_or_train_mnist_ddpm(r, progress=False, weights="raw")
    assert len(calls) == 1
    assert not all(torch.equal(x, y) for x, y in zip(raw.state_dict().values(), ema2.state_dict().values()))
    assert not ema2.training and recipes.training_seconds(r) > 0
    # the result reports the training time and the epochs, trained now or read from the cache
    n = len(recipes.load_training_data(r, progress=False)[0])
    for res in (res1, res2):
        assert res.epochs == r.train.steps * r.train.batch_size / n
    assert res1.trained_seconds == res1.seconds > 0 and res2.seconds == 0.0
    assert res2.trained_seconds == recipes.training_seconds(r)   # the checkpoint's record, not 0
    assert 0 < res2.trained_seconds <= res1.seconds          # saved just before train returned
    # another recipe (one more step) is another cache entry: it trains
    recipes.load_or_train_mnist_ddpm(tiny_recipe(split="test", fallback=None, steps=7), progress=False)
    assert len(calls) == 2 and calls[0] != calls[1]


def test_an_unfinished_checkpoint_is_resumed(fake_data, monkeypatch):
    calls = count_train_calls(monkeypatch)
    r = tiny_recipe(split="test", fallback=None, steps=6)
    straight = recipes.train(r.make_model(), fake_mnist("test").images, r.make_schedule(), r.train,
                             progress=False)
    # an interrupted run: the cache file holds 3 of the 6 steps
    data, _ = recipes.load_training_data(r, progress=False)
    short = dataclasses.replace(r.train, steps=3)
    recipes.train(r.make_model(), data.images, r.make_schedule(), short,
                  checkpoint_path=recipes.checkpoint_path(r, data), progress=False)
    calls.clear()
    _, res, _ = recipes.load_or_train_mnist_ddpm(r, progress=False)
    assert len(calls) == 1 and res.resumed_from == 3 and res.history == straight.history


def test_falls_back_to_the_test_split_and_records_it(fake_data, monkeypatch, capsys):
    calls = count_train_calls(monkeypatch)
    r = tiny_recipe(split="train", fallback="test")
    _, _, used = recipes.load_or_train_mnist_ddpm(r, progress=False)
    out = capsys.readouterr().out
    assert "NOTICE" in out and "'train' split is not available" in out and "'test'" in out
    assert used.split == "test" and used.fallback_split is None and r.split == "train"
    assert fake_data == ["train", "test"]
    # the key is the test split's: asking for the test split directly hits the same cache entry
    _, res, _ = recipes.load_or_train_mnist_ddpm(used, progress=False)
    assert len(calls) == 1 and res.resumed_from == r.train.steps
    data, _ = recipes.load_training_data(used, progress=False)
    assert data.split == "test" and calls[0] == recipes.checkpoint_path(used, data)


def test_no_fallback_means_the_error_propagates(fake_data):
    with pytest.raises(dl.DatasetNotFoundError, match="no network"):
        recipes.load_training_data(tiny_recipe(split="train", fallback=None), progress=False)


def test_the_key_holds_what_the_weights_depend_on():
    r = tiny_recipe(split="test", fallback=None)
    test, train = fake_mnist("test"), fake_mnist("train")
    assert recipes.checkpoint_path(r, test) != recipes.checkpoint_path(r, train)
    assert recipes.checkpoint_path(r, test) == recipes.checkpoint_path(dataclasses.replace(r, profile="cpu"), test)
    # how often a run logs or saves does not change its weights; the learning rate does
    chatty = dataclasses.replace(r, train=dataclasses.replace(r.train, log_every=1, checkpoint_every=2))
    assert recipes.checkpoint_path(chatty, test) == recipes.checkpoint_path(r, test)
    faster = dataclasses.replace(r, train=dataclasses.replace(r.train, lr=2 * r.train.lr))
    assert recipes.checkpoint_path(faster, test) != recipes.checkpoint_path(r, test)


def test_rejects_bad_arguments(fake_data):
    with pytest.raises(TypeError, match="recipe must be a Recipe"):
        recipes.load_or_train_mnist_ddpm("smoke")
    with pytest.raises(ValueError, match="weights must be 'ema' or 'raw'"):
        recipes.load_or_train_mnist_ddpm(tiny_recipe(), weights="best")
    too_many = dataclasses.replace(tiny_recipe(split="test", fallback=None), n_images=10**6)
    with pytest.raises(ValueError, match=r"n_images must be in \[1, 48\]"):
        recipes.load_training_data(too_many, progress=False)
    first_ten, _ = recipes.load_training_data(dataclasses.replace(too_many, n_images=10), progress=False)
    assert torch.equal(first_ten.images, fake_mnist("test").images[:10])
