"""Configuration of JinaBERT (the jina-embeddings-v2 backbone).

This file is shipped verbatim inside exported model folders and loaded by transformers as remote
code, so it may import nothing but transformers. Field names and meanings match the official
``jinaai/jina-bert-implementation`` config, so a config.json written from this class also loads
with the official remote code; the defaults are those of the released v2 checkpoints.
"""

from transformers import PretrainedConfig

FEED_FORWARD_TYPES = ("original", "geglu", "reglu")


class JinaBertConfig(PretrainedConfig):
    # "bert" (not a new model type) is what the official checkpoints declare; loading goes through
    # auto_map, never through the model-type registry.
    model_type = "bert"

    def __init__(
        self,
        vocab_size=30528,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=8192,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        position_embedding_type="alibi",
        use_cache=True,
        classifier_dropout=None,
        feed_forward_type="original",
        emb_pooler=None,
        **kwargs,
    ):
        if feed_forward_type not in FEED_FORWARD_TYPES:
            raise ValueError(
                f"feed_forward_type must be one of {FEED_FORWARD_TYPES}, got {feed_forward_type!r}"
            )
        # transformers 4 defaulted this to True in the base class; transformers 5 dropped the base
        # field, and without it the MLM decoder would silently stop being tied to the embeddings.
        kwargs.setdefault("tie_word_embeddings", True)
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.pad_token_id = pad_token_id
        self.position_embedding_type = position_embedding_type
        self.use_cache = use_cache
        self.classifier_dropout = classifier_dropout
        self.feed_forward_type = feed_forward_type
        self.emb_pooler = emb_pooler
