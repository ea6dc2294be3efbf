"""Cleaning filters for pair / triplet data, as in the data preparation of jina-embeddings v1
(Günther et al. 2023): de-duplication, language filter, consistency filter, and a cross-encoder
margin filter for triplets.

A filter is a callable `filter(records, dataset="name") -> (kept, FilterReport)`; kept records
stay in input order. `run_filters` chains several and `format_filter_report` renders the reports
as the paper's table. Filters accept PairRecord, NegationRecord, STSRecord and plain str records;
"the two sides" of a record are (query, positive), (anchor, entailment) and (sentence1,
sentence2); a plain text has one side.

The decisions themselves are plain functions of one record or one group of records
(`exact_dedup_reason` / `exact_dedup_key`, `minhash_signature` / `lsh_band_keys` /
`near_duplicates_in_bucket`, `language_reasons`, `consistency_fraction` / `sample_cutoff` /
`consistency_reasons`, `cross_encoder_reasons`); the classes here apply them to a list in one
process and the Beam transforms of `jina_jax.data.beam_transforms` to a PCollection, so both
keep the same records. A reason string means "removed, for this reason"; None means "kept".
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import pathlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Protocol

import numpy as np

from jina_jax.data.hashing import normalize_text, stable_fraction
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


def make_report(
    name: str, dataset: str, n_in: int, n_out: int, removed: Counter | dict, note: str = ""
) -> FilterReport:
    """A FilterReport; reasons that removed nothing are left out."""
    reasons = {reason: int(count) for reason, count in sorted(removed.items()) if count}
    return FilterReport(name, dataset, n_in, n_out, reasons, note)


def _apply(name: str, dataset: str, records: list, reasons: Sequence[str | None], note: str = ""):
    """(kept records in input order, report) from one verdict per record."""
    kept = [record for record, reason in zip(records, reasons) if reason is None]
    removed = Counter(reason for reason in reasons if reason is not None)
    return kept, make_report(name, dataset, len(records), len(kept), removed, note)


# ------------------------------------------------------------------------------- exact dedup


def exact_dedup_reason(record: Record) -> str | None:
    """Why a record is useless whatever the others are: an empty side (`empty`), two equal
    sides (`same_sides`), a negative equal to its positive (`negative_equals_positive`)."""
    texts = tuple(normalize_text(text) for text in sides(record))
    if not all(texts):
        return "empty"
    if len(texts) >= 2 and texts[0] == texts[1]:
        return "same_sides"
    if isinstance(record, PairRecord) and texts[1] in texts[2:]:
        return "negative_equals_positive"
    return None


def exact_dedup_key(record: Record) -> bytes:
    """Records with the same key are repeats: sha1 of the normalised texts of every side (and
    of the record type, so a pair never repeats a negation triplet)."""
    texts = [type(record).__name__, *(normalize_text(text) for text in sides(record))]
    return hashlib.sha1(json.dumps(texts).encode()).digest()


@dataclasses.dataclass
class ExactDedup:
    """Drops records with an empty side, records whose two sides are equal, and repeats.

    Texts are compared after `normalize_text` (case folded, whitespace runs collapsed). A repeat is
    a record whose normalised texts (both sides and all negatives) equal an earlier record's; the
    first occurrence is kept (in Beam: the one earliest in the input, by file and line). A
    negative equal to its positive makes a triplet useless, so such records are dropped too.
    """

    name: str = "exact_dedup"

    def __call__(self, records, dataset: str = ""):
        records = list(records)
        seen: set[bytes] = set()
        reasons: list[str | None] = []
        for record in records:
            reason = exact_dedup_reason(record)
            if reason is None:
                key = exact_dedup_key(record)
                if key in seen:
                    reason = "duplicate"
                seen.add(key)
            reasons.append(reason)
        return _apply(self.name, dataset, records, reasons)


# -------------------------------------------------------------------------------- near dedup


@functools.lru_cache(maxsize=8)
def _minhash_template(num_perm: int, seed: int):
    # optional: datasketch is only needed for near-duplicate removal
    from datasketch import MinHash

    return MinHash(num_perm=num_perm, seed=seed)


def minhash_signature(record: Record, *, num_perm: int, ngram: int, seed: int) -> np.ndarray:
    """[num_perm] hash values: the datasketch MinHash of a record's shingles, word `ngram`-grams of
    its normalised sides joined (the whole text when shorter)."""
    from datasketch import MinHash  # optional, see _minhash_template

    words = normalize_text(" \n ".join(sides(record))).split()
    n = min(ngram, max(len(words), 1))
    shingles = [" ".join(words[i : i + n]).encode() for i in range(max(len(words) - n + 1, 1))]
    template = _minhash_template(num_perm, seed)
    minhash = MinHash(
        num_perm=num_perm, seed=seed, permutations=template.permutations, scheme=template.scheme
    )
    minhash.update_batch(shingles)
    return np.asarray(minhash.hashvalues)


@functools.lru_cache(maxsize=8)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's MinHashLSH picks for `threshold`."""
    from datasketch import MinHashLSH  # optional, see _minhash_template

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def lsh_band_keys(signature: np.ndarray, *, threshold: float) -> list[bytes]:
    """One key per LSH band: records that share a key are near-duplicate candidates."""
    bands, rows = lsh_params(threshold, len(signature))
    return [
        hashlib.blake2b(
            band.to_bytes(2, "big") + signature[band * rows : (band + 1) * rows].tobytes(),
            digest_size=16,
        ).digest()
        for band in range(bands)
    ]


