"""PyTorch JinaBERT (the jina-embeddings-v2 backbone), written for transformers 5.

This file is shipped verbatim inside exported model folders and loaded by transformers as remote
code (``trust_remote_code=True`` with a local ``auto_map``). It therefore imports only torch,
public transformers APIs and its sibling config (through the relative import remote code
requires). The official ``jinaai/jina-bert-implementation`` code imports ``transformers.onnx``,
which transformers 5 removed; this implementation keeps the official parameter names so the same
``model.safetensors`` loads with either.

Architecture (jina-embeddings v2, Günther et al. 2023): BERT with post-LayerNorm blocks, no position embeddings, symmetric
ALiBi attention bias ``-slope[h] * |i - j|`` and a gated (GEGLU/ReGLU) MLP.
"""

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPooling, MaskedLMOutput

from .configuration_bert import JinaBertConfig


def alibi_head_slopes(num_heads: int) -> list[float]:
    """ALiBi slopes of Press et al., including head counts that are not a power of two."""

    def power_of_two_slopes(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]

    if math.log2(num_heads).is_integer():
        return power_of_two_slopes(num_heads)
    # Interleave: the closest lower power of two, then every other slope of the next power of two,
    # so the extra heads get slopes between the existing ones.
    closest = 2 ** math.floor(math.log2(num_heads))
    return (
        power_of_two_slopes(closest) + power_of_two_slopes(2 * closest)[0::2][: num_heads - closest]
    )


def alibi_bias(num_heads: int, seq_len: int, device=None) -> torch.Tensor:
    """Symmetric ALiBi bias [heads, S, S] in float32, built for the actual length of this call.

    Built per call instead of cached at max_position_embeddings: a fixed 8192x8192xheads buffer
    would cost gigabytes for every model, including those that only ever see short inputs.
    """
    slopes = torch.tensor(alibi_head_slopes(num_heads), dtype=torch.float32, device=device)
    positions = torch.arange(seq_len, device=device)
    distance = (positions[None, :] - positions[:, None]).abs().to(torch.float32)  # [S, S]
    return -slopes[:, None, None] * distance[None, :, :]


class JinaBertEmbeddings(nn.Module):
    """Word + token-type embeddings; position information comes from the ALiBi bias instead."""

    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))  # [B, S, H]


class JinaBertSelfAttention(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        if config.hidden_size % config.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size {config.hidden_size} is not a multiple of "
                f"num_attention_heads {config.num_attention_heads}"
            )
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_prob = config.attention_probs_dropout_prob

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq_len, _ = x.shape
        return x.view(batch, seq_len, self.num_heads, self.head_dim).transpose(1, 2)  # [B, h, S, d]

    def forward(self, hidden_states: torch.Tensor, attention_bias: torch.Tensor) -> torch.Tensor:
        query = self._split_heads(self.query(hidden_states))
        key = self._split_heads(self.key(hidden_states))
        value = self._split_heads(self.value(hidden_states))
        # SDPA scales q·k by 1/sqrt(head_dim) and then adds attn_mask, which is exactly where
        # ALiBi goes (the bias itself is not scaled).
        context = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attention_bias,
            dropout_p=self.dropout_prob if self.training else 0.0,
        )  # [B, h, S, d]
        batch, _, seq_len, _ = context.shape
        return context.transpose(1, 2).reshape(batch, seq_len, self.num_heads * self.head_dim)


class JinaBertSelfOutput(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dropout(self.dense(hidden_states)))


