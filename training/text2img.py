"""Text-to-image: captions to 8x8 digits. A text encoder and a FiLM-conditioned DDPM denoiser,
trained jointly, with classifier-free guidance by dropping captions to the null caption.

Ho et al. 2020 (DDPM); Ho & Salimans 2021 (classifier-free guidance); Perez et al. 2018 (FiLM);
Prince, Understanding Deep Learning, ch. 18. The captions are training/captions.py; the schedule
and timestep embedding are training/diffusion.py's; sampling is service/sampling/diffusion.py,
which the service and the judge (training/text_judge.py) both run over the two ONNX graphs.
"""

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import torch
from PIL import Image, ImageDraw
from torch import nn

from service.sampling.prompts import Vocabulary
from training import captions, data, writer
from training.diffusion import cosine_betas, fit_denoiser, sinusoidal
from training.export import count_parameters, export_verified
from training.generated import JUDGE_MODEL, count
from training.judge import Judge, latest_version
from training.text_judge import OnnxTextToImage, verdict
from training.units import to_raw

NETWORK_RANGE = (-1.0, 1.0)
GRID_PROMPTS = ["a thick seven leaning right", "7, thin and upright", "the digit seven",
                "a thin two leaning left", "a thick two leaning right", "the number 4, upright",
                "a regular 8", "nine with thick strokes", "a digit leaning left", ""]


@dataclass
class Config:
    name: str = "digits-text2img"
    timesteps: int = 100
    hidden: int = 192  # 256 with FiLM is over the 5 MB a committed file may take
    blocks: int = 4
    embed: int = 64  # word embedding width
    text_dim: int = 128  # the encoder's output: one vector per caption
    max_words: int = 16
    steps: int = 4000  # 2 shared CPU cores: kept short, see the card's training_time_s
    batch_size: int = 256
    lr: float = 1e-3
    p_uncond: float = 0.15  # captions dropped to the null caption (Ho & Salimans 2021: 0.1-0.2)
    captions_per_image: int = 32
    caption_margin: float = 0.04  # see captions.clear: borderline attributes go unsaid
    ema: float = 0.999
    guidance: float = 3.0  # the service's default and the judge's
    default_steps: int = 50
    seed: int = 0


# --quick (tests) proves the pipeline, not the model: one narrow block, a narrow text encoder. An
# export costs per traced op, and it is most of a quick run.
QUICK = {"hidden": 32, "blocks": 1, "embed": 16, "text_dim": 16}


