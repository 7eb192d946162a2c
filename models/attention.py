"""Transformer-encoder text classifier with attention written out by hand.

token + learned position embeddings -> N pre-norm encoder blocks (multi-head self-attention
``softmax(Q K^T / sqrt(d_k)) V`` with a key padding mask, feed-forward, residuals, LayerNorm)
-> final LayerNorm -> masked mean pooling over real tokens -> linear.

Why not ``nn.MultiheadAttention``: its eval fast path (``aten::_native_multi_head_attention``)
does not export to ONNX (pytorch#143107). Plain matmuls + softmax export everywhere and let the
model return its attention weights, which ``forward(..., return_attention=True)`` exposes as
(B, layers, heads, T, T).

Masked keys get a large finite negative score (``MASK_FILL``) rather than ``-inf``: an all-padding
row then gives uniform weights instead of NaN, and the constant survives float16 conversion.
Shapes are never read into Python ints for reshapes (``unflatten``/``flatten`` instead), so the
legacy ONNX exporter keeps batch and sequence axes dynamic.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from edgecv.errors import InputError
from edgecv.models.common import masked_mean, padding_mask
from edgecv.models.registry import register_model

MASK_FILL = -1.0e4  # exp(-1e4) == 0 in float32; still finite in float16 (max 65504)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention with a key padding mask."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.attn_dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        # (B, T, D) -> (B, T, H, D/H) -> (B, H, T, D/H)
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = self._split(self.q_proj(x)), self._split(self.k_proj(x)), self._split(self.v_proj(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, T, T)
        scores = scores.masked_fill(~mask[:, None, None, :], MASK_FILL)  # hide padded keys
        weights = scores.softmax(dim=-1)  # (B, H, T, T); rows sum to 1
        out = self.attn_dropout(weights) @ v  # (B, H, T, D/H)
        out = out.transpose(1, 2).flatten(2)  # (B, T, D)
        return self.out_proj(out), weights


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + FF(LN(x))."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(ff_dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attn(self.norm1(x), mask)
        x = x + self.dropout(attended)  # (B, T, D)
        x = x + self.dropout(self.ff(self.norm2(x)))
        return x, weights


class AttentionClassifier(nn.Module):
    """Token ids (B, T) -> logits (B, num_classes) [, attention (B, layers, heads, T, T)]."""

    head_name = "head"  # dotted name of the final layer (see edgecv.models.weights)

    def __init__(self, *, vocab_size: int, num_classes: int, embed_dim: int = 128,
                 num_heads: int = 4, num_layers: int = 2, ff_dim: int = 256, dropout: float = 0.1,
                 max_len: int = 512, pad_id: int = 0) -> None:
        super().__init__()
        if vocab_size < 2 or num_classes < 1 or num_layers < 1 or max_len < 1:
            raise ValueError(f"need vocab_size >= 2, num_classes, num_layers, max_len >= 1; got "
                             f"{vocab_size}, {num_classes}, {num_layers}, {max_len}")
        self.pad_id = pad_id
        self.max_len = max_len
        self.token_embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.position_embedding = nn.Embedding(max_len, embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(embed_dim, num_heads, ff_dim, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # BERT-style: small normal weights keep early attention close to uniform.
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.token_embedding.weight[self.pad_id].zero_()

    def forward(self, input_ids: torch.Tensor,
                return_attention: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``return_attention=True`` returns ``(logits, attention)``; attention rows sum to 1.

        To export both outputs, trace a wrapper that calls ``model(ids, return_attention=True)``;
        the legacy exporter passes the flag's default as a traced constant otherwise (harmless
        TracerWarning, the branch is fixed at export time either way).
        """
        if not torch.jit.is_tracing() and input_ids.shape[1] > self.max_len:
            raise InputError(f"input_ids: sequence length {input_ids.shape[1]} exceeds this model's "
                             f"max_len {self.max_len}")
        mask = padding_mask(input_ids, self.pad_id)  # (B, T) bool
        # Slicing by the runtime length keeps T dynamic in the exported graph.
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        x = self.token_embedding(input_ids) + self.position_embedding(positions)  # (B, T, D)
        x = self.dropout(x)
        attention = []
        for block in self.blocks:
            x, weights = block(x, mask)
            attention.append(weights)
        pooled = masked_mean(self.norm(x), mask)  # (B, D); zeros for an all-padding row
        logits = self.head(pooled)  # (B, num_classes)
        if return_attention:
            return logits, torch.stack(attention, dim=1)  # (B, layers, heads, T, T)
        return logits


@register_model(task="text", input_size=(64,),
                description="Transformer-encoder text classifier (explicit attention)")
def attention_classifier(*, vocab_size: int, num_classes: int, embed_dim: int = 128,
                         num_heads: int = 4, num_layers: int = 2, ff_dim: int = 256,
                         dropout: float = 0.1, max_len: int = 512,
                         pad_id: int = 0) -> AttentionClassifier:
    """Transformer-encoder text classifier that can return its attention weights."""
    return AttentionClassifier(vocab_size=vocab_size, num_classes=num_classes, embed_dim=embed_dim,
                               num_heads=num_heads, num_layers=num_layers, ff_dim=ff_dim,
                               dropout=dropout, max_len=max_len, pad_id=pad_id)
