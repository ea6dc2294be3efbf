"""Shared fixtures: offline switches, real English sentences, tiny configs."""

from __future__ import annotations

import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


STDLIB_MODULES = (
    "abc argparse asyncio base64 bisect calendar cgi collections concurrent.futures contextlib "
    "csv dataclasses datetime decimal difflib email enum fractions ftplib functools gettext glob "
    "gzip hashlib heapq hmac html.parser http.client imaplib inspect io ipaddress itertools json "
    "logging mailbox multiprocessing numbers optparse os pathlib pickle pprint queue random re "
    "sched secrets selectors shelve shutil smtplib socket sqlite3 statistics string subprocess "
    "tarfile tempfile textwrap threading timeit tokenize traceback typing unittest urllib.parse "
    "urllib.request uuid warnings weakref xml.dom.minidom zipfile"
).split()


def stdlib_sentences(limit: int) -> list[str]:
    """Real English sentences from the docstrings of Python's standard library (present on every
    machine that runs these tests), deduplicated, in a fixed order."""
    import importlib
    import inspect

    modules = STDLIB_MODULES
    seen, out = set(), []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception:  # some stdlib modules need optional system libraries
            continue
        docs = [inspect.getdoc(module) or ""]
        for attr in sorted(vars(module))[:40]:
            obj = getattr(module, attr, None)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                docs.append(inspect.getdoc(obj) or "")
        for doc in docs:
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                words = sentence.split()
                if 6 <= len(words) <= 60 and sentence[0].isupper() and sentence not in seen:
                    seen.add(sentence)
                    out.append(sentence)
                    if len(out) >= limit:
                        return out
    return out


@pytest.fixture(scope="session")
def real_sentences() -> list[str]:
    sentences = stdlib_sentences(300)
    assert len(sentences) >= 250
    return sentences


@pytest.fixture(scope="session")
def minilm_dir():
    from jina_jax.hf.local_models import minilm_path

    return minilm_path()
