"""Real English sentences available on every machine: the docstrings of Python's standard library.

A stop-gap text source for smoke runs and tests until the Debian/PyPI starter corpus is built.
"""

from __future__ import annotations

import importlib
import inspect
import re

STDLIB_MODULES = (
    "abc argparse asyncio base64 bisect calendar collections concurrent.futures contextlib "
    "csv dataclasses datetime decimal difflib email enum fractions ftplib functools gettext glob "
    "gzip hashlib heapq hmac html.parser http.client imaplib inspect io ipaddress itertools json "
    "logging mailbox multiprocessing numbers optparse os pathlib pickle pprint queue random re "
    "sched secrets selectors shelve shutil smtplib socket sqlite3 statistics string subprocess "
    "tarfile tempfile textwrap threading timeit tokenize traceback typing unittest urllib.parse "
    "urllib.request uuid warnings weakref xml.dom.minidom zipfile"
).split()


def stdlib_sentences(limit: int) -> list[str]:
    """Up to ``limit`` distinct sentences of 6-60 words, in a fixed order."""
    seen, out = set(), []
    for name in STDLIB_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # some modules need optional system libraries
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


def stdlib_docs(limit: int) -> list[tuple[str, str, str]]:
    """Up to ``limit`` real ``(qualified name, summary, body)`` triples, in a fixed order: the first
    sentence of a stdlib function's or class's docstring and up to three sentences after it (at
    least 8 words). Source of real pairs for filter tests and benchmarks."""
    seen, out = set(), []
    for name in STDLIB_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for attr in sorted(vars(module)):
            obj = getattr(module, attr, None)
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            doc = " ".join((inspect.getdoc(obj) or "").split())
            sentences = re.split(r"(?<=[.!?])\s+", doc)
            if len(sentences) < 2 or len(sentences[0].split()) < 4:
                continue
            body = " ".join(sentences[1:4])
            if len(body.split()) < 8 or doc in seen:
                continue
            seen.add(doc)
            out.append((f"{name}.{attr}", sentences[0], body))
            if len(out) >= limit:
                return out
    return out
