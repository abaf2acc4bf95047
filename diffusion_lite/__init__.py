"""Diffusion Lite: the small, readable package behind the book.

Every public name is available flat, as `dl.<name>` after `import diffusion_lite as dl`. The
modules are grouped by the stage of the book they serve (diffusion_lite/README.md has the map from
each sub-package to its chapters):

    core/      the mathematics: schedules, forward process, reverse step, parameterisations, ELBO
    sampling/  shared loop helpers, DDPM, DDIM and inversion, ODE solvers, Langevin, `sample`
    nets/      time embeddings, the MLP, attention, the U-Net and its per-block summary
    training/  the training loop and the recipes of the book's shared models
    oracles/   exact answers: Gaussian mixtures with closed-form scores and posteriors
    data/      downloads, image data sets, 2-D toy data, demo images
    eval/      the MNIST judge, garbage images, distribution metrics on the judge's features
    checkpoint, pickle_scan, profiles, plotting, reporting   used by every stage (top level)

The dependency order is one way: core <- sampling, nets <- training <- eval; nothing in core
imports a sampler, a network or the trainer.
"""
from .checkpoint import (CheckpointError, cache_dir, cache_path, cached_model, config_key, load_checkpoint,
                         save_checkpoint)
from .core.elbo import (bits_per_dim, decoder_nll, discretized_gaussian_log_prob, gaussian_kl, prior_kl, vlb_term,
                        vlb_terms)
from .core.forward import q_posterior, q_sample, q_step
from .core.parameterization import (eps_from_score, eps_from_v, eps_from_x0, score_from_eps, v_from_eps,
                                    x0_from_eps, x0_from_v)
from .core.reverse import VARIANCES, ddpm_mean, reverse_variance
from .core.schedules import Schedule, check_schedule, gather
from .data.datasets import ImageDataset, data_root, load_dataset, read_idx
from .data.download import DatasetNotFoundError, DownloadError
from .data.images import demo_image, to_uint8
from .data.toy import checkerboard, moons, rings, swiss_roll
from .data.captions import CAPTION_KINDS, CaptionSplit, caption_split, captions_of, fill_caption, sample_captions
from .eval.conditional import ConditionalReport, conditional_report, knn_recall
from .eval.garbage import GARBAGE_KINDS, garbage
from .eval.judge import JudgeConfig, JudgeReport, MNISTJudge, judge, load_or_train_judge, train_judge
from .eval.image_metrics import psnr, ssim
from .eval.neighbours import Neighbours, nearest_neighbours, training_spacing  # chapter 16
from .eval.metrics import (KID, classifier_fid, classifier_kid, feature_stats, fid_from_features,
                           frechet_distance, judge_features, kid)
from .eval.manifold import DensityCoverage, PrecisionRecall, density_coverage, knn_radii, precision_recall
from .eval.metrics import FIDInfinity, fid_infinity, judge_fid
from .eval.scores import InceptionScore, inception_score, judge_inception_score
from .eval.toy_metrics import (Floor, ModeCoverage, distance_floor, energy_distance, mode_coverage,
                               sliced_wasserstein)
