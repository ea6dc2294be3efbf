"""Cleaning filters for pair / triplet data, as in the data preparation of jina-embeddings v1
(Günther et al. 2023): de-duplication, language filter, consistency filter, and a cross-encoder
margin filter for triplets.

A filter is a callable `filter(records, dataset="name") -> (kept, FilterReport)`; kept records
stay in input order. `run_filters` chains several and `format_filter_report` renders the reports
as the paper's table. Filters accept PairRecord, NegationRecord, STSRecord and plain str records;
"the two sides" of a record are (query, positive), (anchor, entailment) and (sentence1,
sentence2); a plain text has one side.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from jina_jax.data.hashing import normalize_text
from jina_jax.data.records import NegationRecord, PairRecord, STSRecord

log = logging.getLogger(__name__)

Record = PairRecord | NegationRecord | STSRecord | str


@dataclasses.dataclass(frozen=True)
class FilterReport:
    name: str
    dataset: str
    n_in: int
    n_out: int
    removed_by_reason: dict[str, int] = dataclasses.field(default_factory=dict)
    note: str = ""  # e.g. why a filter did nothing

    @property
    def n_removed(self) -> int:
        return self.n_in - self.n_out

    @property
    def percent_removed(self) -> float:
        return 100.0 * self.n_removed / self.n_in if self.n_in else 0.0


class Filter(Protocol):
    name: str

    def __call__(
        self, records: Iterable[Record], dataset: str = ""
    ) -> tuple[list[Record], FilterReport]: ...


def run_filters(
    records: Iterable[Record], filters: Sequence[Filter], dataset: str = ""
) -> tuple[list[Record], list[FilterReport]]:
    """Applies `filters` in order; returns the survivors and one report per filter."""
    kept, reports = list(records), []
    for stage in filters:
        kept, report = stage(kept, dataset=dataset)
        reports.append(report)
    return kept, reports


def format_filter_report(reports: Iterable[FilterReport]) -> str:
    """Markdown table: dataset | filter | in | out | % removed | removed by reason."""
    lines = [
        "| dataset | filter | in | out | % removed | removed by reason |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in reports:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(r.removed_by_reason.items()) if v)
        details = "; ".join(part for part in (reasons, r.note) if part) or "-"
        lines.append(
            f"| {r.dataset or '-'} | {r.name} | {r.n_in} | {r.n_out} | "
            f"{r.percent_removed:.1f} | {details} |"
        )
    return "\n".join(lines)


def sides(record: Record) -> tuple[str, ...]:
    """The texts of a record: the two sides first, then any negatives."""
    if isinstance(record, PairRecord):
        return (record.query, record.positive, *record.negatives)
    if isinstance(record, NegationRecord):
        return (record.anchor, record.entailment, record.negative)
    if isinstance(record, STSRecord):
        return (record.sentence1, record.sentence2)
    if isinstance(record, str):
        return (record,)
    raise TypeError(f"not a record: {type(record).__name__}")


def _report(name: str, dataset: str, n_in: int, kept: list, removed: Counter, note: str = ""):
    return FilterReport(name, dataset, n_in, len(kept), dict(removed), note)


# ------------------------------------------------------------------------------- exact dedup


@dataclasses.dataclass
class ExactDedup:
    """Drops records with an empty side, records whose two sides are equal, and repeats.

    Texts are compared after `normalize_text` (case folded, whitespace runs collapsed). A repeat is
    a record whose normalised texts (both sides and all negatives) equal an earlier record's; the
    first occurrence is kept. A negative equal to its positive makes a triplet useless, so such
    records are dropped too.
    """

    name: str = "exact_dedup"

    def __call__(self, records, dataset: str = ""):
        records = list(records)
        seen: set[tuple[str, ...]] = set()
        kept, removed = [], Counter()
        for record in records:
            texts = tuple(normalize_text(text) for text in sides(record))
            if not all(texts):
                removed["empty"] += 1
            elif len(texts) >= 2 and texts[0] == texts[1]:
                removed["same_sides"] += 1
            elif isinstance(record, PairRecord) and texts[1] in texts[2:]:
                removed["negative_equals_positive"] += 1
            elif texts in seen:
                removed["duplicate"] += 1
            else:
                seen.add(texts)
                kept.append(record)
        return kept, _report(self.name, dataset, len(records), kept, removed)


# -------------------------------------------------------------------------------- near dedup


@dataclasses.dataclass
class NearDedup:
    """Drops records whose text is a near-duplicate of an earlier record's (MinHash LSH).

    A record's text is its sides joined; its shingles are word `ngram`-grams of the normalised
    text (the whole text when shorter). LSH candidates are confirmed with the MinHash Jaccard
    estimate >= `threshold`, so the count does not depend on LSH false positives.
    """

    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 3
    seed: int = 1
    name: str = "near_dedup"

    def __call__(self, records, dataset: str = ""):
        # optional: datasketch is only needed for near-duplicate removal
        from datasketch import MinHash, MinHashLSH

        records = list(records)
        lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)
        hashes: dict[int, Any] = {}
        kept, removed = [], Counter()
        for i, record in enumerate(records):
            minhash = MinHash(num_perm=self.num_perm, seed=self.seed)
            minhash.update_batch(self._shingles(record))
            if any(hashes[j].jaccard(minhash) >= self.threshold for j in lsh.query(minhash)):
                removed["near_duplicate"] += 1
                continue
            lsh.insert(i, minhash)
            hashes[i] = minhash
            kept.append(record)
        return kept, _report(self.name, dataset, len(records), kept, removed)

    def _shingles(self, record: Record) -> list[bytes]:
        words = normalize_text(" \n ".join(sides(record))).split()
        n = min(self.ngram, max(len(words), 1))
        return [" ".join(words[i : i + n]).encode() for i in range(max(len(words) - n + 1, 1))]


# -------------------------------------------------------------------------- language filter


@dataclasses.dataclass
class LanguageFilter:
    """Keeps a record only when both sides are in `language` (negatives are not checked).

    Identification uses py3langid, or fastText when `fasttext_model` names a model file such as
    `lid.176.bin` (the paper used fastText; the `fasttext` package must then be installed).
    Texts shorter than `min_chars` are too short to identify reliably ("sort list" comes out as
    Maltese) and are taken to be in `language`; set 0 to judge every text.
    """

    language: str = "en"
    fasttext_model: str | os.PathLike | None = None
    min_chars: int = 20
    name: str = "language"
    _identify: Callable[[list[str]], list[str]] | None = dataclasses.field(
        default=None, init=False, repr=False
    )

    def __post_init__(self):
        if self.fasttext_model is not None:
            self._identify = _fasttext_identifier(self.fasttext_model)
        else:
            self._identify = _langid_identifier()

    def __call__(self, records, dataset: str = ""):
        records = list(records)
        texts = [side for record in records for side in sides(record)[:2]]
        widths = [min(len(sides(record)), 2) for record in records]
        judged = [i for i, text in enumerate(texts) if len(text.strip()) >= self.min_chars]
        ok = np.ones(len(texts), dtype=bool)
        if judged:
            languages = self._identify([texts[i] for i in judged])
            ok[judged] = [language == self.language for language in languages]
        kept, removed, start = [], Counter(), 0
        for record, width in zip(records, widths):
            side_ok = ok[start : start + width]
            start += width
            if side_ok.all():
                kept.append(record)
            elif width == 2 and not side_ok.any():
                removed[f"not {self.language} (both sides)"] += 1
            elif not side_ok[0]:
                removed[f"not {self.language} (first side)"] += 1
            else:
                removed[f"not {self.language} (second side)"] += 1
        return kept, _report(self.name, dataset, len(records), kept, removed)


def _langid_identifier() -> Callable[[list[str]], list[str]]:
    # optional: py3langid is only needed for the language filter
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    return lambda texts: [identifier.classify(text)[0] for text in texts]


def _fasttext_identifier(model_file: str | os.PathLike) -> Callable[[list[str]], list[str]]:
    try:  # optional: fasttext only for LanguageFilter(fasttext_model=...)
        import fasttext
    except ImportError as error:
        raise ImportError(
            "LanguageFilter(fasttext_model=...) needs the fasttext package (pip install "
            "fasttext-wheel or fasttext); without a model file py3langid is used instead"
        ) from error
    if not pathlib.Path(model_file).is_file():
        raise FileNotFoundError(f"fastText language-id model {model_file} does not exist")
    model = fasttext.load_model(str(model_file))

    def identify(texts: list[str]) -> list[str]:
        # fastText predicts on one line; newlines would raise.
        labels, _ = model.predict([" ".join(text.split()) for text in texts], k=1)
        return [label[0].removeprefix("__label__") for label in labels]

    return identify


# ----------------------------------------------------------------------- consistency filter


@dataclasses.dataclass
class ConsistencyFilter:
    """Keeps a pair only if its positive is among the `top_k` positives most similar to its query.

    As in the paper: the candidates are the positives of a random sample of `sample_size` pairs
    (all pairs when the dataset is smaller; a text sampled twice is one candidate), embedded with
    the auxiliary model, cosine similarity. A pair's rank is 1 + the number of candidates scoring
    strictly higher than its own positive; its own positive, when sampled, is the same vector and
    never counts against it. Works on PairRecord (query, positive); other records use their first
    two sides.

    `embedder` is the auxiliary model (the paper used all-MiniLM-L6-v2): an object with
    `embed(texts, *, max_length=None) -> [N, D]` L2-normalised rows, e.g.
    `jina_jax.loading.load_embedder("all-MiniLM-L6-v2")`; `max_length` is passed to it (None: the
    embedder's own).

    Memory is bounded: the sample's embeddings [S, D], those of `chunk_size` pairs at a time, and
    a `block_size` x S score matrix (256 x 1M float32 = 1 GB).
    """

    embedder: Any = None
    sample_size: int = 1_000_000
    top_k: int = 2
    max_length: int | None = None
    chunk_size: int = 65_536
    block_size: int = 256
    seed: int = 0
    name: str = "consistency"

    def __post_init__(self):
        if not callable(getattr(self.embedder, "embed", None)):
            raise ValueError(
                "ConsistencyFilter needs embedder=<an object with embed(texts, *, max_length=None)"
                " -> [N, D] L2-normalised rows>, e.g. jina_jax.loading.load_embedder("
                f"'all-MiniLM-L6-v2'); got {self.embedder!r}"
            )

    def __call__(self, records, dataset: str = ""):
        records = list(records)
        n = len(records)
        if not n:
            return [], _report(self.name, dataset, 0, [], Counter())
        sample = np.arange(n)
        if self.sample_size < n:
            rng = np.random.default_rng(self.seed)
            sample = np.sort(rng.choice(n, size=self.sample_size, replace=False))
        candidate_texts = sorted({sides(records[i])[1] for i in sample})
        candidate_index = {text: i for i, text in enumerate(candidate_texts)}
        candidates = self._embed(candidate_texts)  # [S, D]
        keep = np.empty(n, dtype=bool)
        for start in range(0, n, self.chunk_size):
            pairs = [sides(record)[:2] for record in records[start : start + self.chunk_size]]
            new = sorted({q for q, _ in pairs} | {p for _, p in pairs if p not in candidate_index})
            new_index = {text: i for i, text in enumerate(new)}
            vectors = self._embed(new)
            queries = vectors[[new_index[q] for q, _ in pairs]]
            positives = np.stack(
                [
                    candidates[candidate_index[p]]
                    if p in candidate_index
                    else vectors[new_index[p]]
                    for _, p in pairs
                ]
            )
            keep[start : start + len(pairs)] = consistent_pairs(
                queries, positives, candidates, top_k=self.top_k, block_size=self.block_size
            )
        kept = [record for record, ok in zip(records, keep) if ok]
        removed = Counter({f"positive not in top {self.top_k}": int((~keep).sum())})
        return kept, _report(self.name, dataset, n, kept, removed)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """[len(texts), D] L2-normalised embeddings from the auxiliary model."""
        return np.asarray(self.embedder.embed(texts, max_length=self.max_length), np.float32)


def consistent_pairs(
    queries: np.ndarray,
    positives: np.ndarray,
    candidates: np.ndarray | None = None,
    *,
    top_k: int = 2,
    sample_size: int | None = None,
    seed: int = 0,
    block_size: int = 256,
) -> np.ndarray:
    """bool [N]: whether fewer than `top_k` candidates score strictly higher for query i than its
    own positive i, i.e. the positive ranks in the top `top_k` among itself and the candidates.

    queries, positives: [N, D]; candidates: [S, D]; all L2-normalised. Without `candidates` they
    are the positives themselves, or a random `sample_size` of them (`default_rng(seed)`).
    """
    if candidates is None:
        candidates = positives
        if sample_size is not None and sample_size < len(positives):
            rng = np.random.default_rng(seed)
            candidates = positives[np.sort(rng.choice(len(positives), sample_size, replace=False))]
    keep = np.empty(len(queries), dtype=bool)
    for start in range(0, len(queries), block_size):
        q = queries[start : start + block_size]  # [b, D]
        own = np.einsum("bd,bd->b", q, positives[start : start + block_size])
        higher = (q @ candidates.T > own[:, None]).sum(axis=1)  # [b, S] scores, counted
        keep[start : start + len(q)] = higher < top_k
    return keep


# ---------------------------------------------------------------------- cross-encoder filter


@dataclasses.dataclass
class CrossEncoderFilter:
    """Triplets: keeps a record only if r(q, p) - r(q, n) > `margin` for every negative n.

    `model` is a local Hugging Face cross-encoder folder (the paper used ms-marco-MiniLM-L-6-v2)
    loaded with `sentence_transformers.CrossEncoder`, or any object with a `predict(pairs)`
    method. Scores are what the model's `predict` returns with its own default activation (raw
    logits for the ms-marco cross-encoders; a sigmoid for a plain 1-label model). Records without
    negatives pass through. With no model available the filter logs that and returns the data
    unchanged, with a report that says so.
    """

    model: Any = None
    margin: float = 0.2
    batch_size: int = 32
    name: str = "cross_encoder"

    def __call__(self, records, dataset: str = ""):
        records = list(records)
        scorer = self._scorer()
        if scorer is None:
            note = f"skipped: no cross-encoder available (model={self.model!r})"
            log.warning("CrossEncoderFilter %s", note)
            return records, _report(self.name, dataset, len(records), records, Counter(), note)
        pairs, owners = [], []
        for i, record in enumerate(records):
            texts = sides(record)
            if len(texts) > 2:
                pairs += [(texts[0], text) for text in texts[1:]]
                owners.append((i, len(texts) - 1))
        scores = np.asarray(scorer(pairs), dtype=np.float64).reshape(-1) if pairs else []
        keep, start = np.ones(len(records), dtype=bool), 0
        for i, count in owners:
            positive, negatives = scores[start], scores[start + 1 : start + count]
            start += count
            keep[i] = bool(np.all(positive - negatives > self.margin))
        kept = [record for record, ok in zip(records, keep) if ok]
        removed = Counter({f"margin <= {self.margin}": int((~keep).sum())})
        return kept, _report(self.name, dataset, len(records), kept, removed)

    def _scorer(self) -> Callable[[list[tuple[str, str]]], Any] | None:
        if self.model is None:
            return None
        if hasattr(self.model, "predict"):
            return lambda pairs: self.model.predict(pairs, batch_size=self.batch_size)
        if not pathlib.Path(self.model).is_dir():
            return None
        # optional: sentence-transformers (the torch extra) only for a cross-encoder folder
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(str(self.model), device="cpu", local_files_only=True)
        return self._scorer()
