"""The tokenizer component against Hugging Face `tokenizers` (PyPI, the same version as the crate
inside the component): ids and everything else an encoding carries must be identical, on every
text of the corpus (tests/text/corpus.py), for WordPiece, both kinds of BPE and Unigram, with
the truncation and padding the tokenizer.json declares, with pairs, and with the caller's own
truncation. Bad input must be an error, never a trap, and leave the instance working.

The component runs as built for the browser (target/wasm32-wasip2/wasm/tokenizer.wasm, under
wasmtime); with $SC_TEXT_REPORT set, the counts are written there as JSON.
"""

import copy
import json
import os
from pathlib import Path

import pytest
import tokenizers
from tokenizers import Tokenizer

from corpus import HAND, corpus
from notes import NOTES
from fixtures import tokenizer_files
from tokenizer_wasm import COMPONENT, TokError, Tokenizers

CRATE_VERSION = "0.22.2"  # components/tokenizer/Cargo.toml pins the same
TEXTS = corpus()
REPORT = {}


@pytest.fixture(scope="session")
def wasm():
    assert COMPONENT.is_file(), f"{COMPONENT} missing: scripts/build-text"
    return Tokenizers()


@pytest.fixture(scope="session")
def files():
    # Trained on the hand-written part: the random strings would only add single characters.
    return tokenizer_files(HAND + NOTES)


def py_encoding(e):
    return {
        "ids": e.ids,
        "type_ids": e.type_ids,
        "tokens": e.tokens,
        "offsets": [tuple(o) for o in e.offsets],
        "attention_mask": e.attention_mask,
        "special_tokens_mask": e.special_tokens_mask,
        "word_ids": e.word_ids,
        "sequence_ids": e.sequence_ids,
    }


def py_encoded(e):
    for o in e.overflowing:
        assert not o.overflowing, "nested overflowing: the component flattens one level"
    return py_encoding(e), [py_encoding(o) for o in e.overflowing]


def first_difference(a, b):
    for k in a:
        if a[k] != b[k]:
            i = next((i for i, (x, y) in enumerate(zip(a[k], b[k])) if x != y), min(len(a[k]), len(b[k])))
            return f"{k}[{i}]: component {a[k][i:i + 3]} vs tokenizers {b[k][i:i + 3]} (lengths {len(a[k])}, {len(b[k])})"
    return None


def assert_same(got, want, what):
    (g, g_over), (w, w_over) = got, want
    diff = first_difference(g, w)
    assert diff is None, f"{what}: {diff}"
    assert len(g_over) == len(w_over), f"{what}: {len(g_over)} overflowing windows vs {len(w_over)}"
    for i, (go, wo) in enumerate(zip(g_over, w_over)):
        diff = first_difference(go, wo)
        assert diff is None, f"{what}, overflowing window {i}: {diff}"


def test_oracle_is_the_crate_version():
    assert tokenizers.__version__ == CRATE_VERSION


@pytest.mark.parametrize("name", [
    "wordpiece", "bpe-bytefallback", "bpe-bytelevel", "unigram", "wordpiece-truncate-pad",
    "bpe-bytelevel-pad-left", "unigram-truncate-left"])
def test_corpus_identical(wasm, files, name):
    py = Tokenizer.from_str(files[name])
    tok = wasm.load(files[name].encode("utf-8"))
    # In batches of 16 (batch padding pads each batch to its longest, in both).
    got, want = [], []
    for i in range(0, len(TEXTS), 16):
        got += wasm.encode_batch(tok, TEXTS[i:i + 16])
        want += [py_encoded(e) for e in py.encode_batch(TEXTS[i:i + 16])]
    tokens = 0
    for text, g, w in zip(TEXTS, got, want):
        assert_same(g, w, f"{name}, text {text[:40]!r}")
        tokens += len(g[0]["ids"]) + sum(len(o["ids"]) for o in g[1])
    # One at a time too: padding and batch-longest differ between the two paths.
    for text in TEXTS[::7]:
        assert_same(wasm.encode(tok, text), py_encoded(py.encode(text)), f"{name} single, {text[:40]!r}")
    REPORT[name] = {"texts": len(TEXTS), "tokens": tokens, "model": wasm.info(tok)["model"]}


@pytest.mark.parametrize("name", ["wordpiece", "bpe-bytelevel", "unigram"])
def test_pairs_and_special_tokens(wasm, files, name):
    py = Tokenizer.from_str(files[name])
    tok = wasm.load(files[name].encode("utf-8"))
    sample = TEXTS[:60]
    for a, b in zip(sample, sample[1:]):
        for special in (True, False):
            assert_same(wasm.encode(tok, a, b, add_special_tokens=special),
                        py_encoded(py.encode(a, b, add_special_tokens=special)),
                        f"{name} pair special={special}, {a[:30]!r} + {b[:30]!r}")