from .nets.attention import AttentionBlock
from .nets.autoencoder import Autoencoder, AutoencoderConfig, gaussian_kl_standard
from .nets.gan import GANConfig, GANDiscriminator, GANGenerator
from .nets.vae import VAE, VAEConfig
from .nets.embeddings import TimeEmbedding, timestep_embedding
from .nets.latent import LatentModel
from .nets.mlp import MLPConfig, MLPDenoiser
from .nets.noisy_classifier import NoisyClassifier, NoisyClassifierConfig
from .nets.summary import count_parameters, unet_block_report
from .nets.superres import SuperResModel, downsample, upsample
from .nets.text_encoder import TextEncoder, TextEncoding, encoder_path, mean_pool  # chapter 11
from .nets.unet import ResBlock, UNet, UNetConfig
from .oracles.gmm import Estimate, GaussianMixture, MixtureOracle, MixturePosterior
from .oracles.empirical import EmpiricalDenoiser, empirical_x0  # chapter 16
from .profiles import PROFILES, device, pick, profile, to_device
from .reporting import Stopwatch, hardware
from .sampling.base import SampleOutput, StepOutput, timesteps
from .sampling.ddim import ddim_step, ddim_variance, sample_ddim
from .sampling.ddpm import ddpm_step, respace, sample_ddpm
from .sampling.dispatch import SAMPLERS, sample
from .sampling.classifier_guidance import classifier_guidance, classifier_log_prob_grad
from .sampling.edit import EDIT_METHODS, sdedit
from .sampling.guidance import classifier_free_guidance
from .sampling.inpaint import check_mask, inpaint, repaint_path
from .sampling.inversion import InversionOutput, ddim_invert, slerp
from .sampling.langevin import annealed_langevin, langevin
from .sampling.flow import sample_flow  # chapter 17
from .sampling.ode import ode_sigmas, sample_dpm_solver_pp_2m, sample_euler, sample_heun
from .training.conditional import (ClassifierTrainConfig, load_or_train_mnist_cond, load_or_train_noisy_classifier,
                                   mnist_cond_recipe, noisy_classifier_setup, train_noisy_classifier)
from .training.autoencoder import (AutoencoderTrainConfig, autoencoder_loss, load_or_train_mnist_autoencoder,
                                   mnist_autoencoder_recipe, train_autoencoder)
from .training.latent import latent_ddpm_recipe, load_or_train_latent_ddpm
from .training.recipes import Recipe, load_mnist_judge, load_or_train_mnist_ddpm, mnist_ddpm_recipe, mnist_judge_config
from .training.text import load_or_train_mnist_text, mnist_text_recipe, prompt_conditions, training_captions
from .training.superres import SR_KINDS, load_or_train_superres, regress, superres_recipe, train_regression
from .training.distill import (DistillConfig, DistillResult, distill, distill_target, distill_weight,  # chapter 17
                               progressive_distillation, student_grid)
from .training.rectified_flow import train_rectified_flow  # chapter 17
from .training.gan import (GANResult, GANTrainConfig, discriminator_loss, generator_loss, load_or_train_gan,
                           r1_penalty, train_gan)
from .training.vae import VAEResult, VAETrainConfig, load_or_train_vae, negative_elbo, train_vae
from .training.rivals import load_or_train_ring_diffusion, ring_configs, ring_data
from .training.train import TrainConfig, TrainResult, learning_rate, loss_weight, train, update_ema
from .training.edm import EDMPrecond, edm_check_schedule, edm_coefficients, edm_loss, edm_loss_weight, edm_sigmas

__version__ = "0.1.0"

