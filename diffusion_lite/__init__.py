"""Diffusion Lite: the small, readable package behind the book."""
from .checkpoint import (CheckpointError, cache_dir, cache_path, cached_model, config_key, load_checkpoint,
                         save_checkpoint)
from .classifier import JudgeConfig, JudgeReport, MNISTJudge, judge, load_or_train_judge, train_judge
from .data import ImageDataset, load_dataset
from .download import DatasetNotFoundError, DownloadError
from .elbo import (bits_per_dim, ddpm_mean, decoder_nll, discretized_gaussian_log_prob, gaussian_kl,
                   prior_kl, vlb_term, vlb_terms)
from .embeddings import timestep_embedding
from .forward import q_posterior, q_sample, q_step
from .garbage import GARBAGE_KINDS, garbage
from .gmm import Estimate, GaussianMixture, MixtureOracle, MixturePosterior
from .images import demo_image, to_uint8
from .inversion import InversionOutput, ddim_invert, slerp
from .langevin import annealed_langevin, langevin
from .metrics import (KID, classifier_fid, classifier_kid, feature_stats, fid_from_features,
                      frechet_distance, judge_features, kid)
from .mlp import MLPConfig, MLPDenoiser
from .ode_samplers import ode_sigmas, sample_dpm_solver_pp_2m, sample_euler, sample_heun
from .parameterization import (eps_from_score, eps_from_v, eps_from_x0, score_from_eps, v_from_eps,
                               x0_from_eps, x0_from_v)
from .profiles import PROFILES, device, pick, profile
from .recipes import Recipe, load_mnist_judge, load_or_train_mnist_ddpm, mnist_ddpm_recipe, mnist_judge_config
from .reporting import Stopwatch, hardware
from .samplers import (SampleOutput, StepOutput, ddim_sigma, ddim_step, ddpm_step, respace, sample, sample_ddim,
                       sample_ddpm, timesteps)
from .schedules import Schedule, gather
from .toy import checkerboard, moons, rings, swiss_roll
from .train import TrainConfig, TrainResult, train
from .unet import UNet, UNetConfig, count_parameters, unet_block_report

__version__ = "0.1.0"

__all__ = [
    "Schedule", "gather",
    "q_step", "q_sample", "q_posterior",
    "gaussian_kl", "prior_kl", "ddpm_mean", "vlb_term", "discretized_gaussian_log_prob", "decoder_nll",
    "vlb_terms", "bits_per_dim",
    "x0_from_eps", "eps_from_x0", "v_from_eps", "x0_from_v", "eps_from_v", "score_from_eps", "eps_from_score",
    "profile", "pick", "device", "PROFILES",
    "Recipe", "mnist_ddpm_recipe", "load_or_train_mnist_ddpm", "mnist_judge_config", "load_mnist_judge",
    "demo_image", "to_uint8",
    "Stopwatch", "hardware",
    "load_dataset", "ImageDataset", "DatasetNotFoundError", "DownloadError",
    "swiss_roll", "moons", "checkerboard", "rings",
    "timestep_embedding", "MLPConfig", "MLPDenoiser", "UNetConfig", "UNet", "count_parameters", "unet_block_report",
    "TrainConfig", "TrainResult", "train",
    "cache_dir", "config_key", "cache_path", "save_checkpoint", "load_checkpoint", "cached_model", "CheckpointError",
    "JudgeConfig", "MNISTJudge", "JudgeReport", "train_judge", "judge", "load_or_train_judge",
    "garbage", "GARBAGE_KINDS",
    "frechet_distance", "feature_stats", "fid_from_features", "kid", "KID", "judge_features", "classifier_fid",
    "classifier_kid",
    "GaussianMixture", "MixturePosterior", "MixtureOracle", "Estimate",
    "StepOutput", "SampleOutput", "InversionOutput", "timesteps", "respace", "ddpm_step", "ddim_sigma", "ddim_step",
    "sample", "sample_ddpm", "sample_ddim", "ddim_invert", "slerp",
    "ode_sigmas", "sample_euler", "sample_heun", "sample_dpm_solver_pp_2m", "langevin", "annealed_langevin",
]