class JinaBertAttention(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.self = JinaBertSelfAttention(config)
        self.output = JinaBertSelfOutput(config)

    def forward(self, hidden_states: torch.Tensor, attention_bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(hidden_states, attention_bias), hidden_states)


class JinaBertGLUMLP(nn.Module):
    """Gated MLP: act(first half) * second half, then back to H, post-LayerNorm with residual."""

    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.intermediate_size = config.intermediate_size
        # One matmul for both halves; the checkpoint stores them stacked as [2I, H].
        self.gated_layers = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        if config.feed_forward_type == "geglu":
            self.act = nn.GELU(approximate="none")
        elif config.feed_forward_type == "reglu":
            self.act = nn.ReLU()
        else:
            raise ValueError(f"no gated MLP for feed_forward_type {config.feed_forward_type!r}")
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        projected = self.gated_layers(hidden_states)  # [B, S, 2I]
        gated = projected[..., : self.intermediate_size]
        plain = projected[..., self.intermediate_size :]
        intermediate = self.dropout(self.act(gated) * plain)  # [B, S, I]
        return self.layernorm(self.wo(intermediate) + hidden_states)


class JinaBertIntermediate(nn.Module):
    """Plain BERT MLP, first half (feed_forward_type="original")."""

    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))  # [B, S, I]


class JinaBertOutput(nn.Module):
    """Plain BERT MLP, second half with residual and post-LayerNorm."""

    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dropout(self.dense(hidden_states)))


class JinaBertLayer(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.attention = JinaBertAttention(config)
        self.uses_glu = config.feed_forward_type in ("geglu", "reglu")
        # Submodule names follow the official checkpoints: `mlp.*` for the gated MLP,
        # BERT's `intermediate.*`/`output.*` for the plain one.
        if self.uses_glu:
            self.mlp = JinaBertGLUMLP(config)
        else:
            self.intermediate = JinaBertIntermediate(config)
            self.output = JinaBertOutput(config)

    def forward(self, hidden_states: torch.Tensor, attention_bias: torch.Tensor) -> torch.Tensor:
        attention_output = self.attention(hidden_states, attention_bias)
        if self.uses_glu:
            return self.mlp(attention_output)
        return self.output(self.intermediate(attention_output), attention_output)


class JinaBertEncoder(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        if config.position_embedding_type != "alibi":
            raise ValueError(
                "this JinaBERT implementation supports only position_embedding_type='alibi', "
                f"got {config.position_embedding_type!r}"
            )
        self.num_heads = config.num_attention_heads
        self.layer = nn.ModuleList([JinaBertLayer(config) for _ in range(config.num_hidden_layers)])

    def attention_bias(
        self, attention_mask: torch.Tensor | None, seq_len: int, dtype: torch.dtype, device
    ) -> torch.Tensor:
        """ALiBi plus padding mask, [B or 1, h, S, S] in the compute dtype, shared by all layers."""
        bias = alibi_bias(self.num_heads, seq_len, device)[None]  # [1, h, S, S] float32
        if attention_mask is not None:
            padded_keys = (attention_mask == 0)[:, None, None, :]  # [B, 1, 1, S]
            # Filling (not adding) keeps masked logits finite in fp16, where finfo.min plus the
            # ALiBi term overflows to -inf and would turn an all-padding row into NaN.
            bias = bias.masked_fill(padded_keys, torch.finfo(dtype).min)
        return bias.to(dtype)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        bias = self.attention_bias(
            attention_mask, hidden_states.shape[1], hidden_states.dtype, hidden_states.device
        )
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layer:
            hidden_states = layer(hidden_states, bias)
            if output_hidden_states:
                all_hidden_states = (*all_hidden_states, hidden_states)
        return hidden_states, all_hidden_states


class JinaBertPooler(nn.Module):
    """tanh(dense([CLS])), kept for checkpoint compatibility; embeddings use mean pooling."""

    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))  # [B, H]


class JinaBertPreTrainedModel(PreTrainedModel):
    config_class = JinaBertConfig
    base_model_prefix = "bert"
    _no_split_modules: ClassVar[list[str]] = ["JinaBertEmbeddings", "JinaBertLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # torch.nn.init functions (not tensor.normal_()) so that transformers' loading guard can
        # skip parameters that were already loaded from a checkpoint.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            # A slice loses the "already loaded" flag, so check it on the full weight.
            if module.padding_idx is not None and not getattr(
                module.weight, "_is_hf_initialized", False
            ):
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, JinaBertLMPredictionHead):
            nn.init.zeros_(module.bias)


