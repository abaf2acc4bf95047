"""Profiles and small utilities."""
import pytest
import torch

import diffusion_lite as dl


def test_profile_from_environment(monkeypatch):
    for name in dl.PROFILES:
        monkeypatch.setenv("DL_PROFILE", name)
        assert dl.profile() == name
        assert dl.pick(smoke=1, cpu=2, gpu=3) == {"smoke": 1, "cpu": 2, "gpu": 3}[name]


def test_profile_default_follows_hardware(monkeypatch):
    monkeypatch.delenv("DL_PROFILE", raising=False)
    assert dl.profile() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_unknown_profile_is_rejected(monkeypatch):
    monkeypatch.setenv("DL_PROFILE", "fast")
    with pytest.raises(ValueError, match="DL_PROFILE must be one of"):
        dl.profile()


def test_demo_image_is_a_real_photo_in_range():
    x = dl.demo_image(size=32)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.1  # not a constant image
    assert not torch.equal(x[0], x[2])  # colour: channels differ
    with pytest.raises(ValueError, match="unknown demo image"):
        dl.demo_image("lena")


def test_import_has_no_side_effects():
    """Importing the package must not seed, download, or import matplotlib."""
    import subprocess
    import sys
    code = ("import sys, torch; s = torch.initial_seed(); import diffusion_lite; "
            "assert 'matplotlib.pyplot' not in sys.modules; assert torch.initial_seed() == s")
    subprocess.run([sys.executable, "-c", code], check=True)
