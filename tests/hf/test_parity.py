"""Levanter-style round trips: a random torch model -> save_pretrained -> jina_jax (same outputs)
-> save_hf -> the torch class again (same outputs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, BertConfig, BertModel, T5Config, T5EncoderModel

from jina_jax.hf.io import load_hf, save_hf
from jina_jax.models import build_encoder
from jina_jax.tokenization import wordpiece_tokenizer

ATOL = 1e-4


def _batch(vocab: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(3, 19)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 12:] = 0
    mask[2, 5:] = 0
    ids[mask == 0] = 0
    return ids, mask


def _torch_hidden(model, ids, mask):
    model.eval()
    with torch.no_grad():
        out = model(input_ids=torch.as_tensor(ids), attention_mask=torch.as_tensor(mask))
    return out.last_hidden_state.numpy()


def _jax_hidden(jmodel, ids, mask):
    out = build_encoder(jmodel.config).apply({"params": jmodel.params}, ids, mask)
    return np.asarray(out["last_hidden_state"])


def _assert_close_on_real_tokens(a, b, mask):
    keep = mask.astype(bool)
    err = np.abs(a[keep] - b[keep]).max()
    assert err <= ATOL, f"max abs error {err}"


def _write_vocab(folder, size):
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = [f"w{i}" for i in range(size - len(specials))]
    (folder / "vocab.txt").write_text("\n".join(specials + words) + "\n")
    wordpiece_tokenizer(folder / "vocab.txt").save(folder)


def test_bert_round_trip(tmp_path):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=64,
    )
    ref = BertModel(config)
    src = tmp_path / "bert"
    ref.save_pretrained(src)
    _write_vocab(src, 120)
    jmodel = load_hf(src)
    assert jmodel.config.position_embedding_type == "absolute"
    ids, mask = _batch(120)
    _assert_close_on_real_tokens(
        _jax_hidden(jmodel, ids, mask), _torch_hidden(ref, ids, mask), mask
    )

    out = save_hf(jmodel, tmp_path / "export")
    back = BertModel.from_pretrained(out)
    _assert_close_on_real_tokens(
        _torch_hidden(back, ids, mask), _torch_hidden(ref, ids, mask), mask
    )
    for name, tensor in ref.state_dict().items():
        if name in back.state_dict():
            torch.testing.assert_close(back.state_dict()[name], tensor, rtol=0, atol=0)


@pytest.mark.parametrize("proj", ["relu", "gated-gelu"])
def test_t5_round_trip(tmp_path, proj):
    torch.manual_seed(1)
    config = T5Config(
        vocab_size=110,
        d_model=32,
        d_kv=8,
        d_ff=40,
        num_layers=2,
        num_heads=4,
        feed_forward_proj=proj,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
    )
    ref = T5EncoderModel(config)
    src = tmp_path / "t5"
    ref.save_pretrained(src)
    # a tokenizer is part of any folder we load; its contents do not matter here
    _write_vocab(src, 110)
    jmodel = load_hf(src)
    assert jmodel.config.feed_forward_proj == proj
    ids, mask = _batch(110, seed=1)
    _assert_close_on_real_tokens(
        _jax_hidden(jmodel, ids, mask), _torch_hidden(ref, ids, mask), mask
    )

    out = save_hf(jmodel, tmp_path / "export")
    assert json.loads((out / "config.json").read_text())["architectures"] == ["T5EncoderModel"]
    back = T5EncoderModel.from_pretrained(out)
    _assert_close_on_real_tokens(
        _torch_hidden(back, ids, mask), _torch_hidden(ref, ids, mask), mask
    )


@pytest.mark.parametrize(("heads", "ff"), [(4, "geglu"), (6, "reglu")])
def test_jina_bert_round_trip(tmp_path, heads, ff):
    from jina_jax.hf.remote_code import copy_remote_code

    torch.manual_seed(2)
    src = tmp_path / "jina"
    src.mkdir()
    auto_map = copy_remote_code(src)
    hf_config = {
        "architectures": ["JinaBertModel"],
        "model_type": "bert",
        "auto_map": auto_map,
        "vocab_size": 130,
        "hidden_size": 8 * heads,
        "num_hidden_layers": 2,
        "num_attention_heads": heads,
        "intermediate_size": 40,
        "hidden_act": "gelu",
        "feed_forward_type": ff,
        "position_embedding_type": "alibi",
        "max_position_embeddings": 8192,
        "attention_probs_dropout_prob": 0.0,
        "emb_pooler": "mean",
    }
    (src / "config.json").write_text(json.dumps(hf_config))
    # Random weights from the shipped modeling file itself, saved with save_pretrained.
    ref = AutoModel.from_config(
        AutoConfig.from_pretrained(src, trust_remote_code=True), trust_remote_code=True
    )
    ref.save_pretrained(src)
    _write_vocab(src, 130)
    jmodel = load_hf(src)
    assert jmodel.config.position_embedding_type == "alibi"
    assert jmodel.config.feed_forward_type == ff
    ids, mask = _batch(130, seed=2)
    _assert_close_on_real_tokens(
        _jax_hidden(jmodel, ids, mask), _torch_hidden(ref, ids, mask), mask
    )

    out = save_hf(jmodel, tmp_path / "export")
    back = AutoModel.from_pretrained(out, trust_remote_code=True)
    assert type(back).__name__ == "JinaBertModel"
    _assert_close_on_real_tokens(
        _torch_hidden(back, ids, mask), _torch_hidden(ref, ids, mask), mask
    )


def _source(tmp_path, kind: str):
    """A random torch model of ``kind`` saved with save_pretrained: (model, folder, vocab)."""
    torch.manual_seed(3)
    src = tmp_path / kind
    if kind == "bert":
        vocab = 120
        ref = BertModel(
            BertConfig(
                vocab_size=vocab,
                hidden_size=32,
                num_hidden_layers=3,
                num_attention_heads=4,
                intermediate_size=48,
                max_position_embeddings=64,
            )
        )
        ref.save_pretrained(src)
    elif kind == "t5":
        vocab = 110
        ref = T5EncoderModel(
            T5Config(
                vocab_size=vocab,
                d_model=32,
                d_kv=8,
                d_ff=40,
                num_layers=3,
                num_heads=4,
                feed_forward_proj="gated-gelu",
                relative_attention_num_buckets=8,
                relative_attention_max_distance=20,
            )
        )
        ref.save_pretrained(src)
    else:
        from jina_jax.hf.remote_code import copy_remote_code

        vocab = 130
        src.mkdir()
        hf_config = {
            "architectures": ["JinaBertModel"],
            "model_type": "bert",
            "auto_map": copy_remote_code(src),
            "vocab_size": vocab,
            "hidden_size": 32,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "intermediate_size": 40,
            "hidden_act": "gelu",
            "feed_forward_type": "geglu",
            "position_embedding_type": "alibi",
            "max_position_embeddings": 8192,
            "attention_probs_dropout_prob": 0.0,
            "emb_pooler": "mean",
        }
        (src / "config.json").write_text(json.dumps(hf_config))
        ref = AutoModel.from_config(
            AutoConfig.from_pretrained(src, trust_remote_code=True), trust_remote_code=True
        )
        ref.save_pretrained(src)
    _write_vocab(src, vocab)
    return ref, src, vocab


@pytest.mark.parametrize("kind", ["bert", "jina_bert", "t5"])
def test_scanned_layers_round_trip(tmp_path, kind):
    """The same HF folder loaded with ``scan_layers=True`` (every layer parameter one array
    stacked over the layers) encodes as the unscanned model, and exports the same tensors."""
    from jina_jax.hf.io import params_to_hf, read_safetensors

    ref, src, vocab = _source(tmp_path, kind)
    plain = load_hf(src)
    scanned = load_hf(src, scan_layers=True)
    stack = "blocks" if kind == "t5" else "layers"
    assert stack in scanned.params and not any(
        k.startswith(("layer_", "block_")) for k in scanned.params
    )
    assert scanned.params[stack]["attention"]["query"]["kernel"].shape[0] == 3
    ids, mask = _batch(vocab, seed=4)
    hidden = _jax_hidden(scanned, ids, mask)
    keep = mask.astype(bool)
    assert np.abs(hidden[keep] - _jax_hidden(plain, ids, mask)[keep]).max() <= 1e-5
    _assert_close_on_real_tokens(hidden, _torch_hidden(ref, ids, mask), mask)

    exported = params_to_hf(scanned.params, scanned.config)
    original = read_safetensors(src)
    assert set(exported) <= set(original)
    for name, tensor in exported.items():
        np.testing.assert_array_equal(tensor, original[name], err_msg=name)
    out = save_hf(scanned, tmp_path / "export")
    back = (
        AutoModel.from_pretrained(out, trust_remote_code=True)
        if kind == "jina_bert"
        else type(ref).from_pretrained(out)
    )
    _assert_close_on_real_tokens(
        _torch_hidden(back, ids, mask), _torch_hidden(ref, ids, mask), mask
    )