def minhash_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """The MinHash estimate of the Jaccard similarity (datasketch's `MinHash.jaccard`)."""
    return float(np.count_nonzero(a == b)) / len(a)


def near_duplicates_in_bucket(members: Iterable[tuple[Any, np.ndarray]], threshold: float) -> list:
    """The keys of one LSH bucket's `(key, signature)` members that are dropped: those with a
    near-duplicate (MinHash Jaccard >= `threshold`) of smaller key in the bucket."""
    members = sorted(members, key=lambda member: member[0])
    dropped = []
    for j in range(1, len(members)):
        key, signature = members[j]
        if any(minhash_jaccard(members[i][1], signature) >= threshold for i in range(j)):
            dropped.append(key)
    return dropped


@dataclasses.dataclass
class NearDedup:
    """Drops a record when an EARLIER record is its near-duplicate (MinHash LSH): a record is
    dropped iff some record before it shares an LSH band with it and their MinHash Jaccard
    estimate is >= `threshold` (so the count does not depend on LSH false positives).

    The earlier record may itself be dropped: of a chain A ~ B ~ C (A not ~ C) only A stays.
    That makes the rule a per-pair test, the same whatever the processing order, which is what
    lets the Beam pipeline decide it bucket by bucket ("earlier": by file and line there).

    A record's text is its sides joined; its shingles are word `ngram`-grams of the normalised
    text (the whole text when shorter).
    """

    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 3
    seed: int = 1
    name: str = "near_dedup"

    def signature(self, record: Record) -> np.ndarray:
        return minhash_signature(record, num_perm=self.num_perm, ngram=self.ngram, seed=self.seed)

    def __call__(self, records, dataset: str = ""):
        records = list(records)
        buckets: dict[bytes, list[tuple[int, np.ndarray]]] = defaultdict(list)
        for i, record in enumerate(records):
            signature = self.signature(record)
            for key in lsh_band_keys(signature, threshold=self.threshold):
                buckets[key].append((i, signature))
        dropped: set[int] = set()
        for members in buckets.values():
            if len(members) > 1:
                dropped.update(near_duplicates_in_bucket(members, self.threshold))
        reasons = ["near_duplicate" if i in dropped else None for i in range(len(records))]
        return _apply(self.name, dataset, records, reasons)


# -------------------------------------------------------------------------- language filter


@functools.lru_cache(maxsize=4)
def language_identifier(
    fasttext_model: str | os.PathLike | None = None,
) -> Callable[[list[str]], list[str]]:
    """texts -> language codes: py3langid, or fastText with a model file such as lid.176.bin.
    Built once per process (loading the model takes about a second)."""
    if fasttext_model is not None:
        return _fasttext_identifier(fasttext_model)
    return _langid_identifier()


