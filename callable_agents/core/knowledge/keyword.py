"""Okapi BM25 keyword search over a knowledge base's passages, in numpy.

The index is an inverted file in CSR form: for each term, the positions of the passages
that contain it and the term's precomputed BM25 weight in each. A query sums the weights of
its terms with one ``np.bincount``, so a search over 100k passages costs a few hundred
microseconds and no Python loop over passages.

Terms are lower-cased words and numbers, without common English stop words, reduced by the
first step of Porter's stemmer (``prices``/``price``, ``shipping``/``ships``,
``delivered``/``delivery``), which matters more than anything fancier for short customer
questions.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

K1 = 1.2
B = 0.75
MAX_TERM_LENGTH = 40

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOP_WORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have how i if in into is it
    its me my no not of on or our so than that the their them then there these they this those to us was we
    were what when where which who whom why will with would you your yours im ive
    dont any some about can't cant please""".split()
)


def _is_consonant(word: str, index: int) -> bool:
    letter = word[index]
    if letter in "aeiou":
        return False
    if letter == "y":
        return index == 0 or not _is_consonant(word, index - 1)
    return True


def _measure(stem: str) -> int:
    """Porter's m: the number of vowel-consonant sequences in ``stem``."""
    pattern = "".join("c" if _is_consonant(stem, i) else "v" for i in range(len(stem)))
    return pattern.count("vc")


def _has_vowel(stem: str) -> bool:
    return any(not _is_consonant(stem, i) for i in range(len(stem)))


def _ends_cvc(word: str) -> bool:
    return (
        len(word) >= 3
        and _is_consonant(word, -3 % len(word))
        and not _is_consonant(word, len(word) - 2)
        and _is_consonant(word, len(word) - 1)
        and word[-1] not in "wxy"
    )


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Step 1 of Porter's stemmer: plurals, -ed, -ing and final -y.

    ``shipping``/``ships`` -> ``ship``, ``delivered`` -> ``deliv``, ``berries`` -> ``berri``:
    query and passages go through the same function, so only equality matters.
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    # 1a
    if word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("ies"):
        word = word[:-2]
    elif word.endswith(("xes", "ches", "shes", "zzes")):  # not Porter's: boxes -> box, not boxe
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    # 1b
    if word.endswith("eed"):
        if _measure(word[:-3]) > 0:
            word = word[:-1]
    else:
        for suffix in ("ed", "ing"):
            if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
                word = word[: -len(suffix)]
                if word.endswith(("at", "bl", "iz")):
                    word += "e"
                elif (
                    len(word) >= 2
                    and word[-1] == word[-2]
                    and _is_consonant(word, len(word) - 1)
                    and word[-1] not in "lsz"
                ):
                    word = word[:-1]
                elif _measure(word) == 1 and _ends_cvc(word):
                    word += "e"
                break
    # 1c
    if word.endswith("y") and _has_vowel(word[:-1]):
        word = word[:-1] + "i"
    return word


def terms(text: str) -> list[str]:
    """The index terms of ``text``, in order, repeats kept."""
    return [
        stem(word)
        for word in _WORD.findall(text.lower().replace("'", "").replace("\u2019", ""))
        if word not in STOP_WORDS and len(word) <= MAX_TERM_LENGTH
    ]


@dataclass
class KeywordIndex:
    """An immutable BM25 index over passages numbered 0..n-1 (their positions)."""

    vocabulary: dict[str, int]
    indptr: np.ndarray  # int64, len(vocabulary) + 1: term t's postings are [indptr[t], indptr[t+1])
    postings: np.ndarray  # int32 passage positions
    weights: np.ndarray  # float32 BM25 weight of the term in that passage
    size: int

    @classmethod
    def build(cls, texts: Sequence[str], k1: float = K1, b: float = B) -> KeywordIndex:
        vocabulary: dict[str, int] = {}
        term_ids: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        for position, text in enumerate(texts):
            ids = [vocabulary.setdefault(term, len(vocabulary)) for term in terms(text)]
            lengths[position] = len(ids)
            term_ids.extend(ids)
        if not term_ids:
            return cls.empty(len(texts))
        term_array = np.asarray(term_ids, dtype=np.int64)
        doc_array = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        # (term, passage) pairs with their counts, sorted by term then passage.
        keys, tf = np.unique(term_array * len(texts) + doc_array, return_counts=True)
        pair_terms = keys // len(texts)
        pair_docs = keys % len(texts)
        df = np.bincount(pair_terms, minlength=len(vocabulary))
        idf = np.log1p((len(texts) - df + 0.5) / (df + 0.5))
        average_length = max(float(lengths.mean()), 1.0)
        norm = k1 * (1.0 - b + b * lengths[pair_docs] / average_length)
        weights = idf[pair_terms] * tf * (k1 + 1.0) / (tf + norm)
        indptr = np.zeros(len(vocabulary) + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        return cls(
            vocabulary=vocabulary,
            indptr=indptr,
            postings=pair_docs.astype(np.int32),
            weights=weights.astype(np.float32),
            size=len(texts),
        )

    @classmethod
    def empty(cls, size: int = 0) -> KeywordIndex:
        return cls({}, np.zeros(1, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), size)

    def search(self, query: str, top_n: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of the best ``top_n`` passages with any query term, best first.

        ``allowed`` is a boolean mask over positions (e.g. the chosen sources).
        """
        spans = []
        for term in dict.fromkeys(terms(query)):
            term_id = self.vocabulary.get(term)
            if term_id is not None:
                spans.append((int(self.indptr[term_id]), int(self.indptr[term_id + 1])))
        if not spans or self.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if len(spans) == 1:
            positions = self.postings[spans[0][0] : spans[0][1]]
            weights = self.weights[spans[0][0] : spans[0][1]]
        else:
            positions = np.concatenate([self.postings[start:end] for start, end in spans])
            weights = np.concatenate([self.weights[start:end] for start, end in spans])
        scores = np.bincount(positions, weights=weights, minlength=self.size)
        if allowed is not None:
            scores[~allowed] = 0.0
        candidates = np.flatnonzero(scores > 0)
        if candidates.size > top_n:
            best = np.argpartition(-scores[candidates], top_n - 1)[:top_n]
            candidates = candidates[best]
        order = np.argsort(-scores[candidates], kind="stable")
        chosen = candidates[order]
        return chosen.astype(np.int64), scores[chosen].astype(np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        words = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        return {
            "kw_vocabulary": np.asarray(words, dtype=str) if words else np.zeros(0, dtype="<U1"),
            "kw_indptr": self.indptr,
            "kw_postings": self.postings,
            "kw_weights": self.weights,
            "kw_size": np.asarray(self.size, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> KeywordIndex:
        words = arrays["kw_vocabulary"].tolist()
        return cls(
            vocabulary={word: index for index, word in enumerate(words)},
            indptr=arrays["kw_indptr"],
            postings=arrays["kw_postings"],
            weights=arrays["kw_weights"],
            size=int(arrays["kw_size"]),
        )
