"""A JinaBERT student started from a BERT teacher's layers (``word_init.layer_params``): every
copied tensor against all-MiniLM-L6-v2's safetensors file read by hand, the GEGLU built from
BERT's gelu MLP against a NumPy hand computation, and one student layer against transformers'
``BertLayer`` of the teacher on the same input (no positions involved: a block's input is a
hidden state, and the student block is run without its ALiBi bias)."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file
from scipy.special import erf

from jina_jax.hf.local_models import resolve
from jina_jax.loading import load_model, load_tokenizer
from jina_jax.models import BertConfig
from jina_jax.models.attention import text_segments
from jina_jax.models.jina_bert import BertLayer
from jina_jax.training import word_init
from jina_jax.training.objectives import ContrastiveObjective

TEACHER = "all-MiniLM-L6-v2"
LAYERS = (0, 3, 5)  # layer 3 has the worst-conditioned constant direction of the six


def _layer_norm(x, scale, bias, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def _gelu(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


@pytest.fixture(scope="module")
def teacher_tensors():
    return load_file(str(resolve(TEACHER) / "model.safetensors"))


@pytest.fixture(scope="module")
def student():
    """The student's starting tree: 3 layers at MiniLM's width, ALiBi, GEGLU."""
    tokenizer = load_tokenizer("jina_v2")
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=384,
        num_layers=len(LAYERS),
        num_heads=12,
        intermediate_size=1536,
    )
    shapes = nn.meta.unbox(jax.eval_shape(ContrastiveObjective(config).init, jax.random.key(0)))
    source = load_model(TEACHER)
    tree, reinit, copied = word_init.layer_params(source, tokenizer, shapes, LAYERS)
    return config, tokenizer, source, tree, reinit, copied


def test_constant_one_direction_gives_one_after_any_layer_norm():
    rng = np.random.default_rng(0)
    scale, bias = rng.uniform(0.3, 1.5, 64), rng.normal(0, 0.2, 64)
    w = word_init.constant_one_direction(scale, bias)
    x = rng.normal(3.0, 5.0, (100, 64))
    np.testing.assert_allclose(_layer_norm(x, scale, bias) @ w, 1.0, rtol=1e-9)


def test_geglu_from_mlp_equals_gelu_mlp_by_hand():
    rng = np.random.default_rng(1)
    h, i = 48, 96
    scale, bias = rng.uniform(0.3, 1.5, h), rng.normal(0, 0.2, h)
    kernel, b1 = rng.normal(0, 0.1, (h, i)), rng.normal(0, 0.5, i)
    x = _layer_norm(rng.normal(size=(20, h)), scale, bias)
    geglu = word_init.geglu_from_mlp(kernel, b1, scale, bias).astype(np.float64)
    assert geglu.shape == (h, 2 * i)
    gate, up = np.split(x @ geglu, 2, axis=-1)
    np.testing.assert_allclose(_gelu(gate) * up, _gelu(x @ kernel + b1), atol=1e-5)


def test_copied_tensors_match_the_teacher_safetensors(student, teacher_tensors):
    _, tokenizer, source, tree, reinit, copied = student
    t = teacher_tensors
    emb = tree["embeddings"]
    np.testing.assert_array_equal(
        emb["token_type_embeddings"]["embedding"], t["embeddings.token_type_embeddings.weight"]
    )
    np.testing.assert_array_equal(emb["LayerNorm"]["scale"], t["embeddings.LayerNorm.weight"])
    np.testing.assert_array_equal(emb["LayerNorm"]["bias"], t["embeddings.LayerNorm.bias"])
    teacher_vocab, student_vocab = source.tokenizer.hf.get_vocab(), tokenizer.hf.get_vocab()
    for token in ("the", "linux", "[CLS]", "##ing"):
        np.testing.assert_array_equal(
            emb["word_embeddings"]["embedding"][student_vocab[token]],
            t["embeddings.word_embeddings.weight"][teacher_vocab[token]],
        )
    assert "position_embeddings" not in emb  # ALiBi: the teacher's position table is dropped
    for j, i in enumerate(LAYERS):
        ours, hf = tree[f"layer_{j}"], f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            weight = t[hf + f"attention.self.{name}.weight"]  # [out, in]
            np.testing.assert_array_equal(
                ours["attention"][name]["kernel"].reshape(384, 384), weight.T
            )
            np.testing.assert_array_equal(
                ours["attention"][name]["bias"].reshape(384), t[hf + f"attention.self.{name}.bias"]
            )
        np.testing.assert_array_equal(
            ours["attention"]["output"]["kernel"].reshape(384, 384),
            t[hf + "attention.output.dense.weight"].T,
        )
        np.testing.assert_array_equal(
            ours["attention"]["output"]["bias"], t[hf + "attention.output.dense.bias"]
        )
        for norm, hf_norm in (("attention_norm", "attention.output."), ("mlp_norm", "output.")):
            np.testing.assert_array_equal(ours[norm]["scale"], t[hf + hf_norm + "LayerNorm.weight"])
            np.testing.assert_array_equal(ours[norm]["bias"], t[hf + hf_norm + "LayerNorm.bias"])
        np.testing.assert_array_equal(ours["mlp"]["wo"]["kernel"], t[hf + "output.dense.weight"].T)
        np.testing.assert_array_equal(ours["mlp"]["wo"]["bias"], t[hf + "output.dense.bias"])
        # The GEGLU input layer by hand: gate = W1^T + w b1^T, up = w in every column.
        scale = t[hf + "attention.output.LayerNorm.weight"].astype(np.float64)
        bias = t[hf + "attention.output.LayerNorm.bias"].astype(np.float64)
        w = 1.0 / np.sum(bias / scale) / scale
        w1, b1 = t[hf + "intermediate.dense.weight"], t[hf + "intermediate.dense.bias"]
        gated = ours["mlp"]["gated_layers"]["kernel"]
        np.testing.assert_allclose(gated[:, :1536], w1.T + np.outer(w, b1), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(gated[:, 1536:], np.repeat(w[:, None], 1536, 1), rtol=1e-6)
    pattern = re.compile(reinit[0])
    assert pattern.fullmatch("pooler/kernel") and pattern.fullmatch("layer_0/foo")
    assert not any(pattern.fullmatch(name) for name in copied)
    assert len(copied) == 4 + len(LAYERS) * 15


@pytest.mark.parametrize("j", range(len(LAYERS)))
def test_student_layer_reproduces_the_teacher_layer(student, j):
    """A student layer on a hidden state equals transformers' BertLayer of the teacher; the
    student block runs as its absolute-position twin (same parameters, no ALiBi bias)."""
    import torch
    import transformers

    config, _, _, tree, _, _ = student
    teacher = transformers.BertModel.from_pretrained(
        str(resolve(TEACHER)), attn_implementation="eager"
    ).eval()
    rng = np.random.default_rng(j)
    x = rng.normal(0, 1, (2, 9, 384)).astype(np.float32)
    mask = np.ones((2, 9), np.int32)
    mask[1, 6:] = 0
    with torch.no_grad():
        # additive [B, 1, 1, L]: padding keys masked out
        extended = torch.tensor(
            (1 - mask[:, None, None, :]) * np.finfo(np.float32).min, dtype=torch.float32
        )
        out = teacher.encoder.layer[LAYERS[j]](torch.tensor(x), attention_mask=extended)
        want = (out[0] if isinstance(out, tuple) else out).numpy()
    no_positions = BertConfig(**{**config.__dict__, "position_embedding_type": "absolute"})
    segments = text_segments(jnp.ones((2, 9), jnp.int32), jnp.asarray(mask), None)
    got = BertLayer(no_positions).apply(
        {"params": tree[f"layer_{j}"]}, jnp.asarray(x), segments, True
    )
    np.testing.assert_allclose(np.asarray(got)[mask == 1], want[mask == 1], atol=2e-4)