@pytest.mark.parametrize("name", ["wordpiece", "bpe-bytefallback", "unigram"])
def test_caller_truncation_windows(wasm, files, name):
    py = Tokenizer.from_str(files[name])
    py.enable_truncation(24, stride=6)
    tok = wasm.load(files[name].encode("utf-8"))
    windows = 0
    for text in TEXTS[::2]:
        got = wasm.encode(tok, text, truncation=(24, 6))
        assert_same(got, py_encoded(py.encode(text)), f"{name} truncation, {text[:40]!r}")
        windows += 1 + len(got[1])
    # The file's own (no truncation) is back after the call.
    long = TEXTS[-1]
    assert len(wasm.encode(tok, long)[0]["ids"]) == len(Tokenizer.from_str(files[name]).encode(long).ids)
    REPORT.setdefault("truncation-windows", {})[name] = windows


@pytest.mark.parametrize("name", ["wordpiece", "bpe-bytelevel", "unigram"])
def test_decode_identical(wasm, files, name):
    py = Tokenizer.from_str(files[name])
    tok = wasm.load(files[name].encode("utf-8"))
    for text in TEXTS[::3]:
        ids = py.encode(text).ids
        for skip in (True, False):
            assert wasm.decode(tok, ids, skip) == py.decode(ids, skip_special_tokens=skip), text[:40]


@pytest.mark.parametrize("name", ["wordpiece", "bpe-bytelevel", "unigram"])
def test_offsets_in_utf16_and_utf8_point_at_the_same_text(wasm, files, name):
    tok = wasm.load(files[name].encode("utf-8"))
    for text in TEXTS[::3]:
        cp = wasm.encode(tok, text, offsets="code-points")[0]["offsets"]
        u16 = wasm.encode(tok, text, offsets="utf16")[0]["offsets"]
        u8 = wasm.encode(tok, text, offsets="utf8")[0]["offsets"]
        b16 = text.encode("utf-16-le", "surrogatepass")
        b8 = text.encode("utf-8", "surrogatepass")
        for (cs, ce), (s16, e16), (s8, e8) in zip(cp, u16, u8):
            assert b16[2 * s16:2 * e16].decode("utf-16-le", "surrogatepass") == text[cs:ce]
            if name != "bpe-bytelevel":  # byte-level tokens may end inside a character
                assert b8[s8:e8].decode("utf-8", "surrogatepass") == text[cs:ce]


def test_vocabulary_lookups(wasm, files):
    py = Tokenizer.from_str(files["wordpiece"])
    tok = wasm.load(files["wordpiece"].encode("utf-8"))
    for token in ["[CLS]", "[SEP]", "hello", "##ing", "not-a-token-at-all"]:
        assert wasm.token_to_id(tok, token) == py.token_to_id(token)
    for i in [0, 1, 2, 100, 19729, 19730, 2**32 - 1]:
        assert wasm.id_to_token(tok, i) == py.id_to_token(i)
    info = wasm.info(tok)
    assert info["model"] == "WordPiece" and info["vocab_size"] == py.get_vocab_size()
    padded = wasm.info(wasm.load(files["wordpiece-truncate-pad"].encode("utf-8")))
    assert padded["truncation"] == (48, 8) and padded["padding"] == 48