__all__ = [
    # core
    "Schedule", "gather", "check_schedule",
    "q_step", "q_sample", "q_posterior",
    "VARIANCES", "ddpm_mean", "reverse_variance",
    "gaussian_kl", "prior_kl", "vlb_term", "discretized_gaussian_log_prob", "decoder_nll", "vlb_terms", "bits_per_dim",
    "x0_from_eps", "eps_from_x0", "v_from_eps", "x0_from_v", "eps_from_v", "score_from_eps", "eps_from_score",
    # sampling
    "StepOutput", "SampleOutput", "timesteps", "respace", "ddpm_step", "sample_ddpm",
    "ddim_variance", "ddim_step", "sample_ddim", "InversionOutput", "ddim_invert", "slerp",
    "ode_sigmas", "sample_euler", "sample_heun", "sample_dpm_solver_pp_2m", "langevin", "annealed_langevin",
    "SAMPLERS", "sample", "classifier_free_guidance",
    "classifier_guidance", "classifier_log_prob_grad",  # chapter 10
    # sampling: image-to-image (chapter 13)
    "check_mask", "repaint_path", "inpaint", "EDIT_METHODS", "sdedit",
    "sample_flow",  # chapter 17
    # nets
    "timestep_embedding", "TimeEmbedding", "MLPConfig", "MLPDenoiser", "AttentionBlock", "ResBlock", "UNetConfig",
    "UNet", "count_parameters", "unet_block_report",
    "NoisyClassifierConfig", "NoisyClassifier",  # chapter 10
    "TextEncoder", "TextEncoding", "encoder_path", "mean_pool",  # chapter 11
    # nets: latent diffusion and super-resolution (chapters 12-13)
    "AutoencoderConfig", "Autoencoder", "gaussian_kl_standard", "LatentModel", "SuperResModel", "downsample",
    "upsample",
    "GANConfig", "GANGenerator", "GANDiscriminator", "VAEConfig", "VAE",  # chapter 15
    # training
    "TrainConfig", "TrainResult", "train", "update_ema", "learning_rate", "loss_weight",
    "EDMPrecond", "edm_coefficients", "edm_loss_weight", "edm_sigmas", "edm_loss", "edm_check_schedule",
    "AutoencoderTrainConfig", "autoencoder_loss", "train_autoencoder", "mnist_autoencoder_recipe",
    "load_or_train_mnist_autoencoder", "regress", "train_regression", "latent_ddpm_recipe",
    "load_or_train_latent_ddpm", "SR_KINDS", "superres_recipe", "load_or_train_superres",
    "Recipe", "mnist_ddpm_recipe", "load_or_train_mnist_ddpm", "mnist_judge_config", "load_mnist_judge",
    "mnist_cond_recipe", "load_or_train_mnist_cond", "ClassifierTrainConfig", "train_noisy_classifier",  # chapter 10
    "noisy_classifier_setup", "load_or_train_noisy_classifier",
    "mnist_text_recipe", "load_or_train_mnist_text", "training_captions", "prompt_conditions",  # chapter 11
    "DistillConfig", "DistillResult", "student_grid", "distill_target", "distill_weight", "distill",
    "progressive_distillation",
    "train_rectified_flow",  # chapter 17
    "GANTrainConfig", "GANResult", "train_gan", "load_or_train_gan", "discriminator_loss", "generator_loss",  # ch. 15
    "r1_penalty", "VAETrainConfig", "VAEResult", "train_vae", "load_or_train_vae", "negative_elbo",
    "ring_data", "ring_configs", "load_or_train_ring_diffusion",
    # oracles
    "GaussianMixture", "MixturePosterior", "MixtureOracle", "Estimate",
    "EmpiricalDenoiser", "empirical_x0",  # chapter 16
    # data
    "load_dataset", "ImageDataset", "data_root", "read_idx", "DatasetNotFoundError", "DownloadError",
    "swiss_roll", "moons", "checkerboard", "rings", "demo_image", "to_uint8",
    "CAPTION_KINDS", "CaptionSplit", "caption_split", "captions_of", "fill_caption", "sample_captions",  # ch. 11
    # eval
    "JudgeConfig", "MNISTJudge", "JudgeReport", "train_judge", "judge", "load_or_train_judge",
    "garbage", "GARBAGE_KINDS",
    "frechet_distance", "feature_stats", "fid_from_features", "kid", "KID", "judge_features", "classifier_fid",
    "classifier_kid", "psnr", "ssim",
    "ConditionalReport", "conditional_report", "knn_recall",  # chapter 10
    "Neighbours", "nearest_neighbours", "training_spacing",  # chapter 16
    # eval, chapter 14
    "judge_fid", "fid_infinity", "FIDInfinity", "precision_recall", "PrecisionRecall", "density_coverage",
    "DensityCoverage", "knn_radii", "inception_score", "judge_inception_score", "InceptionScore",
    "sliced_wasserstein", "energy_distance", "distance_floor", "Floor", "mode_coverage", "ModeCoverage",
    # top level
    "cache_dir", "config_key", "cache_path", "save_checkpoint", "load_checkpoint", "cached_model", "CheckpointError",
    "profile", "pick", "device", "to_device", "PROFILES", "Stopwatch", "hardware",
]