class TextEncoder(nn.Module):
    """tokens (B, L) int64, 0 = padding -> (B, text_dim): mean of word embeddings, then an MLP.

    A bag of words: the captions' attributes are independent words, so order carries nothing
    the judge asks for; the held-out phrasings test new orders and pairings of trained words.
    """

    def __init__(self, vocab: int, embed: int, out: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.mlp = nn.Sequential(nn.Linear(embed, out), nn.SiLU(), nn.Linear(out, out))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != 0).float().unsqueeze(-1)  # (B, L, 1)
        pooled = (self.embed(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, E)
        return self.mlp(pooled)


class FiLMBlock(nn.Module):
    """h + W2 SiLU(LN-linear(h) * (1 + gamma) + beta), gamma, beta from time and text (FiLM)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.lin1 = nn.Linear(hidden, hidden)
        self.film = nn.Linear(hidden, 2 * hidden)
        self.lin2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(nn.functional.silu(emb)).chunk(2, dim=1)  # (B, H) each
        return h + self.lin2(nn.functional.silu(self.lin1(self.norm(h)) * (1 + gamma) + beta))


class Denoiser(nn.Module):
    """eps(x_t, t, text): (B, 1, 8, 8) float, (B,) int64, (B, text_dim) float -> (B, 1, 8, 8)."""

    def __init__(self, hidden: int, blocks: int, text_dim: int):
        super().__init__()
        self.hidden = hidden
        self.inp = nn.Linear(64, hidden)
        self.time = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.text = nn.Linear(text_dim, hidden)
        self.blocks = nn.ModuleList(FiLMBlock(hidden) for _ in range(blocks))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 64))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        emb = self.time(sinusoidal(t, self.hidden)) + self.text(text)  # (B, H)
        h = self.inp(x_t.flatten(1))  # (B, 64) -> (B, H)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h).view(-1, 1, 8, 8)


class TextToImage(nn.Module):
    """The two networks trained as one; exported as two graphs."""

    def __init__(self, cfg: Config, vocab: int):
        super().__init__()
        self.encoder = TextEncoder(vocab, cfg.embed, cfg.text_dim)
        self.denoiser = Denoiser(cfg.hidden, cfg.blocks, cfg.text_dim)

    def forward(self, x_t, t, tokens):
        return self.denoiser(x_t, t, self.encoder(tokens))


def caption_bank(cfg: Config, images: np.ndarray, digits: np.ndarray, vocab: Vocabulary,
                 thresholds: captions.Thresholds) -> np.ndarray:
    """(N, K, L) token ids: K captions of each training image, in the training phrasings."""
    weight, slant = thresholds.measure(images, digits)
    weight_clear, slant_clear = captions.clear(images, digits, cfg.caption_margin)
    texts = captions.training_captions(digits, weight, slant, weight_clear, slant_clear,
                                       cfg.captions_per_image, cfg.seed)
    return np.stack([vocab.encode(row) for row in texts])


def train(cfg: Config, x_train: np.ndarray, bank: np.ndarray, null: np.ndarray, vocab: int,
          betas: np.ndarray, quick: bool):
    """Ho et al. 2020, Algorithm 1, with a random caption of each image (null w.p. p_uncond)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    bank_t, null_t = torch.from_numpy(bank), torch.from_numpy(null)

    def captions_of(idx: torch.Tensor) -> torch.Tensor:
        pick = torch.randint(0, bank_t.shape[1], (cfg.batch_size,), generator=gen)
        tokens = bank_t[idx, pick].clone()  # (B, L)
        tokens[torch.rand(cfg.batch_size, generator=gen) < cfg.p_uncond] = null_t
        return tokens

    return fit_denoiser(TextToImage(cfg, vocab), cfg, x_train, captions_of, betas, quick, gen)


def strip_traces(path: Path) -> None:
    """Drop the exporter's per-node metadata (stack traces with this machine's paths)."""
    model = onnx.load(str(path))
    for node in model.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    del model.metadata_props[:]
    onnx.save(model, str(path))


def export(cfg: Config, net: TextToImage, vdir: Path, vocab: Vocabulary, x_test: np.ndarray,
           betas: np.ndarray) -> dict:
    """Both graphs, each proven against torch; returns the parity errors per file."""
    rng = np.random.default_rng(cfg.seed)
    alpha_bar = np.cumprod(1 - betas)
    real_tokens = vocab.encode(captions.judge_captions(64, cfg.seed + 7).captions)  # (64, L)

    def tokens(kind: str, batch: int) -> np.ndarray:
        if kind == "real":
            return real_tokens[rng.integers(0, len(real_tokens), batch)]
        length = rng.integers(0, cfg.max_words + 1, batch)  # 0: all padding, the edge case
        ids = rng.integers(1, len(vocab.ids), (batch, cfg.max_words))
        return np.where(np.arange(cfg.max_words)[None] < length[:, None], ids, 0).astype(np.int64)

    def denoiser_inputs(kind: str, batch: int) -> tuple[np.ndarray, ...]:
        t = rng.integers(0, cfg.timesteps, batch).astype(np.int64)
        if kind == "real":  # test digits noised to a random timestep, real captions encoded
            ab = alpha_bar[t].reshape(-1, 1, 1, 1)
            x_t = np.sqrt(ab) * x_test[:batch] + np.sqrt(1 - ab) * rng.standard_normal((batch, 1, 8, 8))
            with torch.no_grad():
                text = net.encoder(torch.from_numpy(tokens("real", batch))).numpy()
        else:
            x_t = rng.standard_normal((batch, 1, 8, 8))
            text = rng.standard_normal((batch, cfg.text_dim))
        return x_t.astype(np.float32), t, text.astype(np.float32)

    files = {"text_encoder.onnx": (net.encoder, ["tokens"], ["text"], lambda k, b: (tokens(k, b),)),
             "denoiser.onnx": (net.denoiser, ["x_t", "t", "text"], ["eps"], denoiser_inputs)}
    errors = {}
    for file_name, (module, inputs, outputs, make) in files.items():
        errors[file_name] = export_verified(module, vdir / file_name, inputs, outputs, make)
        strip_traces(vdir / file_name)
    return errors


def grid_png(path: Path, samples: np.ndarray, prompts: list[str], spec: dict, scale: int = 4) -> None:
    """One row per prompt, its text on the left: samples (P * K, 1, 8, 8), network units, prompt-major."""
    per_row = len(samples) // len(prompts)
    raw = to_raw(samples[:, 0], spec["raw_range"], spec["network_range"])  # (P*K, 8, 8)
    ink = (np.clip(raw / spec["raw_range"][1], 0, 1) * 255).astype(np.uint8)
    cell, label_w = 9 * scale, 220
    img = Image.new("L", (label_w + per_row * cell, len(prompts) * cell + 2), 255)
    draw = ImageDraw.Draw(img)
    for r, prompt in enumerate(prompts):
        draw.text((4, r * cell + cell // 3), prompt or "(empty: unconditional)", fill=0)
        for c in range(per_row):
            tile = Image.fromarray(ink[r * per_row + c]).resize((8 * scale, 8 * scale), Image.NEAREST)
            img.paste(tile, (label_w + c * cell, r * cell + 2))
    img.save(path)


def main(cfg: Config, output: Path, version: int | None = None, quick: bool = False) -> Path:
    cfg = replace(cfg, **QUICK) if quick else cfg
    split = data.digits()
    spec = data.digits_spec(NETWORK_RANGE)
    betas = cosine_betas(cfg.timesteps)
    words = captions.vocabulary()
    vocab = Vocabulary(words, cfg.max_words)
    thresholds = captions.Thresholds.fit(split.x_train, split.y_train)
    bank = caption_bank(cfg, split.x_train, split.y_train, vocab, thresholds)  # (N, K, L)
    null = vocab.encode([""])[0]  # (L,): NULL then padding
    x_train = data.to_network(split.x_train, data.DIGITS_RAW_RANGE, NETWORK_RANGE)
    x_test = data.to_network(split.x_test, data.DIGITS_RAW_RANGE, NETWORK_RANGE)
    start = time.time()
    net, curves = train(cfg, x_train, bank, null, len(words), betas, quick)
    training_time = time.time() - start

    vdir = writer.version_dir(output, cfg.name, version)
    parity = export(cfg, net, vdir, vocab, x_test, betas)
    writer.write_configs(vdir, {
        "task": "text-to-image",
        "description": "Captions to 8x8 handwritten digits: a bag-of-words text encoder and a "
                       "FiLM-conditioned DDPM denoiser, classifier-free guidance.",
        "graphs": {"text_encoder": "text_encoder.onnx", "denoiser": "denoiser.onnx"},
        "vocabulary": words,
        "prompt_examples": GRID_PROMPTS[:-1],
        "data": spec,
        "schedule": {"betas": betas.tolist()},
        "default_steps": cfg.default_steps,
        "max_steps": cfg.timesteps,
        "default_guidance": cfg.guidance,
        "max_samples": 64,
    })

    # The judge sees what the service produces: the numpy sampler over the two ONNX graphs.
    model = OnnxTextToImage(vdir)
    cnn = latest_version(output / JUDGE_MODEL)
    n = count(quick)
    asked = captions.judge_captions(n, cfg.seed + 1)
    metrics: dict = {}  # judged on dataset.captions.held_out_phrasings
    for guidance in sorted({1.0, cfg.guidance}):
        samples = model.draw(asked.captions, guidance, steps=cfg.default_steps, seed=cfg.seed + 2)
        key = f"judge_guidance_{guidance:g}"
        metrics[key] = {"sampler": f"ddpm, {cfg.default_steps} steps, guidance {guidance:g}",
                        **(verdict(Judge(cnn), samples, spec, asked, thresholds) if cnn else
                           {"skipped": f"no {JUDGE_MODEL} in {output}: train it first"})}
    per_row = 8
    grid = model.draw([p for p in GRID_PROMPTS for _ in range(per_row)], cfg.guidance,
                      steps=cfg.default_steps, seed=cfg.seed + 3)
    grid_png(vdir / "samples.png", grid, GRID_PROMPTS, spec)
    dataset = {**split.card, "captions": {
        "attributes": {"digit": captions.DIGIT_WORDS, "weight": captions.WEIGHTS,
                       "slant": captions.SLANTS},
        "measures": "weight: ink mass (sum of 0..16 pixels); slant: -mu11/mu02 of the ink's "
                    "second central moments; both against the terciles of the image's class "
                    "in the training split",
        "terciles": thresholds.as_dict(),
        "unsaid_margin": f"an attribute within {cfg.caption_margin} (in quantiles) of a tercile "
                         "boundary goes unsaid in training captions",
        "train_phrasings": captions.TRAIN_PHRASINGS,
        "held_out_phrasings": captions.HELD_OUT_PHRASINGS,
        "slant_phrases": captions.SLANT_PHRASES,
    }}
    writer.card(vdir, task="text-to-image",
                family="text-to-image diffusion (bag-of-words text encoder, FiLM DDPM denoiser, "
                       "classifier-free guidance)",
                dataset=dataset, metrics={**metrics, "grid_prompts": GRID_PROMPTS},
                parity=parity, parameters=count_parameters(net), training_time_s=training_time,
                seed=cfg.seed, hyperparameters=asdict(cfg), quick=quick)
    writer.loss_png(vdir / "loss.png", curves)
    return vdir