def bad_tokenizers(good):
    d = json.loads(good)
    yield "empty", b""
    yield "not json", b"\x00\xff garbage"
    yield "truncated", good.encode()[: len(good) // 2]
    yield "model missing", json.dumps({k: v for k, v in d.items() if k != "model"}).encode()
    yield "unknown model type", json.dumps({**d, "model": {**d["model"], "type": "Nope"}}).encode()
    yield "vocab of the wrong type", json.dumps({**d, "model": {**d["model"], "vocab": [1, 2]}}).encode()
    yield "truncation max 0", json.dumps({**d, "truncation": {"direction": "Right", "max_length": 0, "strategy": "LongestFirst", "stride": 0}}).encode()
    yield "stride over max", json.dumps({**d, "truncation": {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 50}}).encode()
    yield "negative id", json.dumps({**d, "added_tokens": [{"id": -1, "content": "x", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}]}).encode()
    yield "deep nesting", b"[" * 100000
    # Over 64 MiB, over 4 MiB of text, over 4096 texts: components/tokenizer's unit tests
    # (64 MiB through wasmtime-py's list<u8> takes minutes).


def test_bad_input_is_an_error_and_changes_nothing(wasm, files):
    good = files["wordpiece"]
    tok = wasm.load(good.encode("utf-8"))
    before = wasm.encode(tok, TEXTS[40])
    codes = {}
    for what, data in bad_tokenizers(good):
        with pytest.raises(TokError) as e:
            wasm.load(data)
        codes[what] = e.value.code
        assert e.value.message, what
    assert all(c == "invalid-tokenizer" for c in codes.values()), codes
    with pytest.raises(TokError) as e:
        wasm.encode(tok, "\u4e00" * (1_400_000))  # 4.2 MB of UTF-8 in 1.4M characters
    assert e.value.code == "too-large"
    for trunc in [(0, 0), (2, 0), (10, 8), (10, 100)]:
        with pytest.raises(TokError) as e:
            wasm.encode(tok, "some words here", truncation=trunc)
        assert e.value.code == "invalid-argument", trunc
    with pytest.raises(TokError) as e:
        wasm.decode(tok, [19730])
    assert e.value.code == "invalid-argument"
    # As in `tokenizers`, an unknown-token name missing from the vocabulary is refused when a
    # word needs it.
    d = json.loads(good)
    no_unk = wasm.load(json.dumps({**d, "model": {**d["model"], "unk_token": "<nope>"}}).encode())
    with pytest.raises(TokError) as e:
        wasm.encode(no_unk, "zzqxv 😀")
    assert e.value.code == "invalid-argument" and "Missing" in e.value.message
    assert wasm.encode(tok, TEXTS[40]) == before


def mutations(good, seed=7, count=150):
    """tokenizer.json files damaged at the JSON level, where the crate's own code (not the JSON
    parser) has to cope: wrong types, absurd numbers, bad regexes, missing and unknown tokens."""
    import random

    rng = random.Random(seed)
    base = json.loads(good)
    # A WordPiece vocabulary cut to its first 3000 ids: the damage is aimed at the structure,
    # and a 20k-entry vocabulary only slows every load down.
    if isinstance(base["model"].get("vocab"), dict) and "merges" not in base["model"]:
        base["model"]["vocab"] = {k: v for k, v in base["model"]["vocab"].items() if v < 3000}
    weird = [None, -1, 0, 2**40, 1.5, "", "(", "[^", "\\\\", "x" * 1000, [], {}, [1, "a"], True,
             {"Regex": "("}, {"Regex": "(?<=a+)b"}, {"String": ""}]
    paths = []

    def walk(v, path, depth=0):
        if depth > 4:
            return
        if isinstance(v, dict):
            for k in list(v)[:40]:
                if k == "vocab":
                    continue
                paths.append(path + [k])
                walk(v[k], path + [k], depth + 1)
        elif isinstance(v, list):
            for i in range(min(len(v), 5)):
                paths.append(path + [i])
                walk(v[i], path + [i], depth + 1)

    walk(base, [])
    extra = [
        {"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated", "invert": False}},
        {"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\p{Nope}"}, "behavior": "Removed", "invert": True}},
        {"normalizer": {"type": "Replace", "pattern": {"Regex": "["}, "content": "x"}},
        {"normalizer": {"type": "Precompiled", "precompiled_charsmap": "AAAA"}},
        {"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<nope>", "type_id": 0}}],
                            "pair": [], "special_tokens": {}}},
        {"model": {"type": "Unigram", "unk_id": 99, "vocab": [["a", 0.0]], "byte_fallback": False}},
        {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"], "unk_token": None}},
        {"decoder": {"type": "Nope"}},
    ]
    for e in extra:
        yield json.dumps({**base, **e}).encode()
    for _ in range(count):
        d = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(paths)
            target = d
            try:
                for p in path[:-1]:
                    target = target[p]
                target[path[-1]] = rng.choice(weird)
            except (KeyError, IndexError, TypeError):
                pass
        yield json.dumps(d).encode()


@pytest.mark.parametrize("name", ["wordpiece", "bpe-bytelevel", "unigram"])
def test_damaged_tokenizers_are_errors_never_traps(wasm, files, name):
    """Each damaged file either loads (and then encodes and decodes the corpus sample or says
    why not) or is refused with invalid-tokenizer; a trap (a panic in the wasm) fails the test."""
    loaded = refused = 0
    for data in mutations(files[name]):
        try:
            tok = wasm.load(data)
        except TokError as e:
            assert e.code in ("invalid-tokenizer", "too-large"), e
            refused += 1
            continue
        loaded += 1
        for text in TEXTS[:40:4]:
            try:
                ids = wasm.encode(tok, text)[0]["ids"]
                wasm.decode(tok, ids)
            except TokError as e:
                assert e.code == "invalid-argument", e
    assert loaded and refused
    REPORT.setdefault("damaged-files", {})[name] = {"loaded": loaded, "refused": refused}


def test_report():
    path = os.environ.get("SC_TEXT_REPORT")
    if path:
        p = Path(path)
        data = json.loads(p.read_text()) if p.is_file() else {}
        data["tokenizer"] = REPORT
        p.write_text(json.dumps(data, indent=2))
