"""A JinaBERT export loads in sentence-transformers (trust_remote_code, offline) and gives the
JAX embeddings."""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import numpy as np
from sentence_transformers import SentenceTransformer

from jina_jax.encoding import encode
from jina_jax.hf.io import save_hf
from jina_jax.model import Model
from jina_jax.models import BertConfig, init_params
from jina_jax.tokenization import jina_v2_tokenizer


def _tiny_jina(tokenizer):
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=48,
        num_layers=2,
        num_heads=6,  # not a power of two: exercises the ALiBi slope rule in both frameworks
        intermediate_size=64,
        feed_forward_type="geglu",
    )
    params = nn.meta.unbox(init_params(config, jax.random.key(3)))
    return Model(config, params, tokenizer, max_length=8192)


def test_sentence_transformers_loads_jina_export(tmp_path, real_sentences):
    model = _tiny_jina(jina_v2_tokenizer())
    assert model.config.vocab_size == 30528
    out = save_hf(model, tmp_path / "jina_export")
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_bert.JinaBertModel"
    assert config["position_embedding_type"] == "alibi" and config["feed_forward_type"] == "geglu"
    st = SentenceTransformer(str(out), device="cpu", trust_remote_code=True)
    texts = real_sentences[:48] + [" ".join(real_sentences[:40])]  # one text over 512 tokens
    ours = encode(model, texts, batch_size=16)
    ref = st.encode(texts, batch_size=16, convert_to_numpy=True)
    cos = np.sum(ours * ref, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() >= 0.9999, cos.min()


def test_official_auto_map_option(tmp_path):
    from jina_jax.hf.remote_code import OFFICIAL_AUTO_MAP

    model = _tiny_jina(jina_v2_tokenizer())
    out = save_hf(model, tmp_path / "official", auto_map="official")
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"] == OFFICIAL_AUTO_MAP
    assert (
        config["auto_map"]["AutoModel"]
        == "jinaai/jina-bert-implementation--modeling_bert.JinaBertModel"
    )
