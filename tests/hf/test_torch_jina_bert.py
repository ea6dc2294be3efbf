"""Tests of the PyTorch JinaBERT shipped as remote code in exported model folders.

Every check compares against something independent of the implementation: hand-computed ALiBi
slopes, a float64 numpy re-implementation of the SPEC §1 math, or the SPEC's list of parameter
names.
"""

import os

# Loading goes through local folders only; make any accidental hub access fail loudly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open

from jina_jax.hf.remote_code import (
    LOCAL_AUTO_MAP,
    OFFICIAL_AUTO_MAP,
    REMOTE_CODE_DIR,
    REMOTE_CODE_FILES,
    copy_remote_code,
)
from jina_jax.hf.torch_jina_bert.configuration_bert import JinaBertConfig
from jina_jax.hf.torch_jina_bert.modeling_bert import (
    JinaBertForMaskedLM,
    JinaBertModel,
    alibi_bias,
    alibi_head_slopes,
)

VOCAB = 100
HIDDEN = 48  # divisible by 4 and by 6 heads
INTERMEDIATE = 64
LAYERS = 2

# Press et al. slopes written out by hand: n a power of two gives 2^(-8/n * (i+1)); otherwise
# slopes(c) for the lower power of two c, then slopes(2c)[0::2][: n - c].
HAND_SLOPES = {
    4: [2**-2, 2**-4, 2**-6, 2**-8],
    6: [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3],
    8: [2**-1, 2**-2, 2**-3, 2**-4, 2**-5, 2**-6, 2**-7, 2**-8],
    12: [2.0 ** -(i + 1) for i in range(8)] + [2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5],
    16: [2.0 ** -(0.5 * (i + 1)) for i in range(16)],
}