def language_reasons(
    records: Sequence[Record],
    identify: Callable[[list[str]], list[str]],
    *,
    language: str,
    min_chars: int,
) -> list[str | None]:
    """One verdict per record: kept when its first two sides are in `language` (texts shorter
    than `min_chars` count as in it), else `not <language> (first side | second side | both
    sides)`. `identify` runs once over the judged texts of all `records`."""
    texts = [side for record in records for side in sides(record)[:2]]
    widths = [min(len(sides(record)), 2) for record in records]
    judged = [i for i, text in enumerate(texts) if len(text.strip()) >= min_chars]
    ok = np.ones(len(texts), dtype=bool)
    if judged:
        languages = identify([texts[i] for i in judged])
        ok[judged] = [code == language for code in languages]
    reasons: list[str | None] = []
    start = 0
    for width in widths:
        side_ok = ok[start : start + width]
        start += width
        if side_ok.all():
            reasons.append(None)
        elif width == 2 and not side_ok.any():
            reasons.append(f"not {language} (both sides)")
        elif not side_ok[0]:
            reasons.append(f"not {language} (first side)")
        else:
            reasons.append(f"not {language} (second side)")
    return reasons


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
        self._identify = language_identifier(self.fasttext_model)

    def __getstate__(self):  # the identifier is not pickled: built where it is used
        return {**self.__dict__, "_identify": None}

    def reasons(self, records: Sequence[Record]) -> list[str | None]:
        if self._identify is None:
            self._identify = language_identifier(self.fasttext_model)
        return language_reasons(
            records, self._identify, language=self.language, min_chars=self.min_chars
        )

    def __call__(self, records, dataset: str = ""):
        records = list(records)
        return _apply(self.name, dataset, records, self.reasons(records))


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


def consistency_fraction(record: Record, seed: int = 0) -> float:
    """A record's place in the consistency filter's stable sample: a hash of its normalised
    first two sides (`hashing.stable_fraction`), the same on every machine and in any order."""
    first, second = sides(record)[:2]
    return stable_fraction(first + "\0" + second, f"consistency:{seed}")


def sample_cutoff(fractions: Iterable[float], sample_size: int | None) -> float:
    """The sample is the records whose fraction is <= the cutoff: the `sample_size`-th smallest
    DISTINCT fraction (records with equal first two sides are in or out together), or inf
    (everything) when there are no more distinct fractions than that, or no size."""
    distinct = sorted(set(fractions))
    if not sample_size or sample_size <= 0 or sample_size >= len(distinct):
        return math.inf
    return distinct[sample_size - 1]


def consistency_reasons(
    pairs: Sequence[tuple[str, str]],
    embed: Callable[[list[str]], np.ndarray],
    candidate_index: dict[str, int],
    candidates: np.ndarray,
    *,
    top_k: int,
    block_size: int = 256,
) -> list[str | None]:
    """One verdict per `(query, positive)` given the sample's embeddings: `candidates [S, D]`,
    row `candidate_index[text]` for each sampled positive text. The queries and the positives
    that are not candidates are embedded with `embed` (sorted, each text once); a positive that
    is a candidate uses the candidate's vector, so it never counts against its own pair."""
    if not pairs:
        return []
    new = sorted({q for q, _ in pairs} | {p for _, p in pairs if p not in candidate_index})
    new_index = {text: i for i, text in enumerate(new)}
    vectors = embed(new)
    queries = vectors[[new_index[q] for q, _ in pairs]]
    positives = np.stack(
        [
            candidates[candidate_index[p]] if p in candidate_index else vectors[new_index[p]]
            for _, p in pairs
        ]
    )
    keep = consistent_pairs(queries, positives, candidates, top_k=top_k, block_size=block_size)
    return [None if ok else f"positive not in top {top_k}" for ok in keep]


