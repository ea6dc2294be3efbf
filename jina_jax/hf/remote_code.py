"""Ship our PyTorch JinaBERT as remote code inside exported model folders.

Official checkpoints point auto_map at ``jinaai/jina-bert-implementation``, whose code needs
transformers 4 and the hub. Exports copy ``torch_jina_bert`` next to config.json and use the
local auto_map instead, so they load offline on transformers 5 with ``trust_remote_code=True``.
"""

import shutil
from pathlib import Path

REMOTE_CODE_DIR = Path(__file__).parent / "torch_jina_bert"
REMOTE_CODE_FILES = ("configuration_bert.py", "modeling_bert.py")

LOCAL_AUTO_MAP = {
    "AutoConfig": "configuration_bert.JinaBertConfig",
    "AutoModel": "modeling_bert.JinaBertModel",
    "AutoModelForMaskedLM": "modeling_bert.JinaBertForMaskedLM",
}

OFFICIAL_AUTO_MAP = {
    "AutoConfig": "jinaai/jina-bert-implementation--configuration_bert.JinaBertConfig",
    "AutoModel": "jinaai/jina-bert-implementation--modeling_bert.JinaBertModel",
    "AutoModelForMaskedLM": "jinaai/jina-bert-implementation--modeling_bert.JinaBertForMaskedLM",
    "AutoModelForSequenceClassification": (
        "jinaai/jina-bert-implementation--modeling_bert.JinaBertForSequenceClassification"
    ),
}


def copy_remote_code(dst_dir) -> dict:
    """Copy configuration_bert.py and modeling_bert.py into dst_dir; return the local auto_map."""
    dst = Path(dst_dir)
    dst.mkdir(parents=True, exist_ok=True)
    for name in REMOTE_CODE_FILES:
        shutil.copyfile(REMOTE_CODE_DIR / name, dst / name)
    return dict(LOCAL_AUTO_MAP)