def tiny_config(num_heads=4, feed_forward_type="geglu", **overrides) -> JinaBertConfig:
    fields = {
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": num_heads,
        "intermediate_size": INTERMEDIATE,
        "feed_forward_type": feed_forward_type,
    }
    return JinaBertConfig(**{**fields, **overrides})


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Large random weights everywhere (LayerNorm scales near 1) so that every term matters."""
    generator = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        noise = torch.randn(param.shape, generator=generator)
        if "LayerNorm.weight" in name or "layernorm.weight" in name:
            param.copy_(1.0 + 0.1 * noise)
        else:
            param.copy_(0.2 * noise)
    return model.eval()


def spec_base_keys(num_layers: int, pooler: bool = True) -> set[str]:
    """Parameter names of a JinaBERT (GLU) checkpoint as listed in SPEC §1."""
    keys = {
        "embeddings.word_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
    }
    for n in range(num_layers):
        layer = f"encoder.layer.{n}"
        for proj in ("query", "key", "value"):
            keys |= {f"{layer}.attention.self.{proj}.weight", f"{layer}.attention.self.{proj}.bias"}
        for suffix in ("weight", "bias"):
            keys |= {
                f"{layer}.attention.output.dense.{suffix}",
                f"{layer}.attention.output.LayerNorm.{suffix}",
                f"{layer}.mlp.wo.{suffix}",
                f"{layer}.mlp.layernorm.{suffix}",
            }
        keys.add(f"{layer}.mlp.gated_layers.weight")
    if pooler:
        keys |= {"pooler.dense.weight", "pooler.dense.bias"}
    return keys


def spec_mlm_keys(num_layers: int) -> set[str]:
    keys = {f"bert.{k}" for k in spec_base_keys(num_layers, pooler=False)}
    return keys | {
        "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.LayerNorm.bias",
        "cls.predictions.bias",
    }


# ---------------------------------------------------------------------------------------------
# Independent float64 numpy reference of SPEC §1.

_erf = np.vectorize(math.erf)


def np_gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def np_layer_norm(x, weight, bias, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def np_linear(x, params, name):
    out = x @ params[f"{name}.weight"].T
    bias = params.get(f"{name}.bias")
    return out if bias is None else out + bias


def np_params(model: torch.nn.Module, prefix: str = "") -> dict[str, np.ndarray]:
    return {
        k[len(prefix) :]: v.detach().double().numpy()
        for k, v in model.state_dict().items()
        if k.startswith(prefix)
    }


def np_encoder(params, cfg, input_ids, token_type_ids, attention_mask):
    """Last hidden state [B, S, H] per SPEC §1, one sequence and one head at a time."""
    heads = cfg.num_attention_heads
    head_dim = cfg.hidden_size // heads
    slopes = HAND_SLOPES[heads]
    batch, seq_len = input_ids.shape
    x = params["embeddings.word_embeddings.weight"][input_ids]
    x = x + params["embeddings.token_type_embeddings.weight"][token_type_ids]
    x = np_layer_norm(x, params["embeddings.LayerNorm.weight"], params["embeddings.LayerNorm.bias"])
    distance = np.abs(np.arange(seq_len)[None, :] - np.arange(seq_len)[:, None])
    for n in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{n}"
        q = np_linear(x, params, f"{p}.attention.self.query")
        k = np_linear(x, params, f"{p}.attention.self.key")
        v = np_linear(x, params, f"{p}.attention.self.value")
        context = np.zeros_like(x)
        for b in range(batch):
            for h in range(heads):
                cols = slice(h * head_dim, (h + 1) * head_dim)
                logits = q[b, :, cols] @ k[b, :, cols].T / math.sqrt(head_dim)
                logits = logits - slopes[h] * distance
                logits = np.where(attention_mask[b][None, :] == 1, logits, -np.inf)
                probs = np.exp(logits - logits.max(-1, keepdims=True))
                probs /= probs.sum(-1, keepdims=True)
                context[b, :, cols] = probs @ v[b, :, cols]
        attn = np_linear(context, params, f"{p}.attention.output.dense")
        x = np_layer_norm(
            x + attn,
            params[f"{p}.attention.output.LayerNorm.weight"],
            params[f"{p}.attention.output.LayerNorm.bias"],
        )
        if cfg.feed_forward_type == "original":
            h = np_gelu(np_linear(x, params, f"{p}.intermediate.dense"))
            h = np_linear(h, params, f"{p}.output.dense")
            x = np_layer_norm(
                x + h, params[f"{p}.output.LayerNorm.weight"], params[f"{p}.output.LayerNorm.bias"]
            )
        else:
            h = x @ params[f"{p}.mlp.gated_layers.weight"].T
            gated, plain = h[..., : cfg.intermediate_size], h[..., cfg.intermediate_size :]
            act = np_gelu if cfg.feed_forward_type == "geglu" else (lambda t: np.maximum(t, 0.0))
            h = np_linear(act(gated) * plain, params, f"{p}.mlp.wo")
            x = np_layer_norm(
                x + h, params[f"{p}.mlp.layernorm.weight"], params[f"{p}.mlp.layernorm.bias"]
            )
    return x


def np_pooler(params, hidden):
    return np.tanh(np_linear(hidden[:, 0], params, "pooler.dense"))


def np_mlm_logits(params, hidden):
    t = np_gelu(np_linear(hidden, params, "cls.predictions.transform.dense"))
    t = np_layer_norm(
        t,
        params["cls.predictions.transform.LayerNorm.weight"],
        params["cls.predictions.transform.LayerNorm.bias"],
    )
    return t @ params["bert.embeddings.word_embeddings.weight"].T + params["cls.predictions.bias"]


def np_mean_pool(hidden, mask):
    weights = mask[..., None].astype(np.float64)
    return (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)


def padded_batch(seed=1):
    """Row 0 full length 7; row 1 has 4 real tokens then garbage ids/types that must be masked."""
    rng = np.random.default_rng(seed)
    input_ids = rng.integers(1, VOCAB, size=(2, 7))
    token_type_ids = rng.integers(0, 2, size=(2, 7))
    attention_mask = np.ones((2, 7), dtype=np.int64)
    attention_mask[1, 4:] = 0
    return input_ids, token_type_ids, attention_mask


def write_export_folder(model, folder) -> dict:
    """What an export does: weights + config, our remote code, and the local auto_map."""
    model.save_pretrained(folder)
    auto_map = copy_remote_code(folder)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config["auto_map"] = auto_map
    config_path.write_text(json.dumps(config, indent=2))
    return config


def safetensors_shapes(folder) -> dict[str, tuple[int, ...]]:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_heads", sorted(HAND_SLOPES))
def test_alibi_slopes_match_hand_computation(num_heads):
    np.testing.assert_allclose(alibi_head_slopes(num_heads), HAND_SLOPES[num_heads], rtol=1e-12)


def test_alibi_bias_is_symmetric_distance_times_slope():
    bias = alibi_bias(6, 5).numpy()
    assert bias.shape == (6, 5, 5) and bias.dtype == np.float32
    for h, slope in enumerate(HAND_SLOPES[6]):
        for i in range(5):
            for j in range(5):
                assert bias[h, i, j] == pytest.approx(-slope * abs(i - j), rel=1e-6)


def test_attention_bias_masks_padded_keys_with_finite_min_in_half_precision():
    model = JinaBertModel(tiny_config(num_heads=4))
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    bias = model.encoder.attention_bias(mask, 3, torch.float16, torch.device("cpu"))
    assert bias.shape == (2, 4, 3, 3) and bias.dtype == torch.float16
    expected = -np.array(HAND_SLOPES[4])[:, None, None] * np.abs(
        np.subtract.outer(range(3), range(3))
    )
    fp16_min = np.finfo(np.float16).min
    np.testing.assert_allclose(bias[0, :, :, :2].float().numpy(), expected[:, :, :2], atol=1e-3)
    assert (bias[0, :, :, 2].float().numpy() == fp16_min).all()
    # A sequence that is all padding must stay finite: softmax of equal values, not NaN.
    assert (bias[1].float().numpy() == fp16_min).all()


@pytest.mark.parametrize(
    ("feed_forward_type", "num_heads"),
    [("geglu", 4), ("geglu", 6), ("reglu", 4), ("original", 4)],
)
def test_forward_matches_numpy_reference_and_ignores_padding(feed_forward_type, num_heads):
    cfg = tiny_config(num_heads=num_heads, feed_forward_type=feed_forward_type)
    model = randomize(JinaBertModel(cfg))
    input_ids, token_type_ids, attention_mask = padded_batch()

    with torch.no_grad():
        out = model(
            input_ids=torch.from_numpy(input_ids),
            attention_mask=torch.from_numpy(attention_mask),
            token_type_ids=torch.from_numpy(token_type_ids),
        )
        # The short row on its own, no padding at all.
        alone = model(
            input_ids=torch.from_numpy(input_ids[1:, :4]),
            token_type_ids=torch.from_numpy(token_type_ids[1:, :4]),
        )

    params = np_params(model)
    expected = np_encoder(params, cfg, input_ids, token_type_ids, attention_mask)
    hidden = out.last_hidden_state.numpy()
    # Padded positions are free to hold anything; compare the real tokens only.
    np.testing.assert_allclose(hidden[0], expected[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(hidden[1, :4], expected[1, :4], atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        out.pooler_output.numpy(), np_pooler(params, expected), atol=1e-5, rtol=0
    )
    np.testing.assert_allclose(hidden[1, :4], alone.last_hidden_state.numpy()[0], atol=1e-5, rtol=0)
    expected_alone = np_encoder(
        params, cfg, input_ids[1:, :4], token_type_ids[1:, :4], np.ones((1, 4), dtype=np.int64)
    )
    np.testing.assert_allclose(alone.last_hidden_state.numpy(), expected_alone, atol=1e-5, rtol=0)


def test_forward_accepts_caller_kwargs_and_tuple_output():
    cfg = tiny_config()
    model = randomize(JinaBertModel(cfg))
    input_ids, _, attention_mask = padded_batch(seed=3)
    ids, mask = torch.from_numpy(input_ids), torch.from_numpy(attention_mask)
    with torch.no_grad():
        as_tuple = model(
            ids,
            attention_mask=mask,
            return_dict=False,
            output_attentions=False,
            position_ids=torch.arange(7)[None],
            head_mask=None,
        )
        with_states = model(ids, attention_mask=mask, output_hidden_states=True)
    # token types default to 0
    expected = np_encoder(
        np_params(model), cfg, input_ids, np.zeros_like(input_ids), attention_mask
    )
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 2
    np.testing.assert_allclose(as_tuple[0].numpy()[0], expected[0], atol=1e-5, rtol=0)
    assert len(with_states.hidden_states) == LAYERS + 1
    np.testing.assert_allclose(with_states.hidden_states[-1].numpy()[0], expected[0], atol=1e-5)


def test_mlm_logits_and_tied_decoder():
    cfg = tiny_config()
    model = randomize(JinaBertForMaskedLM(cfg))
    head = model.cls.predictions
    # Tied by parameter identity, so randomizing the embeddings also changed the decoder.
    assert head.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert head.decoder.bias is head.bias

    input_ids, token_type_ids, attention_mask = padded_batch(seed=2)
    labels = np.full_like(input_ids, -100)
    labels[0, 2], labels[1, 1] = 5, 17
    with torch.no_grad():
        out = model(
            input_ids=torch.from_numpy(input_ids),
            attention_mask=torch.from_numpy(attention_mask),
            token_type_ids=torch.from_numpy(token_type_ids),
            labels=torch.from_numpy(labels),
        )
    params = np_params(model)
    hidden = np_encoder(np_params(model, "bert."), cfg, input_ids, token_type_ids, attention_mask)
    logits = np_mlm_logits(params, hidden)
    np.testing.assert_allclose(out.logits.numpy()[0], logits[0], atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(out.logits.numpy()[1, :4], logits[1, :4], atol=1e-4, rtol=1e-5)
    picked = [(0, 2, 5), (1, 1, 17)]
    log_probs = [
        logits[b, s, t]
        - np.log(np.exp(logits[b, s] - logits[b, s].max()).sum())
        - logits[b, s].max()
        for b, s, t in picked
    ]
    assert out.loss.item() == pytest.approx(-np.mean(log_probs), rel=1e-5)


def test_copy_remote_code_copies_both_files_and_returns_local_auto_map(tmp_path):
    auto_map = copy_remote_code(tmp_path / "export")
    assert auto_map == {
        "AutoConfig": "configuration_bert.JinaBertConfig",
        "AutoModel": "modeling_bert.JinaBertModel",
        "AutoModelForMaskedLM": "modeling_bert.JinaBertForMaskedLM",
    }
    assert auto_map == LOCAL_AUTO_MAP and auto_map is not LOCAL_AUTO_MAP
    for name in REMOTE_CODE_FILES:
        assert (tmp_path / "export" / name).read_bytes() == (REMOTE_CODE_DIR / name).read_bytes()
    # The official map names the same classes, one repository away.
    prefix = "jinaai/jina-bert-implementation--"
    for key, target in auto_map.items():
        assert OFFICIAL_AUTO_MAP[key] == prefix + target


def test_export_folder_loads_with_automodel(tmp_path):
    from transformers import AutoConfig, AutoModel

    cfg = tiny_config(num_heads=6, emb_pooler="mean")
    model = randomize(JinaBertModel(cfg), seed=4)
    written = write_export_folder(model, tmp_path)

    # Every config field is written out: the official remote code has other defaults
    # (absolute positions, 512 tokens) and must not fall back on them.
    for field, value in {
        "model_type": "bert",
        "position_embedding_type": "alibi",
        "feed_forward_type": "geglu",
        "emb_pooler": "mean",
        "max_position_embeddings": 8192,
        "attention_probs_dropout_prob": 0.0,
        "vocab_size": VOCAB,
        "num_attention_heads": 6,
        "tie_word_embeddings": True,
    }.items():
        assert written[field] == value, field

    shapes = safetensors_shapes(tmp_path)
    assert set(shapes) == spec_base_keys(LAYERS)
    assert shapes["encoder.layer.0.mlp.gated_layers.weight"] == (2 * INTERMEDIATE, HIDDEN)
    assert shapes["encoder.layer.1.mlp.wo.weight"] == (HIDDEN, INTERMEDIATE)

    loaded_cfg = AutoConfig.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(loaded_cfg).__name__ == "JinaBertConfig"
    assert loaded_cfg.feed_forward_type == "geglu" and loaded_cfg.num_attention_heads == 6

    loaded = AutoModel.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(loaded).__name__ == "JinaBertModel" and not loaded.training
    input_ids, token_type_ids, attention_mask = padded_batch(seed=5)
    with torch.no_grad():
        out = loaded(
            input_ids=torch.from_numpy(input_ids),
            attention_mask=torch.from_numpy(attention_mask),
            token_type_ids=torch.from_numpy(token_type_ids),
        )
    params = np_params(model)
    expected = np_encoder(params, cfg, input_ids, token_type_ids, attention_mask)
    np.testing.assert_allclose(out.last_hidden_state.numpy()[0], expected[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(out.pooler_output.numpy(), np_pooler(params, expected), atol=1e-5)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_mlm_export_folder_round_trips_tied_decoder(tmp_path):
    from transformers import AutoModel, AutoModelForMaskedLM

    cfg = tiny_config(feed_forward_type="reglu")
    model = randomize(JinaBertForMaskedLM(cfg), seed=6)
    write_export_folder(model, tmp_path)
    # Tied decoder weight and bias are not stored; only the SPEC names are.
    assert set(safetensors_shapes(tmp_path)) == spec_mlm_keys(LAYERS)

    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(loaded).__name__ == "JinaBertForMaskedLM"
    head = loaded.cls.predictions
    embeddings = loaded.bert.embeddings.word_embeddings.weight
    assert head.decoder.weight is embeddings and head.decoder.bias is head.bias
    torch.testing.assert_close(
        embeddings, model.bert.embeddings.word_embeddings.weight, rtol=0, atol=0
    )
    torch.testing.assert_close(head.bias, model.cls.predictions.bias, rtol=0, atol=0)

    input_ids, token_type_ids, attention_mask = padded_batch(seed=7)
    with torch.no_grad():
        logits = loaded(
            input_ids=torch.from_numpy(input_ids),
            attention_mask=torch.from_numpy(attention_mask),
            token_type_ids=torch.from_numpy(token_type_ids),
        ).logits.numpy()
    hidden = np_encoder(np_params(model, "bert."), cfg, input_ids, token_type_ids, attention_mask)
    expected = np_mlm_logits(np_params(model), hidden)
    np.testing.assert_allclose(logits[0], expected[0], atol=1e-4, rtol=1e-5)

    # The encoder alone loads from an MLM folder through the `bert.` prefix.
    encoder = AutoModel.from_pretrained(tmp_path, trust_remote_code=True)
    with torch.no_grad():
        last = encoder(
            input_ids=torch.from_numpy(input_ids),
            attention_mask=torch.from_numpy(attention_mask),
            token_type_ids=torch.from_numpy(token_type_ids),
        ).last_hidden_state.numpy()
    np.testing.assert_allclose(last[0], hidden[0], atol=1e-5, rtol=0)


def test_sentence_transformer_and_encode_give_mean_pooled_embeddings(tmp_path):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, BertTokenizerFast

    words = [f"w{i}" for i in range(VOCAB - 5)]
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    folder = tmp_path / "export"
    cfg = tiny_config(num_heads=4)
    model = randomize(JinaBertModel(cfg), seed=8)
    folder.mkdir()
    write_export_folder(model, folder)
    tokenizer.save_pretrained(folder)

    sentences = ["w1 w2 w3 w4 w5 w6", "w7 w8", "W9 w10 w11"]
    batch = tokenizer(sentences, padding=True, return_tensors="np")
    hidden = np_encoder(
        np_params(model),
        cfg,
        batch["input_ids"],
        batch["token_type_ids"],
        batch["attention_mask"],
    )
    expected = np_mean_pool(hidden, batch["attention_mask"])

    st_model = SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")
    st_embeddings = st_model.encode(sentences, batch_size=2, convert_to_numpy=True)
    np.testing.assert_allclose(st_embeddings, expected, atol=1e-5, rtol=0)

    loaded = AutoModel.from_pretrained(folder, trust_remote_code=True)
    # Tokenizer found through config._name_or_path, i.e. the folder itself.
    np.testing.assert_allclose(loaded.encode(sentences, batch_size=2), expected, atol=1e-5, rtol=0)
    normalized = loaded.encode(sentences[1], tokenizer=tokenizer, normalize_embeddings=True)
    assert normalized.shape == (HIDDEN,)
    np.testing.assert_allclose(
        normalized, expected[1] / np.linalg.norm(expected[1]), atol=1e-5, rtol=0
    )


def test_fresh_weights_follow_bert_init():
    model = JinaBertForMaskedLM(tiny_config(initializer_range=0.05, vocab_size=2000))
    params = dict(model.named_parameters())
    word = params["bert.embeddings.word_embeddings.weight"].detach()
    # Normal weights: std from the config, mean ~0 (2000*48 samples, so 2% is ~6 sigma).
    assert word[1:].std().item() == pytest.approx(0.05, rel=0.02)
    assert abs(word[1:].mean().item()) < 0.002
    assert torch.count_nonzero(word[0]) == 0  # the padding row
    gated = params["bert.encoder.layer.0.mlp.gated_layers.weight"].detach()
    assert gated.std().item() == pytest.approx(0.05, rel=0.05)
    for name, param in params.items():
        if name.endswith("bias"):
            assert torch.count_nonzero(param) == 0, name
        elif "LayerNorm.weight" in name or "layernorm.weight" in name:
            assert torch.all(param == 1), name