@dataclasses.dataclass
class ConsistencyFilter:
    """Keeps a pair only if its positive is among the `top_k` positives most similar to its query.

    As in the paper: the candidates are the positives of a sample of `sample_size` pairs (all
    pairs when the dataset is smaller; a text sampled twice is one candidate), embedded with the
    auxiliary model, cosine similarity. A pair's rank is 1 + the number of candidates scoring
    strictly higher than its own positive; its own positive, when sampled, is the same vector and
    never counts against it. Works on PairRecord (query, positive); other records use their first
    two sides.

    The sample is stable: the pairs with the `sample_size` smallest `consistency_fraction`s (a
    hash of the normalised query and positive, salted with `seed`; see `sample_cutoff`), so it
    does not depend on input order or on how a pipeline splits the data. `judge="all"` (the
    paper) ranks every pair against the sample; `judge="sample"` ranks only the sampled pairs
    and keeps the others unjudged (cheap: embeds only the sample).

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
    judge: Literal["all", "sample"] = "all"
    name: str = "consistency"

    def __post_init__(self):
        if not callable(getattr(self.embedder, "embed", None)):
            raise ValueError(
                "ConsistencyFilter needs embedder=<an object with embed(texts, *, max_length=None)"
                " -> [N, D] L2-normalised rows>, e.g. jina_jax.loading.load_embedder("
                f"'all-MiniLM-L6-v2'); got {self.embedder!r}"
            )
        if self.judge not in ("all", "sample"):
            raise ValueError(f"judge must be 'all' or 'sample', got {self.judge!r}")

    def judged_note(self, judged: int, total: int) -> str:
        return "" if judged == total else f"judged {judged} of {total} (sample); rest kept"

    def __call__(self, records, dataset: str = ""):
        records = list(records)
        n = len(records)
        if not n:
            return [], make_report(self.name, dataset, 0, 0, {})
        fractions = [consistency_fraction(record, self.seed) for record in records]
        cutoff = sample_cutoff(fractions, self.sample_size)
        sample = [i for i in range(n) if fractions[i] <= cutoff]
        candidate_texts = sorted({sides(records[i])[1] for i in sample})
        candidate_index = {text: i for i, text in enumerate(candidate_texts)}
        candidates = self.embed(candidate_texts)  # [S, D]
        judged = sample if self.judge == "sample" else list(range(n))
        reasons: list[str | None] = [None] * n
        for start in range(0, len(judged), self.chunk_size):
            chunk = judged[start : start + self.chunk_size]
            verdicts = consistency_reasons(
                [sides(records[i])[:2] for i in chunk],
                self.embed,
                candidate_index,
                candidates,
                top_k=self.top_k,
                block_size=self.block_size,
            )
            for i, reason in zip(chunk, verdicts):
                reasons[i] = reason
        return _apply(self.name, dataset, records, reasons, self.judged_note(len(judged), n))

    def embed(self, texts: list[str]) -> np.ndarray:
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


def cross_encoder_reasons(
    records: Sequence[Record],
    score: Callable[[list[tuple[str, str]]], Any],
    *,
    margin: float,
) -> list[str | None]:
    """One verdict per record: kept when r(q, p) - r(q, n) > `margin` for every negative n
    (records without negatives are kept), else `margin <= <margin>`. `score(pairs)` is called
    once with every (query, text) pair of `records`."""
    pairs, owners = [], []
    for i, record in enumerate(records):
        texts = sides(record)
        if len(texts) > 2:
            pairs += [(texts[0], text) for text in texts[1:]]
            owners.append((i, len(texts) - 1))
    scores = np.asarray(score(pairs), dtype=np.float64).reshape(-1) if pairs else []
    reasons: list[str | None] = [None] * len(records)
    start = 0
    for i, count in owners:
        positive, negatives = scores[start], scores[start + 1 : start + count]
        start += count
        if not np.all(positive - negatives > margin):
            reasons[i] = f"margin <= {margin}"
    return reasons


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

    @property
    def available(self) -> bool:
        """Whether there is a model (an object with `predict`, or an existing folder)."""
        if self.model is None:
            return False
        return hasattr(self.model, "predict") or pathlib.Path(self.model).is_dir()

    @property
    def skipped_note(self) -> str:
        return f"skipped: no cross-encoder available (model={self.model!r})"

    def __call__(self, records, dataset: str = ""):
        records = list(records)
        scorer = self.scorer()
        if scorer is None:
            log.warning("CrossEncoderFilter %s", self.skipped_note)
            return _apply(self.name, dataset, records, [None] * len(records), self.skipped_note)
        reasons = cross_encoder_reasons(records, scorer, margin=self.margin)
        return _apply(self.name, dataset, records, reasons)

    def scorer(self) -> Callable[[list[tuple[str, str]]], Any] | None:
        """`pairs -> scores`, loading a cross-encoder folder on first use; None without a model."""
        if not self.available:
            return None
        if hasattr(self.model, "predict"):
            return lambda pairs: self.model.predict(pairs, batch_size=self.batch_size)
        # optional: sentence-transformers (the torch extra) only for a cross-encoder folder
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(str(self.model), device="cpu", local_files_only=True)
        return self.scorer()
