"""Specformer: AstroCLIP's spectrum transformer, written so the released checkpoint loads strictly.

Facts from AstroCLIP (Parker et al. 2024) and its released ``polymathic-ai/specformer`` checkpoint:
the flux (7781 DESI pixels) is standardised by its own mean and std (std clipped below at 0.2), cut into
windows of 20 pixels every 10, each window a token of 20 values; a leading token carries the statistics
((mean - 2) / 2 and (std - 2) / 8), every token is zero-padded on the left to 22 inputs, so a DESI
spectrum is 778 tokens. Six pre-norm transformer blocks of width 768 and 6 heads, a final LayerNorm;
the embedding is the final LayerNorm's output. The state_dict names (``SPECFORMER_KEYS``) are the
released checkpoint's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

RELEASED_HPARAMS = dict(input_dim=22, embed_dim=768, num_layers=6, num_heads=6, max_len=800,
                        slice_section_length=20, slice_overlap=10)


def specformer_keys(num_layers: int) -> list[str]:
    """The state_dict keys of a Specformer with ``num_layers`` blocks, in the released order."""
    keys = ["data_embed.weight", "data_embed.bias", "position_embed.weight"]
    for i in range(num_layers):
        for part in ("layernorm1", "attention.attention", "attention.projection", "layernorm2",
                     "mlp.encoder", "mlp.decoder"):
            keys += [f"blocks.{i}.{part}.weight", f"blocks.{i}.{part}.bias"]
    return keys + ["final_layernorm.weight", "final_layernorm.bias", "head.weight", "head.bias"]


SPECFORMER_KEYS = specformer_keys(RELEASED_HPARAMS["num_layers"])


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {heads}")
        self.heads = heads
        self.attention = nn.Linear(dim, 3 * dim)  # fused q, k, v
        self.projection = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.attention(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.projection(y.transpose(1, 2).reshape(b, t, c))


class _MLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.encoder = nn.Linear(dim, 4 * dim)
        self.decoder = nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.decoder(F.gelu(self.encoder(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.layernorm1 = nn.LayerNorm(dim)
        self.attention = _Attention(dim, heads)
        self.layernorm2 = nn.LayerNorm(dim)
        self.mlp = _MLP(dim)

    def forward(self, x):
        x = x + self.attention(self.layernorm1(x))
        return x + self.mlp(self.layernorm2(x))


class Specformer(nn.Module):
    def __init__(self, input_dim=22, embed_dim=768, num_layers=6, num_heads=6, max_len=800,
                 slice_section_length=20, slice_overlap=10, **_unused):
        super().__init__()
        self.hparams = dict(input_dim=input_dim, embed_dim=embed_dim, num_layers=num_layers, num_heads=num_heads,
                            max_len=max_len, slice_section_length=slice_section_length, slice_overlap=slice_overlap)
        self.section, self.overlap = slice_section_length, slice_overlap
        self.data_embed = nn.Linear(input_dim, embed_dim)
        self.position_embed = nn.Embedding(max_len, embed_dim)
        self.blocks = nn.ModuleList([_Block(embed_dim, num_heads) for _ in range(num_layers)])
        self.final_layernorm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, input_dim)  # reconstruction head of the pre-training task
        self._init_weights()

    def _init_weights(self):
        std = 1 / math.sqrt(self.hparams["embed_dim"])
        for emb in (self.data_embed, self.position_embed):
            nn.init.trunc_normal_(emb.weight, std=std, a=-3 * std, b=3 * std)
        for module in self.modules():
            if isinstance(module, nn.Linear) and module is not self.data_embed:
                std = 1 / math.sqrt(2 * module.weight.shape[1] * self.hparams["num_layers"])
                nn.init.trunc_normal_(module.weight, std=std, a=-3 * std, b=3 * std)
                nn.init.zeros_(module.bias)

    def tokenize(self, flux: torch.Tensor) -> torch.Tensor:
        """(batch, pixels) flux -> (batch, 1 + windows, input_dim) tokens, as AstroCLIP prepares them."""
        std = flux.std(dim=1, keepdim=True).clamp(min=0.2)
        mean = flux.mean(dim=1, keepdim=True)
        x = (flux - mean) / std
        step = self.section - self.overlap
        starts = range(0, x.shape[1] - self.overlap, step)
        windows = [x[:, s:s + self.section] for s in starts if s + self.section <= x.shape[1]]
        tokens = torch.stack(windows, dim=1)  # (batch, windows, section)
        pad = self.hparams["input_dim"] - self.section
        tokens = F.pad(tokens, (pad, 0, 1, 0))  # left-pad features, add the statistics token in front
        tokens[:, 0, 0] = (mean[:, 0] - 2) / 2
        tokens[:, 0, 1] = (std[:, 0] - 2) / 8
        return tokens

    def forward(self, flux: torch.Tensor) -> torch.Tensor:
        """Final layer-normed token states, (batch, tokens, embed_dim)."""
        return self.encode(self.tokenize(flux))

    def encode(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Final layer-normed token states of already tokenized spectra."""
        return self.encode_layers(x, positions)[-1]

    def encode_layers(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Token states after each block, the last after the final layer norm (``encode``'s output).
        ``positions``: the tokens' places in the whole sequence (default 0, 1, ...), for a cropped one."""
        if x.shape[1] > self.hparams["max_len"]:
            raise ValueError(f"spectrum gives {x.shape[1]} tokens; Specformer takes at most {self.hparams['max_len']}")
        if positions is None:
            positions = torch.arange(x.shape[1], device=x.device)
        x = self.data_embed(x) + self.position_embed(positions)
        states = []
        for block in self.blocks:
            x = block(x)
            states.append(x)
        states[-1] = self.final_layernorm(x)
        return states


def mask_token_runs(tokens: torch.Tensor, n_chunks: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """AstroCLIP's pre-training mask: per spectrum, zero one run of ``width`` tokens in each of ``n_chunks``
    equal stretches of the sequence (so runs never touch)."""
    n = tokens.shape[1]
    if n // n_chunks <= width:
        raise ValueError(f"{n} tokens cannot hold {n_chunks} masked runs of {width}")
    masked = tokens.clone()
    starts = torch.randint(0, n // n_chunks - width, (tokens.shape[0], n_chunks), generator=generator)
    for b in range(tokens.shape[0]):
        for i in range(n_chunks):
            s = i * n // n_chunks + int(starts[b, i])
            masked[b, s:s + width] = 0
    return masked


def crop_positions(n_tokens: int, crop: int | None, generator: torch.Generator, min_tokens: int = 1) -> torch.Tensor:
    """The token positions a pre-training step sees: all ``n_tokens``, or the statistics token followed by
    one run of at most ``crop`` consecutive tokens. The run's start is drawn uniformly from the places where
    it keeps at least ``min_tokens`` tokens, and the run is cut at the spectrum's ends: every position is then
    in a run about equally often, the ends included (a run drawn only from the places where it fits whole
    would cover the first and last tokens in about 1 step of ``n_tokens - crop``)."""
    if not crop or crop >= n_tokens - 1:
        return torch.arange(n_tokens)
    start = int(torch.randint(1 - crop + min_tokens, n_tokens - min_tokens + 1, (1,), generator=generator))
    first, last = max(1, start), min(n_tokens - 1, start + crop - 1)
    return torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(first, last + 1)])


def pretrain(model: Specformer, flux: torch.Tensor, steps: int, batch_size: int, learning_rate: float,
             mask_chunks: int = 6, mask_width: int = 50, seed: int = 0, log=None, log_every: int = 50,
             crop_tokens: int | None = None) -> list[float]:
    """Masked-reconstruction pre-training, AstroCLIP's Specformer objective: mask runs of tokens, predict
    them with ``head``, mean squared error over the masked tokens only. Optimiser as AstroCLIP's config
    (AdamW, betas 0.9/0.95, weight decay 0.1, gradient clip 1); the learning rate is far higher and the
    run far shorter, to suit a small model on a CPU. With ``crop_tokens``, each step trains on one random
    run of that many tokens (plus the statistics token) instead of the whole spectrum: attention costs the
    square of the length, so a quarter of the spectrum costs about a tenth as much per step. Returns the
    loss of every step."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=(0.9, 0.95), weight_decay=0.1)
    losses: list[float] = []
    model.train()
    order = torch.randperm(len(flux), generator=gen)
    pos = 0
    for step in range(1, steps + 1):
        if pos + batch_size > len(order):  # a new epoch: reshuffle
            order, pos = torch.randperm(len(flux), generator=gen), 0
        tokens = model.tokenize(flux[order[pos:pos + batch_size]])
        pos += batch_size
        positions = crop_positions(tokens.shape[1], crop_tokens, gen, min_tokens=mask_chunks * (mask_width + 1))
        tokens = tokens[:, positions]
        masked = mask_token_runs(tokens, mask_chunks, mask_width, gen)
        where = (masked != tokens).to(tokens.dtype)
        reconstruction = model.head(model.encode(masked, positions))
        loss = F.mse_loss(reconstruction * where, tokens * where) / where.mean().clamp(min=1e-12)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if log is not None and (step % log_every == 0 or step == steps):
            recent = losses[-log_every:]
            log.info("pre-training step %d/%d: masked MSE %.4f (mean of the last %d)", step, steps,
                     sum(recent) / len(recent), len(recent))
    model.eval()
    return losses


def load_specformer_checkpoint(path, map_location="cpu") -> Specformer:
    """Build a Specformer from AstroCLIP's checkpoint file (``hyper_parameters`` + ``state_dict``)."""
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    state = ckpt.get("state_dict", ckpt)
    model = Specformer(**ckpt.get("hyper_parameters", RELEASED_HPARAMS))
    model.load_state_dict(state, strict=True)
    return model.eval()