class JinaBertModel(JinaBertPreTrainedModel):
    def __init__(self, config: JinaBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = JinaBertEmbeddings(config)
        self.encoder = JinaBertEncoder(config)
        self.pooler = JinaBertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        # **kwargs swallows what callers pass by habit (position_ids, head_mask,
        # output_attentions, ...): none of it has a meaning here.
        if input_ids is None:
            raise ValueError("JinaBertModel.forward needs input_ids")
        if output_hidden_states is None:
            output_hidden_states = bool(getattr(self.config, "output_hidden_states", False))
        if return_dict is None:
            return_dict = getattr(self.config, "return_dict", True)

        embeddings = self.embeddings(input_ids, token_type_ids)  # [B, S, H]
        last_hidden_state, all_hidden_states = self.encoder(
            embeddings, attention_mask, output_hidden_states=output_hidden_states
        )
        pooled = self.pooler(last_hidden_state) if self.pooler is not None else None
        output = BaseModelOutputWithPooling(
            last_hidden_state=last_hidden_state,
            pooler_output=pooled,
            hidden_states=all_hidden_states,
        )
        return output if return_dict else output.to_tuple()

    def _default_tokenizer(self):
        tokenizer = getattr(self, "_cached_tokenizer", None)
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.config._name_or_path)
            self._cached_tokenizer = tokenizer
        return tokenizer

    def encode(
        self,
        sentences,
        batch_size: int = 32,
        max_length: int = 8192,
        tokenizer=None,
        normalize_embeddings: bool = False,
    ):
        """Mean-pooled float32 sentence embeddings as a numpy array [N, H] ([H] for one string).

        The tokenizer defaults to the one stored next to the model (config._name_or_path).
        """
        single = isinstance(sentences, str)
        if single:
            sentences = [sentences]
        tokenizer = tokenizer if tokenizer is not None else self._default_tokenizer()
        was_training = self.training
        self.eval()
        chunks = []
        try:
            with torch.inference_mode():
                for start in range(0, len(sentences), batch_size):
                    batch = tokenizer(
                        list(sentences[start : start + batch_size]),
                        padding=True,
                        truncation=True,
                        max_length=max_length,
                        return_tensors="pt",
                    )
                    mask = batch["attention_mask"].to(self.device)
                    token_type_ids = batch.get("token_type_ids")
                    if token_type_ids is not None:
                        token_type_ids = token_type_ids.to(self.device)
                    hidden = self(
                        input_ids=batch["input_ids"].to(self.device),
                        attention_mask=mask,
                        token_type_ids=token_type_ids,
                        return_dict=True,
                    ).last_hidden_state.float()  # [b, S, H]
                    weights = mask.unsqueeze(-1).float()  # [b, S, 1]
                    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                    if normalize_embeddings:
                        pooled = F.normalize(pooled, p=2, dim=-1)
                    chunks.append(pooled.cpu())
        finally:
            self.train(was_training)
        if not chunks:
            return torch.zeros(0, self.config.hidden_size).numpy()
        embeddings = torch.cat(chunks).numpy()
        return embeddings[0] if single else embeddings


class JinaBertPredictionHeadTransform(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class JinaBertLMPredictionHead(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.transform = JinaBertPredictionHeadTransform(config)
        # decoder.weight is tied to the word embeddings and decoder.bias to `bias` (see
        # _tied_weights_keys); only `bias` is stored, as in the official checkpoints.
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))  # [B, S, V]


class JinaBertOnlyMLMHead(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.predictions = JinaBertLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


class JinaBertForMaskedLM(JinaBertPreTrainedModel):
    # transformers 5 form (target -> source): tying happens in post_init and after loading, and
    # the targets are left out of model.safetensors.
    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: JinaBertConfig):
        super().__init__(config)
        self.bert = JinaBertModel(config, add_pooling_layer=False)
        self.cls = JinaBertOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MaskedLMOutput | tuple:
        if return_dict is None:
            return_dict = getattr(self.config, "return_dict", True)
        outputs = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.cls(outputs.last_hidden_state)  # [B, S, V]
        loss = None
        if labels is not None:
            # Positions labelled -100 (unmasked tokens, padding) are ignored.
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))
        output = MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return output if return_dict else output.to_tuple()
